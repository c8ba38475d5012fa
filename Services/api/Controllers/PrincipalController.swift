import EsteiraCore
import EsteiraService
import Hummingbird

/// The caller itself, and tokens for new principals.
struct PrincipalController {
    let principals: PrincipalStore

    func addRoutes(to routes: RouteRecorder) {
        routes.get("/v1/whoami", use: whoami)
        routes.post("/v1/tokens", use: createToken)
    }

    /// `GET /v1/whoami`: the principal the bearer token belongs to.
    @Sendable func whoami(_ request: Request, context: APIRequestContext) async throws -> Response {
        // BearerAuthMiddleware guarantees a principal on every /v1 route.
        try APIJSON.response(context.principal!)
    }

    /// `POST /v1/tokens` `{name, role?}` (admins only): a new principal and its token, shown
    /// once.
    @Sendable func createToken(_ request: Request, context: APIRequestContext) async throws -> Response {
        guard context.principal!.role == .admin else {
            throw Problem(.forbidden, detail: "only admins create tokens")
        }
        let input = try await JSONInput.read(request, limit: 64 * 1024)
        try input.allowOnly(["name", "role"])
        let name = try input.string("name", required: true, maxLength: 200)!
        let roleText = try input.string("role", maxLength: 20) ?? "user"
        guard let role = Principal.Role(rawValue: roleText) else {
            throw Problem(.badRequest, detail: "must be admin or user", field: "role")
        }
        do {
            let (principal, token) = try await principals.create(name: name, role: role, createdBy: context.principal!.id)
            context.logger.info("principal created", metadata: ["name": "\(name)", "role": "\(role.rawValue)"])
            return try APIJSON.response(TokenView(id: principal.id.uuidString.lowercased(), name: principal.name,
                                                  role: principal.role.rawValue, token: token), status: .created)
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
}
