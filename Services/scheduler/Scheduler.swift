import ArgumentParser
import EsteiraService

/// The `scheduler` executable: the clock of the job system, one leader at a time.
@main
struct Scheduler: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scheduler",
        abstract: "Esteira's scheduler: cron schedules, delayed jobs, outbox relay, stuck-job rescue, retention, metrics roll-up.",
        subcommands: [Run.self, MigrateCommand.self],
        defaultSubcommand: Run.self
    )
}
