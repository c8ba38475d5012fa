import Foundation
import Logging
import Metrics
import Postgres

/// The scheduler's work, done by the leader only: the outbox relay (which also releases
/// delayed jobs), cron schedule ticks, stuck-job rescue, retention and the metrics roll-up.
/// Every instance stands by and checks leadership every `leaderInterval` seconds; the one
/// that leads runs the loops, and stops them the moment it no longer leads.
public final class SchedulerEngine: @unchecked Sendable {
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

    /// Stands by or leads until the task is cancelled; then resigns.
    public func run() async {
        leaderGauge.record(0)
        var work: Task<Void, Never>?
        while !Task.isCancelled {
            let leading = await leadership.round()
            leaderGauge.record(leading ? 1 : 0)
            if leading, work == nil {
                work = Task { await self.lead() }
            } else if !leading, let w = work {
                w.cancel()
                await w.value
                work = nil
            }
            try? await Task.sleep(for: .milliseconds(Int(configuration.leaderInterval * 1000)))
        }
        work?.cancel()
        await work?.value
        await leadership.resign()
        leaderGauge.record(0)
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
        for r in rescued {
            Counter(label: "esteira_jobs_rescued_total", dimensions: [("outcome", r.status)]).increment()
            logger.warning("stuck job rescued: its processor stopped reporting it",
                           metadata: ["job": "\(r.id)", "now": "\(r.status)"])
        }
        return rescued
    }

    /// One retention pass.
    @discardableResult
    public func retain() async throws -> [String: Int] {
        let deleted = try await Retention.run(catalog: catalog, pool: pool, batchSize: configuration.retentionBatch)
        for (kind, n) in deleted {
            Counter(label: "esteira_jobs_deleted_total", dimensions: [("kind", kind)]).increment(by: n)
        }
        if !deleted.isEmpty { logger.info("retention deleted finished jobs", metadata: ["per_kind": "\(deleted)"]) }
        return deleted
    }

    /// One roll-up pass.
    @discardableResult
    public func rollUp() async throws -> Int {
        let settle = configuration.rollupSettle
        return try await pool.transaction { try MetricsRollup.pass(settle: settle, on: $0) }
    }
}
