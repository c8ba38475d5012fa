import Foundation
import Postgres

/// Counts and timings of the jobs created in a time window, per kind and status
/// (`GET /v1/stats`).
public struct JobStatsRow: Sendable, Equatable, Codable {
    public var kind: String
    public var status: String
    public var count: Int
    public var averageAttempts: Double
    /// Enqueue (or run-after time) to the first start, in seconds; nil when none started.
    public var waitP50: Double?
    public var waitP95: Double?
    /// Start of the last attempt to its end, in seconds; nil when none finished.
    public var runP50: Double?
    public var runP95: Double?
}

public enum JobStats {
    /// The SQL of ``rows(from:to:scope:on:)``.
    public static func sql(scope: AccessScope) -> String {
        """
        SELECT kind, status, count(*)::bigint AS n, coalesce(avg(attempts), 0)::float8 AS attempts,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM first_started_at - greatest(created_at, coalesce(run_after, created_at)))) AS wait_p50,
               percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM first_started_at - greatest(created_at, coalesce(run_after, created_at)))) AS wait_p95,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - started_at)) AS run_p50,
               percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - started_at)) AS run_p95
        FROM jobs
        WHERE created_at >= $1 AND created_at < $2\(scope.ownerID == nil ? "" : " AND owner_id = $3")
        GROUP BY kind, status ORDER BY kind, status
        """
    }

    /// Per kind and status, over the jobs created in `[from, to)` within `scope`.
    public static func rows(from: Date, to: Date, scope: AccessScope, on connection: PostgresConnection) throws -> [JobStatsRow] {
        var parameters: [PostgresEncodable?] = [from, to]
        if let owner = scope.ownerID { parameters.append(owner) }
        return try connection.query(sql(scope: scope), parameters).map { row in
            JobStatsRow(kind: try row.decode(String.self, at: 0), status: try row.decode(String.self, at: 1),
                        count: try row.decode(Int.self, at: 2), averageAttempts: try row.decode(Double.self, at: 3),
                        waitP50: try row.decode(Double?.self, at: 4), waitP95: try row.decode(Double?.self, at: 5),
                        runP50: try row.decode(Double?.self, at: 6), runP95: try row.decode(Double?.self, at: 7))
        }
    }
}
