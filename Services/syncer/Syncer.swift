import ArgumentParser
import EsteiraService
import Workloads

/// The `syncer` executable: runs store syncs from Shopify and Klaviyo into the cache.
@main
struct Syncer: AsyncParsableCommand, EsteiraExecutable {
    static let identity = ExecutableIdentity(name: "syncer", defaultPort: 9103, workloads: Workloads.all)
    static let configuration = CommandConfiguration(
        commandName: "syncer",
        abstract: "Esteira's syncer: fetches stores' Shopify and Klaviyo data for a period into the sync cache.",
        subcommands: [Run.self, MigrateCommand<Syncer>.self],
        defaultSubcommand: Run.self
    )
}
