import Foundation
import Postgres

/// A dead letter: a job that will not run again unless requeued, or a poison message (no job
/// row; the raw message is kept).
public struct DeadLetter: Sendable, Equatable {
    public var id: Int64
    public var jobID: UUID?
    public var kind: String?
    public var ownerID: UUID?
    public var reason: String
    public var errorClass: String
    public var attempts: Int
    public var deadAt: Date
    public var requeuedAt: Date?
    public var requeueID: Int64?
    public var rawMessage: Data?

    public static let columns = "id, job_id, kind, owner_id, reason, error_class, attempts, dead_at, requeued_at, requeue_id, raw_message"

    public init(row: PostgresRow) throws {
        id = try row.decode(Int64.self, named: "id")
        jobID = try row.decode(UUID?.self, named: "job_id")
        kind = try row.decode(String?.self, named: "kind")
        ownerID = try row.decode(UUID?.self, named: "owner_id")
        reason = try row.decode(String.self, named: "reason")
        errorClass = try row.decode(String.self, named: "error_class")
        attempts = try row.decode(Int.self, named: "attempts")
        deadAt = try row.decode(Date.self, named: "dead_at")
        requeuedAt = try row.decode(Date?.self, named: "requeued_at")
        requeueID = try row.decode(Int64?.self, named: "requeue_id")
        rawMessage = try row.decode(Data?.self, named: "raw_message")
    }
}

/// Which dead letters: by job ids, by kind, by error class and time; always open ones (not
/// requeued yet), at most `limit`.
public struct DeadLetterSelection: Sendable, Equatable {
    public var jobIDs: [UUID]?
    public var kind: String?
    public var errorClass: String?
    public var deadAfter: Date?
    public var deadBefore: Date?
    public var limit: Int
    /// Listing only: rows with an id below this (newest first).
    public var beforeID: Int64?

    public init(jobIDs: [UUID]? = nil, kind: String? = nil, errorClass: String? = nil, deadAfter: Date? = nil,
                deadBefore: Date? = nil, limit: Int = 50, beforeID: Int64? = nil) {
        self.jobIDs = jobIDs
        self.kind = kind
        self.errorClass = errorClass
        self.deadAfter = deadAfter
        self.deadBefore = deadBefore
        self.limit = limit
        self.beforeID = beforeID
    }

    /// True when something narrows the selection (a requeue needs one).
    public var isNarrowed: Bool {
        jobIDs != nil || kind != nil || errorClass != nil || deadAfter != nil || deadBefore != nil
    }

    /// JSON of the selection, as recorded in `requeues.selection`.
    public var recorded: JSONValue {
        var o: [String: JSONValue] = ["limit": .number(Double(limit))]
        if let jobIDs { o["job_ids"] = .array(jobIDs.map { .string($0.uuidString.lowercased()) }) }
        if let kind { o["kind"] = .string(kind) }
        if let errorClass { o["error_class"] = .string(errorClass) }
        let f = ISO8601DateFormatter()
        if let deadAfter { o["dead_after"] = .string(f.string(from: deadAfter)) }
        if let deadBefore { o["dead_before"] = .string(f.string(from: deadBefore)) }
        return .object(o)
    }

    /// The WHERE conditions (open rows, in scope) and their parameters, numbered from `first`.
    /// `table`: the alias of `dead_letters` in the query ("" when unaliased).
    func conditions(scope: AccessScope, table: String = "") -> (String, [PostgresEncodable?]) {
        let t = table.isEmpty ? "" : table + "."
        var conditions = ["\(t)requeued_at IS NULL"], parameters: [PostgresEncodable?] = []
        func add(_ sql: (String) -> String, _ value: PostgresEncodable) {
            parameters.append(value)
            conditions.append(t + sql("$\(parameters.count)"))
        }
        if let owner = scope.ownerID { add({ "owner_id = \($0)" }, owner) }
        if let kind { add({ "kind = \($0)" }, kind) }
        if let jobIDs { add({ "job_id = ANY(\($0)::uuid[])" }, jobIDs) }
        if let errorClass { add({ "error_class = \($0)" }, errorClass) }
        if let deadAfter { add({ "dead_at >= \($0)" }, deadAfter) }
        if let deadBefore { add({ "dead_at < \($0)" }, deadBefore) }
        if let beforeID { add({ "id < \($0)" }, beforeID) }
        return (conditions.joined(separator: " AND "), parameters)
    }
}

/// A past requeue: who asked, when, what it selected, how many jobs went back.
public struct RequeueRecord: Sendable, Equatable {
    public var id: Int64
    public var at: Date
    /// The principal's name (nil if it was deleted).
    public var by: String?
    public var selection: JSONValue
    public var jobCount: Int
}

/// What a requeue did.
public struct RequeueResult: Sendable, Equatable {
    /// The `requeues` row recording it (nil when nothing matched).
    public var requeueID: Int64?
    /// The jobs put back on their queues, attempts reset.
    public var jobs: [EnqueueOutcome]
}

public enum DeadLetterStore {
    /// SQL and parameters of a listing of open dead letters, newest first (`limit + 1` rows).
    public static func listSQL(_ selection: DeadLetterSelection, scope: AccessScope) -> (sql: String, parameters: [PostgresEncodable?]) {
        var (conditions, parameters) = selection.conditions(scope: scope)
        parameters.append(selection.limit + 1)
        return ("SELECT \(DeadLetter.columns) FROM dead_letters WHERE \(conditions) ORDER BY dead_at DESC, id DESC LIMIT $\(parameters.count)",
                parameters)
    }

    /// Open dead letters, newest first, and the id to continue below (nil on the last page).
    public static func list(_ selection: DeadLetterSelection, scope: AccessScope,
                            on connection: PostgresConnection) throws -> (letters: [DeadLetter], nextBeforeID: Int64?) {
        let (sql, parameters) = listSQL(selection, scope: scope)
        var letters = try connection.query(sql, parameters).map(DeadLetter.init(row:))
        var next: Int64?
        if letters.count > selection.limit {
            letters.removeLast()
            next = letters.last?.id
        }
        return (letters, next)
    }

    /// How many open dead letters of dead jobs `selection` would requeue (its limit ignored),
    /// counting no further than `cap` + 1: what a requeue by filter shows before it is confirmed.
    public static func count(_ selection: DeadLetterSelection, scope: AccessScope, cap: Int,
                             on connection: PostgresConnection) throws -> Int {
        var (conditions, parameters) = selection.conditions(scope: scope, table: "d")
        parameters.append(cap + 1)
        let rows = try connection.query("""
            SELECT count(*)::bigint FROM (
                SELECT 1 FROM dead_letters d JOIN jobs j ON j.id = d.job_id AND j.status = 'dead'
                 WHERE \(conditions) LIMIT $\(parameters.count)) x
            """, parameters)
        return try rows[0].decode(Int.self, at: 0)
    }

    /// The newest requeues, each with who asked (its principal's name), when, the selection
    /// and how many jobs: all of them for admins, a user's own otherwise.
    public static func requeues(scope: AccessScope, limit: Int, on connection: PostgresConnection) throws -> [RequeueRecord] {
        var parameters: [PostgresEncodable?] = [limit]
        var condition = ""
        if let owner = scope.ownerID {
            parameters.append(owner)
            condition = "WHERE r.requested_by = $2"
        }
        return try connection.query("""
            SELECT r.id, r.requested_at, p.name, r.selection::text, r.job_count
              FROM requeues r LEFT JOIN api_principals p ON p.id = r.requested_by \(condition)
             ORDER BY r.id DESC LIMIT $1
            """, parameters).map {
            RequeueRecord(id: try $0.decode(Int64.self, at: 0), at: try $0.decode(Date.self, at: 1),
                          by: try $0.decode(String?.self, at: 2), selection: JSONValue.parse(try $0.decode(String.self, at: 3)) ?? .null,
                          jobCount: try $0.decode(Int.self, at: 4))
        }
    }

    /// Puts the selected dead jobs back on their queues with their attempts reset, in one
    /// transaction, recorded in `requeues` (who, when, which selection, which jobs). Poison
    /// messages (no job) are not requeued. Call inside a transaction; publish the returned
    /// jobs after commit (``Enqueuer/publish(_:)``), or the relay will.
    public static func requeue(_ selection: DeadLetterSelection, scope: AccessScope, by principal: UUID?,
                               on connection: PostgresConnection) throws -> RequeueResult {
        var (conditions, parameters) = selection.conditions(scope: scope, table: "d")
        parameters.append(selection.limit)
        let picked = try connection.query("""
            SELECT d.id, d.job_id FROM dead_letters d JOIN jobs j ON j.id = d.job_id
            WHERE j.status = 'dead' AND \(conditions)
            ORDER BY d.dead_at, d.id LIMIT $\(parameters.count)
            FOR UPDATE OF d, j SKIP LOCKED
            """, parameters)
        let letterIDs = try picked.map { try $0.decode(Int64.self, at: 0) }
        let jobIDs = try picked.map { try $0.decode(UUID.self, at: 1) }
        guard !jobIDs.isEmpty else { return RequeueResult(requeueID: nil, jobs: []) }
        let requeueID = try connection.query("""
            INSERT INTO requeues (requested_by, selection, job_count, job_ids) VALUES ($1, $2::jsonb, $3, $4::uuid[])
            RETURNING id
            """, [principal, selection.recorded.jsonText, jobIDs.count, jobIDs]).first!.decode(Int64.self, at: 0)
        try connection.execute("UPDATE dead_letters SET requeued_at = now(), requeue_id = $2 WHERE id = ANY($1::bigint[])",
                               [letterIDs, requeueID])
        let rows = try connection.query(JobTransitions.statement(
            change: """
                UPDATE jobs SET status = 'queued', attempts = 0, published_at = NULL, run_after = NULL,
                       finished_at = NULL, updated_at = now()
                WHERE id = ANY($1::uuid[]) AND status = 'dead'
                RETURNING id, kind, owner_id, priority, batch_id, 'queued' AS event_status, 0 AS event_attempt,
                          jsonb_build_object('requeue_id', $2::bigint) AS event_detail
                """,
            effects: ["""
                ob AS (
                    INSERT INTO job_outbox (job_id, due_at) SELECT id, now() FROM changed
                    ON CONFLICT (job_id) DO UPDATE SET due_at = EXCLUDED.due_at, relay_only = false
                )
                """],
            batches: .opens, select: "id, kind, priority"), [jobIDs, requeueID])
        let jobs = try rows.map {
            EnqueueOutcome(id: try $0.decode(UUID.self, at: 0), kind: try $0.decode(String.self, at: 1), created: true,
                           status: .queued, priority: try $0.decode(Int.self, at: 2))
        }
        return RequeueResult(requeueID: requeueID, jobs: jobs)
    }
}
