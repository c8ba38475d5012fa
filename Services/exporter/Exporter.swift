import ArgumentParser
import EsteiraService
import Workloads

/// The `exporter` executable: runs batch exports of leads to their targets.
@main
struct Exporter: AsyncParsableCommand, EsteiraExecutable {
    static let identity = ExecutableIdentity(name: "exporter", defaultPort: 9102, workloads: Workloads.all)
    static let configuration = CommandConfiguration(
        commandName: "exporter",
        abstract: "Esteira's exporter: runs batch exports of leads to external tables, day by day, with pause and resume.",
        subcommands: [Run.self, MigrateCommand<Exporter>.self],
        defaultSubcommand: Run.self
    )
}
