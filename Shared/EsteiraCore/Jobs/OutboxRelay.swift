import AMQP
import Foundation
import Logging
import Postgres
import ServiceLifecycle

/// Publishes job rows that are due but unpublished: delayed jobs whose time has come, and
/// rows whose enqueuer crashed (or lost the broker) between commit and publish, and retries
/// whose message did not come back from its retry tier in time (the processor leaves a
/// watch row per retry). It finds them through `job_outbox` (a row per unpublished job or
/// watched retry), and clears outbox rows whose job no longer waits to be published
/// (claimed, cancelled or deleted since).
///
/// One relay acts at a time across all processes (a transaction-scoped advisory lock), and
/// it holds the rows' locks while it publishes and marks them, so a row is never published
/// twice by the relay.
public struct OutboxRelay: Service, Sendable {
    /// The advisory lock key ("esteira relay").
    public static let lockKey: Int64 = 0x6573_7465_7265_6c79
    public let pool: PostgresPool
    public let link: BrokerLink
    /// Rows younger than this are left to their enqueuer, which is publishing them now.
    public var grace: Double
    /// Rows per round.
    public var batchSize: Int
    public let logger: Logger

    public init(pool: PostgresPool, link: BrokerLink, grace: Double = 5, batchSize: Int = 1000, logger: Logger) {
        self.pool = pool
        self.link = link
        self.grace = grace
        self.batchSize = batchSize
        self.logger = logger
    }

    /// One round: publishes up to `batchSize` due rows. Returns how many it published, or 0
    /// when another relay holds the lock.
    @discardableResult
    public func relayOnce() async throws -> Int {
        let link = self.link, grace = self.grace, limit = self.batchSize
        return try await pool.transaction { connection in
            let locked = try connection.query("SELECT pg_try_advisory_xact_lock($1)", [OutboxRelay.lockKey])
            guard try locked.first?.decode(Bool.self, at: 0) == true else { return 0 }
            try connection.execute(OutboxRelay.staleSQL, [grace])
            let rows = try connection.query(OutboxRelay.dueSQL, [grace, limit])
            return try OutboxRelay.publish(rows, link: link, on: connection)
        }
    }

    /// Publishes the jobs `ids` now, when they still wait to be published and no one else
    /// is publishing them (their rows are locked while it publishes): a job woken from its
    /// wait for a concurrency slot. Returns how many it published.
    @discardableResult
    public static func publish(_ ids: [UUID], pool: PostgresPool, link: BrokerLink) async throws -> Int {
        guard !ids.isEmpty else { return 0 }
        return try await pool.transaction { connection in
            let rows = try connection.query("""
                SELECT j.id, j.kind, j.priority, j.attempts, j.status
                FROM job_outbox o JOIN jobs j ON j.id = o.job_id
                WHERE o.job_id = ANY($1::uuid[]) AND j.published_at IS NULL AND j.status IN ('queued', 'scheduled')
                FOR UPDATE OF o, j SKIP LOCKED
                """, [ids])
            return try OutboxRelay.publish(rows, link: link, on: connection)
        }
    }

    /// Publishes the jobs of `rows` (id, kind, priority, attempts) with confirms and marks
    /// them published, inside the caller's transaction that holds their locks.
    private static func publish(_ rows: PostgresRows, link: BrokerLink, on connection: PostgresConnection) throws -> Int {
        guard !rows.isEmpty else { return 0 }
        var messages: [AMQPOutgoingMessage] = [], ids: [UUID] = []
        for row in rows {
            let id = try row.decode(UUID.self, at: 0)
            let attempt = try row.decode(Int.self, at: 3) + 1
            messages.append(JobMessage(id: id, kind: try row.decode(String.self, at: 1), attempt: attempt)
                .outgoing(priority: try row.decode(Int.self, at: 2)))
            ids.append(id)
        }
        try link.publishConfirmedBlocking(messages)
        _ = try connection.queryPrepared(OutboxRelay.publishedSQL, [ids])
        return ids.count
    }

    /// Marks the jobs `$1` published (queued) and clears their outbox rows.
    static let publishedSQL = JobTransitions.statement(
        change: """
            UPDATE jobs SET published_at = now(), status = 'queued', updated_at = now()
            WHERE id = ANY($1::uuid[])
            RETURNING id, kind, owner_id, 'queued' AS event_status, attempts AS event_attempt,
                      '{"released": true}'::jsonb AS event_detail
            """,
        effects: ["o AS (DELETE FROM job_outbox WHERE job_id = ANY($1::uuid[]))"],
        batches: .unchanged, select: "id")

    /// The due, unpublished jobs: `$1` the grace in seconds, `$2` the batch size. A row an
    /// enqueuer publishes itself is left to it for the grace; a relay-only row (a delayed or
    /// rescued job, a watched retry still `retrying`) is taken as soon as it is due. Each kind of row is one range of the
    /// outbox index, so the fresh rows being published right now are not read.
    public static let dueSQL = """
        WITH c AS (
            (SELECT job_id, due_at FROM job_outbox
             WHERE NOT relay_only AND due_at <= now() - make_interval(secs => $1) ORDER BY due_at LIMIT $2)
            UNION ALL
            (SELECT job_id, due_at FROM job_outbox WHERE relay_only AND due_at <= now() ORDER BY due_at LIMIT $2)
        )
        SELECT j.id, j.kind, j.priority, j.attempts, j.status
        FROM c JOIN job_outbox o ON o.job_id = c.job_id JOIN jobs j ON j.id = c.job_id
        WHERE (j.published_at IS NULL AND j.status IN ('queued', 'scheduled')) OR (o.relay_only AND j.status = 'retrying')
        ORDER BY c.due_at
        LIMIT $2
        FOR UPDATE OF o, j SKIP LOCKED
        """

    /// Deletes outbox rows older than the grace (`$1`, seconds) whose job no longer waits to
    /// be published: claimed (a processor sets `published_at`), finished, cancelled or gone.
    /// These are left by an enqueuer that stopped between the broker's confirm and its delete.
    /// (`relay_only IN (false, true)` is always true: it lets the scan use the outbox index,
    /// whose first column is `relay_only`, as two `due_at` ranges.)
    public static let staleSQL = """
        DELETE FROM job_outbox o
        WHERE o.relay_only IN (false, true) AND o.due_at <= now() - make_interval(secs => $1)
          AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.id = o.job_id
                          AND ((j.published_at IS NULL AND j.status IN ('queued', 'scheduled')) OR j.status = 'retrying'))
        """

    /// Relays every `interval` seconds until the task is cancelled.
    /// Seconds between rounds when run as a service. Default 0.5.
    public var interval: Double = 0.5

    /// Runs rounds every ``interval`` seconds until graceful shutdown (as a service).
    public func run() async throws {
        try await cancelWhenGracefulShutdown { await self.run(interval: self.interval) }
    }

    /// Runs rounds every `interval` seconds until the task is cancelled.
    public func run(interval: Double) async {
        while !Task.isCancelled {
            do {
                var n = try await relayOnce()
                while n >= batchSize, !Task.isCancelled { n = try await relayOnce() }
                if n > 0 { logger.info("relayed unpublished jobs", metadata: ["count": "\(n)"]) }
            } catch is CancellationError {
                return
            } catch {
                logger.warning("outbox relay round failed", metadata: ["error": "\(error)"])
            }
            try? await Task.sleep(for: .milliseconds(Int(interval * 1000)))
        }
    }
}
