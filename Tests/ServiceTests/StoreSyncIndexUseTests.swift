import EsteiraCore
import Foundation
import Postgres
@testable import StoreSyncs
import Testing

/// The store-sync queries the api runs on every request use their indexes.
@Suite struct StoreSyncIndexUseTests {
    @Test func storeSyncQueriesUseTheirIndexes() async throws {
        let database = try await ScratchDatabase.migrated()
        let c = try database.connect()
        defer { c.close() }
        try insertPrincipals(10, on: c)
        // 2,000 stores; 60,000 syncs, a few active; 50,000 cache entries.
        try c.execute("""
            INSERT INTO stores (id, owner_id, name)
            SELECT ('10000000-0000-0000-0000-' || lpad(i::text, 12, '0'))::uuid, ('00000000-0000-0000-0000-' || lpad((1 + i % 10)::text, 12, '0'))::uuid, 's' || i
            FROM generate_series(1, 2000) i
            """)
        try c.execute("""
            INSERT INTO store_syncs (id, store_id, owner_id, period_start, period_end, data_types, status, created_at)
            SELECT gen_random_uuid(), ('10000000-0000-0000-0000-' || lpad((1 + i % 2000)::text, 12, '0'))::uuid,
                   ('00000000-0000-0000-0000-' || lpad((1 + (i % 2000) % 10)::text, 12, '0'))::uuid,
                   date '2025-01-01' + (i / 2000), date '2025-01-31' + (i / 2000), ARRAY['shopify.orders'],
                   CASE WHEN i % 500 = 0 THEN 'queued' ELSE 'completed' END, now() - i * interval '1 minute'
            FROM generate_series(1, 60000) i
            """)
        try c.execute("""
            INSERT INTO store_sync_cache (store_id, data_type, period_start, period_end, source, synced_at, data)
            SELECT ('10000000-0000-0000-0000-' || lpad((1 + i % 2000)::text, 12, '0'))::uuid, 'shopify.orders',
                   date '2025-01-01' + (i / 2000), date '2025-01-31' + (i / 2000), 'shopify', now(), '[]'
            FROM generate_series(1, 50000) i
            """)
        try c.execute("ANALYZE")
        let store = UUID(uuidString: "10000000-0000-0000-0000-000000000007")!
        let owner = UUID(uuidString: "00000000-0000-0000-0000-000000000008")!
        func expectIndex(_ index: String, _ sql: String, _ parameters: [PostgresEncodable?], sourceLocation: SourceLocation = #_sourceLocation) throws {
            let text = try c.query("EXPLAIN " + sql, parameters).map { try $0.decode(String.self, at: 0) }.joined(separator: "\n")
            #expect(text.contains(index) && !text.contains("Seq Scan on store"), "expected \(index):\n\(text)", sourceLocation: sourceLocation)
        }
        try expectIndex("store_syncs_active", StoreSyncStore.joinSQL, [store, "2025-01-01", "2025-01-31", ["shopify.orders"]])
        try expectIndex("store_sync_cache_pkey", StoreSyncStore.cacheSQL, [store, "2025-01-01", "2025-01-31", ["shopify.orders"]])
        let (byStore, p1) = StoreSyncStore.syncsQuery(store: store, status: nil, limit: 50, scope: .everything)
        try expectIndex("store_syncs_store", byStore, p1)
        let (byOwner, p2) = StoreSyncStore.syncsQuery(store: nil, status: nil, limit: 50, scope: AccessScope(ownerID: owner))
        try expectIndex("store_syncs_owner", byOwner, p2)
    }
}
