import Foundation
import Postgres

/// A stand-in for an external system's REST API over one of its tables, as PostgREST (and
/// Supabase in front of it) serves it: `POST /rest/v1/<table>` with a JSON array (or one
/// object), `apikey` and `Authorization: Bearer` headers, and `Prefer:
/// resolution=merge-duplicates` for an upsert on the primary key `id`. Rows land in a real
/// PostgreSQL table of that name (`id bigint` primary key, the row as `jsonb`, and how many
/// times it was written), in a database of the test's own, so a test reads what arrived.
///
/// Answers as PostgREST does: 201 (with the rows for `Prefer: return=representation`,
/// `Preference-Applied` echoing the resolution); 401 for a missing or wrong key; 400
/// `PGRST102` for a body that is not rows with an integer `id`; 409 `23505` for a duplicate
/// without merge; and, for rows the test marks as rejected, 400 `23514` with `details`
/// naming the first failing row as PostgreSQL does, nothing written (one statement, all or nothing). Faults a
/// test scripts (429 with `Retry-After`, 5xx, slowness, dropped connections) answer the next
/// requests before any of that.
public final class PostgRESTTable: Sendable {
    public let table: String
    public let apiKey: String
    private let database: PostgresConfiguration
    private let state = Locked<(faults: [StandInResponse], rejected: Set<Int64>)>(([], []))
    private let idle = Locked<[PostgresConnection]>([])
    private let slow = Locked<Duration?>(nil)

    /// A table `table` in the database at `databaseURL` (created when missing), behind `apiKey`.
    public init(databaseURL: String, table: String = "fichas", apiKey: String) throws {
        precondition(table.allSatisfy { $0.isLetter || $0 == "_" }, "a plain table name")
        self.table = table
        self.apiKey = apiKey
        self.database = try PostgresConfiguration(url: databaseURL)
        try withConnection { c in
            try c.execute("""
                CREATE TABLE IF NOT EXISTS \(table) (
                    id bigint PRIMARY KEY, row jsonb NOT NULL, writes integer NOT NULL DEFAULT 1,
                    written_at timestamptz NOT NULL DEFAULT clock_timestamp())
                """)
        }
    }

    /// Serves the table at `/rest/v1/<table>` on `server`.
    public func serve(on server: StandInHTTPServer) {
        server.on("POST", "/rest/v1/\(table)") { [self] request in try self.answer(request) }
    }

    /// The next requests get these answers, in order, before anything else is looked at.
    public func failNext(_ responses: [StandInResponse]) {
        state.withLock { $0.faults += responses }
    }

    /// Every answer after a write comes this much later (nil: at once): a request cut off
    /// meanwhile was written but never answered.
    public func slowDown(_ delay: Duration?) {
        slow.withLock { $0 = delay }
    }

    /// Rows with these ids make their whole request fail, as a constraint would.
    public func reject(ids: Set<Int64>) {
        state.withLock { $0.rejected = ids }
    }

    /// What arrived: id to the number of times it was written.
    public func writes() throws -> [Int64: Int] {
        try withConnection { c in
            var out: [Int64: Int] = [:]
            for r in try c.query("SELECT id, writes FROM \(table)") { out[try r.decode(Int64.self, at: 0)] = try r.decode(Int.self, at: 1) }
            return out
        }
    }

    /// The row stored for `id`, as JSON text.
    public func row(_ id: Int64) throws -> String? {
        try withConnection { try $0.query("SELECT row::text FROM \(table) WHERE id = $1", [id]).first?.decode(String.self, at: 0) }
    }

    /// A connection kept from an earlier request when there is one (a failed one is closed).
    private func withConnection<T>(_ body: (PostgresConnection) throws -> T) throws -> T {
        let c = try idle.withLock { $0.popLast() } ?? PostgresConnection(configuration: database)
        do {
            let result = try body(c)
            idle.withLock { $0.append(c) }
            return result
        } catch {
            c.close()
            throw error
        }
    }

    deinit {
        idle.withLock { for c in $0 { c.close() } }
    }

    static func error(_ status: Int, code: String, message: String, details: String? = nil) -> StandInResponse {
        let body: [String: Any?] = ["code": code, "message": message, "details": details, "hint": nil]
        let data = (try? JSONSerialization.data(withJSONObject: body.mapValues { $0 ?? NSNull() }, options: [.sortedKeys])) ?? Data()
        return .json(String(decoding: data, as: UTF8.self), status: status)
    }

    func answer(_ request: StandInRequest) throws -> StandInResponse {
        let response = try respond(request)
        guard let delay = slow.withLock({ $0 }) else { return response }
        return response.delayed(by: delay)
    }

    private func respond(_ request: StandInRequest) throws -> StandInResponse {
        if let fault = state.withLock({ $0.faults.isEmpty ? nil : $0.faults.removeFirst() }) { return fault }
        guard request.header("apikey") == apiKey, request.header("Authorization") == "Bearer \(apiKey)" else {
            return Self.error(401, code: "PGRST301", message: "Invalid API key")
        }
        let prefer = request.headerValues("Prefer").flatMap { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }
        let merge = prefer.contains("resolution=merge-duplicates")
        let representation = prefer.contains("return=representation")
        // The body is parsed and written by PostgreSQL, as PostgREST leaves it to PostgreSQL:
        // an array of objects (or one object), each with an integer id.
        let body = String(decoding: request.body, as: UTF8.self)
        let rowsSQL = "jsonb_array_elements(CASE jsonb_typeof($1::jsonb) WHEN 'array' THEN $1::jsonb ELSE jsonb_build_array($1::jsonb) END)"
        let badRows = Self.error(400, code: "PGRST102", message: "All object keys must match; each row needs an integer id")
        let ids: [Int64]
        do {
            let check = try withConnection { c in
                try c.query("""
                    SELECT count(*)::int,
                           count(*) FILTER (WHERE jsonb_typeof(value) = 'object' AND jsonb_typeof(value->'id') = 'number'
                                            AND (value->>'id') ~ '^-?[0-9]{1,18}$')::int,
                           coalesce(array_agg((value->>'id')::bigint) FILTER (WHERE (value->>'id') ~ '^-?[0-9]{1,18}$'), '{}')::text
                    FROM \(rowsSQL)
                    """, [body])[0]
            }
            let (all, valid) = (try check.decode(Int.self, at: 0), try check.decode(Int.self, at: 1))
            guard all > 0, valid == all else { return badRows }
            ids = try check.decode(String.self, at: 2).dropFirst().dropLast().split(separator: ",").map { Int64($0)! }
        } catch let error as PostgresError where error.sqlState == "22P02" {
            return badRows
        }
        let rejected = state.withLock { $0.rejected }
        if let bad = ids.first(where: { rejected.contains($0) }) {
            // As PostgreSQL words it: the failing row's columns, id first.
            let row = try withConnection { try $0.query("SELECT value::text FROM \(rowsSQL) WHERE value->>'id' = $2", [body, "\(bad)"])[0] }
            return Self.error(400, code: "23514", message: "new row for relation \"\(table)\" violates check constraint \"\(table)_valid\"",
                              details: "Failing row contains (\(bad), \(try row.decode(String.self, at: 0)), 1).")
        }
        let written: [String]
        do {
            // One statement, as PostgREST sends an upsert: all rows or none.
            written = try withConnection { c in
                try c.query("""
                    INSERT INTO \(table) (id, row) SELECT (value->>'id')::bigint, value FROM \(rowsSQL)
                    \(merge ? "ON CONFLICT (id) DO UPDATE SET row = EXCLUDED.row, writes = \(table).writes + 1, written_at = clock_timestamp()" : "")
                    \(representation ? "RETURNING row::text" : "")
                    """, [body]).map { try $0.decode(String.self, at: 0) }
            }
        } catch let error as PostgresError where error.sqlState == "23505" {
            return Self.error(409, code: "23505", message: "duplicate key value violates unique constraint \"\(table)_pkey\"")
        }
        var headers: [(name: String, value: String)] = merge ? [("Preference-Applied", "resolution=merge-duplicates")] : []
        if representation {
            headers.append(("Content-Type", "application/json"))
            return StandInResponse(status: 201, headers: headers, body: "[" + written.joined(separator: ",") + "]")
        }
        return StandInResponse(status: 201, headers: headers)
    }
}
