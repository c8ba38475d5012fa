import Foundation
import Postgres

/// A delivery the processor wants to start: which job, which attempt, and whether the
/// broker delivered it before (a crashed consumer's message, or one whose consumer's
/// connection was lost).
public struct AttemptClaim: Sendable, Equatable {
    public var id: UUID
    public var attempt: Int
    public var redelivered: Bool
    /// The kind's heartbeat timeout: a redelivered copy takes over a running attempt of
    /// another processor only once that attempt's heartbeat is older than this.
    public var heartbeatTimeout: Double

    public init(id: UUID, attempt: Int, redelivered: Bool, heartbeatTimeout: Double = KindPolicy().heartbeatTimeout) {
        self.id = id
        self.attempt = attempt
        self.redelivered = redelivered
        self.heartbeatTimeout = heartbeatTimeout
    }
}

/// An attempt that may run: the job's payload and limits, read as it was claimed.
public struct StartedAttempt: Sendable {
    public var id: UUID
    public var kind: String
    public var payload: String
    public var attempt: Int
    public var maxAttempts: Int
    public var priority: Int
    public var ownerID: UUID?
    public var createdAt: Date
    /// The batch it belongs to, if any.
    public var batchID: UUID?
}

/// How an attempt ended, as the state writer records it.
public struct AttemptResult: Sendable {
    public enum Next: Sendable, Equatable {
        /// Done.
        case completed
        /// Retry after the attempt's tier delay (seconds).
        case retry(delay: Int)
        /// No more attempts.
        case dead

        /// Whether the job waits for another attempt.
        public var isRetry: Bool {
            if case .retry = self { return true }
            return false
        }
    }

    public var id: UUID
    public var kind: String
    public var attempt: Int
    public var priority: Int
    public var next: Next
    public var error: String?
    public var errorClass: ErrorClass?
    public var result: JSONValue?
    /// What the handler asked to be written with the outcome (``OutcomeWrite``).
    public var writes: [any OutcomeWrite] = []
}

/// The processor's writes of job state, each one statement for a whole batch, so that a job
/// costs two commits shared by hundreds of jobs, not several of its own (docs/benchmarks.md).
public enum AttemptStore {
    /// Marks the claimed jobs running and returns those that may run. A claim is refused
    /// (and its message should be acked without running) when the job is finished or
    /// cancelled, when the message is a stale duplicate of an attempt already made, or when
    /// the job row does not exist. A redelivered message of a `running` or `retrying` job at
    /// the same attempt runs again when its consumer died before recording the outcome: no
    /// other processor holds the attempt with a heartbeat fresher than the kind's timeout (a
    /// lost connection is not a dead process; a live holder finishes the attempt, a dead one
    /// is found by its heartbeat). A `scheduled` job's message comes from the relay, which
    /// may not have committed its release yet.
    ///
    /// With `slots`, the leases also hold concurrency slots of that kind, one key per claim.
    public static func start(_ claims: [AttemptClaim], worker: String, slots: (kind: String, keys: [String?])? = nil,
                             on connection: PostgresConnection) throws -> [StartedAttempt] {
        guard !claims.isEmpty else { return [] }
        let ids = claims.map(\.id), attempts = claims.map(\.attempt), redelivered = claims.map(\.redelivered)
        let timeouts = claims.map(\.heartbeatTimeout)
        let rows = try slots.map { try connection.queryPrepared(slottedStartSQL, [ids, attempts, redelivered, worker, timeouts, $0.kind, $0.keys]) }
            ?? connection.queryPrepared(startSQL, [ids, attempts, redelivered, worker, timeouts])
        return try rows.map { row in
            StartedAttempt(id: try row.decode(UUID.self, at: 0), kind: try row.decode(String.self, at: 1),
                           payload: try row.decode(String.self, at: 2), attempt: try row.decode(Int.self, at: 3),
                           maxAttempts: try row.decode(Int.self, at: 4), priority: try row.decode(Int.self, at: 5),
                           ownerID: try row.decode(UUID?.self, at: 6), createdAt: try row.decode(Date.self, at: 7),
                           batchID: try row.decode(UUID?.self, at: 8))
        }
    }

    /// The deliveries of a claim, each job once with its newest attempt: `$1` ids, `$2`
    /// attempts, `$3` redelivered flags, and `timeouts` the heartbeat timeouts.
    static func deliveries(timeouts: String) -> String { """
        d AS (
            SELECT DISTINCT ON (id) * FROM unnest($1::uuid[], $2::int[], $3::bool[], \(timeouts)::float8[])
                AS t(id, attempt, redelivered, timeout)
            ORDER BY id, attempt DESC
        )
        """ }

    /// Whether job `j` may start the attempt of delivery `d` (columns `attempt`,
    /// `redelivered`, `timeout`) for processor `worker`: a rerun of a running attempt only
    /// when no other processor reported holding it within the timeout.
    static func claimable(worker: String) -> String { """
        ((j.status IN ('scheduled', 'queued', 'retrying') AND j.attempts < d.attempt)
         OR (d.redelivered AND j.status IN ('running', 'retrying') AND j.attempts = d.attempt
             AND NOT EXISTS (SELECT 1 FROM job_leases l WHERE l.job_id = j.id AND l.worker <> \(worker)
                             AND l.heartbeat_at > now() - make_interval(secs => d.timeout))))
        """ }

    /// The claim: `$1` ids, `$2` attempts, `$3` redelivered flags, `$4` the processor, `$5`
    /// the heartbeat timeouts.
    static let startSQL = startStatement(lease: """
        INSERT INTO job_leases (job_id, attempt, worker, heartbeat_at)
        SELECT id, attempts, $4, now() FROM changed
        ON CONFLICT (job_id) DO UPDATE SET attempt = EXCLUDED.attempt, worker = EXCLUDED.worker, heartbeat_at = now()
        """)

    /// The claim of jobs that take concurrency slots: as ``startSQL``, and `$6` the kind,
    /// `$7` each claim's key.
    static let slottedStartSQL = startStatement(lease: """
        INSERT INTO job_leases (job_id, attempt, worker, heartbeat_at, slot_kind, slot_key)
        SELECT c.id, c.attempts, $4, now(), $6, k.key
        FROM changed c LEFT JOIN (SELECT DISTINCT ON (id) id, key FROM unnest($1::uuid[], $7::text[]) AS t(id, key)) k ON k.id = c.id
        ON CONFLICT (job_id) DO UPDATE SET attempt = EXCLUDED.attempt, worker = EXCLUDED.worker, heartbeat_at = now(),
            slot_kind = EXCLUDED.slot_kind, slot_key = EXCLUDED.slot_key
        """)

    private static func startStatement(lease: String) -> String { JobTransitions.statement(
        before: [deliveries(timeouts: "$5")],
        change: """
            UPDATE jobs j SET status = 'running', attempts = d.attempt, started_at = now(),
                   first_started_at = coalesce(j.first_started_at, now()),
                   published_at = coalesce(j.published_at, now()),
                   updated_at = now()
            FROM d
            WHERE j.id = d.id AND \(claimable(worker: "$4"))
            RETURNING j.id, j.kind, j.payload::text AS payload, j.attempts, j.max_attempts, j.priority, j.owner_id, j.created_at,
                      j.batch_id, 'running' AS event_status, j.attempts AS event_attempt, NULL::jsonb AS event_detail
            """,
        effects: ["lease AS (\n\(lease)\n)"],
        batches: .unchanged, select: "id, kind, payload, attempts, max_attempts, priority, owner_id, created_at, batch_id") }

    /// What ``finish(_:on:)`` changed.
    public struct Finished: Sendable {
        /// The jobs changed (still `running` at their attempt).
        public var changed: Set<UUID> = []
        /// The batches whose last open job these were: to be settled.
        public var endedBatches: [UUID] = []
    }

    /// Records how attempts ended (completed, retrying with its run-after, or dead with a
    /// dead-letter row) with their events. Only a job still `running` at that attempt is
    /// changed. A retrying job gets a relay-only outbox row due `retryWatch` seconds after
    /// its run-after: should its message not come back from the retry tier by then (a tier
    /// that lost it, a broker node gone with it), the relay publishes the attempt again; the
    /// row goes once the job is claimed.
    @discardableResult
    public static func finish(_ results: [AttemptResult], retryWatch: Double = 60, on connection: PostgresConnection) throws -> Finished {
        guard !results.isEmpty else { return Finished() }
        var statuses: [String] = [], delays: [Int] = [], errors: [String?] = [], classes: [String?] = [], values: [String?] = []
        for r in results {
            switch r.next {
            case .completed: statuses.append("completed"); delays.append(0)
            case .retry(let d): statuses.append("retrying"); delays.append(d)
            case .dead: statuses.append("dead"); delays.append(0)
            }
            errors.append(r.error.map { String($0.prefix(2000)) })
            classes.append(r.errorClass?.rawValue)
            values.append(r.result?.jsonText)
        }
        let parameters: [PostgresEncodable?] = [results.map(\.id), results.map(\.attempt), statuses, delays, errors, classes, values, retryWatch]
        let writes = results.flatMap(\.writes)
        // The handlers' writes go first: the outcome statement locks the row of each batch it
        // counts down, and every writer of that batch's outcomes waits on it until this commits.
        let rows = try writes.isEmpty ? connection.queryPrepared(finishSQL, parameters) : connection.transaction { c in
            try OutcomeWrites.make(writes, on: c)
            return try c.queryPrepared(finishSQL, parameters)
        }
        return Finished(changed: Set(try rows.map { try $0.decode(UUID.self, at: 0) }),
                        endedBatches: JobTransitions.endedBatchIDs(try rows.first?.decode(String?.self, at: 1)))
    }

    /// The outcomes: `$1` ids, `$2` attempts, `$3` new statuses, `$4` retry delays, `$5`
    /// errors, `$6` error classes, `$7` results, `$8` the retry watch in seconds.
    static let finishSQL = JobTransitions.statement(
        before: ["""
            d AS (
                SELECT * FROM unnest($1::uuid[], $2::int[], $3::text[], $4::int[], $5::text[], $6::text[], $7::text[])
                    AS t(id, attempt, status, delay, error, error_class, result)
            )
            """],
        change: """
            UPDATE jobs j SET status = d.status, updated_at = now(),
                   finished_at = CASE WHEN d.status = 'retrying' THEN NULL ELSE now() END,
                   run_after = CASE WHEN d.status = 'retrying' THEN now() + make_interval(secs => d.delay) ELSE j.run_after END,
                   last_error = coalesce(d.error, j.last_error),
                   last_error_class = coalesce(d.error_class, j.last_error_class),
                   result = coalesce(d.result::jsonb, j.result)
            FROM d
            WHERE j.id = d.id AND j.status = 'running' AND j.attempts = d.attempt
            RETURNING j.id, j.kind, j.owner_id, j.status, j.attempts, j.batch_id, j.run_after, d.error, d.error_class,
                      j.status AS event_status, j.attempts AS event_attempt,
                      CASE WHEN d.error IS NULL THEN NULL
                           ELSE jsonb_strip_nulls(jsonb_build_object('error', d.error, 'error_class', d.error_class,
                                'retry_in_seconds', CASE WHEN j.status = 'retrying' THEN d.delay END)) END AS event_detail
            """,
        effects: ["""
            dl AS (
                INSERT INTO dead_letters (job_id, kind, owner_id, reason, error_class, attempts)
                SELECT id, kind, owner_id, coalesce(error, 'dead'), coalesce(error_class, 'permanent'), attempts
                FROM changed WHERE status = 'dead'
                ON CONFLICT (job_id) DO UPDATE SET reason = EXCLUDED.reason, error_class = EXCLUDED.error_class,
                    attempts = EXCLUDED.attempts, dead_at = now(), requeued_at = NULL, requeue_id = NULL
            )
            """, """
            lease AS (
                DELETE FROM job_leases l USING changed WHERE l.job_id = changed.id
            )
            """, """
            watch AS (
                INSERT INTO job_outbox (job_id, due_at, relay_only)
                SELECT id, run_after + make_interval(secs => $8::float8), true FROM changed WHERE status = 'retrying'
                ON CONFLICT (job_id) DO UPDATE SET due_at = EXCLUDED.due_at, relay_only = true,
                    waiting_kind = NULL, waiting_key = NULL
            )
            """],
        batches: .ends, select: "id, \(JobTransitions.endedBatches)")

    /// Ends the leases of attempts `worker` hands back at its drain timeout (each job's id,
    /// attempt and kind's heartbeat timeout): their heartbeats are made as old as the
    /// timeout, so a redelivered copy takes them over at once and the rescue finds them at
    /// its next pass.
    public static func handBack(_ attempts: [(id: UUID, attempt: Int, timeout: Double)], worker: String,
                                on connection: PostgresConnection) throws {
        guard !attempts.isEmpty else { return }
        try connection.execute("""
            UPDATE job_leases l SET heartbeat_at = now() - make_interval(secs => t.timeout + 1)
            FROM unnest($2::uuid[], $3::int[], $4::float8[]) AS t(id, attempt, timeout)
            WHERE l.job_id = t.id AND l.attempt = t.attempt AND l.worker = $1
            """, [worker, attempts.map(\.id), attempts.map(\.attempt), attempts.map(\.timeout)])
    }

    /// Deletes the lease of a cancelled job's attempt once its handler has stopped (a lease
    /// that held a concurrency slot outlives the cancel until then).
    public static func release(_ id: UUID, attempt: Int, worker: String, on connection: PostgresConnection) throws {
        try connection.execute("DELETE FROM job_leases WHERE job_id = $1 AND attempt = $2 AND worker = $3", [id, attempt, worker])
    }

    /// Records a dead message (poison, or dead-lettered by the broker): the job dead when
    /// its row exists and is not finished, and a dead-letter row either way.
    public static func recordDeadMessage(jobID: UUID?, kind: String?, reason: String, errorClass: ErrorClass,
                                         raw: [UInt8], on connection: PostgresConnection) throws {
        if let jobID {
            let rows = try connection.query(JobTransitions.statement(
                change: """
                    UPDATE jobs SET status = 'dead', last_error = $2, last_error_class = $3, finished_at = now(),
                           updated_at = now()
                    WHERE id = $1 AND status NOT IN ('completed', 'dead', 'cancelled')
                    RETURNING id, kind, owner_id, attempts, batch_id, status, 'dead' AS event_status, attempts AS event_attempt,
                              jsonb_build_object('error', $2::text, 'error_class', $3::text) AS event_detail
                    """,
                effects: ["""
                    dl AS (
                        INSERT INTO dead_letters (job_id, kind, owner_id, reason, error_class, attempts)
                        SELECT id, kind, owner_id, $2, $3, attempts FROM changed
                        ON CONFLICT (job_id) DO UPDATE SET reason = EXCLUDED.reason, error_class = EXCLUDED.error_class,
                            dead_at = now(), requeued_at = NULL, requeue_id = NULL
                    )
                    """,
                    "lease AS (DELETE FROM job_leases l USING changed WHERE l.job_id = changed.id)",
                    "ob AS (DELETE FROM job_outbox o USING changed WHERE o.job_id = changed.id)"],
                batches: .ends, select: "id"), [jobID, reason, errorClass.rawValue])
            if !rows.isEmpty { return }
            // A finished job's stray copy: nothing to record on the job; keep the message below
            // only if no dead letter exists for the job.
            let exists = try connection.query("SELECT 1 FROM jobs WHERE id = $1", [jobID])
            if !exists.isEmpty { return }
        }
        try connection.execute("""
            INSERT INTO dead_letters (job_id, kind, reason, error_class, raw_message) VALUES (NULL, $1, $2, $3, $4)
            """, [kind, reason, errorClass.rawValue, raw])
    }
}
