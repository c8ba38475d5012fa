import Foundation
import Postgres

/// Retention: finished (completed, dead, cancelled) jobs older than their kind's
/// `retention` are deleted with their events and dead letters, in batches of `batchSize`
/// rows, each its own short transaction, so the jobs table is never locked for long.
public enum Retention {
    /// Deletes one batch of `kind`'s expired jobs (nil kind: every kind not in `known`, at
    /// `seconds`). Returns how many went.
    public static func deleteBatch(kind: String?, known: [String], seconds: Double, batchSize: Int,
                                   on connection: PostgresConnection) throws -> Int {
        let rows = try connection.query(batchSQL, [kind, known, seconds, batchSize])
        return try rows.first?.decode(Int.self, at: 0) ?? 0
    }

    /// One batch: `$1` the kind (NULL: every kind not in `$2`), `$3` the retention in
    /// seconds, `$4` the batch size.
    public static let batchSQL = """
            WITH v AS (
                SELECT id FROM jobs
                WHERE status IN ('completed', 'dead', 'cancelled')
                  AND (($1::text IS NOT NULL AND kind = $1) OR ($1::text IS NULL AND kind <> ALL($2::text[])))
                  -- A job finishes after it is created: the created_at bound finds candidates
                  -- through jobs_kind_created (or jobs_created), finished_at decides.
                  AND created_at < now() - make_interval(secs => $3)
                  AND finished_at < now() - make_interval(secs => $3)
                LIMIT $4
                FOR UPDATE SKIP LOCKED
            ), d AS (
                DELETE FROM jobs WHERE id IN (SELECT id FROM v) AND status IN ('completed', 'dead', 'cancelled') RETURNING id
            ), e AS (
                -- job_events.job_id is not a foreign key (migration 0008): a job's events go here.
                -- Dead letters still go by ON DELETE CASCADE.
                DELETE FROM job_events WHERE job_id IN (SELECT id FROM d)
            )
            SELECT count(*) FROM d
            """

    /// Deletes up to `batchSize` of `rows` that have expired; returns how many went.
    public static func deleteBatch(_ rows: ExpiringRows, batchSize: Int, on connection: PostgresConnection) throws -> Int {
        try connection.execute("""
            DELETE FROM \(rows.table) WHERE ctid = ANY (ARRAY(
                SELECT ctid FROM \(rows.table) WHERE \(rows.column) < now() - make_interval(secs => $1) LIMIT $2))
            """, [rows.seconds, batchSize])
    }

    /// Deletes the workloads' expired rows, batch after batch. Returns how many went per table.
    public static func run(expiring: [ExpiringRows], pool: PostgresPool, batchSize: Int = 1000,
                           pause: Double = 0.05) async throws -> [String: Int] {
        var deleted: [String: Int] = [:]
        for rows in expiring {
            while !Task.isCancelled {
                let n = try await pool.withConnection { try Retention.deleteBatch(rows, batchSize: batchSize, on: $0) }
                if n > 0 { deleted[rows.table, default: 0] += n }
                if n < batchSize { break }
                try await Task.sleep(for: .milliseconds(Int(pause * 1000)))
            }
        }
        return deleted
    }

    /// Deletes every expired job, batch after batch, pausing `pause` seconds between batches.
    /// Returns how many went per kind.
    public static func run(catalog: KindCatalog, pool: PostgresPool, batchSize: Int = 1000, pause: Double = 0.05,
                           defaultSeconds: Double = KindPolicy().retention) async throws -> [String: Int] {
        let known = catalog.names
        var deleted: [String: Int] = [:]
        let targets: [(String?, Double)] = known.map { ($0, catalog[$0]!.policy.retention) } + [(nil, defaultSeconds)]
        for (kind, seconds) in targets {
            while !Task.isCancelled {
                let n = try await pool.withConnection {
                    try Retention.deleteBatch(kind: kind, known: known, seconds: seconds, batchSize: batchSize, on: $0)
                }
                if n > 0 { deleted[kind ?? "(other kinds)", default: 0] += n }
                if n < batchSize { break }
                try await Task.sleep(for: .milliseconds(Int(pause * 1000)))
            }
        }
        return deleted
    }
}
