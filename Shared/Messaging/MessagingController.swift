import EsteiraCore
import EsteiraService
import Foundation
import Hummingbird
import Postgres

/// The messaging api: instances, contacts, messages, campaigns (each the caller's own; an
/// admin's reads see all) and the live feeds.
struct MessagingController {
    let enqueuer: Enqueuer
    let pool: PostgresPool
    let feed: MessagingFeed
    let limits: PrincipalLimits?

    /// The most contacts one campaign request may name (more: `todos_contatos`).
    static let maxListedContacts = 10_000

    func addRoutes(to routes: RouteRecorder) {
        routes.post("/v1/instances", use: createInstance)
        routes.get("/v1/instances", use: instances)
        routes.post("/v1/contacts", use: createContact)
        routes.post("/v1/contacts/bulk", use: createContacts)
        routes.get("/v1/contacts", use: contacts)
        routes.get("/v1/contacts/{id}", use: contact)
        routes.get("/v1/contacts/{id}/messages", use: conversation)
        routes.post("/v1/messages", use: send)
        routes.post("/v1/campaigns", use: createCampaign)
        routes.get("/v1/campaigns", use: campaigns)
        routes.get("/v1/campaigns/{id}", use: campaign)
        routes.post("/v1/campaigns/{id}/cancel", use: cancel)
        routes.get("/v1/feeds/contacts/{id}/messages", use: contactFeed)
        routes.get("/v1/feeds/campaigns", use: campaignFeed)
    }

    /// `POST /v1/instances {nome, base_url, token, rate_limit?, burst?}` → 201 with the
    /// webhook secret (shown this once) and the webhook's path on the ingestor.
    @Sendable func createInstance(_ request: Request, context: APIRequestContext) async throws -> Response {
        let input = try await JSONInput.read(request, limit: 16 * 1024)
        try input.allowOnly(["nome", "base_url", "token", "rate_limit", "burst"])
        let name = try input.string("nome", required: true, maxLength: 200)!
        let url = try input.string("base_url", required: true, maxLength: 500)!
        guard let parsed = URL(string: url), ["http", "https"].contains(parsed.scheme?.lowercased() ?? ""), parsed.host?.isEmpty == false else {
            throw Problem(.badRequest, detail: "must be an http or https URL", field: "base_url")
        }
        let token = try input.string("token", required: true, maxLength: 2000)!
        let rate = try input.number("rate_limit", in: 0.01...10_000) ?? 20
        let burst = try input.int("burst", in: 1...100_000) ?? max(1, Int(rate.rounded(.up)))
        let owner = context.principal!.id
        let (json, secret) = try await pool.withConnection {
            try MessagingStore.createInstance(owner: owner, name: name, baseURL: url, token: token, rate: rate, burst: burst, on: $0)
        }
        let id = JSONValue.parse(json)?["id"]?.stringValue ?? ""
        let extra = JSONValue.object(["webhook_secret": .string(secret), "webhook_path": .string("/v1/webhooks/messaging/\(id)")]).jsonText
        return MessagingJSON.response("{\"instance\":\(json),\"webhook\":\(extra)}", status: .created,
                                      headers: [.location: "/v1/instances/\(id)"])
    }

    @Sendable func instances(_ request: Request, context: APIRequestContext) async throws -> Response {
        let scope = context.scope
        return MessagingJSON.response(MessagingJSON.list("instances", try await pool.withConnection { try MessagingStore.instances(scope: scope, on: $0) }))
    }

    /// `POST /v1/contacts {nome, telefone}` → 201; 409 when the caller has the number already.
    @Sendable func createContact(_ request: Request, context: APIRequestContext) async throws -> Response {
        let input = try await JSONInput.read(request, limit: 16 * 1024)
        try input.allowOnly(["nome", "telefone"])
        let name = try input.string("nome", required: true, maxLength: 200)!
        let phone = try Self.phone(try input.string("telefone", required: true, maxLength: 40)!, field: "telefone")
        let owner = context.principal!.id
        let json = try await pool.withConnection { try MessagingStore.createContact(owner: owner, name: name, phone: phone, on: $0) }
        return MessagingJSON.response(json, status: .created)
    }

    /// `POST /v1/contacts/bulk {contatos: [{nome, telefone}]}` (up to 10,000) → 201 with how
    /// many were made (numbers the caller has already are skipped).
    @Sendable func createContacts(_ request: Request, context: APIRequestContext) async throws -> Response {
        let input = try await JSONInput.read(request, limit: 2 * 1024 * 1024)
        try input.allowOnly(["contatos"])
        guard let items = input.object["contatos"] as? [Any], (1...10_000).contains(items.count) else {
            throw Problem(.badRequest, detail: "must be an array of 1 to 10000 {nome, telefone} objects", field: "contatos")
        }
        var names: [String] = [], phones: [String] = []
        for (i, item) in items.enumerated() {
            guard let object = item as? [String: Any] else {
                throw Problem(.badRequest, detail: "must be an object {nome, telefone}", field: "contatos[\(i)]")
            }
            let one = JSONInput(object: object, prefix: "contatos[\(i)].")
            try one.allowOnly(["nome", "telefone"])
            names.append(try one.string("nome", required: true, maxLength: 200)!)
            phones.append(try Self.phone(try one.string("telefone", required: true, maxLength: 40)!, field: one.field("telefone")))
        }
        let owner = context.principal!.id
        let made = try await pool.withConnection { try MessagingStore.createContacts(owner: owner, names: names, phones: phones, on: $0) }
        return MessagingJSON.response("{\"created\":\(made),\"skipped\":\(items.count - made)}", status: .created)
    }

    /// `GET /v1/contacts?after=<id>&limit=`: by id.
    @Sendable func contacts(_ request: Request, context: APIRequestContext) async throws -> Response {
        let q = QueryInput(request: request)
        let after = try q.uuid("after"), limit = try q.int("limit", in: 1...1000) ?? 100
        let scope = context.scope
        let rows = try await pool.withConnection { try MessagingStore.contacts(scope: scope, after: after, limit: limit, on: $0) }
        return MessagingJSON.response(MessagingJSON.list("contacts", rows))
    }

    @Sendable func contact(_ request: Request, context: APIRequestContext) async throws -> Response {
        let id = try context.pathID(of: "contact"), scope = context.scope
        guard let json = try await pool.withConnection({ try MessagingStore.contact(id, scope: scope, on: $0) }) else {
            throw MessagingError.contactNotFound(id)
        }
        return MessagingJSON.response(json)
    }

    /// `GET /v1/contacts/{id}/messages?limit=`: the last messages, oldest first.
    @Sendable func conversation(_ request: Request, context: APIRequestContext) async throws -> Response {
        let id = try context.pathID(of: "contact"), scope = context.scope
        let limit = try QueryInput(request: request).int("limit", in: 1...1000) ?? 100
        let rows = try await pool.withConnection { c -> [String] in
            guard try MessagingStore.contact(id, scope: scope, on: c) != nil else { throw MessagingError.contactNotFound(id) }
            return try MessagingStore.conversation(id, limit: limit, on: c)
        }
        return MessagingJSON.response(MessagingJSON.list("messages", rows))
    }

    /// `POST /v1/messages {contato_id, conteudo, instance_id}` → 202 with the `envio_mensagem`
    /// job (the same as `POST /v1/jobs` with that kind, checked first).
    @Sendable func send(_ request: Request, context: APIRequestContext) async throws -> Response {
        let input = try await JSONInput.read(request, limit: 64 * 1024)
        try input.allowOnly(["contato_id", "conteudo", "instance_id"])
        let contact = try Self.id(input, "contato_id"), instance = try Self.id(input, "instance_id")
        let text = try input.string("conteudo", required: true, maxLength: 4096)!
        guard !text.isEmpty else { throw Problem(.badRequest, detail: "must not be empty", field: "conteudo") }
        let job = try await Self.send(text, to: contact, through: instance, owner: context.principal!.id, enqueuer: enqueuer, pool: pool)
        return MessagingJSON.response("{\"job_id\":\"\(job.uuidString.lowercased())\"}", status: .accepted,
                                      headers: [.location: "/v1/jobs/\(job.uuidString.lowercased())"])
    }

    /// Enqueues the sending of `text` to `owner`'s contact through `owner`'s instance; returns the job.
    static func send(_ text: String, to contact: UUID, through instance: UUID, owner: UUID, enqueuer: Enqueuer,
                     pool: PostgresPool) async throws -> UUID {
        let scope = AccessScope(ownerID: owner)
        try await pool.withConnection { c in
            guard try MessagingStore.contact(contact, scope: scope, on: c) != nil else {
                throw Problem(.notFound, detail: "no contact \(contact.uuidString.lowercased())", field: "contato_id")
            }
            guard try MessagingStore.hasInstance(instance, scope: scope, on: c) else { throw MessagingError.instanceNotFound(instance) }
        }
        let payload = JSONValue.object(["contato_id": .string(contact.uuidString.lowercased()), "conteudo": .string(text),
                                        "instance_id": .string(instance.uuidString.lowercased()),
                                        "user_id": .string(owner.uuidString.lowercased())]).jsonText
        return try await enqueuer.enqueue([NewJob(kind: MessagingKinds.send, payload: payload, ownerID: owner)])[0].id
    }

    /// `POST /v1/campaigns {nome, mensagem, instance_id, contatos_ids | todos_contatos}` → 202
    /// with the campaign (`pendente`) and its `envio_campanha` job, made in one transaction.
    @Sendable func createCampaign(_ request: Request, context: APIRequestContext) async throws -> Response {
        let input = try await JSONInput.read(request, limit: 1024 * 1024)
        try input.allowOnly(["nome", "mensagem", "instance_id", "contatos_ids", "todos_contatos"])
        let name = try input.string("nome", required: true, maxLength: 200)!
        let message = try input.string("mensagem", required: true, maxLength: 4096)!
        guard !message.isEmpty else { throw Problem(.badRequest, detail: "must not be empty", field: "mensagem") }
        let instance = try Self.id(input, "instance_id")
        let all = try input.bool("todos_contatos") ?? false
        let listed = try input.uuids("contatos_ids", max: Self.maxListedContacts)
        guard all != (listed != nil) else {
            throw Problem(.badRequest, detail: "give contatos_ids (1 to \(Self.maxListedContacts) ids) or todos_contatos: true, not both",
                          field: "contatos_ids")
        }
        let (json, job) = try await Self.startCampaign(name: name, message: message, instance: instance, contacts: listed,
                                                       owner: context.principal!.id, enqueuer: enqueuer, pool: pool)
        return MessagingJSON.response("{\"campaign\":\(json),\"job_id\":\"\(job.uuidString.lowercased())\"}", status: .accepted,
                                      headers: [.location: "/v1/campaigns/\(JSONValue.parse(json)?["id"]?.stringValue ?? "")"])
    }

    /// Makes `owner`'s campaign (`contacts`: nil for all of the owner's) and its
    /// `envio_campanha` job in one transaction; returns the campaign (JSON) and the job.
    static func startCampaign(name: String, message: String, instance: UUID, contacts listed: [UUID]?, owner: UUID,
                              enqueuer: Enqueuer, pool: PostgresPool) async throws -> (String, UUID) {
        let scope = AccessScope(ownerID: owner), id = UUID()
        let total = try await pool.withConnection { c -> Int in
            guard try MessagingStore.hasInstance(instance, scope: scope, on: c) else { throw MessagingError.instanceNotFound(instance) }
            if let listed {
                let unknown = try MessagingStore.unknownContacts(listed, owner: owner, on: c)
                guard unknown.isEmpty else { throw MessagingError.unknownContacts(unknown) }
                return Set(listed).count
            }
            return try c.query("SELECT count(*)::int FROM contatos WHERE owner_id = $1", [owner])[0].decode(Int.self, at: 0)
        }
        var payload: [String: JSONValue] = ["campanha_id": .string(id.uuidString.lowercased()), "mensagem": .string(message),
                                            "instance_id": .string(instance.uuidString.lowercased()), "user_id": .string(owner.uuidString.lowercased())]
        if let listed { payload["contatos_ids"] = .array(listed.map { .string($0.uuidString.lowercased()) }) } else { payload["todos_contatos"] = .bool(true) }
        let job = try await enqueuer.enqueue([NewJob(kind: MessagingKinds.campaign, payload: JSONValue.object(payload).jsonText, ownerID: owner)],
                                             alongside: { c in
            try MessagingStore.createCampaign(id, owner: owner, instance: instance, name: name, message: message, total: total, on: c)
        }, afterward: { c, outcomes in
            try c.execute("UPDATE campanhas SET job_id = $2 WHERE id = $1", [id, outcomes[0].id])
        })[0]
        let json = try await pool.withConnection { try MessagingStore.campaign(id, scope: scope, on: $0) } ?? "null"
        return (json, job.id)
    }

    /// `GET /v1/campaigns?status=&limit=`: newest first.
    @Sendable func campaigns(_ request: Request, context: APIRequestContext) async throws -> Response {
        let q = QueryInput(request: request)
        let status = try q.choice("status", of: CampaignStatus.self), limit = try q.int("limit", in: 1...500) ?? 50
        let scope = context.scope
        let rows = try await pool.withConnection { try MessagingStore.campaigns(scope: scope, status: status, limit: limit, on: $0) }
        return MessagingJSON.response(MessagingJSON.list("campaigns", rows))
    }

    @Sendable func campaign(_ request: Request, context: APIRequestContext) async throws -> Response {
        let id = try context.pathID(of: "campaign"), scope = context.scope
        guard let json = try await pool.withConnection({ try MessagingStore.campaign(id, scope: scope, on: $0) }) else {
            throw MessagingError.campaignNotFound(id)
        }
        return MessagingJSON.response(json)
    }

    /// `POST /v1/campaigns/{id}/cancel`: sends not made yet are not made; those under way finish.
    @Sendable func cancel(_ request: Request, context: APIRequestContext) async throws -> Response {
        let id = try context.pathID(of: "campaign"), scope = context.scope
        try await Self.cancel(id, scope: scope, by: context.principal!.name, enqueuer: enqueuer, pool: pool)
        let json = try await pool.withConnection { try MessagingStore.campaign(id, scope: scope, on: $0) } ?? "null"
        return MessagingJSON.response(json, status: .accepted)
    }

    /// Cancels campaign `id` (for the api and the dashboard).
    static func cancel(_ id: UUID, scope: AccessScope, by principal: String, enqueuer: Enqueuer, pool: PostgresPool) async throws {
        let (job, batch) = try await pool.transaction { try MessagingStore.cancelCampaign(id, scope: scope, on: $0) }
        if let batch {
            let batches = Batches(store: enqueuer.store)
            _ = try await pool.withConnection { try batches.cancel(batch, owner: nil, by: principal, on: $0) }
            try await pool.withConnection { try MessagingStore.markCancelledSends(campaign: id, on: $0) }
            await batches.settleAndPublish(batch, pool: pool, enqueuer: enqueuer)
        } else if let job {
            _ = try? await enqueuer.cancel(job, scope: .everything, by: principal)
        }
    }

    /// `GET /v1/feeds/contacts/{id}/messages`: Server-Sent Events of the contact's messages.
    @Sendable func contactFeed(_ request: Request, context: APIRequestContext) async throws -> Response {
        let id = try context.pathID(of: "contact"), principal = context.principal!
        let owner = try await Self.contactOwner(id, scope: context.scope, pool: pool)
        return try await feed.response(request, topic: FeedTopic(owner: owner, contact: id), principal: principal.id, limits: limits)
    }

    /// `GET /v1/feeds/campaigns`: Server-Sent Events of the caller's campaigns.
    @Sendable func campaignFeed(_ request: Request, context: APIRequestContext) async throws -> Response {
        let principal = context.principal!
        return try await feed.response(request, topic: FeedTopic(owner: principal.id, contact: nil), principal: principal.id, limits: limits)
    }

    /// The owner of contact `id` if `scope` sees it, else 404.
    static func contactOwner(_ id: UUID, scope: AccessScope, pool: PostgresPool) async throws -> UUID {
        guard let owner = try await pool.withConnection({
            try $0.query("SELECT owner_id FROM contatos WHERE id = $1 AND ($2::uuid IS NULL OR owner_id = $2)", [id, scope.ownerID])
                .first?.decode(UUID.self, at: 0)
        }) else { throw MessagingError.contactNotFound(id) }
        return owner
    }

    static func id(_ input: JSONInput, _ name: String) throws -> UUID {
        guard let text = try input.string(name, required: true, maxLength: 36), let id = UUID(uuidString: text) else {
            throw Problem(.badRequest, detail: "must be an id (a UUID)", field: name)
        }
        return id
    }

    static func phone(_ text: String, field: String) throws -> String {
        guard let phone = PhoneNumber.normalized(text) else {
            throw Problem(.badRequest, detail: "must be a phone number with its country code, e.g. +5511987654321", field: field)
        }
        return phone
    }
}

extension MessagingError: ProblemConvertible {
    public var problem: Problem {
        switch self {
        case .instanceNotFound(let id): return Problem(.notFound, detail: "no messaging instance \(id.uuidString.lowercased())", field: "instance_id")
        case .contactNotFound(let id): return Problem(.notFound, detail: "no contact \(id.uuidString.lowercased())", field: "id")
        case .campaignNotFound(let id): return Problem(.notFound, detail: "no campaign \(id.uuidString.lowercased())", field: "id")
        case .duplicatePhone(let phone): return Problem(.conflict, detail: "a contact of yours has the number \(phone)", field: "telefone")
        case .unknownContacts(let ids):
            return Problem(.unprocessableContent, detail: "not contacts of yours: \(ids.prefix(5).map { $0.uuidString.lowercased() }.joined(separator: ", "))\(ids.count > 5 ? " and \(ids.count - 5) more" : "")",
                           field: "contatos_ids")
        case .campaignEnded(let status): return Problem(.conflict, detail: "the campaign has ended (\(status))", field: "id")
        }
    }
}

extension MessagingJSON {
    /// JSON text already made, as a response.
    static func response(_ text: String, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) -> Response {
        var headers = headers
        headers[.contentType] = "application/json"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: text)))
    }
}
