import ArgumentParser
import EsteiraService

/// The `processor` executable: consumes the work queues and runs jobs.
@main
struct Processor: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "processor",
        abstract: "Esteira's job processor: consumes the work queues, runs handlers, retries and dead-letters.",
        subcommands: [Run.self, MigrateCommand.self],
        defaultSubcommand: Run.self
    )
}
