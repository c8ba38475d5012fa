import ArgumentParser
import EsteiraService

/// The `api` executable: the HTTP API of Esteira.
@main
struct API: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "api",
        abstract: "Esteira's HTTP API: jobs, principals, health and metrics.",
        subcommands: [Serve.self, MigrateCommand.self],
        defaultSubcommand: Serve.self
    )
}
