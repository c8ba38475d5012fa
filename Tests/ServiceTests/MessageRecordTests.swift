import EsteiraCore
import Foundation
@testable import Messaging
import Postgres
import Testing

/// What a send records on its message.
@Suite struct MessageRecordTests {
    /// A message the provider took is `enviada`, also when another delivery of its job marked
    /// it `cancelada` meanwhile (its campaign was cancelled); one that failed for good or was
    /// already sent keeps its record, and nobody records another owner's message.
    @Test func aMessageTheProviderTookIsSentEvenIfMarkedCancelledMeanwhile() async throws {
        let database = try await ScratchDatabase.migrated()
        let c = try database.connect()
        defer { c.close() }
        try insertPrincipals(2, on: c)
        let owner = UUID(uuidString: "00000000-0000-0000-0000-000000000001")!, other = UUID(uuidString: "00000000-0000-0000-0000-000000000002")!
        let contact = UUID()
        try c.execute("INSERT INTO contatos (id, owner_id, nome, telefone) VALUES ($1, $2, 'c', '+5511999990000')", [contact, owner])
        var messages: [String: UUID] = [:]
        for status in ["pendente", "cancelada", "falha", "enviada"] {
            let id = UUID()
            messages[status] = id
            try c.execute("INSERT INTO mensagens (id, owner_id, contato_id, direcao, conteudo, status) VALUES ($1, $2, $3, 'saida', 'oi', $4)",
                          [id, owner, contact, status])
        }
        try MessagingStore.markSent(["pendente", "cancelada", "falha", "enviada"].map { SentMessage(id: messages[$0]!, owner: owner, providerID: "p-\($0)") }
                                    + [SentMessage(id: messages["pendente"]!, owner: other, providerID: "p-other")], on: c)
        var found: [String: (String, String?)] = [:]
        for row in try c.query("SELECT id, status, provider_message_id FROM mensagens") {
            let id = try row.decode(UUID.self, at: 0)
            let before = messages.first { $0.value == id }!.key
            found[before] = (try row.decode(String.self, at: 1), try row.decode(String?.self, at: 2))
        }
        #expect(found["pendente"]! == ("enviada", "p-pendente"))
        #expect(found["cancelada"]! == ("enviada", "p-cancelada"))
        #expect(found["falha"]! == ("falha", nil))
        #expect(found["enviada"]! == ("enviada", nil))
    }
}
