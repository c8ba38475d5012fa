import EsteiraCore
import Foundation
import Postgres

/// Reads and writes of export targets and exports for the api and the dashboard. The
/// exporter's side (batches, their record, hand-overs) is ``ExportProgress``.
public enum ExportStore {
    // MARK: - Targets

    /// The fields of a target an admin sets; nil leaves a field as it is on an update.
    public struct TargetInput: Sendable {
        public var name: String?
        public var baseURL: String?
        public var apiKey: String?
        public var active: Bool?
        public var syncEnabled: Bool?
        /// Outer nil: unchanged; inner nil: no published limit.
        public var rateLimit: Double??
        public var rateBurst: Int??
        public var direction: String?

        public init() {}
    }

    public static func targets(on connection: PostgresConnection) throws -> [ExportTarget] {
        try connection.query("SELECT \(ExportTarget.columns) FROM export_targets t ORDER BY t.name").map(ExportTarget.init(row:))
    }

    public static func target(named name: String, on connection: PostgresConnection) throws -> ExportTarget? {
        try connection.query("SELECT \(ExportTarget.columns) FROM export_targets t WHERE t.name = $1", [name]).first.map(ExportTarget.init(row:))
    }

    /// Creates a target; nil when one has that name already.
    public static func createTarget(_ input: TargetInput, on connection: PostgresConnection) throws -> ExportTarget? {
        try connection.query("""
            INSERT INTO export_targets AS t (id, name, base_url, api_key, active, sync_enabled, rate_limit, rate_burst, direction)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (name) DO NOTHING
            RETURNING \(ExportTarget.columns)
            """, [UUID(), input.name, input.baseURL, input.apiKey, input.active ?? true, input.syncEnabled ?? true,
                  input.rateLimit ?? nil, input.rateBurst ?? nil, input.direction ?? "supabase_to_gestao_scouter"])
            .first.map(ExportTarget.init(row:))
    }

    /// Changes the fields given of target `name`; nil when there is none.
    public static func updateTarget(_ name: String, _ input: TargetInput, on connection: PostgresConnection) throws -> ExportTarget? {
        try connection.query("""
            UPDATE export_targets t SET
                base_url = coalesce($2, base_url), api_key = coalesce($3, api_key), active = coalesce($4, active),
                sync_enabled = coalesce($5, sync_enabled),
                rate_limit = CASE WHEN $6 THEN $7 ELSE rate_limit END, rate_burst = CASE WHEN $8 THEN $9 ELSE rate_burst END,
                direction = coalesce($10, direction), updated_at = now()
            WHERE name = $1 RETURNING \(ExportTarget.columns)
            """, [name, input.baseURL, input.apiKey, input.active, input.syncEnabled,
                  input.rateLimit != nil, input.rateLimit ?? nil, input.rateBurst != nil, input.rateBurst ?? nil, input.direction])
            .first.map(ExportTarget.init(row:))
    }

    public enum DeleteOutcome: Sendable { case deleted, notFound, inUse(exports: Int) }

    /// Deletes a target no export names (their history stays meaningful).
    public static func deleteTarget(_ name: String, on connection: PostgresConnection) throws -> DeleteOutcome {
        try connection.transaction { c in
            guard let row = try c.query("SELECT id FROM export_targets WHERE name = $1 FOR UPDATE", [name]).first else { return .notFound }
            let id = try row.decode(UUID.self, at: 0)
            let used = try c.query("SELECT count(*) FROM exports WHERE target_id = $1", [id])[0].decode(Int.self, at: 0)
            if used > 0 { return .inUse(exports: used) }
            try c.execute("DELETE FROM export_targets WHERE id = $1", [id])
            return .deleted
        }
    }

    /// The target a new export goes to: the one named, else the only active one.
    static func pickTarget(_ name: String?, on connection: PostgresConnection) throws -> ExportTarget {
        let target: ExportTarget
        if let name {
            guard let named = try self.target(named: name, on: connection) else { throw ExportError.unknownTarget(name) }
            guard named.active else { throw ExportError.targetInactive(name) }
            target = named
        } else {
            let active = try connection.query("SELECT \(ExportTarget.columns) FROM export_targets t WHERE t.active ORDER BY t.name")
                .map(ExportTarget.init(row:))
            guard let only = active.first else { throw ExportError.noActiveTarget }
            guard active.count == 1 else { throw ExportError.severalActiveTargets(active.map(\.name)) }
            target = only
        }
        guard target.syncEnabled else { throw ExportError.syncDisabled(target.name) }
        return target
    }

    // MARK: - Exports

    /// Writes a pending export and its first job (`job`, inserted here), in one transaction.
    /// Within `scope`: a user's export sends only their leads; an admin's every lead.
    public static func create(id: UUID, target name: String?, startDate: String, endDate: String?, batchSize: Int,
                              createdBy: String, ownerID: UUID?, scope: AccessScope, job: NewJob, store: JobStore,
                              on connection: PostgresConnection) throws -> (Export, [EnqueueOutcome]) {
        try connection.transaction { c in
            let target = try pickTarget(name, on: c)
            // The unique index says it too; this names the export that holds the target.
            if let refusal = try refusal(ifHeld: target.id, lock: true, on: c) { throw refusal }
            let outcomes = try store.insert([job], on: c)
            // A savepoint: after a unique violation the transaction can still name the holder.
            try c.execute("SAVEPOINT new_export")
            do {
                try c.execute("""
                    INSERT INTO exports (id, target_id, start_date, end_date, batch_size, created_by, owner_id, leads_owner_id, job_id)
                    VALUES ($1, $2, $3::date, $4::date, $5, $6, $7, $8, $9)
                    """, [id, target.id, startDate, endDate, batchSize, createdBy, ownerID, scope.ownerID, outcomes[0].id])
            } catch let error as PostgresError where error.sqlState == "23505" {
                // Created by another request meanwhile.
                try c.execute("ROLLBACK TO SAVEPOINT new_export")
                throw try refusal(ifHeld: target.id, on: c) ?? ExportError.alreadyActive(target: target.name, export: id, status: .pending)
            }
            return (try get(id, scope: .everything, on: c)!, outcomes)
        }
    }

    /// The refusal naming the active export that holds target `targetID` (locked, with
    /// `lock`); nil when none does.
    private static func refusal(ifHeld targetID: UUID, lock: Bool = false, on c: PostgresConnection) throws -> ExportError? {
        guard let row = try c.query("""
            SELECT e.id, e.status, t.name FROM exports e JOIN export_targets t ON t.id = e.target_id
            WHERE e.target_id = $1 AND e.status IN ('pending', 'running', 'paused')
            """ + (lock ? " FOR UPDATE OF e" : ""), [targetID]).first else {
            return nil
        }
        return .alreadyActive(target: try row.decode(String.self, at: 2), export: try row.decode(UUID.self, at: 0),
                              status: Export.Status(rawValue: try row.decode(String.self, at: 1)) ?? .running)
    }

    public static func get(_ id: UUID, scope: AccessScope, on connection: PostgresConnection) throws -> Export? {
        var sql = "SELECT \(Export.columns) FROM exports e JOIN export_targets t ON t.id = e.target_id WHERE e.id = $1"
        var parameters: [PostgresEncodable?] = [id]
        if let owner = scope.ownerID { sql += " AND e.owner_id = $2"; parameters.append(owner) }
        return try connection.query(sql, parameters).first.map(Export.init(row:))
    }

    /// The newest `limit` exports in `scope`, in `statuses` (empty: any).
    public static func list(statuses: [Export.Status] = [], limit: Int, scope: AccessScope, on connection: PostgresConnection) throws -> [Export] {
        let (sql, parameters) = listQuery(statuses: statuses, limit: limit, scope: scope)
        return try connection.query(sql, parameters).map(Export.init(row:))
    }

    static func listQuery(statuses: [Export.Status], limit: Int, scope: AccessScope) -> (String, [PostgresEncodable?]) {
        var conditions: [String] = [], parameters: [PostgresEncodable?] = []
        if let owner = scope.ownerID { parameters.append(owner); conditions.append("e.owner_id = $\(parameters.count)") }
        if !statuses.isEmpty {
            parameters.append(statuses.map(\.rawValue))
            conditions.append("e.status = ANY($\(parameters.count)::text[])")
        }
        parameters.append(limit)
        return ("""
            SELECT \(Export.columns) FROM exports e JOIN export_targets t ON t.id = e.target_id
            \(conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND "))
            ORDER BY e.created_at DESC, e.id DESC LIMIT $\(parameters.count)
            """, parameters)
    }

    /// The export, locked, with its status and job, if it is in `scope`.
    private static func lock(_ id: UUID, scope: AccessScope, on c: PostgresConnection) throws -> (Export.Status, UUID?, UUID)? {
        var sql = "SELECT status, job_id, owner_id FROM exports WHERE id = $1"
        var parameters: [PostgresEncodable?] = [id]
        if let owner = scope.ownerID { sql += " AND owner_id = $2"; parameters.append(owner) }
        guard let row = try c.query(sql + " FOR UPDATE", parameters).first else { return nil }
        return (Export.Status(rawValue: try row.decode(String.self, at: 0)) ?? .pending, try row.decode(UUID?.self, at: 1),
                try row.decode(UUID?.self, at: 2) ?? UUID())
    }

    /// Pauses a pending or running export: its job records the batch it is sending, then stops.
    public static func pause(_ id: UUID, reason: String?, scope: AccessScope, on connection: PostgresConnection) throws -> Export {
        try connection.transaction { c in
            guard let (status, _, _) = try lock(id, scope: scope, on: c) else { throw ExportError.notFound(id) }
            guard status == .running || status == .pending else { throw ExportError.wrongStatus(status, action: "paused") }
            try c.execute("""
                UPDATE exports SET status = 'paused', pause_reason = $2, paused_at = now(), updated_at = now() WHERE id = $1
                """, [id, reason])
            return try get(id, scope: .everything, on: c)!
        }
    }

    /// Resumes a paused (or failed, or stalled) export from where it stopped: a new job
    /// carries it unless the one that was carrying it has not stopped yet (it then simply goes on).
    public static func resume(_ id: UUID, scope: AccessScope, store: JobStore,
                              on connection: PostgresConnection) throws -> (Export, [EnqueueOutcome]) {
        try connection.transaction { c in
            guard let (status, job, owner) = try lock(id, scope: scope, on: c) else { throw ExportError.notFound(id) }
            // The job it names goes on only if it has not finished (a dead one will not).
            let carried = try job.map { try !c.query("SELECT 1 FROM jobs WHERE id = $1 AND status = ANY($2::text[])",
                                                     [$0, JobStatus.cancellable.map(\.rawValue)]).isEmpty } ?? false
            // Paused or failed; or active with no job left to carry it (its job died of a
            // timeout, say): it is stalled, and resuming gives it a job again.
            guard status == .paused || status == .failed || ((status == .running || status == .pending) && !carried) else {
                throw ExportError.wrongStatus(status, action: "resumed")
            }
            if status == .failed {
                // A failed export gave its target up: it may resume only if no other holds it now.
                let target = try c.query("SELECT target_id FROM exports WHERE id = $1", [id])[0].decode(UUID.self, at: 0)
                if let refusal = try refusal(ifHeld: target, on: c) { throw refusal }
            }
            var outcomes: [EnqueueOutcome] = []
            var jobID = job
            if !carried {
                outcomes = try store.insert([ExportProgress.job(for: id, ownerID: owner)], on: c)
                jobID = outcomes[0].id
            }
            try c.execute("""
                UPDATE exports SET status = CASE WHEN started_at IS NULL THEN 'pending' ELSE 'running' END,
                    pause_reason = NULL, paused_at = NULL, error = NULL, completed_at = NULL, job_id = $2, updated_at = now()
                WHERE id = $1
                """, [id, jobID])
            return (try get(id, scope: .everything, on: c)!, outcomes)
        }
    }

    /// Cancels an export that has not finished: no batch starts after the one being sent (if
    /// any, it is recorded); what was exported stays exported.
    public static func cancel(_ id: UUID, scope: AccessScope, on connection: PostgresConnection) throws -> Export {
        try connection.transaction { c in
            guard let (status, _, _) = try lock(id, scope: scope, on: c) else { throw ExportError.notFound(id) }
            guard status.isActive else { throw ExportError.wrongStatus(status, action: "cancelled") }
            try c.execute("UPDATE exports SET status = 'cancelled', cancelled_at = now(), updated_at = now() WHERE id = $1", [id])
            return try get(id, scope: .everything, on: c)!
        }
    }

    /// Leads in `scope` with no successful sync event for target `targetID`, by id, after
    /// lead `after`.
    public static func neverExported(target targetID: UUID, scope: AccessScope, after: Int64, limit: Int,
                                     on connection: PostgresConnection) throws -> [UnexportedLead] {
        let (sql, parameters) = neverExportedQuery(target: targetID, scope: scope, after: after, limit: limit)
        return try connection.query(sql, parameters).map { r in
            UnexportedLead(id: try r.decode(Int64.self, at: 0), name: try r.decode(String?.self, at: 1), email: try r.decode(String?.self, at: 2),
                           createdAt: try r.decode(Date.self, at: 3), lastError: try r.decode(String?.self, at: 4))
        }
    }

    static func neverExportedQuery(target targetID: UUID, scope: AccessScope, after: Int64, limit: Int) -> (String, [PostgresEncodable?]) {
        var parameters: [PostgresEncodable?] = [targetID, after, limit]
        var owner = ""
        if let o = scope.ownerID { parameters.append(o); owner = " AND l.owner_id = $4" }
        return ("""
            SELECT l.id, l.name, l.email, l.created_at,
                   (SELECT s.error FROM sync_events s WHERE s.lead_id = l.id AND s.target_id = $1 ORDER BY s.id DESC LIMIT 1) AS last_error
            FROM leads l
            WHERE l.id > $2\(owner)
              -- A probe per lead (not an anti-join over every event): a page stops at its limit.
              AND (SELECT s.id FROM sync_events s WHERE s.target_id = $1 AND s.lead_id = l.id AND s.status = 'success' LIMIT 1) IS NULL
            ORDER BY l.id LIMIT $3
            """, parameters)
    }
}
