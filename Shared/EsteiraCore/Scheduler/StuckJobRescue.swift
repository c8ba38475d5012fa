import Foundation
import Postgres

/// Stuck-job rescue: a running job whose processor stopped reporting it alive for longer
/// than its kind's `heartbeatTimeout` is put back for another attempt (the lost attempt
/// counts; with none left the job is dead), as an unpublished row the outbox relay
/// publishes. Running attempts and their heartbeats are the rows of `job_leases`. The old
/// attempt's outcome, should its processor come back, changes nothing (outcomes apply only
/// to the attempt that is running), and a processor that finds a job of its own taken away
/// stops running it.
public enum StuckJobRescue {
    /// Rescues up to `limit` stuck jobs; returns (id, new status) of each.
    public static func rescue(catalog: KindCatalog, defaultTimeout: Double = KindPolicy().heartbeatTimeout,
                              limit: Int = 500, on connection: PostgresConnection) throws -> [(id: UUID, status: String)] {
        let kinds = catalog.names
        let timeouts = kinds.map { catalog[$0]!.policy.heartbeatTimeout }
        let shortest = (timeouts + [defaultTimeout]).min() ?? defaultTimeout
        let rows = try connection.query(sql, [kinds, timeouts, defaultTimeout, limit, shortest])
        return try rows.map { (try $0.decode(UUID.self, at: 0), try $0.decode(String.self, at: 1)) }
    }

    /// The rescue statement: `$1` kinds, `$2` their heartbeat timeouts, `$3` the timeout of
    /// other kinds, `$4` the most jobs per pass, `$5` the shortest of the timeouts (leases
    /// fresher than that are not looked at, so the pass starts from the few silent leases).
    public static let sql = JobTransitions.statement(
        before: ["l AS (SELECT * FROM unnest($1::text[], $2::float8[]) AS t(kind, secs))", """
            s AS (
                SELECT j.id, h.worker, h.heartbeat_at FROM job_leases h JOIN jobs j ON j.id = h.job_id LEFT JOIN l ON l.kind = j.kind
                WHERE h.heartbeat_at < now() - make_interval(secs => $5::float8)
                  AND j.status = 'running' AND j.attempts = h.attempt
                  AND h.heartbeat_at < now() - make_interval(secs => coalesce(l.secs, $3))
                ORDER BY h.heartbeat_at LIMIT $4
                FOR UPDATE OF h, j SKIP LOCKED
            )
            """],
        change: """
            UPDATE jobs j SET
                status = CASE WHEN j.attempts >= j.max_attempts THEN 'dead' ELSE 'queued' END,
                finished_at = CASE WHEN j.attempts >= j.max_attempts THEN now() END,
                published_at = NULL, run_after = NULL, updated_at = now(),
                last_error = 'heartbeat lost: ' || coalesce(nullif(s.worker, ''), 'its processor') || ' stopped reporting attempt '
                             || j.attempts || ' for ' || round(extract(epoch FROM now() - s.heartbeat_at)) || ' s',
                last_error_class = 'timeout'
            FROM s WHERE j.id = s.id AND j.status = 'running'
            RETURNING j.id, j.kind, j.owner_id, j.status, j.attempts, j.last_error, j.batch_id,
                      j.status AS event_status, j.attempts AS event_attempt,
                      jsonb_build_object('rescued', true, 'error', j.last_error, 'error_class', 'timeout') AS event_detail
            """,
        effects: ["gone AS (DELETE FROM job_leases h USING changed WHERE h.job_id = changed.id)", """
            ob AS (
                INSERT INTO job_outbox (job_id, due_at, relay_only) SELECT id, now(), true FROM changed WHERE status = 'queued'
                ON CONFLICT (job_id) DO UPDATE SET due_at = EXCLUDED.due_at, relay_only = true,
                    waiting_kind = NULL, waiting_key = NULL
            )
            """, """
            dl AS (
                INSERT INTO dead_letters (job_id, kind, owner_id, reason, error_class, attempts)
                SELECT id, kind, owner_id, last_error, 'timeout', attempts FROM changed WHERE status = 'dead'
                ON CONFLICT (job_id) DO UPDATE SET reason = EXCLUDED.reason, error_class = EXCLUDED.error_class,
                    attempts = EXCLUDED.attempts, dead_at = now(), requeued_at = NULL, requeue_id = NULL
            )
            """],
        batches: .ends, select: "id, status")

    /// Deletes the leases of jobs no longer running whose processor stopped reporting them (a
    /// cancelled job's attempt holding a concurrency slot, its processor gone before it could
    /// free it); returns how many.
    @discardableResult
    public static func clearLeftLeases(catalog: KindCatalog, defaultTimeout: Double = KindPolicy().heartbeatTimeout,
                                       on connection: PostgresConnection) throws -> Int {
        let kinds = catalog.names
        return try connection.execute(leftLeasesSQL, [kinds, kinds.map { catalog[$0]!.policy.heartbeatTimeout }, defaultTimeout])
    }

    /// `$1` kinds, `$2` their heartbeat timeouts, `$3` the timeout of other kinds.
    static let leftLeasesSQL = """
        DELETE FROM job_leases h USING jobs j
        WHERE j.id = h.job_id AND j.status <> 'running'
          AND h.heartbeat_at < now() - make_interval(secs => coalesce(
              (SELECT t.secs FROM unnest($1::text[], $2::float8[]) AS t(kind, secs) WHERE t.kind = j.kind), $3))
        """
}
