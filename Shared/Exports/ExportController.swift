import EsteiraCore
import EsteiraService
import Foundation
import Hummingbird
import Postgres

/// `/v1/exports` (anyone signed in: their own exports; admins all) and `/v1/export-targets`
/// (admins change them; anyone reads them, never their keys).
struct ExportController {
    let enqueuer: Enqueuer
    let pool: PostgresPool

    func addRoutes(to routes: RouteRecorder) {
        routes.post("/v1/exports", use: create)
        routes.get("/v1/exports", use: list)
        routes.get("/v1/exports/never-exported", use: neverExported)
        routes.get("/v1/exports/{id}", use: show)
        routes.post("/v1/exports/{id}/pause", use: pause)
        routes.post("/v1/exports/{id}/resume", use: resume)
        routes.post("/v1/exports/{id}/cancel", use: cancel)
        routes.get("/v1/export-targets", use: targets)
        routes.post("/v1/export-targets", use: createTarget)
        routes.get("/v1/export-targets/{name}", use: target)
        routes.patch("/v1/export-targets/{name}", use: updateTarget)
        routes.delete("/v1/export-targets/{name}", use: deleteTarget)
    }

    // MARK: - Exports

    /// What `POST /v1/exports` and the dashboard's form ask for, checked.
    struct NewExport: Sendable {
        var startDate: String
        var endDate: String?
        var batchSize: Int
        var target: String?
    }

    /// `POST /v1/exports {start_date, end_date?, batch_size?, target?}` → 202.
    @Sendable func create(_ request: Request, context: APIRequestContext) async throws -> Response {
        let input = try await JSONInput.read(request, limit: 16 * 1024)
        try input.allowOnly(["start_date", "end_date", "batch_size", "target"])
        let new = try Self.check(startDate: try input.string("start_date", required: true, maxLength: 10),
                                 endDate: try input.string("end_date", maxLength: 10),
                                 batchSize: try input.int("batch_size", in: 1...10_000),
                                 target: try input.string("target", maxLength: 63))
        let export = try await Self.create(new, context: context, enqueuer: enqueuer, pool: pool)
        return try APIJSON.response(export, status: .accepted, headers: [.location: "/v1/exports/\(export.id.uuidString.lowercased())"])
    }

    /// Checks the dates (`YYYY-MM-DD`, real days, the end not after the start).
    static func check(startDate: String?, endDate: String?, batchSize: Int?, target: String?) throws -> NewExport {
        guard let startDate else { throw Problem(.badRequest, detail: "is required", field: "start_date") }
        let start = try APIDates.day(startDate, field: "start_date")
        if let endDate {
            let end = try APIDates.day(endDate, field: "end_date")
            guard end <= start else {
                throw Problem(.badRequest, detail: "is after start_date (\(startDate)): the export runs from start_date back to end_date",
                              field: "end_date")
            }
        }
        return NewExport(startDate: startDate, endDate: endDate, batchSize: batchSize ?? 100, target: target)
    }

    /// Writes the export and its first job, then publishes the job. For the api and the dashboard.
    static func create(_ new: NewExport, context: APIRequestContext, enqueuer: Enqueuer, pool: PostgresPool) async throws -> Export {
        let id = UUID(), principal = context.principal!, scope = context.scope, store = enqueuer.store
        let job = ExportProgress.job(for: id, ownerID: principal.id)
        let (export, outcomes) = try await pool.withConnection { c in
            try ExportStore.create(id: id, target: new.target, startDate: new.startDate, endDate: new.endDate, batchSize: new.batchSize,
                                   createdBy: principal.name, ownerID: principal.id, scope: scope, job: job, store: store, on: c)
        }
        await enqueuer.publish(outcomes)
        return export
    }

    /// `GET /v1/exports?status=&limit=`: the newest first (the last 20 unless `limit`, up to 500).
    @Sendable func list(_ request: Request, context: APIRequestContext) async throws -> Response {
        let q = QueryInput(request: request)
        let status = try q.choice("status", of: Export.Status.self)
        let limit = try q.int("limit", in: 1...500) ?? 20
        let scope = context.scope
        let exports = try await pool.withConnection { try ExportStore.list(statuses: status.map { [$0] } ?? [], limit: limit, scope: scope, on: $0) }
        return try APIJSON.response(["exports": exports])
    }

    @Sendable func show(_ request: Request, context: APIRequestContext) async throws -> Response {
        let id = try context.pathID(of: "export"), scope = context.scope
        guard let export = try await pool.withConnection({ try ExportStore.get(id, scope: scope, on: $0) }) else {
            throw ExportError.notFound(id)
        }
        return try APIJSON.response(export)
    }

    /// `POST /v1/exports/{id}/pause {reason?}`.
    @Sendable func pause(_ request: Request, context: APIRequestContext) async throws -> Response {
        let id = try context.pathID(of: "export")
        let input = try await JSONInput.read(request, limit: 16 * 1024, optional: true)
        try input.allowOnly(["reason"])
        let reason = try input.string("reason", maxLength: 500)
        return try APIJSON.response(try await Self.act(.pause(reason: reason), on: id, scope: context.scope, enqueuer: enqueuer, pool: pool))
    }

    @Sendable func resume(_ request: Request, context: APIRequestContext) async throws -> Response {
        let id = try context.pathID(of: "export")
        return try APIJSON.response(try await Self.act(.resume, on: id, scope: context.scope, enqueuer: enqueuer, pool: pool))
    }

    @Sendable func cancel(_ request: Request, context: APIRequestContext) async throws -> Response {
        let id = try context.pathID(of: "export")
        return try APIJSON.response(try await Self.act(.cancel, on: id, scope: context.scope, enqueuer: enqueuer, pool: pool))
    }

    enum Action: Sendable {
        case pause(reason: String?), resume, cancel
    }

    /// Pauses, resumes or cancels export `id` in `scope`. For the api and the dashboard.
    static func act(_ action: Action, on id: UUID, scope: AccessScope, enqueuer: Enqueuer, pool: PostgresPool) async throws -> Export {
        let store = enqueuer.store
        let (export, outcomes) = try await pool.withConnection { c -> (Export, [EnqueueOutcome]) in
            switch action {
            case .pause(let reason): return (try ExportStore.pause(id, reason: reason, scope: scope, on: c), [])
            case .resume: return try ExportStore.resume(id, scope: scope, store: store, on: c)
            case .cancel: return (try ExportStore.cancel(id, scope: scope, on: c), [])
            }
        }
        await enqueuer.publish(outcomes)
        return export
    }

    /// `GET /v1/exports/never-exported?target=&after=&limit=`: leads (the caller's; an admin's:
    /// all) with no successful sync event for the target, by id; `next_after` pages on.
    @Sendable func neverExported(_ request: Request, context: APIRequestContext) async throws -> Response {
        let q = QueryInput(request: request)
        let name = try q.string("target", maxLength: 63)
        let after = try q.int("after", in: 0...Int.max) ?? 0
        let limit = try q.int("limit", in: 1...1000) ?? 100
        let scope = context.scope
        let (target, leads) = try await pool.withConnection { c -> (ExportTarget, [UnexportedLead]) in
            let target: ExportTarget
            if let name {
                guard let named = try ExportStore.target(named: name, on: c) else { throw ExportError.unknownTarget(name) }
                target = named
            } else {
                target = try ExportStore.pickTarget(nil, on: c)
            }
            return (target, try ExportStore.neverExported(target: target.id, scope: scope, after: Int64(after), limit: limit, on: c))
        }
        return try APIJSON.response(NeverExported(target: target.name, leads: leads,
                                                  nextAfter: leads.count == limit ? leads.last?.id : nil))
    }

    struct NeverExported: Encodable {
        var target: String
        var leads: [UnexportedLead]
        var nextAfter: Int64?
    }

    // MARK: - Targets

    @Sendable func targets(_ request: Request, context: APIRequestContext) async throws -> Response {
        try APIJSON.response(["export_targets": try await pool.withConnection { try ExportStore.targets(on: $0) }])
    }

    @Sendable func target(_ request: Request, context: APIRequestContext) async throws -> Response {
        let name = try Self.targetName(context)
        guard let target = try await pool.withConnection({ try ExportStore.target(named: name, on: $0) }) else {
            throw Self.noTarget(name)
        }
        return try APIJSON.response(target)
    }

    static let adminsOnly = "export targets are the operator's: admins only"

    /// `POST /v1/export-targets {name, base_url, api_key, active?, sync_enabled?, rate_limit?, rate_burst?, direction?}` → 201.
    @Sendable func createTarget(_ request: Request, context: APIRequestContext) async throws -> Response {
        try context.requireAdmin(Self.adminsOnly)
        let input = try await JSONInput.read(request, limit: 16 * 1024)
        var fields = try Self.targetInput(input, creating: true)
        fields.name = try input.string("name", required: true, maxLength: 63)
        guard Self.validName(fields.name!) else { throw Self.badName }
        let created = try await pool.withConnection { [fields] in try ExportStore.createTarget(fields, on: $0) }
        guard let created else {
            throw Problem(.conflict, detail: "a target named '\(fields.name!)' exists already", field: "name")
        }
        return try APIJSON.response(created, status: .created, headers: [.location: "/v1/export-targets/\(created.name)"])
    }

    /// `PATCH /v1/export-targets/{name}`: the fields given change (the key is replaced, never shown).
    @Sendable func updateTarget(_ request: Request, context: APIRequestContext) async throws -> Response {
        try context.requireAdmin(Self.adminsOnly)
        let name = try Self.targetName(context)
        let input = try await JSONInput.read(request, limit: 16 * 1024)
        let fields = try Self.targetInput(input, creating: false)
        guard let updated = try await pool.withConnection({ try ExportStore.updateTarget(name, fields, on: $0) }) else {
            throw Self.noTarget(name)
        }
        return try APIJSON.response(updated)
    }

    /// `DELETE /v1/export-targets/{name}`: only a target no export has used.
    @Sendable func deleteTarget(_ request: Request, context: APIRequestContext) async throws -> Response {
        try context.requireAdmin(Self.adminsOnly)
        let name = try Self.targetName(context)
        switch try await pool.withConnection({ try ExportStore.deleteTarget(name, on: $0) }) {
        case .deleted: return Response(status: .noContent)
        case .notFound: throw Self.noTarget(name)
        case .inUse(let n):
            throw Problem(.conflict, detail: "\(n) export(s) went to target '\(name)'; set active false instead", field: "name")
        }
    }

    static func validName(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, name.unicodeScalars.count <= 63 else { return false }
        let lower = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyz0123456789")
        return lower.contains(first) && name.unicodeScalars.allSatisfy { lower.contains($0) || "._-".unicodeScalars.contains($0) }
    }

    static let badName = Problem(.badRequest, detail: "must be 1-63 of a-z, 0-9, '.', '_', '-', starting with a letter or digit", field: "name")

    /// 404 for the `{name}` of a target route.
    static func noTarget(_ name: String) -> Problem {
        Problem(.notFound, detail: "no export target '\(name)'", field: "name")
    }

    static func targetName(_ context: APIRequestContext) throws -> String {
        let name = context.parameters.get("name") ?? ""
        guard validName(name) else { throw badName }
        return name
    }

    static func targetInput(_ input: JSONInput, creating: Bool) throws -> ExportStore.TargetInput {
        try input.allowOnly(creating ? ["name", "base_url", "api_key", "active", "sync_enabled", "rate_limit", "rate_burst", "direction"]
                                     : ["base_url", "api_key", "active", "sync_enabled", "rate_limit", "rate_burst", "direction"])
        var fields = ExportStore.TargetInput()
        fields.baseURL = try input.string("base_url", required: creating, maxLength: 2000)
        if let url = fields.baseURL {
            guard let u = URL(string: url), u.scheme == "http" || u.scheme == "https", u.host?.isEmpty == false, u.query == nil else {
                throw Problem(.badRequest, detail: "must be an http(s) URL without a query, e.g. https://project.supabase.co", field: "base_url")
            }
        }
        fields.apiKey = try input.string("api_key", required: creating, maxLength: 4000)
        fields.active = try input.bool("active")
        fields.syncEnabled = try input.bool("sync_enabled")
        fields.direction = try input.string("direction", maxLength: 100)
        // 0: no published limit.
        if let rate = try input.number("rate_limit", in: 0...100_000) { fields.rateLimit = .some(rate == 0 ? nil : rate) }
        if let burst = try input.int("rate_burst", in: 0...100_000) { fields.rateBurst = .some(burst == 0 ? nil : burst) }
        return fields
    }
}

extension ExportError: ProblemConvertible {
    /// The answer to a refused export request, naming the field at fault.
    public var problem: Problem {
        switch self {
        case .noActiveTarget:
            return Problem(.unprocessableContent, detail: "no export target is active: an admin creates one (POST /v1/export-targets) or activates one",
                      field: "target")
        case .unknownTarget(let name): return Problem(.notFound, detail: "no export target '\(name)'", field: "target")
        case .severalActiveTargets(let names):
            return Problem(.unprocessableContent, detail: "several export targets are active (\(names.joined(separator: ", "))): name one",
                      field: "target")
        case .targetInactive(let name): return Problem(.unprocessableContent, detail: "export target '\(name)' is not active", field: "target")
        case .syncDisabled(let name):
            return Problem(.unprocessableContent, detail: "sync is disabled on export target '\(name)'", field: "target")
        case .alreadyActive(let target, let export, let status):
            return Problem(.conflict, detail: "export \(export.uuidString.lowercased()) to target '\(target)' is \(status.rawValue); one active export per target",
                      field: "target")
        case .notFound(let id): return Problem(.notFound, detail: "no export \(id.uuidString.lowercased())", field: "id")
        case .wrongStatus(let status, let action):
            return Problem(.conflict, detail: "the export is \(status.rawValue) and cannot be \(action)", field: "status")
        }
    }
}
