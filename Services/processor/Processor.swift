import ArgumentParser
import EsteiraService
import Workloads

/// The `processor` executable: consumes the work queues and runs jobs.
@main
struct Processor: AsyncParsableCommand, EsteiraExecutable {
    static let identity = ExecutableIdentity(name: "processor", defaultPort: 9101, workloads: Workloads.all)
    static let configuration = CommandConfiguration(
        commandName: "processor",
        abstract: "Esteira's job processor: consumes the work queues, runs handlers, retries and dead-letters.",
        subcommands: [Run.self, MigrateCommand<Processor>.self, SwitchQueuesCommand<Processor>.self],
        defaultSubcommand: Run.self
    )
}
