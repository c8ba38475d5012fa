import ArgumentParser
import EsteiraService
import Workloads

/// The `scheduler` executable: the clock of the job system, one leader at a time.
@main
struct Scheduler: AsyncParsableCommand, EsteiraExecutable {
    static let identity = ExecutableIdentity(name: "scheduler", defaultPort: 9105, workloads: Workloads.all)
    static let configuration = CommandConfiguration(
        commandName: "scheduler",
        abstract: "Esteira's scheduler: cron schedules, delayed jobs, outbox relay, stuck-job rescue, retention, metrics roll-up.",
        subcommands: [Run.self, MigrateCommand<Scheduler>.self],
        defaultSubcommand: Run.self
    )
}
