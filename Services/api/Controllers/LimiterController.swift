import EsteiraCore
import EsteiraService
import Foundation
import Hummingbird
import Postgres

/// `GET /v1/limiters`: the named rate limiters, with their tokens now and any pause a
/// service's Retry-After put on them.
struct LimiterController {
    let catalog: KindCatalog
    let pool: PostgresPool

    func addRoutes(to routes: RouteRecorder) {
        routes.get("/v1/limiters", use: list)
    }

    @Sendable func list(_ request: Request, context: APIRequestContext) async throws -> Response {
        let states = try await pool.withConnection { [catalog] c in try RateLimiters.states(catalog: catalog, on: c) }
        return try APIJSON.response(["limiters": states])
    }
}
