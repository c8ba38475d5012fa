import EsteiraCore
import EsteiraService
import Foundation
import Hummingbird
import Postgres

/// `/v1/schedules`: cron schedules, each tick of which the leading scheduler turns into one
/// job. Same ownership rules as jobs: users see and change their own, admins all.
struct ScheduleController {
    let store: ScheduleStore
    let pool: PostgresPool

    func addRoutes(to routes: RouteRecorder) {
        routes.post("/v1/schedules", use: create)
        routes.get("/v1/schedules", use: list)
        routes.get("/v1/schedules/{id}", use: show)
        routes.patch("/v1/schedules/{id}", use: update)
        routes.delete("/v1/schedules/{id}", use: delete)
    }

    static let fields: Set<String> = ["name", "cron", "time_zone", "kind", "payload", "enabled"]

    /// The body's fields; `creating` requires name, cron and kind.
    func input(_ request: Request, creating: Bool) async throws -> ScheduleInput {
        let json = try await JSONInput.read(request, limit: 2 << 20)
        try json.allowOnly(Self.fields)
        var input = ScheduleInput()
        input.name = try json.string("name", required: creating, maxLength: 200)
        input.cron = try json.string("cron", required: creating, maxLength: 200)
        input.timeZone = try json.string("time_zone", maxLength: 64)
        input.kind = try json.string("kind", required: creating, maxLength: 63)
        input.enabled = try json.bool("enabled")
        if json.has("payload") {
            let text = try json.jsonText("payload") ?? "{}"
            guard text.utf8.count <= 1 << 20 else {
                throw Problem(.contentTooLarge, detail: "the payload is over 1048576 bytes", field: "payload")
            }
            input.payload = text
        }
        if !creating, json.object.isEmpty {
            throw Problem(.badRequest, detail: "nothing to change; fields: \(Self.fields.sorted().joined(separator: ", "))", field: "body")
        }
        return input
    }

    static func id(_ context: APIRequestContext) throws -> UUID {
        let raw = context.parameters.get("id") ?? ""
        guard let id = UUID(uuidString: raw) else {
            throw Problem(.badRequest, detail: "'\(raw)' is not a schedule id (a UUID)", field: "id")
        }
        return id
    }

    /// `POST /v1/schedules {name, cron, kind, time_zone?, payload?, enabled?}` → 201.
    @Sendable func create(_ request: Request, context: APIRequestContext) async throws -> Response {
        let input = try await self.input(request, creating: true)
        let owner = context.principal!.id, store = self.store
        let schedule = try await pool.withConnection { try store.create(input, ownerID: owner, on: $0) }
        return try APIJSON.response(schedule, status: .created,
                                    headers: [.location: "/v1/schedules/\(schedule.id.uuidString.lowercased())"])
    }

    /// `GET /v1/schedules?kind=&limit=`: by name.
    @Sendable func list(_ request: Request, context: APIRequestContext) async throws -> Response {
        let q = QueryInput(request: request)
        let kind = try q.string("kind", maxLength: 63)
        if let kind, !KindCatalog.isValidName(kind) { throw Problem(.badRequest, detail: "'\(kind)' is not a kind name", field: "kind") }
        let limit = try q.int("limit", in: 1...1000) ?? 100
        let scope = context.scope, store = self.store
        let schedules = try await pool.withConnection { try store.list(kind: kind, limit: limit, scope: scope, on: $0) }
        return try APIJSON.response(["schedules": schedules])
    }

    @Sendable func show(_ request: Request, context: APIRequestContext) async throws -> Response {
        let id = try Self.id(context)
        let scope = context.scope, store = self.store
        guard let s = try await pool.withConnection({ try store.get(id, scope: scope, on: $0) }) else { throw Problem.scheduleNotFound(id) }
        return try APIJSON.response(s)
    }

    /// `PATCH /v1/schedules/{id}`: any of the fields; a new cron, time zone or enabling
    /// starts from the next tick after now.
    @Sendable func update(_ request: Request, context: APIRequestContext) async throws -> Response {
        let id = try Self.id(context)
        let input = try await self.input(request, creating: false)
        let scope = context.scope, store = self.store
        guard let s = try await pool.transaction({ try store.update(id, input, scope: scope, on: $0) }) else { throw Problem.scheduleNotFound(id) }
        return try APIJSON.response(s)
    }

    /// `DELETE /v1/schedules/{id}` → 204; the jobs it enqueued stay.
    @Sendable func delete(_ request: Request, context: APIRequestContext) async throws -> Response {
        let id = try Self.id(context)
        let scope = context.scope, store = self.store
        guard try await pool.withConnection({ try store.delete(id, scope: scope, on: $0) }) else { throw Problem.scheduleNotFound(id) }
        return Response(status: .noContent)
    }
}

/// `GET /v1/metrics/queues?kind=&from=&to=`: the scheduler's per-kind per-minute roll-up.
/// Admins only: the figures count every principal's jobs.
struct QueueMetricsController {
    let pool: PostgresPool

    func addRoutes(to routes: RouteRecorder) {
        routes.get("/v1/metrics/queues", use: list)
    }

    @Sendable func list(_ request: Request, context: APIRequestContext) async throws -> Response {
        try context.requireAdmin("queue metrics count every principal's jobs: admins only")
        let q = QueryInput(request: request)
        let kind = try q.string("kind", maxLength: 63)
        if let kind, !KindCatalog.isValidName(kind) { throw Problem(.badRequest, detail: "'\(kind)' is not a kind name", field: "kind") }
        let to = try q.date("to") ?? Date()
        let from = try q.date("from") ?? to.addingTimeInterval(-3600)
        guard from < to else { throw Problem(.badRequest, detail: "must be before `to`", field: "from") }
        guard to.timeIntervalSince(from) <= 31 * 86400 else {
            throw Problem(.badRequest, detail: "at most 31 days from `from` to `to`", field: "from")
        }
        let rows = try await pool.withConnection { try MetricsRollup.rows(kind: kind, from: from, to: to, on: $0) }
        return try APIJSON.response(QueueMetrics(from: from, to: to, minutes: rows))
    }
}

struct QueueMetrics: Encodable {
    var from: Date
    var to: Date
    var minutes: [MetricsRollup.Row]
}
