import EsteiraCore
import Foundation
import Logging
import Postgres

/// `processamento_webhook {instance_id, event_id}`: applies a provider webhook the ingestor
/// stored: a receipt (`message.status`: `delivered` → `entregue`, `read` → `lida`; a
/// message never moves back, and `failed` marks one not yet delivered `falha`) or an
/// incoming message (`message.received`: a new `entrada` message, its contact made from the
/// number when the owner has none). Applying one twice changes nothing more.
struct WebhookHandler: JobHandler {
    let pool: PostgresPool
    let logger: Logger

    /// A provider's receipt status to a message status.
    static let receipts: [String: MessageStatus] = ["delivered": .entregue, "read": .lida, "failed": .falha]

    func run(_ job: JobContext) async throws -> JSONValue? {
        guard let text = job.payload["instance_id"]?.stringValue, let instance = UUID(uuidString: text),
              let eventID = job.payload["event_id"]?.stringValue else {
            throw JobError.permanent("the payload needs instance_id and event_id")
        }
        guard let event = try await pool.withConnection({ try MessagingStore.webhookEvent(instance: instance, eventID: eventID, on: $0) }) else {
            throw JobError.permanent("no stored webhook \(eventID) of instance \(text)")
        }
        // The ingestor enqueues with the instance owner's id; a job of another owner applies nothing.
        guard event.owner == job.ownerID else { throw JobError.permanent("the webhook's instance is not the job owner's") }
        let body = event.payload
        let outcome: String
        switch event.type {
        case "message.status":
            guard let providerID = body["message_id"]?.stringValue, let name = body["status"]?.stringValue,
                  let status = Self.receipts[name] else {
                throw JobError.permanent("a message.status webhook needs message_id and status (delivered, read or failed)")
            }
            let applied = try await pool.withConnection {
                try MessagingStore.applyReceipt(instance: instance, providerID: providerID, status: status, event: event.id, on: $0)
            }
            switch applied {
            case .none:
                // The receipt came before the send was recorded (the provider answers fast): later.
                throw JobError.transient("no message \(providerID) of this instance yet")
            case .some(let changed):
                outcome = changed ? status.rawValue : "unchanged"
            }
        case "message.received":
            guard let providerID = body["message_id"]?.stringValue, let from = body["from"]?.stringValue,
                  let phone = PhoneNumber.normalized(from), let content = body["text"]?.stringValue else {
                throw JobError.permanent("a message.received webhook needs message_id, from (a phone number) and text")
            }
            let name = body["name"]?.stringValue ?? phone
            try await pool.withConnection {
                try MessagingStore.receive(instance: instance, owner: event.owner, providerID: providerID, phone: phone, name: name,
                                           text: String(content.prefix(4096)), event: event.id, on: $0)
            }
            outcome = "received"
        default:
            try await pool.withConnection { try MessagingStore.markProcessed(event.id, on: $0) }
            outcome = "ignored"
        }
        return .object(["event_id": .string(eventID), "type": .string(event.type), "outcome": .string(outcome)])
    }
}

/// A stored webhook.
struct WebhookEvent: Sendable {
    var id: UUID
    var owner: UUID
    var type: String
    var payload: JSONValue
}

extension MessagingStore {
    static func webhookEvent(instance: UUID, eventID: String, on c: PostgresConnection) throws -> WebhookEvent? {
        try c.query("SELECT id, owner_id, tipo, payload::text FROM webhook_eventos WHERE instance_id = $1 AND event_id = $2",
                    [instance, eventID]).first.map {
            WebhookEvent(id: try $0.decode(UUID.self, at: 0), owner: try $0.decode(UUID.self, at: 1), type: try $0.decode(String.self, at: 2),
                         payload: JSONValue.parse(try $0.decode(String.self, at: 3)) ?? .null)
        }
    }

    static func markProcessed(_ event: UUID, on c: PostgresConnection) throws {
        try c.execute("UPDATE webhook_eventos SET processed_at = coalesce(processed_at, now()) WHERE id = $1", [event])
    }

    /// Instance `$1`'s message `$2`, locked.
    static let receiptSQL = "SELECT id, status FROM mensagens WHERE instance_id = $1 AND provider_message_id = $2 FOR UPDATE"

    /// Moves the instance's message `providerID` forward to `status`; nil when there is no such
    /// message, else whether it changed.
    static func applyReceipt(instance: UUID, providerID: String, status: MessageStatus, event: UUID,
                             on c: PostgresConnection) throws -> Bool? {
        try c.transaction { c in
            let rows = try c.query(receiptSQL, [instance, providerID])
            guard let row = rows.first else { return nil }
            let id = try row.decode(UUID.self, at: 0)
            let current = MessageStatus(rawValue: try row.decode(String.self, at: 1)) ?? .pendente
            let moves = status == .falha ? current == .enviada : (current.rank > 0 && status.rank > current.rank)
            if moves {
                try c.execute("""
                    UPDATE mensagens SET status = $2, updated_at = now(),
                           entregue_em = CASE WHEN $2 IN ('entregue', 'lida') THEN coalesce(entregue_em, now()) ELSE entregue_em END,
                           lida_em = CASE WHEN $2 = 'lida' THEN now() ELSE lida_em END,
                           erro = CASE WHEN $2 = 'falha' THEN 'the provider reported it failed' ELSE erro END
                    WHERE id = $1
                    """, [id, status.rawValue])
            }
            try markProcessed(event, on: c)
            return moves
        }
    }

    /// An incoming message: its contact (made when the owner has none with the number) and
    /// the message, once per provider message id.
    static func receive(instance: UUID, owner: UUID, providerID: String, phone: String, name: String, text: String, event: UUID,
                        on c: PostgresConnection) throws {
        try c.transaction { c in
            try c.execute("""
                INSERT INTO contatos (id, owner_id, nome, telefone) VALUES ($1, $2, $3, $4) ON CONFLICT (owner_id, telefone) DO NOTHING
                """, [UUID(), owner, name, phone])
            try c.execute("""
                INSERT INTO mensagens (id, owner_id, contato_id, instance_id, direcao, conteudo, status, provider_message_id)
                SELECT gen_random_uuid(), $1, c.id, $2, 'entrada', $5, 'recebida', $4 FROM contatos c WHERE c.owner_id = $1 AND c.telefone = $3
                ON CONFLICT (instance_id, provider_message_id) WHERE provider_message_id IS NOT NULL DO NOTHING
                """, [owner, instance, phone, providerID, text])
            try markProcessed(event, on: c)
        }
    }
}
