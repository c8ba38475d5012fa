import EsteiraCore
import EsteiraService
import Foundation
import Hummingbird
import Postgres

/// `/v1/kinds`: the kinds this deployment runs, with their policies, concurrency limits and
/// whether they are paused; admins pause and resume them.
struct KindController {
    let catalog: KindCatalog
    let pool: PostgresPool

    func addRoutes(to routes: RouteRecorder) {
        routes.get("/v1/kinds", use: list)
        routes.get("/v1/kinds/{kind}", use: show)
        routes.post("/v1/kinds/{kind}/pause", use: pause)
        routes.post("/v1/kinds/{kind}/resume", use: resume)
    }

    @Sendable func list(_ request: Request, context: APIRequestContext) async throws -> Response {
        let views = try await pool.withConnection { [catalog] c in try KindView.all(catalog: catalog, on: c) }
        return try APIJSON.response(["kinds": views])
    }

    @Sendable func show(_ request: Request, context: APIRequestContext) async throws -> Response {
        let kind = try self.kind(context)
        return try APIJSON.response(try await view(kind))
    }

    /// `POST /v1/kinds/{kind}/pause` (admins), body optional `{"reason": "..."}`: every
    /// processor stops taking the kind's deliveries; its jobs keep queuing.
    @Sendable func pause(_ request: Request, context: APIRequestContext) async throws -> Response {
        let kind = try self.kind(context)
        try context.requireAdmin(Self.adminsOnly)
        let input = try await JSONInput.read(request, limit: 16 * 1024, optional: true)
        try input.allowOnly(["reason"])
        let reason = try input.string("reason", maxLength: 500)
        let by = context.principal!.name
        _ = try await pool.withConnection { try KindPauses.pause(kind, by: by, reason: reason, on: $0) }
        return try APIJSON.response(try await view(kind))
    }

    /// `POST /v1/kinds/{kind}/resume` (admins): processors take its deliveries again.
    @Sendable func resume(_ request: Request, context: APIRequestContext) async throws -> Response {
        let kind = try self.kind(context)
        try context.requireAdmin(Self.adminsOnly)
        try await pool.withConnection { try KindPauses.resume(kind, on: $0) }
        return try APIJSON.response(try await view(kind))
    }

    private func view(_ kind: String) async throws -> KindView {
        try await pool.withConnection { [catalog] c in
            try KindView.all(catalog: catalog, only: kind, on: c)[0]
        }
    }

    private func kind(_ context: APIRequestContext) throws -> String {
        let name = context.parameters.get("kind") ?? ""
        guard catalog[name] != nil else {
            throw Problem(.notFound, detail: "no kind '\(name)'; kinds: \(catalog.names.joined(separator: ", "))", field: "kind")
        }
        return name
    }

    static let adminsOnly = "only admins pause and resume kinds: it stops or starts every owner's jobs"
}

/// A kind as the api shows it.
struct KindView: Encodable {
    var name: String
    var handler: String
    var `internal`: Bool
    var maxAttempts: Int
    var timeoutSeconds: Double
    /// Jobs one processor instance runs at once.
    var concurrency: Int
    var globalConcurrency: Int?
    var concurrencyKey: String?
    var keyConcurrency: Int?
    var uniqueKeys: [String]?
    var limiter: String?
    var breaker: String?
    var paused: Bool
    var pause: KindPause?
    /// For kinds with a concurrency limit: attempts holding a slot now, and jobs waiting for one.
    var slotsTaken: Int?
    var waitingForSlot: Int?

    enum CodingKeys: String, CodingKey {
        case name, handler, `internal`, concurrency, paused, pause, limiter, breaker
        case maxAttempts = "max_attempts", timeoutSeconds = "timeout_seconds"
        case globalConcurrency = "global_concurrency", concurrencyKey = "concurrency_key", keyConcurrency = "key_concurrency"
        case uniqueKeys = "unique_keys", slotsTaken = "slots_taken", waitingForSlot = "waiting_for_slot"
    }

    /// Every kind (or only `only`), sorted by name.
    static func all(catalog: KindCatalog, only: String? = nil, on connection: PostgresConnection) throws -> [KindView] {
        var pauses: [String: KindPause] = [:]
        for p in try KindPauses.all(on: connection) { pauses[p.kind] = p }
        var taken: [String: Int] = [:], waiting: [String: Int] = [:]
        for row in try connection.query("SELECT slot_kind, count(*)::int FROM job_leases WHERE slot_kind IS NOT NULL GROUP BY 1") {
            taken[try row.decode(String.self, at: 0)] = try row.decode(Int.self, at: 1)
        }
        for row in try connection.query("SELECT waiting_kind, count(*)::int FROM job_outbox WHERE waiting_kind IS NOT NULL GROUP BY 1") {
            waiting[try row.decode(String.self, at: 0)] = try row.decode(Int.self, at: 1)
        }
        return catalog.names.filter { only == nil || $0 == only }.compactMap { name in
            guard let k = catalog[name] else { return nil }
            return KindView(name: name, handler: k.handler, internal: k.isInternal, maxAttempts: k.policy.maxAttempts,
                            timeoutSeconds: k.policy.timeout, concurrency: k.policy.concurrency,
                            globalConcurrency: k.limit?.global, concurrencyKey: k.limit?.keyPath.map { "payload." + $0 },
                            keyConcurrency: k.limit?.keyPath == nil ? nil : k.limit?.perKey, uniqueKeys: k.unique?.keys, limiter: k.limiter, breaker: k.breaker,
                            paused: pauses[name] != nil, pause: pauses[name],
                            slotsTaken: k.limit == nil ? nil : taken[name, default: 0],
                            waitingForSlot: k.limit == nil ? nil : waiting[name, default: 0])
        }
    }
}
