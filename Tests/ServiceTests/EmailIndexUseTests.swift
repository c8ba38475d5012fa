@testable import Email
import EsteiraCore
import Foundation
import Postgres
import Testing

/// The email queries run for every round and every message use their indexes.
@Suite struct EmailIndexUseTests {
    @Test func emailQueriesUseTheirIndexes() async throws {
        let database = try await ScratchDatabase.migrated()
        let c = try database.connect()
        defer { c.close() }
        try insertPrincipals(10, on: c)
        // 2,000 stores, a few active; 100,000 messages.
        try c.execute("""
            INSERT INTO email_stores (id, owner_id, name, active, imap_host, imap_port, imap_security, imap_user, imap_password,
                                      smtp_host, smtp_port, smtp_security, from_address, last_round_at)
            SELECT ('20000000-0000-0000-0000-' || lpad(i::text, 12, '0'))::uuid, ('00000000-0000-0000-0000-' || lpad((1 + i % 10)::text, 12, '0'))::uuid,
                   's' || i, i % 100 = 0, 'imap.example', 993, 'tls', 'u', 'p', 'smtp.example', 587, 'starttls', 'a@b.example',
                   now() - i * interval '1 second'
            FROM generate_series(1, 2000) i
            """)
        try c.execute("""
            INSERT INTO email_messages (id, store_id, owner_id, message_id, conversation_id, raw, status, received_at)
            SELECT gen_random_uuid(), ('20000000-0000-0000-0000-' || lpad((CASE WHEN i % 3 = 0 THEN 7 ELSE 1 + i % 2000 END)::text, 12, '0'))::uuid,
                   ('00000000-0000-0000-0000-' || lpad((1 + (i % 2000) % 10)::text, 12, '0'))::uuid,
                   'm' || i || '@x.example', 'c' || (i / 3) || '@x.example', '\\x00', 'replied', now() - i * interval '1 second'
            FROM generate_series(1, 100000) i
            """)
        try c.execute("ANALYZE")
        let store = UUID(uuidString: "20000000-0000-0000-0000-000000000007")!
        let owner = UUID(uuidString: "00000000-0000-0000-0000-000000000008")!
        func expectIndex(_ index: String, _ sql: String, _ parameters: [PostgresEncodable?], sourceLocation: SourceLocation = #_sourceLocation) throws {
            let text = try c.query("EXPLAIN " + sql, parameters).map { try $0.decode(String.self, at: 0) }.joined(separator: "\n")
            #expect(text.contains(index) && !text.contains("Seq Scan on email"), "expected \(index):\n\(text)", sourceLocation: sourceLocation)
        }
        try expectIndex("email_stores_due", EmailStores.leaseDueSQL, ["worker", 10, 120.0, 30.0])
        try expectIndex("email_messages_store_id_message_id_key", EmailMessages.toAnswerSQL, [store, "m7@x.example", owner])
        try expectIndex("email_messages_store", EmailMessages.listSQL, [store, nil as UUID?, nil as String?, nil as String?, 50])
        try expectIndex("email_messages_conversation", EmailMessages.listSQL, [store, owner, nil as String?, "c2@x.example", 50])
    }
}
