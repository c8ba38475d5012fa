import EsteiraCore
import Foundation
import Postgres

/// A lead migration: every lead of an import run moved into a funnel column, in batches.
public struct LeadMigration: Sendable, Equatable, Codable {
    public enum State: String, Sendable, Codable, CaseIterable {
        case pending, running, completed, failed, cancelled
        public var isFinal: Bool { self == .completed || self == .failed || self == .cancelled }
    }

    public var id: UUID
    public var runID: Int64
    public var funnelID: Int64
    public var columnID: Int64
    public var batchSize: Int
    public var state: State
    public var total: Int?
    public var moved: Int
    public var failed: Int
    /// Leads in batches not done yet.
    public var pending: Int
    public var batches: Int?
    public var batchesDone: Int
    /// Batches done over all batches, 0...100 (100 for an empty run).
    public var percent: Double
    public var jobID: UUID?
    public var ownerID: UUID?
    public var createdAt: Date
    public var startedAt: Date?
    public var finishedAt: Date?
    public var cancelledAt: Date?
    public var lastError: String?

    static let columns = """
        m.id, m.run_id, m.funnel_id, m.column_id, m.batch_size, m.state, m.total, m.moved, m.failed, m.batches,
        m.batches_done, m.job_id, m.owner_id, m.created_at, m.started_at, m.finished_at, m.cancelled_at, m.last_error,
        coalesce((SELECT sum(b.leads) FROM lead_migration_batches b WHERE b.migration_id = m.id AND b.state = 'pending'), 0)::bigint AS pending
        """

    init(row: PostgresRow) throws {
        id = try row.decode(UUID.self, named: "id")
        runID = try row.decode(Int64.self, named: "run_id")
        funnelID = try row.decode(Int64.self, named: "funnel_id")
        columnID = try row.decode(Int64.self, named: "column_id")
        batchSize = try row.decode(Int.self, named: "batch_size")
        state = State(rawValue: try row.decode(String.self, named: "state")) ?? .pending
        total = try row.decode(Int?.self, named: "total")
        moved = try row.decode(Int.self, named: "moved")
        failed = try row.decode(Int.self, named: "failed")
        batches = try row.decode(Int?.self, named: "batches")
        batchesDone = try row.decode(Int.self, named: "batches_done")
        jobID = try row.decode(UUID?.self, named: "job_id")
        ownerID = try row.decode(UUID?.self, named: "owner_id")
        createdAt = try row.decode(Date.self, named: "created_at")
        startedAt = try row.decode(Date?.self, named: "started_at")
        finishedAt = try row.decode(Date?.self, named: "finished_at")
        cancelledAt = try row.decode(Date?.self, named: "cancelled_at")
        lastError = try row.decode(String?.self, named: "last_error")
        pending = try row.decode(Int.self, named: "pending")
        if let batches, batches > 0 {
            percent = (Double(batchesDone) / Double(batches) * 1000).rounded() / 10
        } else {
            percent = state == .completed ? 100 : 0
        }
    }
}

/// Why a migration could not be created; `field` names the input at fault.
public enum LeadMigrationError: Error, Equatable, Sendable {
    case unknownFunnel(Int64)
    case unknownColumn(Int64)
    case columnNotInFunnel(column: Int64, funnel: Int64)
}

/// The job kinds of lead migrations.
public enum LeadMigrationKinds {
    /// Plans a migration: counts the run's leads, cuts them into batches, enqueues the batches.
    public static let plan = "lead-migration.plan"
    /// Moves one batch.
    public static let batch = "lead-migration.batch"
}

/// Reads and writes of lead migrations. Every write that changes progress also records a
/// `progress` event on the migration's planning job (the SSE stream of job events carries it).
public enum LeadMigrationStore {
    /// Checks the target, writes the migration; call inside the transaction that enqueues its
    /// planning job (so both exist or neither). Within `scope`: a user's migration may target
    /// only a funnel of theirs (another's is unknown to them, so ids cannot be probed) and
    /// moves only their leads of the run; `.everything` (an admin's) any funnel, every lead.
    public static func insert(id: UUID, runID: Int64, funnelID: Int64, columnID: Int64, batchSize: Int, ownerID: UUID?,
                              scope: AccessScope = .everything, on connection: PostgresConnection) throws {
        guard !(try connection.query("SELECT 1 FROM funnels WHERE id = $1 AND ($2::uuid IS NULL OR owner_id = $2)",
                                     [funnelID, scope.ownerID])).isEmpty else {
            throw LeadMigrationError.unknownFunnel(funnelID)
        }
        guard let column = try connection.query("SELECT funnel_id FROM funnel_columns WHERE id = $1", [columnID]).first else {
            throw LeadMigrationError.unknownColumn(columnID)
        }
        guard try column.decode(Int64.self, at: 0) == funnelID else {
            throw LeadMigrationError.columnNotInFunnel(column: columnID, funnel: funnelID)
        }
        try connection.execute("""
            INSERT INTO lead_migrations (id, run_id, funnel_id, column_id, batch_size, owner_id, leads_owner_id)
            VALUES ($1, $2, $3, $4, $5, $6, $7)
            """, [id, runID, funnelID, columnID, batchSize, ownerID, scope.ownerID])
    }

    /// Links the migration to its planning job.
    public static func setJob(_ id: UUID, jobID: UUID, on connection: PostgresConnection) throws {
        try connection.execute("UPDATE lead_migrations SET job_id = $2 WHERE id = $1", [id, jobID])
    }

    public static func get(_ id: UUID, scope: AccessScope, on connection: PostgresConnection) throws -> LeadMigration? {
        var sql = "SELECT \(LeadMigration.columns) FROM lead_migrations m WHERE m.id = $1"
        var parameters: [PostgresEncodable?] = [id]
        if let owner = scope.ownerID { sql += " AND m.owner_id = $2"; parameters.append(owner) }
        return try connection.query(sql, parameters).first.map(LeadMigration.init(row:))
    }

    /// Newest first, at most `limit`, optionally of one state.
    public static func list(state: LeadMigration.State?, limit: Int, scope: AccessScope,
                            on connection: PostgresConnection) throws -> [LeadMigration] {
        var conditions: [String] = [], parameters: [PostgresEncodable?] = []
        if let owner = scope.ownerID { parameters.append(owner); conditions.append("m.owner_id = $\(parameters.count)") }
        if let state { parameters.append(state.rawValue); conditions.append("m.state = $\(parameters.count)") }
        parameters.append(limit)
        return try connection.query("""
            SELECT \(LeadMigration.columns) FROM lead_migrations m
            \(conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND "))
            ORDER BY m.created_at DESC, m.id DESC LIMIT $\(parameters.count)
            """, parameters).map(LeadMigration.init(row:))
    }

    /// Migrations per state, with their leads: the summary of all.
    public static func summary(scope: AccessScope, on connection: PostgresConnection) throws -> [(state: String, count: Int, total: Int, moved: Int, failed: Int)] {
        let owner = scope.ownerID
        return try connection.query("""
            SELECT state, count(*)::bigint, coalesce(sum(total), 0)::bigint, coalesce(sum(moved), 0)::bigint, coalesce(sum(failed), 0)::bigint
            FROM lead_migrations \(owner == nil ? "" : "WHERE owner_id = $1") GROUP BY state ORDER BY state
            """, owner == nil ? [] : [owner]).map {
            (try $0.decode(String.self, at: 0), try $0.decode(Int.self, at: 1), try $0.decode(Int.self, at: 2),
             try $0.decode(Int.self, at: 3), try $0.decode(Int.self, at: 4))
        }
    }

    /// Cancels a migration not finished: batches not started will not run; what moved stays.
    /// Returns the migration after, nil when unknown in `scope`, or it unchanged when final.
    public static func cancel(_ id: UUID, scope: AccessScope, on connection: PostgresConnection) throws -> (LeadMigration, changed: Bool)? {
        guard let before = try get(id, scope: scope, on: connection) else { return nil }
        guard !before.state.isFinal else { return (before, false) }
        // Batches first, then the migration: the order a running batch takes its locks in
        // (its batch row, then the migration's), so the two never wait on each other in a
        // circle. A batch running now is skipped and finishes; its leads count as moved.
        try connection.execute("""
            UPDATE lead_migration_batches SET state = 'cancelled', finished_at = now()
            WHERE migration_id = $1 AND batch_no IN (
                SELECT batch_no FROM lead_migration_batches WHERE migration_id = $1 AND state = 'pending'
                FOR UPDATE SKIP LOCKED)
            """, [id])
        let rows = try connection.query("""
            UPDATE lead_migrations SET state = 'cancelled', cancelled_at = now(), finished_at = now(), updated_at = now()
            WHERE id = $1 AND state IN ('pending', 'running') RETURNING id
            """, [id])
        if !rows.isEmpty {
            try recordProgress(id, on: connection)
        }
        return (try get(id, scope: .everything, on: connection)!, !rows.isEmpty)
    }

    /// Plans a pending migration: its run's leads in id order, cut into batches of
    /// `batch_size`. Returns the batch numbers to enqueue (all of them when the migration was
    /// planned before: enqueueing them again is harmless, their idempotency keys dedupe).
    /// An empty run completes at once.
    public static func plan(_ id: UUID, on connection: PostgresConnection) throws -> (migration: LeadMigration, batches: [Int]) {
        guard let m = try connection.query("SELECT state, run_id, batch_size, leads_owner_id FROM lead_migrations WHERE id = $1 FOR UPDATE",
                                           [id]).first else {
            throw PostgresError(.unexpectedResult, message: "no lead migration \(id)")
        }
        let state = try m.decode(String.self, at: 0)
        if state == LeadMigration.State.pending.rawValue {
            let runID = try m.decode(Int64.self, at: 1), size = try m.decode(Int.self, at: 2)
            let leadsOwner = try m.decode(UUID?.self, at: 3)
            try connection.execute("""
                INSERT INTO lead_migration_batches (migration_id, batch_no, first_id, last_id, leads)
                SELECT $1, b, min(id), max(id), count(*)
                FROM (SELECT id, (row_number() OVER (ORDER BY id) - 1) / $3 AS b FROM leads
                      WHERE run_id = $2 AND ($4::uuid IS NULL OR owner_id = $4)) t
                GROUP BY b
                """, [id, runID, size, leadsOwner])
            try connection.execute("""
                UPDATE lead_migrations m SET state = CASE WHEN s.n = 0 THEN 'completed' ELSE 'running' END,
                       total = s.leads, batches = s.n, started_at = now(), updated_at = now(),
                       finished_at = CASE WHEN s.n = 0 THEN now() END
                FROM (SELECT count(*)::int AS n, coalesce(sum(leads), 0)::int AS leads FROM lead_migration_batches WHERE migration_id = $1) s
                WHERE m.id = $1
                """, [id])
            try recordProgress(id, on: connection)
        }
        let migration = try get(id, scope: .everything, on: connection)!
        guard migration.state == .running else { return (migration, []) }
        let batches = try connection.query(
            "SELECT batch_no FROM lead_migration_batches WHERE migration_id = $1 AND state = 'pending' ORDER BY batch_no", [id])
            .map { try $0.decode(Int.self, at: 0) }
        return (migration, batches)
    }

    /// What one run of a batch did.
    public enum BatchOutcome: Equatable, Sendable {
        /// Moved this many leads now.
        case moved(Int)
        /// Done before (a redelivery or a retry after a crash): nothing moved again.
        case alreadyDone
        /// The migration was cancelled: the batch did not run.
        case cancelled
    }

    /// Moves one batch and records it, in one transaction: the batch row is locked, so two
    /// runs of the same batch cannot both count it. Leads deleted since planning are simply
    /// not moved.
    public static func runBatch(_ id: UUID, batch: Int, on connection: PostgresConnection) throws -> BatchOutcome {
        try connection.transaction { c in
            guard let b = try c.query("""
                SELECT b.state, b.first_id, b.last_id, m.state, m.run_id, m.funnel_id, m.column_id, m.leads_owner_id
                FROM lead_migration_batches b JOIN lead_migrations m ON m.id = b.migration_id
                WHERE b.migration_id = $1 AND b.batch_no = $2 FOR UPDATE OF b
                """, [id, batch]).first else {
                throw PostgresError(.unexpectedResult, message: "no batch \(batch) of lead migration \(id)")
            }
            let batchState = try b.decode(String.self, at: 0)
            if batchState == "done" || batchState == "failed" { return .alreadyDone }
            let migrationState = try b.decode(String.self, at: 3)
            if batchState == "cancelled" || migrationState == "cancelled" {
                try c.execute("UPDATE lead_migration_batches SET state = 'cancelled', finished_at = now() WHERE migration_id = $1 AND batch_no = $2 AND state = 'pending'",
                              [id, batch])
                return .cancelled
            }
            let moved = try c.execute("""
                UPDATE leads SET funnel_id = $3, column_id = $4, updated_at = now()
                WHERE run_id = $5 AND id BETWEEN $1 AND $2 AND ($6::uuid IS NULL OR owner_id = $6)
                """, [try b.decode(Int64.self, at: 1), try b.decode(Int64.self, at: 2), try b.decode(Int64.self, at: 5),
                      try b.decode(Int64.self, at: 6), try b.decode(Int64.self, at: 4), try b.decode(UUID?.self, at: 7)])
            try c.execute("UPDATE lead_migration_batches SET state = 'done', moved = $3, finished_at = now() WHERE migration_id = $1 AND batch_no = $2",
                          [id, batch, moved])
            try finishBatch(id, moved: moved, failed: 0, error: nil, on: c)
            return .moved(moved)
        }
    }

    /// Records a batch that failed for good (its last attempt, or a permanent error): its
    /// leads count as failed; the other batches go on.
    public static func failBatch(_ id: UUID, batch: Int, error: String, on connection: PostgresConnection) throws {
        try connection.transaction { c in
            let rows = try c.query("""
                UPDATE lead_migration_batches SET state = 'failed', finished_at = now(), last_error = $3
                WHERE migration_id = $1 AND batch_no = $2 AND state = 'pending' RETURNING leads
                """, [id, batch, String(error.prefix(1000))])
            guard let leads = try rows.first?.decode(Int.self, at: 0) else { return }
            try finishBatch(id, moved: 0, failed: leads, error: error, on: c)
        }
    }

    private static func finishBatch(_ id: UUID, moved: Int, failed: Int, error: String?, on c: PostgresConnection) throws {
        try c.execute("""
            UPDATE lead_migrations SET moved = moved + $2, failed = failed + $3, batches_done = batches_done + 1,
                   last_error = coalesce($4, last_error), updated_at = now(),
                   state = CASE WHEN state = 'running' AND batches_done + 1 >= batches
                                THEN CASE WHEN failed + $3 > 0 THEN 'failed' ELSE 'completed' END ELSE state END,
                   finished_at = CASE WHEN state = 'running' AND batches_done + 1 >= batches THEN now() ELSE finished_at END
            WHERE id = $1
            """, [id, moved, failed, error.map { String($0.prefix(1000)) }])
        try recordProgress(id, on: c)
    }

    /// Puts the migration's progress on its planning job, which publishes it as a `progress`
    /// event (the SSE stream carries it): percent of batches done, the leads moved and failed.
    static func recordProgress(_ id: UUID, on c: PostgresConnection) throws {
        guard let row = try c.query("""
            SELECT job_id, state, total, moved, failed, batches, batches_done,
                   CASE WHEN coalesce(batches, 0) = 0 THEN CASE WHEN state = 'completed' THEN 100 ELSE 0 END
                        ELSE round(batches_done * 1000.0 / batches) / 10 END::float8 AS percent
            FROM lead_migrations WHERE id = $1 AND job_id IS NOT NULL
            """, [id]).first else { return }
        let total = try row.decode(Int?.self, named: "total"), moved = try row.decode(Int.self, named: "moved")
        let failed = try row.decode(Int.self, named: "failed")
        let batches = try row.decode(Int?.self, named: "batches"), batchesDone = try row.decode(Int.self, named: "batches_done")
        let state = try row.decode(String.self, named: "state")
        func number(_ n: Int?) -> JSONValue { n.map { .number(Double($0)) } ?? .null }
        let progress = JobProgress(
            percent: try row.decode(Double.self, named: "percent"), done: moved, total: total,
            message: "\(moved) of \(total.map(String.init) ?? "?") leads moved, \(failed) failed",
            detail: ["lead_migration_id": .string(id.uuidString.lowercased()), "state": .string(state), "total": number(total),
                     "moved": number(moved), "failed": number(failed), "batches": number(batches),
                     "batches_done": number(batchesDone)])
        try JobTransitions.report(progress, job: try row.decode(UUID.self, named: "job_id"), on: c)
    }
}
