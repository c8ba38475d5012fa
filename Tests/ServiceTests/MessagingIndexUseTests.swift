import EsteiraCore
import Foundation
@testable import Messaging
import Postgres
import Testing

/// The messaging queries that run per send, per receipt, per feed event and per campaign tick
/// use their indexes.
@Suite struct MessagingIndexUseTests {
    @Test func messagingQueriesUseTheirIndexes() async throws {
        let database = try await ScratchDatabase.migrated()
        let c = try database.connect()
        defer { c.close() }
        try insertPrincipals(10, on: c)
        func id(_ prefix: String, _ n: Int) -> UUID { UUID(uuidString: "\(prefix)-0000-0000-0000-\(String(format: "%012d", n))")! }
        // 10 owners, 20,000 contacts, 50 campaigns, 200,000 messages (most in campaigns), their changes.
        try c.execute("""
            INSERT INTO instancias (id, owner_id, nome, base_url, token, webhook_secret)
            SELECT ('30000000-0000-0000-0000-' || lpad(i::text, 12, '0'))::uuid, ('00000000-0000-0000-0000-' || lpad(i::text, 12, '0'))::uuid,
                   'n' || i, 'https://p.example', 't', 's' FROM generate_series(1, 10) i
            """)
        try c.execute("""
            INSERT INTO contatos (id, owner_id, nome, telefone)
            SELECT ('10000000-0000-0000-0000-' || lpad(i::text, 12, '0'))::uuid, ('00000000-0000-0000-0000-' || lpad((1 + i % 10)::text, 12, '0'))::uuid,
                   'c' || i, '+5511' || lpad(i::text, 9, '0') FROM generate_series(1, 20000) i
            """)
        try c.execute("""
            INSERT INTO campanhas (id, owner_id, instance_id, nome, mensagem, total)
            SELECT ('20000000-0000-0000-0000-' || lpad(i::text, 12, '0'))::uuid, ('00000000-0000-0000-0000-' || lpad((1 + i % 10)::text, 12, '0'))::uuid,
                   ('30000000-0000-0000-0000-' || lpad((1 + i % 10)::text, 12, '0'))::uuid, 'k' || i, 'm', 4000 FROM generate_series(1, 50) i
            """)
        try c.execute("""
            INSERT INTO mensagens (id, owner_id, contato_id, instance_id, campanha_id, job_id, direcao, conteudo, status, provider_message_id)
            SELECT gen_random_uuid(), ('00000000-0000-0000-0000-' || lpad((1 + (i % 20000 + 1) % 10)::text, 12, '0'))::uuid,
                   ('10000000-0000-0000-0000-' || lpad((i % 20000 + 1)::text, 12, '0'))::uuid,
                   ('30000000-0000-0000-0000-' || lpad((1 + (i % 20000 + 1) % 10)::text, 12, '0'))::uuid,
                   CASE WHEN i % 10 < 9 THEN ('20000000-0000-0000-0000-' || lpad((1 + i % 50)::text, 12, '0'))::uuid END,
                   gen_random_uuid(), 'saida', 'x', 'enviada', 'p' || i
            FROM generate_series(1, 200000) i
            """)
        // 100,000 send jobs in 20 batches, most finished.
        try c.execute("""
            INSERT INTO jobs (id, kind, status, payload, max_attempts, attempts, owner_id, batch_id, finished_at)
            SELECT gen_random_uuid(), 'envio_mensagem', CASE WHEN i % 100 = 0 THEN 'queued' ELSE 'completed' END, '{}', 5, 1,
                   '00000000-0000-0000-0000-000000000001', ('40000000-0000-0000-0000-' || lpad((1 + i % 20)::text, 12, '0'))::uuid,
                   CASE WHEN i % 100 = 0 THEN NULL ELSE now() END
            FROM generate_series(1, 100000) i
            """)
        try c.execute("ANALYZE")
        let owner = id("00000000", 3), contact = id("10000000", 2), campaign = id("20000000", 2), instance = id("30000000", 3)
        let changes = try c.query("SELECT max(id) FROM messaging_changes")[0].decode(Int64.self, at: 0)
        func expectIndex(_ index: String, _ sql: String, _ parameters: [PostgresEncodable?], sourceLocation: SourceLocation = #_sourceLocation) throws {
            let text = try c.query("EXPLAIN " + sql, parameters).map { try $0.decode(String.self, at: 0) }.joined(separator: "\n")
            #expect(text.contains(index) && !text.contains("Seq Scan on mensagens") && !text.contains("Seq Scan on messaging_changes"),
                    "expected \(index):\n\(text)", sourceLocation: sourceLocation)
        }
        // The feeds: a stream catching up, the api's one reader.
        try expectIndex("messaging_changes_contato", FeedTopic.contactSQL, [contact, changes - 5000, changes, owner, 500])
        try expectIndex("messaging_changes_owner", FeedTopic.campaignsSQL, [owner, changes - 5000, changes, 500])
        try expectIndex("messaging_changes_pkey", MessagingFeed.readSQL, [changes - 100, changes])
        // A send finds its message by its job; a receipt by the provider's id; a campaign counts its messages.
        try expectIndex("mensagens_job_id_key", MessagingStore.prepareSQL, [UUID(), owner, contact, instance, "x", UUID?.none])
        try expectIndex("mensagens_provider", MessagingStore.receiptSQL, [instance, "p123"])
        try expectIndex("mensagens_campanha", MessagingStore.followSQL, [campaign, false])
        // Retention of the change log.
        let expired = try c.query("EXPLAIN SELECT ctid FROM messaging_changes WHERE at < now() - interval '7 days' LIMIT 1000")
            .map { try $0.decode(String.self, at: 0) }.joined(separator: "\n")
        #expect(expired.contains("messaging_changes_at"), "\(expired)")
    }
}
