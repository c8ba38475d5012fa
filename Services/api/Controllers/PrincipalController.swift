import EsteiraCore
import EsteiraService
import Foundation
import Hummingbird

/// The caller itself, and the tokens' lifecycle: create (optionally expiring), list, revoke.
struct PrincipalController {
    let principals: PrincipalStore

    func addRoutes(to routes: RouteRecorder) {
        routes.get("/v1/whoami", use: whoami)
        routes.post("/v1/tokens", use: createToken)
        routes.get("/v1/tokens", use: listTokens)
        routes.post("/v1/tokens/{id}/revoke", use: revokeToken)
    }

    /// `GET /v1/tokens` (admins only): every principal with its role, creation, expiry and
    /// revocation; never a token.
    @Sendable func listTokens(_ request: Request, context: APIRequestContext) async throws -> Response {
        guard context.principal!.role == .admin else { throw Problem(.forbidden, detail: "only admins list tokens") }
        return try APIJSON.response(TokenList(tokens: try await principals.list()))
    }

    /// `POST /v1/tokens/{id}/revoke`: admins revoke any principal, users only themselves. The
    /// token stops working at once and for good (another principal's id answers 404 to users).
    @Sendable func revokeToken(_ request: Request, context: APIRequestContext) async throws -> Response {
        let id = try context.pathID(of: "principal")
        let caller = context.principal!
        guard caller.role == .admin || caller.id == id,
              let revoked = try await principals.revoke(id) else {
            throw Problem(.notFound, detail: "no principal \(id.uuidString.lowercased())", field: "id")
        }
        context.logger.info("principal revoked", metadata: ["name": "\(revoked.name)", "by": "\(caller.name)"])
        return try APIJSON.response(revoked)
    }

    /// `GET /v1/whoami`: the principal the bearer token belongs to, with its signing secret
    /// (the key of the signatures on its http jobs' requests to URLs they chose).
    @Sendable func whoami(_ request: Request, context: APIRequestContext) async throws -> Response {
        // BearerAuthMiddleware guarantees a principal on every /v1 route.
        let principal = context.principal!
        let secret = try await principals.signingIdentity(principal.id)?.secret
        return try APIJSON.response(WhoAmI(id: principal.id, name: principal.name, role: principal.role.rawValue, signingSecret: secret))
    }

    /// `POST /v1/tokens` `{name, role?}` (admins only): a new principal and its token, shown
    /// once.
    @Sendable func createToken(_ request: Request, context: APIRequestContext) async throws -> Response {
        guard context.principal!.role == .admin else {
            throw Problem(.forbidden, detail: "only admins create tokens")
        }
        let input = try await JSONInput.read(request, limit: 64 * 1024)
        try input.allowOnly(["name", "role", "expires_in_seconds"])
        let name = try input.string("name", required: true, maxLength: 200)!
        let expiresAt = try input.int("expires_in_seconds", in: 60...(10 * 366 * 86400)).map { Date().addingTimeInterval(Double($0)) }
        let roleText = try input.string("role", maxLength: 20) ?? "user"
        guard let role = Principal.Role(rawValue: roleText) else {
            throw Problem(.badRequest, detail: "must be admin or user", field: "role")
        }
        do {
            let (principal, token) = try await principals.create(name: name, role: role, createdBy: context.principal!.id,
                                                                 expiresAt: expiresAt)
            context.logger.info("principal created", metadata: ["name": "\(name)", "role": "\(role.rawValue)"])
            return try APIJSON.response(TokenView(id: principal.id.uuidString.lowercased(), name: principal.name,
                                                  role: principal.role.rawValue, token: token, expiresAt: expiresAt), status: .created)
        } catch PrincipalError.nameTaken {
            throw Problem(.conflict, detail: "a principal named '\(name)' exists", field: "name")
        }
    }
}

struct TokenView: Encodable {
    var id: String
    var name: String
    var role: String
    var token: String
    var expiresAt: Date?
}

struct WhoAmI: Encodable {
    var id: UUID
    var name: String
    var role: String
    var signingSecret: String?
}

struct TokenList: Encodable {
    var tokens: [PrincipalInfo]
}
