import ArgumentParser
import EsteiraCore
import EsteiraService
import Hummingbird

/// `scheduler run` (the default): stands by or leads until SIGTERM or SIGINT.
struct Run: AsyncParsableCommand {
    static let settings = EsteiraConfiguration.settings + [
        Setting("ESTEIRA_SCHEDULER_LEADER_INTERVAL", "seconds between leadership checks, 0.1-10 (default 1; --leader-interval)."),
        Setting("ESTEIRA_SCHEDULER_TICK_INTERVAL", "seconds between cron and outbox relay passes, 0.05-10 (default 0.25; --tick-interval)."),
        Setting("ESTEIRA_SCHEDULER_RESCUE_INTERVAL", "seconds between stuck-job rescue passes, 0.1-3600 (default 5; --rescue-interval)."),
        Setting("ESTEIRA_SCHEDULER_RETENTION_INTERVAL", "seconds between retention passes, 1-86400 (default 300; --retention-interval)."),
        Setting("ESTEIRA_SCHEDULER_RETENTION_BATCH", "jobs deleted per retention batch, 1-100000 (default 1000; --retention-batch)."),
        Setting("ESTEIRA_SCHEDULER_ROLLUP_INTERVAL", "seconds between metrics roll-up passes, 0.1-3600 (default 10; --rollup-interval)."),
    ]
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Stand by, and act while leading (the default command).",
        discussion: """
        Any number of schedulers may run; one leads (a PostgreSQL advisory lock held on a connection of its own) \
        and only the leader acts: it publishes job rows left unpublished and delayed jobs when due, enqueues one job \
        per cron tick, rescues running jobs whose heartbeat stopped for longer than their kind's heartbeatTimeout, \
        deletes finished jobs older than their kind's retention, and rolls job events up into per-kind per-minute \
        metrics (GET /v1/metrics/queues on the api). When the leader stops or dies, a standby takes over within \
        the leader interval (plus the time the database takes to see the connection gone). GET /status on its \
        port tells whether this instance leads.

        \(Setting.helpText(settings))
        """
    )

    @OptionGroup var options: ServiceOptions
    @Option(help: "Seconds between leadership checks, 0.1-10 (env ESTEIRA_SCHEDULER_LEADER_INTERVAL, default 1).")
    var leaderInterval: Double?
    @Option(help: "Seconds between cron and outbox relay passes, 0.05-10 (env ESTEIRA_SCHEDULER_TICK_INTERVAL, default 0.25).")
    var tickInterval: Double?
    @Option(help: "Seconds between stuck-job rescue passes, 0.1-3600 (env ESTEIRA_SCHEDULER_RESCUE_INTERVAL, default 5).")
    var rescueInterval: Double?
    @Option(help: "Seconds between retention passes, 1-86400 (env ESTEIRA_SCHEDULER_RETENTION_INTERVAL, default 300).")
    var retentionInterval: Double?
    @Option(help: "Jobs deleted per retention batch (one short transaction each), 1-100000 (env ESTEIRA_SCHEDULER_RETENTION_BATCH, default 1000).")
    var retentionBatch: Int?
    @Option(help: "Seconds between metrics roll-up passes, 0.1-3600 (env ESTEIRA_SCHEDULER_ROLLUP_INTERVAL, default 10).")
    var rollupInterval: Double?

    func run() async throws {
        let runtime = try Runtime(Scheduler.identity, options: options)
        let s = runtime.settings
        var c = SchedulerEngine.Configuration()
        c.leaderInterval = try s.double("ESTEIRA_SCHEDULER_LEADER_INTERVAL", flag: leaderInterval, default: 1, range: 0.1...10)
        c.tickInterval = try s.double("ESTEIRA_SCHEDULER_TICK_INTERVAL", flag: tickInterval, default: 0.25, range: 0.05...10)
        c.rescueInterval = try s.double("ESTEIRA_SCHEDULER_RESCUE_INTERVAL", flag: rescueInterval, default: 5, range: 0.1...3600)
        c.retentionInterval = try s.double("ESTEIRA_SCHEDULER_RETENTION_INTERVAL", flag: retentionInterval, default: 300, range: 1...86400)
        c.retentionBatch = try s.integer("ESTEIRA_SCHEDULER_RETENTION_BATCH", flag: retentionBatch, default: 1000, range: 1...100_000)
        c.rollupInterval = try s.double("ESTEIRA_SCHEDULER_ROLLUP_INTERVAL", flag: rollupInterval, default: 10, range: 0.1...3600)

        let engine = SchedulerEngine(configuration: c, catalog: runtime.catalog, pool: runtime.pool,
                                     leaderPool: try runtime.makePool(applicationName: "scheduler-leadership", maxConnections: 1),
                                     enqueuer: runtime.enqueuer, logger: runtime.logger)
        runtime.add(engine)
        try await runtime.run { router in
            router.get("status") { _, _ in SchedulerStatus(leader: engine.leadership.isLeader, name: c.name) }
        }
    }
}

/// `GET /status`: whether this instance leads.
struct SchedulerStatus: ResponseEncodable {
    var leader: Bool
    var name: String
}
