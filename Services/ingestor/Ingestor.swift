import ArgumentParser
import EsteiraService
import Workloads

/// The `ingestor` executable: takes in what outside services post (provider webhooks) and
/// reads the stores' mailboxes; stores what arrives once and enqueues its processing.
@main
struct Ingestor: AsyncParsableCommand, EsteiraExecutable {
    static let identity = ExecutableIdentity(name: "ingestor", defaultPort: 9104, workloads: Workloads.all)
    static let configuration = CommandConfiguration(
        commandName: "ingestor",
        abstract: "Esteira's ingestor: takes webhooks in and reads mailboxes, stores what arrives once and enqueues its processing.",
        subcommands: [Run.self, MigrateCommand<Ingestor>.self],
        defaultSubcommand: Run.self
    )
}
