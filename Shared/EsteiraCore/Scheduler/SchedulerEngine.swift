import Foundation
import Logging
import Metrics
import Postgres
import ServiceLifecycle

/// The scheduler's work, done by the leader only: the outbox relay (which also releases
/// delayed jobs), cron schedule ticks, stuck-job rescue, retention and the metrics roll-up.
/// Every instance stands by and checks leadership every `leaderInterval` seconds; the one
/// that leads runs the loops, and stops them the moment it no longer leads. A
/// swift-service-lifecycle `Service`: on graceful shutdown it stops leading and resigns.
public final class SchedulerEngine: Service, @unchecked Sendable {
    public struct Configuration: Sendable {
        /// Seconds between leadership checks (a standby takes over within about this).
        public var leaderInterval: Double = 1
        /// Seconds between cron and relay passes.
        public var tickInterval: Double = 0.25
        /// Seconds between stuck-job rescue passes.
        public var rescueInterval: Double = 5
        /// Seconds between retention passes.
        public var retentionInterval: Double = 300
        /// Rows per retention batch (each batch its own transaction).
        public var retentionBatch: Int = 1000
        /// Seconds between metrics roll-up passes.
        public var rollupInterval: Double = 10
        /// A minute of metrics is final this many seconds after it ends.
        public var rollupSettle: Double = 90
        /// Workload rows the retention pass deletes too.
        public var expiring: [ExpiringRows] = []
        /// This instance's name in logs.
        public var name: String = "scheduler-\(ProcessInfo.processInfo.processIdentifier)@\(ProcessInfo.processInfo.hostName)"

        public init() {}
    }

    public let configuration: Configuration
    public let catalog: KindCatalog
    public let pool: PostgresPool
    public let leadership: Leadership
    public let enqueuer: Enqueuer
    let logger: Logger
    private let schedules: ScheduleStore
    private let leaderGauge = Gauge(label: "esteira_scheduler_leader")

    /// `leaderPool`: a pool of one connection, the leadership's alone.
    public init(configuration: Configuration, catalog: KindCatalog, pool: PostgresPool, leaderPool: PostgresPool,
                enqueuer: Enqueuer, logger: Logger) {
        self.configuration = configuration
        self.catalog = catalog
        self.pool = pool
        self.enqueuer = enqueuer
        self.logger = logger
        self.leadership = Leadership(pool: leaderPool, interval: configuration.leaderInterval, logger: logger)
        self.schedules = ScheduleStore(catalog: catalog)
    }

    /// Stands by or leads until graceful shutdown (or cancellation); then resigns.
    public func run() async {
        leaderGauge.record(0)
        try? await cancelWhenGracefulShutdown { await self.standByOrLead() }
        await leadership.resign()
        leaderGauge.record(0)
    }

    /// Checks leadership every `leaderInterval`; while leading, runs the loops beside the
    /// checks and stops them at the first check that is lost.
    private func standByOrLead() async {
        let interval = Duration.milliseconds(Int(configuration.leaderInterval * 1000))
        while !Task.isCancelled {
            guard await leadership.round() else {
                try? await Task.sleep(for: interval)
                continue
            }
            leaderGauge.record(1)
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await self.lead() }
                while !Task.isCancelled {
                    try? await Task.sleep(for: interval)
                    if Task.isCancelled { break }
                    guard await leadership.round() else { break }
                }
                group.cancelAll()
            }
            leaderGauge.record(0)
        }
    }

    /// The leader's loops, until cancelled.
    func lead() async {
        let c = configuration
        await withDiscardingTaskGroup { group in
            group.addTask {
                await OutboxRelay(pool: self.pool, link: self.enqueuer.link, logger: self.logger).run(interval: c.tickInterval)
            }
            group.addTask { await self.every(c.tickInterval, "cron ticks") { try await self.tickSchedules() } }
            group.addTask { await self.every(c.rescueInterval, "stuck-job rescue") { try await self.rescue() } }
            group.addTask { await self.every(c.rescueInterval, "batch sweep") { try await self.settleBatches() } }
            group.addTask { await self.every(c.retentionInterval, "retention") { try await self.retain() } }
            group.addTask { await self.every(c.rollupInterval, "metrics roll-up") { try await self.rollUp() } }
        }
    }

    private func every(_ seconds: Double, _ what: String, _ body: () async throws -> Void) async {
        while !Task.isCancelled {
            do {
                try await body()
            } catch is CancellationError {
                return
            } catch {
                logger.warning("\(what) pass failed", metadata: ["error": "\(error)"])
            }
            try? await Task.sleep(for: .milliseconds(Int(seconds * 1000)))
        }
    }

    /// One cron pass: due schedules enqueue their tick's job, published after commit.
    @discardableResult
    public func tickSchedules(now: Date = Date()) async throws -> [EnqueueOutcome] {
        let store = enqueuer.store, schedules = self.schedules, logger = self.logger
        var all: [EnqueueOutcome] = []
        while true {
            let outcomes = try await pool.transaction { try schedules.tick(store: store, now: now, on: $0, logger: logger) }
            guard !outcomes.isEmpty else { break }
            for o in outcomes {
                Counter(label: "esteira_schedule_ticks_total", dimensions: [("kind", o.kind)]).increment()
                if o.created { Counter(label: "esteira_jobs_enqueued_total", dimensions: [("kind", o.kind)]).increment() }
            }
            await enqueuer.publish(outcomes)
            all += outcomes
            if outcomes.count < 500 { break }
        }
        if !all.isEmpty { logger.info("schedules ticked", metadata: ["jobs": "\(all.count)"]) }
        return all
    }

    /// One rescue pass.
    @discardableResult
    public func rescue() async throws -> [(id: UUID, status: String)] {
        let catalog = self.catalog
        let rescued = try await pool.transaction { try StuckJobRescue.rescue(catalog: catalog, on: $0) }
        let cleared = try await pool.withConnection { try StuckJobRescue.clearLeftLeases(catalog: catalog, on: $0) }
        if cleared > 0 { logger.warning("leases of finished jobs cleared: their processors stopped", metadata: ["count": "\(cleared)"]) }
        for r in rescued {
            Counter(label: "esteira_jobs_rescued_total", dimensions: [("outcome", r.status)]).increment()
            logger.warning("stuck job rescued: its processor stopped reporting it",
                           metadata: ["job": "\(r.id)", "now": "\(r.status)"])
        }
        return rescued
    }

    /// One batch sweep: batches whose last job ended where no settle followed (a rescue that
    /// left it dead, a dead message, a processor killed after recording it) get their callbacks.
    @discardableResult
    public func settleBatches() async throws -> Int {
        let batches = Batches(store: enqueuer.store)
        let open = try await pool.withConnection { try batches.unsettled(on: $0) }
        var settled = 0
        // One batch that cannot be settled (logged) does not hold up the others.
        for id in open where await batches.settleAndPublish(id, pool: pool, enqueuer: enqueuer) { settled += 1 }
        if settled > 0 { logger.info("batches settled by the sweep", metadata: ["count": "\(settled)"]) }
        return settled
    }

    /// One retention pass.
    @discardableResult
    public func retain() async throws -> [String: Int] {
        let deleted = try await Retention.run(catalog: catalog, pool: pool, batchSize: configuration.retentionBatch)
        for (kind, n) in deleted {
            Counter(label: "esteira_jobs_deleted_total", dimensions: [("kind", kind)]).increment(by: n)
        }
        if !deleted.isEmpty { logger.info("retention deleted finished jobs", metadata: ["per_kind": "\(deleted)"]) }
        let rows = try await Retention.run(expiring: configuration.expiring, pool: pool, batchSize: configuration.retentionBatch)
        if !rows.isEmpty { logger.info("retention deleted expired workload rows", metadata: ["per_table": "\(rows)"]) }
        return deleted
    }

    /// One roll-up pass.
    @discardableResult
    public func rollUp() async throws -> Int {
        let settle = configuration.rollupSettle
        return try await pool.transaction { try MetricsRollup.pass(settle: settle, on: $0) }
    }
}
