import EsteiraCore
import Foundation
import Postgres

/// The exporter's side of an export: where it stands, the next batch, and the record of a
/// batch sent. Every change of position is a compare-and-set on the export row under its
/// lock, made only by the job the row names (`job_id`), so a batch re-sent after a crash is
/// counted once, and a job that was superseded changes nothing.
enum ExportProgress {
    /// Where the next batch begins: a day, and the last lead done in it (nil: none yet).
    struct Position: Equatable, Sendable {
        var day: String?
        var cursorAt: String?
        var cursorID: Int64?
        var lastCompleted: String?
    }

    /// What the job carrying an export needs to know of it.
    struct Work: Sendable {
        var exportID: UUID
        var target: ExportTarget
        var batchSize: Int
        var endDate: String?
        var leadsOwner: UUID?
        var ownerID: UUID?
        var position: Position
        var total: Int
        var exported: Int
        var errors: Int
    }

    /// One batch: the leads of `position`'s day after its cursor, as JSON rows.
    struct Batch: Sendable {
        var ids: [Int64]
        var rows: [String]
        /// The position after it.
        var next: Position
    }

    /// The job of kind ``ExportKinds/run`` that carries export `id` (at `runAfter`, when given).
    static func job(for id: UUID, ownerID: UUID?, runAfter: Date? = nil) -> NewJob {
        NewJob(kind: ExportKinds.run, payload: #"{"export_id":"\#(id.uuidString.lowercased())"}"#, runAfter: runAfter, ownerID: ownerID)
    }

    enum Claim: Sendable {
        case work(Work)
        /// Nothing to do: the export is not this job's, or not running.
        case stop(String)
    }

    /// Takes export `id` for job `jobID`: a pending export starts (its leads counted, its
    /// first day found); a paused, cancelled or finished one is let go.
    static func claim(_ id: UUID, jobID: UUID, on connection: PostgresConnection) throws -> Claim {
        try connection.transaction { c in
            guard let row = try c.query("""
                SELECT e.status, e.job_id, e.batch_size, e.start_date::text, e.end_date::text, e.leads_owner_id, e.owner_id,
                       e.processing_date::text, e.cursor_at::text, e.cursor_id, e.last_completed_date::text, e.total_leads,
                       e.exported_leads, e.error_leads, \(ExportTarget.columns)
                FROM exports e JOIN export_targets t ON t.id = e.target_id WHERE e.id = $1 FOR UPDATE OF e
                """, [id]).first else { return .stop("no export \(id.uuidString.lowercased())") }
            guard try row.decode(UUID?.self, named: "job_id") == jobID else { return .stop("the export is carried by another job") }
            let status = Export.Status(rawValue: try row.decode(String.self, named: "status")) ?? .pending
            let target = try ExportTarget(row: row)
            var work = Work(exportID: id, target: target, batchSize: try row.decode(Int.self, named: "batch_size"),
                            endDate: try row.decode(String?.self, named: "end_date"),
                            leadsOwner: try row.decode(UUID?.self, named: "leads_owner_id"), ownerID: try row.decode(UUID?.self, named: "owner_id"),
                            position: Position(day: try row.decode(String?.self, named: "processing_date"),
                                               cursorAt: try row.decode(String?.self, named: "cursor_at"),
                                               cursorID: try row.decode(Int64?.self, named: "cursor_id"),
                                               lastCompleted: try row.decode(String?.self, named: "last_completed_date")),
                            total: try row.decode(Int?.self, named: "total_leads") ?? 0,
                            exported: try row.decode(Int.self, named: "exported_leads"), errors: try row.decode(Int.self, named: "error_leads"))
            switch status {
            case .running: break
            case .pending:
                let start = try row.decode(String.self, named: "start_date")
                let leads = Leads(owner: work.leadsOwner, endDate: work.endDate)
                work.total = try leads.count(through: start, on: c)
                work.position.day = try leads.dayBefore(start, inclusive: true, on: c)
                try c.execute("""
                    UPDATE exports SET status = 'running', started_at = now(), total_leads = $2, processing_date = $3::date,
                        updated_at = now() WHERE id = $1
                    """, [id, work.total, work.position.day])
            default:
                try c.execute("UPDATE exports SET job_id = NULL WHERE id = $1", [id])
                return .stop("the export is \(status.rawValue)")
            }
            if !target.syncEnabled {
                try c.execute("""
                    UPDATE exports SET status = 'paused', pause_reason = $2, paused_at = now(), job_id = NULL, updated_at = now()
                    WHERE id = $1
                    """, [id, "sync is disabled on the target"])
                return .stop("sync is disabled on target \(target.name)")
            }
            return .work(work)
        }
    }

    /// The leads an export sends: by UTC day, newest day first, within a day in
    /// (created_at, id) order; a user's export only that user's leads.
    struct Leads {
        var owner: UUID?
        var endDate: String?

        private func condition(_ parameters: inout [PostgresEncodable?]) -> String {
            var sql = ""
            if let endDate { parameters.append(endDate); sql += " AND created_at >= ($\(parameters.count)::date)::timestamp AT TIME ZONE 'UTC'" }
            if let owner { parameters.append(owner); sql += " AND owner_id = $\(parameters.count)" }
            return sql
        }

        /// Leads on `day` and the days before it, down to the end date.
        func count(through day: String, on c: PostgresConnection) throws -> Int {
            var parameters: [PostgresEncodable?] = [day]
            let more = condition(&parameters)
            return try c.query("""
                SELECT count(*) FROM leads WHERE created_at < ($1::date + 1)::timestamp AT TIME ZONE 'UTC'\(more)
                """, parameters)[0].decode(Int.self, at: 0)
        }

        /// The newest day with leads before `day` (or on it, when `inclusive`), not before the
        /// end date; nil when there is none.
        func dayBefore(_ day: String, inclusive: Bool, on c: PostgresConnection) throws -> String? {
            let (sql, parameters) = dayBeforeQuery(day, inclusive: inclusive)
            return try c.query(sql, parameters)[0].decode(String?.self, at: 0)
        }

        func dayBeforeQuery(_ day: String, inclusive: Bool) -> (String, [PostgresEncodable?]) {
            var parameters: [PostgresEncodable?] = [day]
            let more = condition(&parameters)
            return ("""
                SELECT (max(created_at) AT TIME ZONE 'UTC')::date::text FROM leads
                WHERE created_at < ($1::date + \(inclusive ? 1 : 0))::timestamp AT TIME ZONE 'UTC'\(more)
                """, parameters)
        }

        /// Up to `limit` leads of `position`'s day after its cursor, as the JSON rows sent.
        func batch(at position: Position, limit: Int, on c: PostgresConnection) throws -> [(id: Int64, createdAt: String, row: String)] {
            guard position.day != nil else { return [] }
            let (sql, parameters) = batchQuery(at: position, limit: limit)
            return try c.query(sql, parameters).map { (try $0.decode(Int64.self, at: 0), try $0.decode(String.self, at: 1), try $0.decode(String.self, at: 2)) }
        }

        func batchQuery(at position: Position, limit: Int) -> (String, [PostgresEncodable?]) {
            var parameters: [PostgresEncodable?] = [position.day, position.cursorAt ?? "-infinity", position.cursorID ?? 0, limit]
            var ownerCondition = ""
            if let owner { parameters.append(owner); ownerCondition = " AND owner_id = $5" }
            return ("""
                SELECT id, created_at::text,
                       json_build_object('id', id, 'name', name, 'email', email, 'run_id', run_id, 'funnel_id', funnel_id,
                                         'column_id', column_id, 'created_at', created_at, 'updated_at', updated_at)::text
                FROM leads
                WHERE created_at >= ($1::date)::timestamp AT TIME ZONE 'UTC' AND created_at < ($1::date + 1)::timestamp AT TIME ZONE 'UTC'
                  AND (created_at, id) > ($2::timestamptz, $3::bigint)\(ownerCondition)
                ORDER BY created_at, id LIMIT $4
                """, parameters)
        }
    }

    /// The next batch of `work`, moving on to older days when a day is done; an empty batch
    /// whose next position has no day when no lead is left.
    static func nextBatch(_ work: Work, on c: PostgresConnection) throws -> Batch {
        let leads = Leads(owner: work.leadsOwner, endDate: work.endDate)
        var position = work.position
        while let day = position.day {
            let rows = try leads.batch(at: position, limit: work.batchSize, on: c)
            if rows.isEmpty {
                position = Position(day: try leads.dayBefore(day, inclusive: false, on: c), lastCompleted: day)
                continue
            }
            var next = position
            next.cursorAt = rows.last!.createdAt
            next.cursorID = rows.last!.id
            if rows.count < work.batchSize {
                // The day's last batch: the next one is on an older day.
                next = Position(day: try leads.dayBefore(day, inclusive: false, on: c), lastCompleted: day)
            }
            return Batch(ids: rows.map(\.id), rows: rows.map(\.row), next: next)
        }
        // No lead left: an empty batch that records the export complete.
        return Batch(ids: [], rows: [], next: position)
    }

    /// What the job does after a record.
    enum Next: Equatable, Sendable {
        /// Send the next batch.
        case goOn
        /// Stop: the export is finished, paused, cancelled, or no longer this job's.
        case stop(String)
    }

    /// Records a batch sent from `from` (its leads' outcomes: error text, nil for success)
    /// and moves the export to `to`, with a sync event per lead and the counters, in one
    /// statement: only if the export is still this job's and still at `from`. When the export
    /// goes on and `handOver` is given, that job is inserted in the same transaction and
    /// carries it from there.
    static func record(_ work: inout Work, from: Position, to: Position, leads: [Int64], errors: [Int64: String],
                       handOver: NewJob?, store: JobStore, jobID: UUID,
                       on connection: PostgresConnection) throws -> (Next, [EnqueueOutcome]) {
        let failed = leads.filter { errors[$0] != nil }.count
        let done = to.day == nil
        let parameters: [PostgresEncodable?] = [
            work.exportID, jobID, from.day, from.cursorAt, from.cursorID, work.target.id, work.target.direction, leads,
            leads.map { errors[$0].map { String($0.prefix(2000)) } ?? "" }, leads.count - failed, failed,
            to.day, to.cursorAt, to.cursorID, to.lastCompleted, done,
        ]
        func recordBatch(_ c: PostgresConnection) throws -> Export.Status? {
            try c.query("""
                WITH cur AS (
                    SELECT id, CASE WHEN status = 'running' AND NOT $16
                                         AND NOT (SELECT sync_enabled FROM export_targets WHERE id = $6) THEN 'sync-off'
                                    ELSE status END AS status
                    FROM exports
                    WHERE id = $1 AND job_id = $2 AND processing_date IS NOT DISTINCT FROM $3::date
                      AND cursor_at IS NOT DISTINCT FROM $4::timestamptz AND cursor_id IS NOT DISTINCT FROM $5::bigint
                    FOR UPDATE),
                events AS (
                    INSERT INTO sync_events (lead_id, export_id, target_id, direction, status, error)
                    SELECT l, $1, $6, $7, CASE WHEN e = '' THEN 'success' ELSE 'error' END, NULLIF(e, '')
                    FROM cur, unnest($8::bigint[], $9::text[]) AS t(l, e))
                UPDATE exports x SET exported_leads = x.exported_leads + $10, error_leads = x.error_leads + $11,
                    processing_date = $12::date, cursor_at = $13::timestamptz, cursor_id = $14, last_completed_date = $15::date,
                    status = CASE WHEN $16 AND cur.status = 'running' THEN 'completed' WHEN cur.status = 'sync-off' THEN 'paused'
                                  ELSE cur.status END,
                    completed_at = CASE WHEN $16 AND cur.status = 'running' THEN now() ELSE x.completed_at END,
                    -- Sync disabled on the target meanwhile: paused, saying why.
                    pause_reason = CASE WHEN cur.status = 'sync-off' THEN 'sync is disabled on the target' ELSE x.pause_reason END,
                    paused_at = CASE WHEN cur.status = 'sync-off' THEN now() ELSE x.paused_at END,
                    job_id = CASE WHEN $16 OR cur.status <> 'running' THEN NULL ELSE x.job_id END,
                    updated_at = now()
                FROM cur WHERE x.id = cur.id
                RETURNING CASE WHEN cur.status = 'sync-off' THEN 'paused' ELSE cur.status END
                """, parameters).first.map { Export.Status(rawValue: try $0.decode(String.self, at: 0)) ?? .pending }
        }
        let (status, outcomes) = try { () throws -> (Export.Status?, [EnqueueOutcome]) in
            guard let handOver else { return (try recordBatch(connection), []) }
            return try connection.transaction { c in
                guard let status = try recordBatch(c) else { return (nil, []) }
                guard status == .running, !done else { return (status, []) }
                let outcomes = try store.insert([handOver], on: c)
                try c.execute("UPDATE exports SET job_id = $2 WHERE id = $1", [work.exportID, outcomes[0].id])
                return (status, outcomes)
            }
        }()
        guard let status else { return (.stop("the export was moved on by another job"), []) }
        work.position = to
        work.exported += leads.count - failed
        work.errors += failed
        if done { return (.stop("the export is complete"), []) }
        if status != .running { return (.stop("the export is \(status.rawValue)"), []) }
        if let job = outcomes.first { return (.stop("handed over to job \(job.id.uuidString.lowercased())"), outcomes) }
        return (.goOn, [])
    }

    /// Hands the export over to `job` (a later start, when the target asked to wait), if it
    /// is still running and this job's.
    static func handOver(_ work: Work, to job: NewJob, store: JobStore, jobID: UUID,
                         on connection: PostgresConnection) throws -> [EnqueueOutcome] {
        try connection.transaction { c in
            guard let row = try c.query("SELECT status, job_id FROM exports WHERE id = $1 FOR UPDATE", [work.exportID]).first,
                  try row.decode(UUID?.self, at: 1) == jobID else { return [] }
            guard try row.decode(String.self, at: 0) == Export.Status.running.rawValue else {
                try c.execute("UPDATE exports SET job_id = NULL WHERE id = $1", [work.exportID])
                return []
            }
            let outcomes = try store.insert([job], on: c)
            try c.execute("UPDATE exports SET job_id = $2, updated_at = now() WHERE id = $1", [work.exportID, outcomes[0].id])
            return outcomes
        }
    }

    /// Marks the export failed (the target refused it for good, or the last attempt failed),
    /// if it is this job's.
    static func fail(_ id: UUID, error: String, jobID: UUID, on connection: PostgresConnection) throws {
        try connection.execute("""
            UPDATE exports SET status = CASE WHEN status IN ('running', 'pending') THEN 'failed' ELSE status END,
                error = $2, job_id = NULL, updated_at = now()
            WHERE id = $1 AND job_id = $3
            """, [id, String(error.prefix(2000)), jobID])
    }
}
