import Foundation
import Postgres

/// Stuck-job rescue: a running job whose processor stopped reporting it alive for longer
/// than its kind's `heartbeatTimeout` is put back for another attempt (the lost attempt
/// counts; with none left the job is dead), as an unpublished row the outbox relay
/// publishes. The old attempt's outcome, should its processor come back, changes nothing
/// (outcomes apply only to the attempt that is running), and a processor that finds a job
/// of its own taken away stops running it.
public enum StuckJobRescue {
    /// Rescues up to `limit` stuck jobs; returns (id, new status) of each.
    public static func rescue(catalog: KindCatalog, defaultTimeout: Double = KindPolicy().heartbeatTimeout,
                              limit: Int = 500, on connection: PostgresConnection) throws -> [(id: UUID, status: String)] {
        let kinds = catalog.names
        let timeouts = kinds.map { catalog[$0]!.policy.heartbeatTimeout }
        let rows = try connection.query(sql, [kinds, timeouts, defaultTimeout, limit])
        return try rows.map { (try $0.decode(UUID.self, at: 0), try $0.decode(String.self, at: 1)) }
    }

    /// The rescue statement: `$1` kinds, `$2` their heartbeat timeouts, `$3` the timeout of
    /// other kinds, `$4` the most jobs per pass.
    public static let sql = """
            WITH l AS (SELECT * FROM unnest($1::text[], $2::float8[]) AS t(kind, secs)),
            s AS (
                SELECT j.id FROM jobs j LEFT JOIN l ON l.kind = j.kind
                WHERE j.status = 'running' AND j.heartbeat_at < now() - make_interval(secs => coalesce(l.secs, $3))
                ORDER BY j.heartbeat_at LIMIT $4
                FOR UPDATE OF j SKIP LOCKED
            ), u AS (
                UPDATE jobs j SET
                    status = CASE WHEN j.attempts >= j.max_attempts THEN 'dead' ELSE 'queued' END,
                    finished_at = CASE WHEN j.attempts >= j.max_attempts THEN now() END,
                    published_at = NULL, run_after = NULL, worker = NULL, heartbeat_at = NULL, updated_at = now(),
                    last_error = 'heartbeat lost: ' || coalesce(j.worker, 'its processor') || ' stopped reporting attempt '
                                 || j.attempts || ' for ' || round(extract(epoch FROM now() - j.heartbeat_at)) || ' s',
                    last_error_class = 'timeout'
                FROM s WHERE j.id = s.id AND j.status = 'running'
                RETURNING j.id, j.kind, j.owner_id, j.status, j.attempts, j.last_error
            ), ev AS (
                INSERT INTO job_events (job_id, kind, owner_id, status, attempt, detail)
                SELECT id, kind, owner_id, status, attempts,
                       jsonb_build_object('rescued', true, 'error', last_error, 'error_class', 'timeout') FROM u
            ), dl AS (
                INSERT INTO dead_letters (job_id, kind, owner_id, reason, error_class, attempts)
                SELECT id, kind, owner_id, last_error, 'timeout', attempts FROM u WHERE status = 'dead'
                ON CONFLICT (job_id) DO UPDATE SET reason = EXCLUDED.reason, error_class = EXCLUDED.error_class,
                    attempts = EXCLUDED.attempts, dead_at = now(), requeued_at = NULL, requeue_id = NULL
            )
            SELECT id, status, (SELECT pg_notify('esteira_job_events', '')) IS NULL FROM u
            """
}
