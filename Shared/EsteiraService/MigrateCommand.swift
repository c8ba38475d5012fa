import ArgumentParser
import EsteiraCore
import Foundation
import Logging
import Postgres

/// `<executable> migrate`: applies the numbered SQL files of the migrations folder that the
/// database has not seen yet, in order, each once, under an advisory lock. Every executable
/// has it, so any one of them can prepare a database.
public struct MigrateCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract: "Apply pending SQL migrations to the database, then exit.",
        discussion: "Each file of the migrations folder (NNNN_name.sql) is applied once, in order, in its own transaction, recorded in esteira_migrations. Running it again is a no-op; a failing file is rolled back and named."
    )

    @OptionGroup public var options: ServiceOptions

    public init() {}

    public func run() async throws {
        let configuration = try options.configuration(defaultHTTPPort: 0)
        let logger = Observability.bootstrap(service: "migrate", configuration: configuration)
        let postgres = try PostgresConfiguration(url: configuration.databaseURL)
        let connection = try PostgresConnection(configuration: postgres)
        defer { connection.close() }
        let migrator = try Migrator(directory: URL(fileURLWithPath: configuration.migrationsDirectory))
        let applied = try migrator.migrate(on: connection)
        if applied.isEmpty {
            logger.info("database is up to date", metadata: ["migrations": "\(migrator.migrations.count)"])
        } else {
            for m in applied { logger.info("applied migration", metadata: ["version": "\(m.version)", "name": "\(m.name)"]) }
        }
    }
}
