import Foundation
import Postgres

/// Who is asking: admins see every job, users only the jobs they own. Every read and write
/// of the api goes through a scope, so a user can never name another user's job.
public struct AccessScope: Sendable, Equatable {
    /// nil: everything (an admin).
    public var ownerID: UUID?

    public init(ownerID: UUID?) { self.ownerID = ownerID }

    public static let everything = AccessScope(ownerID: nil)
}

/// A position in a newest-first listing: the last row's `created_at` (exact, as PostgreSQL
/// prints it in UTC with microseconds) and id. Opaque to clients (base64url text).
public struct ListCursor: Sendable, Equatable {
    public var createdAt: String
    public var id: UUID

    public init(createdAt: String, id: UUID) {
        self.createdAt = createdAt
        self.id = id
    }

    public var token: String {
        Data("\(createdAt)|\(id.uuidString.lowercased())".utf8).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    /// Reads a token made by ``token``; nil when it is not one.
    public init?(token: String) {
        var b64 = token.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while b64.count % 4 != 0 { b64 += "=" }
        guard token.count <= 200, let data = Data(base64Encoded: b64),
              let text = String(data: data, encoding: .utf8) else { return nil }
        let parts = text.split(separator: "|")
        guard parts.count == 2, let id = UUID(uuidString: String(parts[1])),
              parts[0].range(of: #"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}$"#, options: .regularExpression) != nil
        else { return nil }
        self.createdAt = String(parts[0])
        self.id = id
    }
}

/// A payload value a job search asks for: the text at `path` of the payload.
public struct PayloadMatch: Sendable, Equatable {
    public var path: [String]
    public var value: String

    public init(path: [String], value: String) {
        self.path = path
        self.value = value
    }
}

/// The filters of a job listing (`GET /v1/jobs`).
public struct JobFilter: Sendable, Equatable {
    public var kind: String?
    public var statuses: [JobStatus] = []
    public var createdAfter: Date?
    public var createdBefore: Date?
    /// Admins may list one owner's jobs; ignored for users (their scope decides).
    public var ownerID: UUID?
    public var limit = 50
    public var cursor: ListCursor?
    /// Only jobs whose payload has this value at this path (`["customer", "id"]`, compared as
    /// text). A search looks at ``searchWindow`` jobs of the other filters per page, never
    /// the whole table: a page may hold fewer matches and still have a next one.
    public var payloadEquals: PayloadMatch?
    /// How many jobs one page of a payload search looks at.
    public var searchWindow = 10_000

    public init() {}
}

/// One event of a job's history (also what `GET /v1/events` streams).
public struct JobEvent: Sendable, Equatable, Codable {
    public var id: Int64
    public var jobID: UUID
    public var kind: String
    public var ownerID: UUID?
    public var status: String
    public var attempt: Int
    public var at: Date
    public var detail: JSONValue?

    public static let columns = "id, job_id, kind, owner_id, status, attempt, at, detail::text AS detail"

    public init(row: PostgresRow) throws {
        id = try row.decode(Int64.self, named: "id")
        jobID = try row.decode(UUID.self, named: "job_id")
        kind = try row.decode(String.self, named: "kind")
        ownerID = try row.decode(UUID?.self, named: "owner_id")
        status = try row.decode(String.self, named: "status")
        attempt = try row.decode(Int.self, named: "attempt")
        at = try row.decode(Date.self, named: "at")
        detail = try row.decode(String?.self, named: "detail").flatMap(JSONValue.parse)
    }
}

/// Why a cancel did not happen.
public enum CancelOutcome: Sendable, Equatable {
    /// Cancelled now; the job as it is after the cancel.
    case cancelled(JobRecord)
    /// No such job in the caller's scope.
    case notFound
    /// It has finished: nothing to cancel.
    case notCancellable(JobStatus)
}

/// The reads and the few writes the api makes on jobs. SQL is built from the filters given,
/// so each query uses the index made for it (shown by EXPLAIN in the tests).
public enum JobQueries {
    /// SQL and parameters of a listing, newest first; it fetches `limit + 1` rows (the extra
    /// one tells whether there is a next page). Also the column `cursor_at`.
    public static func listSQL(_ filter: JobFilter, scope: AccessScope) -> (sql: String, parameters: [PostgresEncodable?]) {
        var conditions: [String] = [], parameters: [PostgresEncodable?] = []
        func add(_ sql: (String) -> String, _ value: PostgresEncodable) {
            parameters.append(value)
            conditions.append(sql("$\(parameters.count)"))
        }
        if let owner = scope.ownerID ?? filter.ownerID { add({ "owner_id = \($0)" }, owner) }
        if let kind = filter.kind { add({ "kind = \($0)" }, kind) }
        if filter.statuses.count == 1 { add({ "status = \($0)" }, filter.statuses[0].rawValue) }
        if filter.statuses.count > 1 { add({ "status = ANY(\($0)::text[])" }, filter.statuses.map(\.rawValue)) }
        if let after = filter.createdAfter { add({ "created_at >= \($0)" }, after) }
        if let before = filter.createdBefore { add({ "created_at < \($0)" }, before) }
        if let cursor = filter.cursor {
            parameters.append(cursor.createdAt)
            parameters.append(cursor.id)
            conditions.append("(created_at, id) < ($\(parameters.count - 1)::timestamp AT TIME ZONE 'UTC', $\(parameters.count))")
        }
        var probe = ""
        if let match = filter.payloadEquals {
            parameters.append(match.path)
            probe = ", jobs.payload #>> $\(parameters.count)::text[] AS probe"
        }
        let selected = """
            SELECT \(JobRecord.columns),
                   to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US') AS cursor_at\(probe)
            FROM jobs\(conditions.isEmpty ? "" : " WHERE " + conditions.joined(separator: " AND "))
            ORDER BY created_at DESC, id DESC
            """
        if let match = filter.payloadEquals {
            // The window of the other filters first (an index range), then the payload test.
            parameters.append(filter.searchWindow)
            parameters.append(match.value)
            parameters.append(filter.limit + 1)
            let n = parameters.count
            let sql = """
                SELECT * FROM (\(selected) LIMIT $\(n - 2)) w
                 WHERE probe = $\(n - 1)
                 ORDER BY created_at DESC, id DESC LIMIT $\(n)
                """
            return (sql, parameters)
        }
        parameters.append(filter.limit + 1)
        return (selected + " LIMIT $\(parameters.count)", parameters)
    }

    /// The cursor after the window a payload search looked at, when the window was full (the
    /// search goes on from there); nil when the other filters have no older jobs.
    static func searchWindowEnd(_ filter: JobFilter, scope: AccessScope, on connection: PostgresConnection) throws -> ListCursor? {
        var plain = filter
        plain.payloadEquals = nil
        plain.limit = filter.searchWindow - 1
        let (sql, parameters) = listSQL(plain, scope: scope)
        let rows = try connection.query("""
            SELECT count(*) OVER () AS n, id, cursor_at FROM (\(sql)) w ORDER BY created_at, id LIMIT 1
            """, parameters)
        guard let row = rows.first, try row.decode(Int.self, named: "n") >= filter.searchWindow else { return nil }
        return ListCursor(createdAt: try row.decode(String.self, named: "cursor_at"), id: try row.decode(UUID.self, named: "id"))
    }

    /// A page of jobs and the cursor of the next page (nil on the last).
    public static func list(_ filter: JobFilter, scope: AccessScope,
                            on connection: PostgresConnection) throws -> (jobs: [JobRecord], next: ListCursor?) {
        let (sql, parameters) = listSQL(filter, scope: scope)
        let rows = try connection.query(sql, parameters)
        var jobs: [JobRecord] = [], next: ListCursor?
        for (i, row) in rows.enumerated() {
            if i == filter.limit {
                let last = jobs[jobs.count - 1]
                next = ListCursor(createdAt: try rows[i - 1].decode(String.self, named: "cursor_at"), id: last.id)
                break
            }
            jobs.append(try JobRecord(row: row))
        }
        if filter.payloadEquals != nil && next == nil { next = try searchWindowEnd(filter, scope: scope, on: connection) }
        return (jobs, next)
    }

    /// The job `id` when it is in `scope`.
    public static func job(_ id: UUID, scope: AccessScope, on connection: PostgresConnection) throws -> JobRecord? {
        var sql = "SELECT \(JobRecord.columns) FROM jobs WHERE id = $1"
        var parameters: [PostgresEncodable?] = [id]
        if let owner = scope.ownerID { sql += " AND owner_id = $2"; parameters.append(owner) }
        return try connection.query(sql, parameters).first.map(JobRecord.init(row:))
    }

    /// The SQL of a job's history, oldest first.
    public static let eventsSQL = "SELECT \(JobEvent.columns) FROM job_events WHERE job_id = $1 ORDER BY id"

    /// A job's history, oldest first.
    public static func events(of id: UUID, on connection: PostgresConnection) throws -> [JobEvent] {
        try connection.query(eventsSQL, [id]).map(JobEvent.init(row:))
    }

    /// Cancels a job that has not finished: it will not run (again). A processor that
    /// receives its message later acks it without running it. A running job's attempt is
    /// stopped: the processor running it is told on ``ControlChannel`` and cancels the
    /// handler's task; that attempt's outcome is then not recorded. Its lease goes now, or,
    /// when it holds a concurrency slot, once the handler has stopped.
    public static func cancel(_ id: UUID, scope: AccessScope, by principal: String,
                              on connection: PostgresConnection) throws -> CancelOutcome {
        var parameters: [PostgresEncodable?] = [id, JobStatus.cancellable.map(\.rawValue), principal]
        var ownerCondition = ""
        if let owner = scope.ownerID { parameters.append(owner); ownerCondition = " AND owner_id = $4" }
        let wasRunning = try connection.transaction { c -> Bool? in
            let rows = try c.query(JobTransitions.statement(
                before: ["before AS (SELECT id, status FROM jobs WHERE id = $1 FOR UPDATE)"],
                change: """
                    UPDATE jobs j SET status = 'cancelled', finished_at = now(), updated_at = now(),
                           last_error_class = 'cancelled', last_error = 'cancelled by ' || $3, run_after = NULL
                    FROM before b
                    WHERE j.id = b.id AND j.status = ANY($2::text[])\(ownerCondition)
                    RETURNING j.id, j.kind, j.owner_id, j.batch_id, j.status, b.status AS was, 'cancelled' AS event_status, j.attempts AS event_attempt,
                              jsonb_build_object('by', $3::text, 'was', b.status) AS event_detail
                    """,
                // A lease that holds a concurrency slot stays until the handler has stopped: its
                // processor deletes it then (or the rescue, once its heartbeat stopped).
                effects: ["lease AS (DELETE FROM job_leases l USING changed WHERE l.job_id = changed.id AND l.slot_kind IS NULL)",
                          "ob AS (DELETE FROM job_outbox o USING changed WHERE o.job_id = changed.id)"],
                batches: .ends, select: "was"), parameters)
            guard let was = rows.first else { return nil }
            let running = try was.decode(String.self, at: 0) == JobStatus.running.rawValue
            if running { try ControlChannel.send(.cancelled(id), on: c) }
            return running
        }
        if wasRunning != nil, let job = try job(id, scope: scope, on: connection) { return .cancelled(job) }
        guard let existing = try job(id, scope: scope, on: connection) else { return .notFound }
        return .notCancellable(existing.status)
    }
}
