import EsteiraCore
import EsteiraService
import Foundation
import HTTPClient
import Hummingbird
import Postgres

/// `/v1/email-stores` (a principal's stores: mail servers, shop, credits; passwords and the
/// shop token never returned) and their messages.
struct EmailController {
    let pool: PostgresPool

    func addRoutes(to routes: RouteRecorder) {
        routes.post("/v1/email-stores", use: create)
        routes.get("/v1/email-stores", use: stores)
        routes.get("/v1/email-stores/{id}", use: store)
        routes.patch("/v1/email-stores/{id}", use: update)
        routes.get("/v1/email-stores/{id}/messages", use: messages)
        routes.get("/v1/email-messages/{id}", use: message)
    }

    static let fields: Set<String> = Set(EmailStores.settingColumns)
    static let securityNames = MailConnection.Security.allCases.map(\.rawValue)

    /// `POST /v1/email-stores {...}` → 201, the caller's.
    @Sendable func create(_ request: Request, context: APIRequestContext) async throws -> Response {
        let input = try await JSONInput.read(request, limit: 16 * 1024)
        try input.allowOnly(Self.fields)
        let values = try Self.values(input, creating: true)
        let owner = context.principal!.id
        let store = try await pool.withConnection { try EmailStores.create(owner: owner, values: values, on: $0) }
        return try APIJSON.response(store, status: .created, headers: [.location: "/v1/email-stores/\(store.id.uuidString.lowercased())"])
    }

    /// `PATCH /v1/email-stores/{id}`: the fields given change (a password or token is replaced, never shown).
    @Sendable func update(_ request: Request, context: APIRequestContext) async throws -> Response {
        let id = try context.pathID(of: "email store"), scope = context.scope
        let input = try await JSONInput.read(request, limit: 16 * 1024)
        try input.allowOnly(Self.fields)
        let values = try Self.values(input, creating: false)
        guard !values.isEmpty else { throw Problem(.badRequest, detail: "give at least one field to change", field: "body") }
        guard let store = try await pool.withConnection({ try EmailStores.update(id, values: values, scope: scope, on: $0) }) else {
            throw EmailError.storeNotFound(id)
        }
        return try APIJSON.response(store)
    }

    @Sendable func stores(_ request: Request, context: APIRequestContext) async throws -> Response {
        let scope = context.scope
        return try APIJSON.response(["email_stores": try await pool.withConnection { try EmailStores.stores(scope: scope, on: $0) }])
    }

    @Sendable func store(_ request: Request, context: APIRequestContext) async throws -> Response {
        let id = try context.pathID(of: "email store"), scope = context.scope
        guard let store = try await pool.withConnection({ try EmailStores.store(id, scope: scope, on: $0) }) else {
            throw EmailError.storeNotFound(id)
        }
        return try APIJSON.response(store)
    }

    /// `GET /v1/email-stores/{id}/messages?status=&conversation=&limit=`: newest first.
    @Sendable func messages(_ request: Request, context: APIRequestContext) async throws -> Response {
        let id = try context.pathID(of: "email store"), scope = context.scope
        let q = QueryInput(request: request)
        let status = try q.choice("status", of: EmailStatus.self)
        let conversation = try q.string("conversation", maxLength: 1000)
        let limit = try q.int("limit", in: 1...500) ?? 50
        let list = try await pool.withConnection { c -> [EmailMessageView]? in
            guard try EmailStores.store(id, scope: scope, on: c) != nil else { return nil }
            return try EmailMessages.list(store: id, status: status, conversation: conversation, limit: limit, scope: scope, on: c)
        }
        guard let list else { throw EmailError.storeNotFound(id) }
        return try APIJSON.response(["email_messages": list])
    }

    @Sendable func message(_ request: Request, context: APIRequestContext) async throws -> Response {
        let id = try context.pathID(of: "email message"), scope = context.scope
        guard let message = try await pool.withConnection({ try EmailMessages.message(id, scope: scope, on: $0) }) else {
            throw EmailError.messageNotFound(id)
        }
        return try APIJSON.response(message)
    }

    /// The settings given in `input`, checked, by column; on creation the required ones must
    /// be there and the others get their defaults.
    static func values(_ input: JSONInput, creating: Bool) throws -> [String: PostgresEncodable?] {
        var out: [String: PostgresEncodable?] = [:]
        func text(_ name: String, max: Int, required: Bool = false) throws {
            if let v = try input.string(name, required: required && creating, maxLength: max) { out[name] = v }
        }
        try text("name", max: 200, required: true)
        if let active = try input.bool("active") { out["active"] = active }
        for server in ["imap", "smtp"] {
            if let host = try input.string("\(server)_host", required: creating, maxLength: 255) {
                guard host.unicodeScalars.allSatisfy({ $0.value > 32 && $0.value < 127 && !"/@?#".unicodeScalars.contains($0) }) else {
                    throw Problem(.badRequest, detail: "must be a host name or address", field: "\(server)_host")
                }
                out["\(server)_host"] = host
            }
            if let port = try input.int("\(server)_port", in: 1...65535) {
                out["\(server)_port"] = port
            } else if creating {
                throw Problem(.badRequest, detail: "is required", field: "\(server)_port")
            }
            if let security = try input.string("\(server)_security", maxLength: 40) {
                guard Self.securityNames.contains(security) else {
                    throw Problem(.badRequest, detail: "must be one of \(Self.securityNames.joined(separator: ", "))",
                                  field: "\(server)_security")
                }
                out["\(server)_security"] = security
            } else if creating {
                out["\(server)_security"] = server == "imap" ? "tls" : "starttls"
            }
            if server == "imap" {
                try text("imap_user", max: 320, required: true)
                try text("imap_password", max: 1000, required: true)
                try text("imap_mailbox", max: 200)
            }
        }
        try text("smtp_user", max: 320)
        try text("smtp_password", max: 1000)
        if let from = try input.string("from_address", required: creating, maxLength: 320) {
            guard MailAddress(address: from).isDeliverable else {
                throw Problem(.badRequest, detail: "must be an e-mail address", field: "from_address")
            }
            out["from_address"] = from
        }
        if let domain = try input.string("shop_domain", maxLength: 255) {
            let allowed = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyz0123456789.-")
            guard domain.unicodeScalars.allSatisfy(allowed.contains), domain.contains(".") else {
                throw Problem(.badRequest, detail: "must be a shop's domain, e.g. acme.myshopify.com", field: "shop_domain")
            }
            out["shop_domain"] = domain
        }
        try text("shop_token", max: 500)
        if let credits = try input.int("credits", in: 0...1_000_000_000) { out["credits"] = credits }
        // Pairs that go together (a change gives both).
        for (a, b) in [("smtp_user", "smtp_password"), ("shop_domain", "shop_token")] where (out[a] == nil) != (out[b] == nil) {
            throw Problem(.badRequest, detail: "\(a) and \(b) go together", field: out[a] == nil ? a : b)
        }
        return out
    }
}

extension EmailError: ProblemConvertible {
    public var problem: Problem {
        switch self {
        case .storeNotFound(let id): return Problem(.notFound, detail: "no email store \(id.uuidString.lowercased())", field: "id")
        case .messageNotFound(let id): return Problem(.notFound, detail: "no email message \(id.uuidString.lowercased())", field: "id")
        }
    }
}
