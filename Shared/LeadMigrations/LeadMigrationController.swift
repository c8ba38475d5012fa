import EsteiraCore
import EsteiraService
import Foundation
import Hummingbird
import Postgres

/// `/v1/lead-migrations`: move every lead of an import run into a funnel column, in batches.
struct LeadMigrationController {
    let enqueuer: Enqueuer
    let pool: PostgresPool

    func addRoutes(to routes: RouteRecorder) {
        routes.post("/v1/lead-migrations", use: create)
        routes.get("/v1/lead-migrations", use: list)
        routes.get("/v1/lead-migrations/{id}", use: show)
        routes.post("/v1/lead-migrations/{id}/cancel", use: cancel)
    }

    /// `POST /v1/lead-migrations {run_id, funnel_id, column_id, batch_size?}` → 202: the
    /// migration and its planning job are written in one transaction, then the job is published.
    @Sendable func create(_ request: Request, context: APIRequestContext) async throws -> Response {
        let input = try await JSONInput.read(request, limit: 64 * 1024)
        try input.allowOnly(["run_id", "funnel_id", "column_id", "batch_size"])
        func required(_ name: String) throws -> Int64 {
            guard let v = try input.int(name, in: 1...Int.max) else { throw Problem(.badRequest, detail: "is required", field: name) }
            return Int64(v)
        }
        let runID = try required("run_id"), funnelID = try required("funnel_id"), columnID = try required("column_id")
        let batchSize = try input.int("batch_size", in: 1...10_000) ?? 100
        let id = UUID(), owner = context.principal!.id, store = enqueuer.store, scope = context.scope
        let planJob = NewJob(kind: LeadMigrationKinds.plan, payload: #"{"lead_migration_id":"\#(id.uuidString.lowercased())"}"#,
                             idempotencyKey: "lead-migration:\(id.uuidString.lowercased())", ownerID: owner)
        let outcomes: [EnqueueOutcome]
        do {
            outcomes = try await pool.transaction { c in
                try LeadMigrationStore.insert(id: id, runID: runID, funnelID: funnelID, columnID: columnID,
                                              batchSize: batchSize, ownerID: owner, scope: scope, on: c)
                let outcomes = try store.insert([planJob], on: c)
                try LeadMigrationStore.setJob(id, jobID: outcomes[0].id, on: c)
                return outcomes
            }
        } catch let error as LeadMigrationError {
            switch error {
            case .unknownFunnel(let f): throw Problem(.notFound, detail: "no funnel \(f)", field: "funnel_id")
            case .unknownColumn(let c): throw Problem(.notFound, detail: "no funnel column \(c)", field: "column_id")
            case .columnNotInFunnel(let c, let f):
                throw Problem(.unprocessableContent, detail: "column \(c) is not a column of funnel \(f)", field: "column_id")
            }
        }
        await enqueuer.publish(outcomes)
        let migration = try await pool.withConnection { try LeadMigrationStore.get(id, scope: .everything, on: $0) }
        return try APIJSON.response(migration, status: .accepted,
                                    headers: [.location: "/v1/lead-migrations/\(id.uuidString.lowercased())"])
    }

    /// `GET /v1/lead-migrations?state=&limit=`: a summary per state, and the newest migrations.
    @Sendable func list(_ request: Request, context: APIRequestContext) async throws -> Response {
        let q = QueryInput(request: request)
        let state = try q.choice("state", of: LeadMigration.State.self)
        let limit = try q.int("limit", in: 1...500) ?? 50
        let scope = context.scope
        let (summary, migrations) = try await pool.withConnection { c in
            (try LeadMigrationStore.summary(scope: scope, on: c), try LeadMigrationStore.list(state: state, limit: limit, scope: scope, on: c))
        }
        return try APIJSON.response(LeadMigrationList(
            summary: summary.map { StateSummary(state: $0.state, migrations: $0.count, total: $0.total, moved: $0.moved, failed: $0.failed) },
            leadMigrations: migrations))
    }

    @Sendable func show(_ request: Request, context: APIRequestContext) async throws -> Response {
        let id = try context.jobID()
        let scope = context.scope
        guard let m = try await pool.withConnection({ try LeadMigrationStore.get(id, scope: scope, on: $0) }) else {
            throw Problem(.notFound, detail: "no lead migration \(id.uuidString.lowercased())", field: "id")
        }
        return try APIJSON.response(m)
    }

    /// `POST /v1/lead-migrations/{id}/cancel`: batches not started will not run; moved leads stay moved.
    @Sendable func cancel(_ request: Request, context: APIRequestContext) async throws -> Response {
        try APIJSON.response(try await Self.cancel(try context.pathID(of: "lead migration"), scope: context.scope, pool: pool))
    }

    /// Cancels migration `id` in `scope`: the migration after, or a 404 (unknown or not the
    /// caller's) or a 409 (finished) problem. For the api and the dashboard.
    static func cancel(_ id: UUID, scope: AccessScope, pool: PostgresPool) async throws -> LeadMigration {
        guard let (m, changed) = try await pool.transaction({ try LeadMigrationStore.cancel(id, scope: scope, on: $0) }) else {
            throw Problem(.notFound, detail: "no lead migration \(id.uuidString.lowercased())", field: "id")
        }
        guard changed else {
            throw Problem(.conflict, detail: "the migration is \(m.state.rawValue); only pending or running migrations can be cancelled",
                          field: "state")
        }
        return m
    }
}

struct StateSummary: Encodable {
    var state: String
    var migrations: Int
    var total: Int
    var moved: Int
    var failed: Int
}

struct LeadMigrationList: Encodable {
    var summary: [StateSummary]
    var leadMigrations: [LeadMigration]
}
