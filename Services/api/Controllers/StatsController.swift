import EsteiraCore
import EsteiraService
import Foundation
import Hummingbird
import Postgres

/// `GET /v1/stats?from=&to=`: per kind and status, over the jobs created in the window
/// (default: the last 24 hours), the caller's jobs only unless an admin asks.
struct StatsController {
    let pool: PostgresPool

    func addRoutes(to routes: RouteRecorder) {
        routes.get("/v1/stats", use: stats)
    }

    @Sendable func stats(_ request: Request, context: APIRequestContext) async throws -> Response {
        let q = QueryInput(request: request)
        let to = try q.date("to") ?? Date()
        let from = try q.date("from") ?? to.addingTimeInterval(-86400)
        guard from < to else { throw Problem(.badRequest, detail: "must be before to", field: "from") }
        let scope = context.scope
        let rows = try await pool.withConnection { try JobStats.rows(from: from, to: to, scope: scope, on: $0) }
        return try APIJSON.response(StatsView(from: from, to: to, rows: rows))
    }
}

struct StatsView: Encodable {
    var from: Date
    var to: Date
    var rows: [JobStatsRow]
}
