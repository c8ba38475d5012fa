import ArgumentParser
import EsteiraCore
import EsteiraService
import Hummingbird

/// `scheduler run` (the default): stands by or leads until SIGTERM or SIGINT.
struct Run: AsyncParsableCommand {
    static let leaderSetting = Setting("ESTEIRA_SCHEDULER_LEADER_INTERVAL", "Seconds between leadership checks, 0.1-10 (default 1).",
                                       flag: "--leader-interval")
    static let tickSetting = Setting("ESTEIRA_SCHEDULER_TICK_INTERVAL", "Seconds between cron and outbox relay passes, 0.05-10 (default 0.25).",
                                     flag: "--tick-interval")
    static let rescueSetting = Setting("ESTEIRA_SCHEDULER_RESCUE_INTERVAL", "Seconds between stuck-job rescue passes, 0.1-3600 (default 5).",
                                       flag: "--rescue-interval")
    static let retentionSetting = Setting("ESTEIRA_SCHEDULER_RETENTION_INTERVAL", "Seconds between retention passes, 1-86400 (default 300).",
                                          flag: "--retention-interval")
    static let batchSetting = Setting("ESTEIRA_SCHEDULER_RETENTION_BATCH",
                                      "Jobs deleted per retention batch (one short transaction each), 1-100000 (default 1000).",
                                      flag: "--retention-batch")
    static let rollupSetting = Setting("ESTEIRA_SCHEDULER_ROLLUP_INTERVAL", "Seconds between metrics roll-up passes, 0.1-3600 (default 10).",
                                       flag: "--rollup-interval")
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

        \(Setting.helpText(EsteiraConfiguration.settings + [leaderSetting, tickSetting, rescueSetting, retentionSetting,
                                                           batchSetting, rollupSetting]))
        """
    )

    @OptionGroup var options: ServiceOptions
    @Option(help: ArgumentHelp(leaderSetting.flagHelp)) var leaderInterval: Double?
    @Option(help: ArgumentHelp(tickSetting.flagHelp)) var tickInterval: Double?
    @Option(help: ArgumentHelp(rescueSetting.flagHelp)) var rescueInterval: Double?
    @Option(help: ArgumentHelp(retentionSetting.flagHelp)) var retentionInterval: Double?
    @Option(help: ArgumentHelp(batchSetting.flagHelp)) var retentionBatch: Int?
    @Option(help: ArgumentHelp(rollupSetting.flagHelp)) var rollupInterval: Double?

    func run() async throws {
        let runtime = try Runtime(Scheduler.identity, options: options)
        let s = runtime.settings
        var c = SchedulerEngine.Configuration()
        c.leaderInterval = try s.double(Self.leaderSetting.name, flag: leaderInterval, default: 1, range: 0.1...10)
        c.tickInterval = try s.double(Self.tickSetting.name, flag: tickInterval, default: 0.25, range: 0.05...10)
        c.rescueInterval = try s.double(Self.rescueSetting.name, flag: rescueInterval, default: 5, range: 0.1...3600)
        c.retentionInterval = try s.double(Self.retentionSetting.name, flag: retentionInterval, default: 300, range: 1...86400)
        c.retentionBatch = try s.integer(Self.batchSetting.name, flag: retentionBatch, default: 1000, range: 1...100_000)
        c.rollupInterval = try s.double(Self.rollupSetting.name, flag: rollupInterval, default: 10, range: 0.1...3600)
        c.expiring = runtime.workloads.flatMap { $0.workload.expiring }

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
