import EsteiraCore
import EsteiraService
import Foundation
import Hummingbird
import Postgres

/// `/v1/batches`: jobs made together, with progress, events and callbacks enqueued once when
/// they have all finished (`on_success` when every job completed, `on_complete` in any case).
/// Same ownership rules as jobs.
struct BatchController {
    let jobs: JobController
    let batches: Batches
    let pool: PostgresPool

    func addRoutes(to routes: RouteRecorder) {
        routes.post("/v1/batches", use: create)
        routes.get("/v1/batches", use: list)
        routes.get("/v1/batches/{id}", use: show)
        routes.post("/v1/batches/{id}/jobs", use: add)
        routes.post("/v1/batches/{id}/cancel", use: cancel)
    }

    /// `POST /v1/batches` `{jobs: [...], description?, on_success?: {kind, payload?}, on_complete?: {...}}`: 201.
    @Sendable func create(_ request: Request, context: APIRequestContext) async throws -> Response {
        let input = try await JSONInput.read(request, limit: jobs.maxBodyBytes)
        try input.allowOnly(["jobs", "description", "on_success", "on_complete"])
        let caller = context.principal!
        let description = try input.string("description", maxLength: 500)
        let onSuccess = try callback(input, "on_success", caller: caller)
        let onComplete = try callback(input, "on_complete", caller: caller)
        let id = UUID()
        let newJobs = try jobs.newJobs(input.object["jobs"], field: "jobs", caller: caller).map { job -> NewJob in
            var job = job
            job.batchID = id
            return job
        }
        let batches = self.batches
        let outcomes = try await jobs.enqueue(newJobs, alongside: {
            try batches.create(id, owner: caller.id, description: description, onSuccess: onSuccess, onComplete: onComplete,
                               jobs: newJobs.count, on: $0)
        }, afterward: { _, outcomes in
            // Jobs that joined existing ones (a known idempotency key, a unique kind) are not the
            // batch's: with none of its own it could never finish.
            guard outcomes.contains(where: \.created) else {
                throw Problem(.conflict, detail: "every job joined an existing job (its idempotency key or an equal active job); a batch needs jobs of its own",
                              field: "jobs")
            }
        })
        let batch = try await self.batch(id, scope: .everything)
        return try APIJSON.response(BatchWithJobs(batch: batch, jobs: outcomes.map(EnqueuedJob.init)), status: .created,
                                    headers: [.location: "/v1/batches/\(id.uuidString.lowercased())"])
    }

    /// `GET /v1/batches?limit=`: the newest first, the caller's own (an admin's: everyone's).
    @Sendable func list(_ request: Request, context: APIRequestContext) async throws -> Response {
        let limit = try QueryInput(request: request).int("limit", in: 1...500) ?? 50
        let owner = context.scope.ownerID, batches = self.batches
        let all = try await pool.withConnection { try batches.list(owner: owner, limit: limit, on: $0) }
        return try APIJSON.response(["batches": all])
    }

    @Sendable func show(_ request: Request, context: APIRequestContext) async throws -> Response {
        try APIJSON.response(try await batch(try context.pathID(of: "batch"), scope: context.scope))
    }

    /// `POST /v1/batches/{id}/jobs` `{jobs: [...]}`: more jobs for an open batch (409 once it
    /// has finished or was cancelled).
    @Sendable func add(_ request: Request, context: APIRequestContext) async throws -> Response {
        let id = try context.pathID(of: "batch")
        let input = try await JSONInput.read(request, limit: jobs.maxBodyBytes)
        try input.allowOnly(["jobs"])
        let newJobs = try jobs.newJobs(input.object["jobs"], field: "jobs", caller: context.principal!).map { job -> NewJob in
            var job = job
            job.batchID = id
            return job
        }
        let owner = context.scope.ownerID, batches = self.batches
        let outcomes: [EnqueueOutcome]
        do {
            outcomes = try await jobs.enqueue(newJobs) { try batches.admit(id, owner: owner, jobs: newJobs.count, on: $0) }
        } catch BatchError.notFound {
            throw Self.notFound(id)
        } catch BatchError.closed {
            throw Problem(.conflict, detail: "the batch has finished or was cancelled; it takes no more jobs", field: "id")
        }
        return try APIJSON.response(BatchWithJobs(batch: try await batch(id, scope: context.scope), jobs: outcomes.map(EnqueuedJob.init)))
    }

    /// `POST /v1/batches/{id}/cancel`: its jobs not started yet are cancelled; running ones finish.
    @Sendable func cancel(_ request: Request, context: APIRequestContext) async throws -> Response {
        let id = try context.pathID(of: "batch")
        let owner = context.scope.ownerID, name = context.principal!.name, batches = self.batches
        let found = try await pool.withConnection { try batches.cancel(id, owner: owner, by: name, on: $0) }
        guard found else { throw Self.notFound(id) }
        await batches.settleAndPublish(id, pool: pool, enqueuer: jobs.enqueuer)
        return try APIJSON.response(try await batch(id, scope: context.scope))
    }

    private func batch(_ id: UUID, scope: AccessScope) async throws -> BatchRecord {
        let batches = self.batches
        guard let batch = try await pool.withConnection({ try batches.batch(id, owner: scope.ownerID, withEvents: true, on: $0) }) else {
            throw Self.notFound(id)
        }
        return batch
    }

    static func notFound(_ id: UUID) -> Problem {
        Problem(.notFound, detail: "no batch \(id.uuidString.lowercased())", field: "id")
    }

    /// A callback field: `{kind, payload?}` of a kind the caller may enqueue.
    private func callback(_ input: JSONInput, _ field: String, caller: Principal) throws -> BatchCallback? {
        guard input.has(field) else { return nil }
        guard let object = input.object[field] as? [String: Any] else {
            throw Problem(.badRequest, detail: "must be an object {kind, payload}", field: field)
        }
        let inner = JSONInput(object: object, prefix: field + ".")
        try inner.allowOnly(["kind", "payload"])
        let kind = try inner.string("kind", required: true, maxLength: 63)!
        guard let known = jobs.enqueuer.store.catalog[kind], !known.isInternal else {
            throw Problem(.unprocessableContent, detail: "unknown kind '\(kind)'; kinds: \(jobs.enqueuer.store.catalog.enqueueableNames.joined(separator: ", "))",
                          field: inner.field("kind"))
        }
        var payload: [String: JSONValue] = [:]
        if inner.has("payload") {
            guard let text = try inner.jsonText("payload"), case .object(let o)? = JSONValue.parse(text) else {
                throw Problem(.badRequest, detail: "must be a JSON object", field: inner.field("payload"))
            }
            guard text.utf8.count <= 64 * 1024 else {
                throw Problem(.contentTooLarge, detail: "the callback payload is over 65536 bytes", field: inner.field("payload"))
            }
            try jobs.checkEndpoint(kind: known, payload: object["payload"], field: inner.field("payload.endpoint"), caller: caller)
            payload = o
        }
        // Checked now as the job it will be, so that it cannot fail when the batch ends.
        do {
            try jobs.enqueuer.store.validate([NewJob(kind: kind, payload: JSONValue.object(payload).jsonText)])
        } catch let error as EnqueueError {
            throw Problem(.unprocessableContent, detail: error.message, field: "\(field).\(error.field)")
        }
        return BatchCallback(kind: kind, payload: payload)
    }
}

struct BatchWithJobs: Encodable {
    var batch: BatchRecord
    var jobs: [EnqueuedJob]
}
