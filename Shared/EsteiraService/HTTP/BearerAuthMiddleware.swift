import EsteiraCore
import Hummingbird

/// Requires `Authorization: Bearer <token>` of a live principal; answers 401 otherwise, with
/// the same body for a missing and a wrong token so callers learn nothing from the difference.
public struct BearerAuthMiddleware: RouterMiddleware {
    public typealias Context = APIRequestContext
    public let principals: PrincipalStore

    /// Checks tokens against `principals`.
    public init(principals: PrincipalStore) {
        self.principals = principals
    }

    public func handle(_ request: Request, context: Context,
                next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let header = request.headers[.authorization] else {
            throw Self.unauthorized("missing bearer token: send 'Authorization: Bearer <token>'")
        }
        let parts = header.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else {
            throw Self.unauthorized("the Authorization header must be 'Bearer <token>'")
        }
        guard let principal = try await principals.authenticate(token: String(parts[1])) else {
            throw Self.unauthorized("invalid or revoked token")
        }
        var context = context
        context.principal = principal
        context.logger[metadataKey: "principal"] = "\(principal.name)"
        return try await next(request, context)
    }

    private static func unauthorized(_ detail: String) -> Problem {
        Problem(.unauthorized, detail: detail, headers: [.wwwAuthenticate: "Bearer realm=\"esteira\""])
    }
}
