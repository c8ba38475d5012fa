import EsteiraCore
import EsteiraService
import Foundation
import HTTPTypes
import Hummingbird
import Metrics
import Postgres

/// `POST /v1/webhooks/messaging/{instance_id}`, served by the ingestor: the provider posts
/// receipts and incoming messages, signed with the instance's webhook secret
/// (`X-Esteira-Signature: sha256=<hex HMAC-SHA256 of the body>`). The event is stored once
/// (by the provider's `event_id`) and a `processamento_webhook` job enqueued in the same
/// transaction; the answer (202) comes as soon as both are committed and the job published,
/// whatever the backlog of jobs.
struct WebhookIntake: Sendable {
    let enqueuer: Enqueuer
    let pool: PostgresPool
    /// The largest body taken.
    static let maxBody = 256 * 1024
    static let signatureHeader = HTTPField.Name("X-Esteira-Signature")!

    func addRoutes(to router: Router<BasicRequestContext>) {
        router.post("/v1/webhooks/messaging/{instance_id}", use: receive)
    }

    @Sendable func receive(_ request: Request, context: BasicRequestContext) async throws -> Response {
        let received = { (outcome: String) in Counter(label: "esteira_webhooks_received_total", dimensions: [("outcome", outcome)]).increment() }
        guard let text = context.parameters.get("instance_id"), let instance = UUID(uuidString: text) else {
            received("unknown_instance")
            throw Problem(.notFound, detail: "no messaging instance \(context.parameters.get("instance_id") ?? "")", field: "instance_id")
        }
        let buffer: ByteBuffer
        do {
            buffer = try await request.body.collect(upTo: Self.maxBody)
        } catch {
            throw Problem(.contentTooLarge, detail: "the body is over \(Self.maxBody) bytes", field: "body")
        }
        let body = Array(buffer.readableBytesView)
        guard let key = try await pool.withConnection({ try MessagingStore.webhookKey(instance, on: $0) }) else {
            received("unknown_instance")
            throw Problem(.notFound, detail: "no messaging instance \(text)", field: "instance_id")
        }
        let expected = "sha256=" + HMACSHA256.hex(key: key.secret, message: body)
        guard let given = request.headers[Self.signatureHeader], Self.same(given, expected) else {
            received("bad_signature")
            throw Problem(.unauthorized, detail: "the signature does not match the body signed with the instance's webhook secret",
                          field: Self.signatureHeader.rawName)
        }
        let bodyText = String(decoding: body, as: UTF8.self)
        guard let event = JSONValue.parse(bodyText), case .object = event else {
            throw Problem(.badRequest, detail: "must be a JSON object", field: "body")
        }
        guard let eventID = event["event_id"]?.stringValue, (1...200).contains(eventID.count) else {
            throw Problem(.badRequest, detail: "must be the provider's event id: text of 1 to 200 characters", field: "event_id")
        }
        guard let type = event["type"]?.stringValue, (1...100).contains(type.count) else {
            throw Problem(.badRequest, detail: "must be the event's type, e.g. message.status or message.received", field: "type")
        }
        let payload = JSONValue.object(["instance_id": .string(instance.uuidString.lowercased()), "event_id": .string(eventID)]).jsonText
        let job = NewJob(kind: MessagingKinds.webhook, payload: payload, idempotencyKey: "webhook:\(instance.uuidString.lowercased()):\(eventID)",
                         ownerID: key.owner)
        let outcome = try await enqueuer.enqueue([job]) { c in
            _ = try MessagingStore.storeWebhook(instance: instance, owner: key.owner, eventID: eventID, type: type, payload: bodyText, on: c)
        }[0]
        received(outcome.created ? "stored" : "duplicate")
        return try APIJSON.response(Received(jobID: outcome.id, duplicate: !outcome.created), status: .accepted)
    }

    struct Received: Encodable {
        var jobID: UUID
        var duplicate: Bool
        enum CodingKeys: String, CodingKey { case jobID = "job_id", duplicate }
    }

    /// Compares in time that does not depend on where they differ.
    static func same(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        guard x.count == y.count else { return false }
        return zip(x, y).reduce(0) { $0 | ($1.0 ^ $1.1) } == 0
    }
}
