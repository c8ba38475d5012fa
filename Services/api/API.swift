import ArgumentParser
import EsteiraService
import Workloads

/// The `api` executable: the HTTP API of Esteira.
@main
struct API: AsyncParsableCommand, EsteiraExecutable {
    static let identity = ExecutableIdentity(name: "api", defaultPort: 8080, workloads: Workloads.all)
    static let configuration = CommandConfiguration(
        commandName: "api",
        abstract: "Esteira's HTTP API: jobs, principals, health and metrics.",
        subcommands: [Serve.self, MigrateCommand<API>.self],
        defaultSubcommand: Serve.self
    )
}
