import EsteiraCore
@testable import Exports
import Foundation
import Postgres
import Testing

/// The exporter's and the export routes' queries use the indexes made for them, on tables big
/// enough that a sequential scan would be the planner's choice otherwise.
@Suite struct ExportIndexUseTests {
    @Test func exportQueriesUseTheirIndexes() async throws {
        let database = try await ScratchDatabase.migrated()
        let c = try database.connect()
        defer { c.close() }
        let owner = UUID(uuidString: "00000000-0000-0000-0000-000000000003")!
        let target = UUID()
        try insertPrincipals(10, on: c)
        // 200,000 leads over 400 days, ten owners; two targets; 2,000 exports; a success event for most leads.
        try c.execute("""
            INSERT INTO leads (run_id, name, email, created_at, owner_id)
            SELECT i % 50, 'Lead ' || i, 'l' || i || '@example.test', timestamptz '2026-01-01' + (i % 400) * interval '1 day' + (i / 400) * interval '1 second',
                   ('00000000-0000-0000-0000-' || lpad((1 + i % 10)::text, 12, '0'))::uuid
            FROM generate_series(1, 200000) i
            """)
        try c.execute("INSERT INTO export_targets (id, name, base_url, api_key) VALUES ($1, 't1', 'http://a.test', 'k'), (gen_random_uuid(), 't2', 'http://b.test', 'k')", [target])
        try c.execute("""
            INSERT INTO exports (id, target_id, status, start_date, batch_size, created_by, owner_id, created_at)
            SELECT gen_random_uuid(), $1, 'completed', '2026-12-01', 100, 'p', ('00000000-0000-0000-0000-' || lpad((1 + i % 10)::text, 12, '0'))::uuid,
                   now() - i * interval '1 minute'
            FROM generate_series(1, 2000) i
            """, [target])
        try c.execute("""
            INSERT INTO sync_events (lead_id, target_id, direction, status)
            SELECT id, $1, 'd', CASE WHEN id % 100 = 0 THEN 'error' ELSE 'success' END FROM leads
            """, [target])
        try c.execute("ANALYZE")

        func expectIndex(_ index: String, _ query: (String, [PostgresEncodable?]), sourceLocation: SourceLocation = #_sourceLocation) throws {
            let text = try c.query("EXPLAIN " + query.0, query.1).map { try $0.decode(String.self, at: 0) }.joined(separator: "\n")
            #expect(text.contains(index), "expected \(index):\n\(text)", sourceLocation: sourceLocation)
            #expect(!text.contains("Seq Scan on leads") && !text.contains("Seq Scan on sync_events") && !text.contains("Seq Scan on exports"),
                    "sequential scan:\n\(text)", sourceLocation: sourceLocation)
        }
        let position = ExportProgress.Position(day: "2026-06-01", cursorAt: "2026-06-01 00:01:00+00", cursorID: 1234)
        let everyone = ExportProgress.Leads(owner: nil, endDate: "2026-02-01")
        let users = ExportProgress.Leads(owner: owner, endDate: nil)
        try expectIndex("leads_created", everyone.batchQuery(at: position, limit: 100))
        try expectIndex("leads_owner_created", users.batchQuery(at: position, limit: 100))
        try expectIndex("leads_created", everyone.dayBeforeQuery("2026-06-01", inclusive: false))
        try expectIndex("leads_owner_created", users.dayBeforeQuery("2026-06-01", inclusive: true))
        try expectIndex("exports_created", ExportStore.listQuery(statuses: [], limit: 10, scope: .everything))
        try expectIndex("exports_owner", ExportStore.listQuery(statuses: [], limit: 10, scope: AccessScope(ownerID: owner)))
        // The dashboard's active exports: the one-active-per-target index holds just those.
        try expectIndex("exports_one_active", ExportStore.listQuery(statuses: [.pending, .running, .paused], limit: 50, scope: AccessScope(ownerID: owner)))
        try expectIndex("sync_events_target_success", ExportStore.neverExportedQuery(target: target, scope: .everything, after: 0, limit: 100))
        try expectIndex("leads_pkey", ExportStore.neverExportedQuery(target: target, scope: .everything, after: 0, limit: 100))
        try expectIndex("leads_owner_id", ExportStore.neverExportedQuery(target: target, scope: AccessScope(ownerID: owner), after: 0, limit: 100))
        try expectIndex("sync_events_target_success", ExportStore.neverExportedQuery(target: target, scope: AccessScope(ownerID: owner), after: 0, limit: 100))
    }
}
