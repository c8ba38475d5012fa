import Foundation
import Postgres

/// Per kind per minute: jobs enqueued, attempts started, completed, failed (retrying or
/// dead), retried and dead, with wait and run time percentiles, computed from the job
/// events and stored in `queue_metrics`.
///
/// Wait: from the moment an attempt could run (enqueued, released, or its retry delay over)
/// to its start. Run: from an attempt's start to its outcome. A minute is computed again on
/// every pass until it is `settle` seconds old (events of transactions that commit late
/// land in it), then it is final and left alone.
public enum MetricsRollup {
    /// The name under which the last final minute is kept in `scheduler_state`.
    static let stateName = "metrics_rollup"

    /// One row of `queue_metrics`.
    public struct Row: Sendable, Equatable, Codable {
        public var kind: String
        public var minute: Date
        public var enqueued: Int
        public var started: Int
        public var completed: Int
        public var failed: Int
        public var retried: Int
        public var dead: Int
        public var waitP50: Double?
        public var waitP95: Double?
        public var waitP99: Double?
        public var runP50: Double?
        public var runP95: Double?
        public var runP99: Double?
    }

    /// Computes and stores the minutes from `from` (inclusive) to `to` (exclusive), both
    /// truncated to the minute. Returns how many (kind, minute) rows were written.
    @discardableResult
    public static func rollUp(from: Date, to: Date, on connection: PostgresConnection) throws -> Int {
        let rows = try connection.query("""
            WITH e AS (
                SELECT e.kind, e.status, e.detail, date_trunc('minute', e.at) AS minute,
                       CASE WHEN e.status = 'running' AND p.at IS NOT NULL THEN greatest(0, extract(epoch FROM e.at - p.at)
                            - CASE WHEN p.status = 'retrying' THEN coalesce((p.detail->>'retry_in_seconds')::float8, 0) ELSE 0 END) END AS wait,
                       CASE WHEN e.status IN ('completed', 'retrying', 'dead') AND p.status = 'running'
                            THEN extract(epoch FROM e.at - p.at) END AS run
                FROM job_events e
                LEFT JOIN LATERAL (
                    SELECT at, status, detail FROM job_events p WHERE p.job_id = e.job_id AND p.id < e.id ORDER BY p.id DESC LIMIT 1
                ) p ON e.status IN ('running', 'completed', 'retrying', 'dead')
                WHERE e.at >= date_trunc('minute', $1::timestamptz) AND e.at < date_trunc('minute', $2::timestamptz)
            ), m AS (
                SELECT kind, minute,
                       count(*) FILTER (WHERE status IN ('queued', 'scheduled') AND detail IS NULL) AS enqueued,
                       count(*) FILTER (WHERE status = 'running') AS started,
                       count(*) FILTER (WHERE status = 'completed') AS completed,
                       count(*) FILTER (WHERE status IN ('retrying', 'dead')) AS failed,
                       count(*) FILTER (WHERE status = 'retrying') AS retried,
                       count(*) FILTER (WHERE status = 'dead') AS dead,
                       percentile_cont(0.5) WITHIN GROUP (ORDER BY wait) AS wait_p50,
                       percentile_cont(0.95) WITHIN GROUP (ORDER BY wait) AS wait_p95,
                       percentile_cont(0.99) WITHIN GROUP (ORDER BY wait) AS wait_p99,
                       percentile_cont(0.5) WITHIN GROUP (ORDER BY run) AS run_p50,
                       percentile_cont(0.95) WITHIN GROUP (ORDER BY run) AS run_p95,
                       percentile_cont(0.99) WITHIN GROUP (ORDER BY run) AS run_p99
                FROM e GROUP BY kind, minute
            ), up AS (
                INSERT INTO queue_metrics AS q (kind, minute, enqueued, started, completed, failed, retried, dead,
                                                wait_p50, wait_p95, wait_p99, run_p50, run_p95, run_p99, rolled_at)
                SELECT kind, minute, enqueued, started, completed, failed, retried, dead,
                       wait_p50, wait_p95, wait_p99, run_p50, run_p95, run_p99, now() FROM m
                ON CONFLICT (kind, minute) DO UPDATE SET
                    enqueued = EXCLUDED.enqueued, started = EXCLUDED.started, completed = EXCLUDED.completed,
                    failed = EXCLUDED.failed, retried = EXCLUDED.retried, dead = EXCLUDED.dead,
                    wait_p50 = EXCLUDED.wait_p50, wait_p95 = EXCLUDED.wait_p95, wait_p99 = EXCLUDED.wait_p99,
                    run_p50 = EXCLUDED.run_p50, run_p95 = EXCLUDED.run_p95, run_p99 = EXCLUDED.run_p99, rolled_at = now()
                RETURNING 1
            )
            SELECT count(*) FROM up
            """, [from, to])
        return try rows.first?.decode(Int.self, at: 0) ?? 0
    }

    /// One pass of the leader: every minute after the last final one (at most `maxMinutes`
    /// back) up to and including the current one; minutes older than `settle` seconds
    /// become final.
    @discardableResult
    public static func pass(settle: Double = 90, maxMinutes: Int = 120, on connection: PostgresConnection) throws -> Int {
        let state = try connection.query("""
            SELECT (SELECT at FROM scheduler_state WHERE name = $1),
                   date_trunc('minute', now() - make_interval(mins => $2::int)),
                   date_trunc('minute', now()) + interval '1 minute',
                   date_trunc('minute', now() - make_interval(secs => $3))
            """, [stateName, maxMinutes, settle])[0]
        let lastFinal = try state.decode(Date?.self, at: 0)
        let floor = try state.decode(Date.self, at: 1)
        let end = try state.decode(Date.self, at: 2)
        let newFinal = try state.decode(Date.self, at: 3)
        let start = max(lastFinal ?? floor, floor)
        guard start < end else { return 0 }
        let n = try rollUp(from: start, to: end, on: connection)
        try connection.execute("""
            INSERT INTO scheduler_state (name, at) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET at = greatest(scheduler_state.at, EXCLUDED.at)
            """, [stateName, newFinal])
        return n
    }

    /// The stored rows of `kind` (nil: every kind) from `from` to `to`, oldest first.
    public static func rows(kind: String?, from: Date, to: Date, limit: Int = 10_000,
                            on connection: PostgresConnection) throws -> [Row] {
        try connection.query("""
            SELECT kind, minute, enqueued, started, completed, failed, retried, dead,
                   wait_p50, wait_p95, wait_p99, run_p50, run_p95, run_p99
            FROM queue_metrics
            WHERE ($1::text IS NULL OR kind = $1) AND minute >= date_trunc('minute', $2::timestamptz) AND minute < $3
            ORDER BY minute, kind LIMIT $4
            """, [kind, from, to, limit]).map { r in
            Row(kind: try r.decode(String.self, at: 0), minute: try r.decode(Date.self, at: 1),
                enqueued: try r.decode(Int.self, at: 2), started: try r.decode(Int.self, at: 3),
                completed: try r.decode(Int.self, at: 4), failed: try r.decode(Int.self, at: 5),
                retried: try r.decode(Int.self, at: 6), dead: try r.decode(Int.self, at: 7),
                waitP50: try r.decode(Double?.self, at: 8), waitP95: try r.decode(Double?.self, at: 9),
                waitP99: try r.decode(Double?.self, at: 10), runP50: try r.decode(Double?.self, at: 11),
                runP95: try r.decode(Double?.self, at: 12), runP99: try r.decode(Double?.self, at: 13))
        }
    }
}
