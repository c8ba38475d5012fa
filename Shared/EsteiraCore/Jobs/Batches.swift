import Foundation
import Postgres

/// A job a batch enqueues when it ends: its kind and payload (an object, to which the batch's
/// id and counts are added under `batch`).
public struct BatchCallback: Sendable, Equatable, Codable {
    public var kind: String
    public var payload: [String: JSONValue]

    public init(kind: String, payload: [String: JSONValue] = [:]) {
        self.kind = kind
        self.payload = payload
    }
}

/// A batch and how far it has got.
public struct BatchRecord: Sendable, Encodable {
    public enum State: String, Sendable, Encodable {
        /// Some jobs have not finished.
        case running
        /// Every job completed.
        case succeeded
        /// Every job finished, some dead or cancelled.
        case completed
    }

    public var id: UUID
    public var ownerID: UUID?
    public var description: String?
    public var state: State
    public var total: Int
    public var completed: Int
    /// Dead: failed for good.
    public var failed: Int
    public var cancelled: Int
    /// Not finished yet (waiting, running or between attempts).
    public var pending: Int
    public var percent: Double
    public var createdAt: Date
    public var cancelledAt: Date?
    public var finishedAt: Date?
    public var onSuccess: BatchCallback?
    public var onComplete: BatchCallback?
    public var successJobID: UUID?
    public var completeJobID: UUID?
    public var events: [Event]?

    /// One thing that happened to the batch.
    public struct Event: Sendable, Encodable {
        public var event: String
        public var at: Date
        public var detail: JSONValue?
    }

    enum CodingKeys: String, CodingKey {
        case id, description, state, total, completed, failed, cancelled, pending, percent, events
        case ownerID = "owner_id", createdAt = "created_at", cancelledAt = "cancelled_at", finishedAt = "finished_at"
        case onSuccess = "on_success", onComplete = "on_complete", successJobID = "success_job_id", completeJobID = "complete_job_id"
    }
}

/// Why a batch change was refused.
public enum BatchError: Error, Sendable, Equatable {
    case notFound
    /// It has finished (its callbacks are enqueued) or was cancelled: no more jobs.
    case closed
}

/// Batches of jobs: made through the api or by a handler fanning out, with progress counted
/// from their jobs' states, and callbacks enqueued exactly once when every job has finished
/// (``settle(_:on:)``: under the batch's row lock, in the transaction that marks it finished).
/// A batch's open (unfinished) jobs are counted on its row (`open_jobs`) by every job state
/// change (``JobTransitions/BatchCount``), so its end is found without counting its jobs: the
/// processor settles a batch when its outcome writer finished the batch's last open job, the
/// api when it cancels, and the scheduler sweeps for batches whose last job ended another way
/// (a rescue, a dead message).
public struct Batches: Sendable {
    public let store: JobStore

    public init(store: JobStore) {
        self.store = store
    }

    /// Makes batch `id` of `owner` (to be called inside the transaction that enqueues its jobs).
    /// A `held` batch counts one open job more than it has, so it cannot end while its jobs
    /// are still being written in transactions of their own (a fan-out in chunks): its writer
    /// lets go of it with ``release(_:on:)`` once the last is written.
    public func create(_ id: UUID, owner: UUID?, description: String?, onSuccess: BatchCallback?, onComplete: BatchCallback?,
                       jobs: Int, held: Bool = false, on connection: PostgresConnection) throws {
        try connection.execute("""
            INSERT INTO batches (id, owner_id, description, on_success, on_complete, open_jobs) VALUES ($1, $2, $3, $4::jsonb, $5::jsonb, $6)
            """, [id, owner, description, onSuccess.map(Self.json), onComplete.map(Self.json), held ? 1 : 0])
        try Self.event(id, "created", detail: ["jobs": .number(Double(jobs))], on: connection)
    }

    /// Lets go of held batch `id` (see ``create(_:owner:description:onSuccess:onComplete:jobs:held:on:)``),
    /// once, in the transaction that records that its jobs are all written. Returns whether
    /// every job of it has finished already: it is then to be settled.
    public func release(_ id: UUID, on connection: PostgresConnection) throws -> Bool {
        try connection.query("UPDATE batches SET open_jobs = open_jobs - 1 WHERE id = $1 RETURNING open_jobs = 0", [id])
            .first?.decode(Bool.self, at: 0) ?? false
    }

    /// Checks that jobs may join batch `id` (seen by `owner`; nil: an admin or the system):
    /// it exists and is open. Locks it until the transaction ends, so it cannot finish meanwhile.
    public func admit(_ id: UUID, owner: UUID?, jobs: Int, on connection: PostgresConnection) throws {
        let rows = try connection.query("""
            SELECT finished_at IS NULL AND cancelled_at IS NULL FROM batches WHERE id = $1 AND ($2::uuid IS NULL OR owner_id = $2)
            FOR UPDATE
            """, [id, owner])
        guard let row = rows.first else { throw BatchError.notFound }
        guard try row.decode(Bool.self, at: 0) else { throw BatchError.closed }
        try Self.event(id, "jobs_added", detail: ["jobs": .number(Double(jobs))], on: connection)
    }

    /// When every job of batch `id` has finished and it is not marked finished yet: marks it
    /// and enqueues its callbacks, in one transaction. Returns the callbacks' outcomes (to be
    /// published), or [] when it is not done or was settled before.
    public func settle(_ id: UUID, on connection: PostgresConnection) throws -> [EnqueueOutcome] {
        // A call while jobs of the batch are open reads its row, and takes no lock.
        if try Self.hasUnfinishedJobs(id, on: connection) { return [] }
        return try connection.transaction { c in
            let rows = try c.query("""
                SELECT owner_id, on_success::text, on_complete::text FROM batches WHERE id = $1 AND finished_at IS NULL FOR UPDATE
                """, [id])
            guard let row = rows.first else { return [] }
            let counts = try Self.counts(id, on: c)
            guard counts.pending == 0, counts.total > 0 else { return [] }
            let owner = try row.decode(UUID?.self, at: 0)
            let succeeded = counts.completed == counts.total
            let summary: JSONValue = .object([
                "id": .string(id.uuidString.lowercased()), "state": .string(succeeded ? "succeeded" : "completed"),
                "total": .number(Double(counts.total)), "completed": .number(Double(counts.completed)),
                "failed": .number(Double(counts.failed)), "cancelled": .number(Double(counts.cancelled)),
            ])
            var callbacks: [BatchCallback] = []
            var success: BatchCallback?, complete: BatchCallback?
            if succeeded, let text = try row.decode(String?.self, at: 1) { success = try Self.callback(text) }
            if let text = try row.decode(String?.self, at: 2) { complete = try Self.callback(text) }
            callbacks = [success, complete].compactMap { $0 }
            let jobs = callbacks.map { cb -> NewJob in
                var payload = cb.payload
                payload["batch"] = summary
                return NewJob(kind: cb.kind, payload: JSONValue.object(payload).jsonText, ownerID: owner)
            }
            let outcomes = jobs.isEmpty ? [] : try store.insert(jobs, on: c)
            let successID = success == nil ? nil : outcomes.first?.id
            let completeID = complete == nil ? nil : outcomes.last?.id
            try c.execute("UPDATE batches SET finished_at = now(), success_job_id = $2, complete_job_id = $3 WHERE id = $1",
                          [id, successID, completeID])
            try Self.event(id, succeeded ? "succeeded" : "completed", detail: summary, on: c)
            return outcomes
        }
    }

    /// Settles batch `id` and publishes its callbacks; a failure is logged, and the scheduler's
    /// sweep settles the batch later. Returns whether it finished now.
    @discardableResult
    public func settleAndPublish(_ id: UUID, pool: PostgresPool, enqueuer: Enqueuer) async -> Bool {
        do {
            let callbacks = try await pool.withConnection { try self.settle(id, on: $0) }
            await enqueuer.publish(callbacks)
            return !callbacks.isEmpty
        } catch {
            enqueuer.logger.warning("could not settle a batch; the scheduler's sweep will", metadata: ["batch": "\(id)", "error": "\(error)"])
            return false
        }
    }

    /// Batches every job of which has finished but that are not marked finished (their last
    /// job ended where no settle followed), at most `limit`.
    public func unsettled(limit: Int = 100, on connection: PostgresConnection) throws -> [UUID] {
        try connection.query("""
            SELECT b.id FROM batches b WHERE b.finished_at IS NULL AND b.open_jobs = 0
              AND EXISTS (SELECT 1 FROM jobs j WHERE j.batch_id = b.id)
            ORDER BY b.created_at LIMIT $1
            """, [limit]).map { try $0.decode(UUID.self, at: 0) }
    }

    /// Cancels batch `id` (of `owner`; nil: any): its jobs not started yet are cancelled,
    /// running ones finish. Returns false when there is no such batch.
    public func cancel(_ id: UUID, owner: UUID?, by principal: String, on connection: PostgresConnection) throws -> Bool {
        try connection.transaction { c in
            let rows = try c.query("""
                UPDATE batches SET cancelled_at = coalesce(cancelled_at, now()) WHERE id = $1 AND ($2::uuid IS NULL OR owner_id = $2)
                RETURNING id
                """, [id, owner])
            guard !rows.isEmpty else { return false }
            let cancelled = try c.query(JobTransitions.statement(
                change: """
                    UPDATE jobs SET status = 'cancelled', finished_at = now(), updated_at = now(), run_after = NULL,
                           last_error_class = 'cancelled', last_error = 'cancelled with its batch by ' || $2
                    WHERE batch_id = $1 AND status IN ('scheduled', 'queued', 'retrying')
                    RETURNING id, kind, owner_id, batch_id, status, 'cancelled' AS event_status, attempts AS event_attempt,
                              jsonb_build_object('by', $2::text, 'batch', $1::uuid) AS event_detail
                    """,
                effects: ["ob AS (DELETE FROM job_outbox o USING changed WHERE o.job_id = changed.id)"],
                batches: .ends, select: "id"), [id, principal]).count
            try Self.event(id, "cancelled", detail: ["by": .string(principal), "jobs_cancelled": .number(Double(cancelled))], on: c)
            return true
        }
    }

    /// Batch `id` with its counts (and events when `withEvents`), if `owner` (nil: any) sees it.
    public func batch(_ id: UUID, owner: UUID?, withEvents: Bool = false, on connection: PostgresConnection) throws -> BatchRecord? {
        let rows = try connection.query("SELECT \(Self.columns) FROM batches WHERE id = $1 AND ($2::uuid IS NULL OR owner_id = $2)", [id, owner])
        guard let row = rows.first else { return nil }
        var record = try Self.record(row, on: connection)
        if withEvents {
            record.events = try connection.query("SELECT event, at, detail::text FROM batch_events WHERE batch_id = $1 ORDER BY id", [id]).map {
                BatchRecord.Event(event: try $0.decode(String.self, at: 0), at: try $0.decode(Date.self, at: 1),
                                  detail: try $0.decode(String?.self, at: 2).flatMap(JSONValue.parse))
            }
        }
        return record
    }

    /// The newest batches `owner` (nil: everyone's) sees, at most `limit`.
    public func list(owner: UUID?, limit: Int, on connection: PostgresConnection) throws -> [BatchRecord] {
        let sql = owner == nil
            ? "SELECT \(Self.columns) FROM batches ORDER BY created_at DESC LIMIT $1"
            : "SELECT \(Self.columns) FROM batches WHERE owner_id = $2 ORDER BY created_at DESC LIMIT $1"
        let rows = try connection.query(sql, owner == nil ? [limit] : [limit, owner])
        return try rows.map { try Self.record($0, on: connection) }
    }

    static let columns = """
        id, owner_id, description, on_success::text, on_complete::text, created_at, cancelled_at, finished_at, success_job_id, complete_job_id
        """

    private static func record(_ row: PostgresRow, on connection: PostgresConnection) throws -> BatchRecord {
        let id = try row.decode(UUID.self, at: 0)
        let c = try counts(id, on: connection)
        let finished = c.total - c.pending
        let state: BatchRecord.State = c.pending > 0 || c.total == 0 ? .running : (c.completed == c.total ? .succeeded : .completed)
        return BatchRecord(id: id, ownerID: try row.decode(UUID?.self, at: 1), description: try row.decode(String?.self, at: 2),
                           state: state, total: c.total, completed: c.completed, failed: c.failed, cancelled: c.cancelled,
                           pending: c.pending, percent: c.total == 0 ? 0 : (Double(finished) * 1000 / Double(c.total)).rounded() / 10,
                           createdAt: try row.decode(Date.self, at: 5), cancelledAt: try row.decode(Date?.self, at: 6),
                           finishedAt: try row.decode(Date?.self, at: 7),
                           onSuccess: try row.decode(String?.self, at: 3).map(callback), onComplete: try row.decode(String?.self, at: 4).map(callback),
                           successJobID: try row.decode(UUID?.self, at: 8), completeJobID: try row.decode(UUID?.self, at: 9))
    }

    /// The batch's jobs by state.
    static func counts(_ id: UUID, on connection: PostgresConnection) throws -> (total: Int, completed: Int, failed: Int, cancelled: Int, pending: Int) {
        let row = try connection.query(countsSQL, [id])[0]
        let total = try row.decode(Int.self, at: 0), completed = try row.decode(Int.self, at: 1)
        let failed = try row.decode(Int.self, at: 2), cancelled = try row.decode(Int.self, at: 3)
        return (total, completed, failed, cancelled, total - completed - failed - cancelled)
    }

    /// Whether batch `id` has a job not finished yet (its row's count; false for no batch).
    public static func hasUnfinishedJobs(_ id: UUID, on connection: PostgresConnection) throws -> Bool {
        try connection.query("SELECT open_jobs > 0 FROM batches WHERE id = $1", [id]).first?.decode(Bool.self, at: 0) ?? false
    }

    /// Batch `$1`'s jobs: in all, completed, dead, cancelled.
    public static let countsSQL = """
        SELECT count(*)::int, (count(*) FILTER (WHERE status = 'completed'))::int, (count(*) FILTER (WHERE status = 'dead'))::int,
               (count(*) FILTER (WHERE status = 'cancelled'))::int
        FROM jobs WHERE batch_id = $1
        """

    static func json(_ callback: BatchCallback) -> String {
        JSONValue.object(["kind": .string(callback.kind), "payload": .object(callback.payload)]).jsonText
    }

    static func callback(_ text: String) throws -> BatchCallback {
        guard let value = JSONValue.parse(text), let kind = value["kind"]?.stringValue else {
            throw PostgresError(.decodingFailed, message: "a batch callback is not {kind, payload}")
        }
        if case .object(let payload)? = value["payload"] { return BatchCallback(kind: kind, payload: payload) }
        return BatchCallback(kind: kind)
    }

    static func event(_ id: UUID, _ name: String, detail: [String: JSONValue], on connection: PostgresConnection) throws {
        try event(id, name, detail: JSONValue.object(detail), on: connection)
    }

    static func event(_ id: UUID, _ name: String, detail: JSONValue, on connection: PostgresConnection) throws {
        try connection.execute("INSERT INTO batch_events (batch_id, event, detail) VALUES ($1, $2, $3::jsonb)", [id, name, detail.jsonText])
    }
}
