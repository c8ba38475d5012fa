import ArgumentParser
import EsteiraCore
import Foundation
import Logging
import Postgres

/// `<executable> migrate`: applies the migrations the database has not seen yet, in
/// version order, each once, under an advisory lock: the numbered SQL files of the
/// migrations folder and those compiled into the workload modules. Every executable has it,
/// so any one of them can prepare a database.
public struct MigrateCommand<Executable: EsteiraExecutable>: AsyncParsableCommand {
    public static var configuration: CommandConfiguration {
        CommandConfiguration(
            commandName: "migrate",
            abstract: "Apply pending SQL migrations to the database, then exit.",
            discussion: """
            Each file of the migrations folder (NNNN_name.sql) and each migration of a workload module is applied \
            once, in version order, in its own transaction, recorded in esteira_migrations. Running it again is a \
            no-op; a failing migration is rolled back and named.
            """
        )
    }

    @OptionGroup public var options: ServiceOptions

    public init() {}

    public func run() async throws {
        let configuration = try options.configuration(defaultHTTPPort: 0)
        let logger = Observability.bootstrap(service: "migrate", configuration: configuration)
        let connection = try PostgresConnection(configuration: try PostgresConfiguration(url: configuration.databaseURL))
        defer { connection.close() }
        let migrator = try Migrator(directory: URL(fileURLWithPath: configuration.migrationsDirectory),
                                    workloads: Executable.identity.workloads.map { $0.workload })
        let applied = try migrator.migrate(on: connection)
        if applied.isEmpty {
            logger.info("database is up to date", metadata: ["migrations": "\(migrator.migrations.count)"])
        } else {
            for m in applied { logger.info("applied migration", metadata: ["version": "\(m.version)", "name": "\(m.name)"]) }
        }
    }
}
