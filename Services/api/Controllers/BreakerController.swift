import EsteiraCore
import EsteiraService
import Foundation
import Hummingbird
import Postgres

/// `/v1/breakers`: the circuit breakers of the services jobs need, their state and history;
/// admins reset one (close it at once) when they know its service is back.
struct BreakerController {
    let catalog: KindCatalog
    let pool: PostgresPool

    func addRoutes(to routes: RouteRecorder) {
        routes.get("/v1/breakers", use: list)
        routes.get("/v1/breakers/{name}", use: show)
        routes.post("/v1/breakers/{name}/reset", use: reset)
    }

    @Sendable func list(_ request: Request, context: APIRequestContext) async throws -> Response {
        let views = try await pool.withConnection { [catalog] c in try CircuitBreakers.views(catalog: catalog, on: c) }
        return try APIJSON.response(["breakers": views])
    }

    @Sendable func show(_ request: Request, context: APIRequestContext) async throws -> Response {
        let name = try self.name(context)
        return try APIJSON.response(try await view(name))
    }

    /// `POST /v1/breakers/{name}/reset` (admins): closed now, failures forgotten.
    @Sendable func reset(_ request: Request, context: APIRequestContext) async throws -> Response {
        let name = try self.name(context)
        try context.requireAdmin("only admins reset circuit breakers")
        let by = context.principal!.name
        try await pool.withConnection { try CircuitBreakers.reset(name, by: by, on: $0) }
        return try APIJSON.response(try await view(name))
    }

    private func view(_ name: String) async throws -> CircuitBreakers.View {
        try await pool.withConnection { [catalog] c in try CircuitBreakers.views(catalog: catalog, only: name, on: c)[0] }
    }

    private func name(_ context: APIRequestContext) throws -> String {
        let name = context.parameters.get("name") ?? ""
        guard catalog.breakers[name] != nil else {
            throw Problem(.notFound, detail: "no breaker '\(name)'; breakers: \(catalog.breakers.keys.sorted().joined(separator: ", "))",
                          field: "name")
        }
        return name
    }
}
