import EsteiraCore
import Hummingbird

/// Routes about the caller itself.
struct PrincipalController {
    func addRoutes(to group: RouterGroup<APIRequestContext>) {
        group.get("whoami", use: whoami)
    }

    /// `GET /v1/whoami`: the principal the bearer token belongs to.
    @Sendable func whoami(_ request: Request, context: APIRequestContext) async throws -> Principal {
        // BearerAuthMiddleware guarantees a principal on every /v1 route.
        context.principal!
    }
}

extension Principal: ResponseEncodable {}
