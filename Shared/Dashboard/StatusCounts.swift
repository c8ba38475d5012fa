import EsteiraCore
import EsteiraService
import Foundation
import Postgres

/// Jobs per kind and status now, for the overview and the queues page, without scanning
/// the table: each count stops at ``cap`` (shown as "10,000+"), and a scope's counts are
/// kept for ``maxAge`` seconds (a live page asks every few seconds; many pages ask at once).
final class StatusCounts: @unchecked Sendable {
    /// One kind's counts; `capped` holds the statuses that reached the cap.
    struct Row: Sendable, Equatable {
        var kind: String
        var counts: [JobStatus: Int]
        var capped: Set<JobStatus>
    }

    static let statuses: [JobStatus] = [.scheduled, .queued, .running, .retrying, .dead]
    let pool: PostgresPool
    let cap: Int
    let maxAge: Duration
    private let lock = NSLock()
    private var cache: [UUID?: (at: ContinuousClock.Instant, rows: [Row])] = [:]  // under lock

    init(pool: PostgresPool, cap: Int = 10_000, maxAge: Duration = .seconds(2)) {
        self.pool = pool
        self.cap = cap
        self.maxAge = maxAge
    }

    /// The counts of `kinds` for `scope` (an owner's, or everyone's).
    func rows(kinds: [String], scope: AccessScope) async throws -> [Row] {
        let key = scope.ownerID
        if let hit = lock.withLock({ cache[key] }), hit.at + maxAge > .now, hit.rows.map(\.kind) == kinds { return hit.rows }
        let statuses = Self.statuses.map(\.rawValue), cap = self.cap
        // Per (kind, status): an index range read that stops after cap + 1 rows.
        let owner = scope.ownerID.map { _ in " AND j.owner_id = $4" } ?? ""
        let sql = """
            SELECT k.kind, s.status,
                   (SELECT count(*) FROM (SELECT 1 FROM jobs j WHERE j.kind = k.kind AND j.status = s.status\(owner) LIMIT $3) x)::bigint
              FROM unnest($1::text[]) k(kind) CROSS JOIN unnest($2::text[]) s(status)
            """
        var parameters: [PostgresEncodable?] = [kinds, statuses, cap + 1]
        if let ownerID = scope.ownerID { parameters.append(ownerID) }
        let found = try await pool.withConnection { try $0.query(sql, parameters) }
        var byKind: [String: Row] = [:]
        for r in found {
            let kind = try r.decode(String.self, at: 0), n = try r.decode(Int.self, at: 2)
            guard let status = JobStatus(rawValue: try r.decode(String.self, at: 1)) else { continue }
            var row = byKind[kind] ?? Row(kind: kind, counts: [:], capped: [])
            row.counts[status] = min(n, cap)
            if n > cap { row.capped.insert(status) }
            byKind[kind] = row
        }
        let rows = kinds.map { byKind[$0] ?? Row(kind: $0, counts: [:], capped: []) }
        lock.withLock { cache[key] = (.now, rows) }
        return rows
    }
}

extension StatusCounts.Row {
    /// The count of `status` as shown: "1,234", or "10,000+" at the cap.
    func text(_ status: JobStatus) -> String {
        HTML.number(counts[status] ?? 0) + (capped.contains(status) ? "+" : "")
    }
}
