import EsteiraCore
import EsteiraService
import Foundation
import Hummingbird
import Postgres

/// `/v1/jobs`: enqueue (one or a batch), list, read with history, cancel.
struct JobController {
    let enqueuer: Enqueuer
    let pool: PostgresPool
    /// Largest request body: a full batch of jobs.
    let maxBodyBytes: Int

    func addRoutes(to routes: RouteRecorder) {
        routes.post("/v1/jobs", use: create)
        routes.get("/v1/jobs", use: list)
        routes.get("/v1/jobs/{id}", use: show)
        routes.post("/v1/jobs/{id}/cancel", use: cancel)
    }

    static let jobFields: Set<String> = ["kind", "payload", "idempotency_key", "priority", "max_attempts", "run_after", "delay_seconds"]

    /// Reads one job of the body; `input.prefix` names its place in a batch.
    func newJob(_ input: JSONInput, caller: Principal) throws -> NewJob {
        let owner = caller.id
        try input.allowOnly(Self.jobFields)
        let kind = try input.string("kind", required: true, maxLength: 63)!
        guard let known = enqueuer.store.catalog[kind], !known.isInternal else {
            let isInternal = enqueuer.store.catalog[kind] != nil
            throw Problem(.unprocessableContent,
                          detail: (isInternal ? "kind '\(kind)' is enqueued by its workload's own routes only" : "unknown kind '\(kind)'")
                              + "; kinds: \(enqueuer.store.catalog.enqueueableNames.joined(separator: ", "))",
                          field: input.field("kind"))
        }
        let payload = try input.jsonText("payload") ?? "{}"
        try checkEndpoint(kind: known, payload: input.object["payload"], field: input.field("payload.endpoint"), caller: caller)
        let limit = enqueuer.store.maxPayloadBytes
        guard payload.utf8.count <= limit else {
            throw Problem(.contentTooLarge, detail: "the payload is \(payload.utf8.count) bytes; the limit is \(limit)",
                          field: input.field("payload"))
        }
        if input.has("run_after") && input.has("delay_seconds") {
            throw Problem(.badRequest, detail: "give run_after or delay_seconds, not both", field: input.field("delay_seconds"))
        }
        var runAfter = try input.date("run_after")
        if let delay = try input.int("delay_seconds", in: 0...(366 * 86400)) { runAfter = Date().addingTimeInterval(Double(delay)) }
        return NewJob(kind: kind, payload: payload, idempotencyKey: try input.string("idempotency_key", maxLength: 200),
                      priority: try input.int("priority", in: 0...9), maxAttempts: try input.int("max_attempts", in: 1...1000),
                      runAfter: runAfter, ownerID: owner)
    }

    /// An http job that names an endpoint in its payload: the endpoint must exist and admit
    /// the caller and the kind (422 naming `payload.endpoint` otherwise).
    func checkEndpoint(kind: KindCatalog.Kind, payload: Any?, field: String, caller: Principal) throws {
        guard kind.handler == "http", let name = (payload as? [String: Any])?["endpoint"] as? String else { return }
        let catalog = enqueuer.store.catalog
        guard let endpoint = catalog.endpoints[name],
              endpoint.admits(kind: kind.name, principal: caller.name, namedInPayload: true, admin: caller.role == .admin) else {
            throw Problem(.unprocessableContent, detail: "no endpoint '\(name)' open to this token and kind", field: field)
        }
    }

    /// `POST /v1/jobs`: `{kind, payload, ...}` for one job (201, or 200 with the existing job
    /// when its idempotency key is known), or `{"jobs": [...]}` for a batch (201).
    @Sendable func create(_ request: Request, context: APIRequestContext) async throws -> Response {
        let input = try await JSONInput.read(request, limit: maxBodyBytes)
        if input.has("jobs") {
            try input.allowOnly(["jobs"])
            let items = input.object["jobs"]
            let jobs = try newJobs(items, field: "jobs", caller: context.principal!)
            let outcomes = try await enqueue(jobs)
            return try APIJSON.response(EnqueuedJobs(jobs: outcomes.map(EnqueuedJob.init)), status: .created)
        }
        let outcome = try await enqueue([newJob(input, caller: context.principal!)])[0]
        let job = try await pool.withConnection { try JobQueries.job(outcome.id, scope: .everything, on: $0) }
        guard let job else { throw Problem(.internalServerError, detail: "the job was not stored") }
        return try APIJSON.response(JobView(job: job, created: outcome.created, duplicate: outcome.duplicate ? true : nil),
                                    status: outcome.created ? .created : .ok,
                                    headers: [.location: "/v1/jobs/\(outcome.id.uuidString.lowercased())"])
    }

    /// The jobs of the array `items` (the body's field `field`), 1 to ``JobStore/maxBatch``.
    func newJobs(_ items: Any?, field: String, caller: Principal) throws -> [NewJob] {
        guard let items = items as? [Any] else {
            throw Problem(.badRequest, detail: "must be an array of jobs", field: field)
        }
        guard (1...JobStore.maxBatch).contains(items.count) else {
            throw Problem(.badRequest, detail: "must hold 1 to \(JobStore.maxBatch) jobs, got \(items.count)", field: field)
        }
        return try items.enumerated().map { i, item -> NewJob in
            guard let object = item as? [String: Any] else {
                throw Problem(.badRequest, detail: "must be a JSON object", field: "\(field)[\(i)]")
            }
            return try newJob(JSONInput(object: object, prefix: "\(field)[\(i)]."), caller: caller)
        }
    }

    /// Enqueues `jobs` (running `alongside` in their transaction); errors become problems.
    func enqueue(_ jobs: [NewJob], alongside: (@Sendable (PostgresConnection) throws -> Void)? = nil,
                 afterward: (@Sendable (PostgresConnection, [EnqueueOutcome]) throws -> Void)? = nil) async throws -> [EnqueueOutcome] {
        do {
            return try await enqueuer.enqueue(jobs, alongside: alongside, afterward: afterward)
        } catch let error as EnqueueError {
            let field = error.index.map { "jobs[\($0)].\(error.field)" } ?? error.field
            throw Problem(.unprocessableContent, detail: error.message, field: field)
        } catch let conflict as IdempotencyConflict {
            let field = conflict.index.map { "jobs[\($0)].idempotency_key" } ?? "idempotency_key"
            throw Problem(.conflict, detail: conflict.description, field: field)
        }
    }

    /// `GET /v1/jobs?kind=&status=&created_after=&created_before=&owner_id=&limit=&cursor=`
    @Sendable func list(_ request: Request, context: APIRequestContext) async throws -> Response {
        let q = QueryInput(request: request)
        var filter = try JobFilter.read(q, catalog: enqueuer.store.catalog)
        filter.ownerID = try q.uuid("owner_id")
        if filter.ownerID != nil, context.principal!.role != .admin {
            throw Problem(.forbidden, detail: "only admins list other principals' jobs", field: "owner_id")
        }
        filter.limit = try q.int("limit", in: 1...500) ?? 50
        let scope = context.scope, f = filter
        let page = try await pool.withConnection { try JobQueries.list(f, scope: scope, on: $0) }
        return try APIJSON.response(JobPage(jobs: page.jobs.map { JobView(job: $0) }, nextCursor: page.next?.token))
    }

    /// `GET /v1/jobs/{id}`: the job with its attempts and its event history.
    @Sendable func show(_ request: Request, context: APIRequestContext) async throws -> Response {
        let id = try context.jobID()
        let scope = context.scope
        let found = try await pool.withConnection { c -> (JobRecord, [JobEvent])? in
            guard let job = try JobQueries.job(id, scope: scope, on: c) else { return nil }
            return (job, try JobQueries.events(of: id, on: c))
        }
        guard let (job, events) = found else { throw Problem.jobNotFound(id) }
        return try APIJSON.response(JobView(job: job, events: events.map(EventView.init), attemptList: AttemptView.from(events)))
    }

    /// `POST /v1/jobs/{id}/cancel`: 200 with the cancelled job (a running one is stopped on its
    /// processor); 409 when it has finished.
    @Sendable func cancel(_ request: Request, context: APIRequestContext) async throws -> Response {
        let id = try context.jobID()
        let scope = context.scope, name = context.principal!.name
        switch try await enqueuer.cancel(id, scope: scope, by: name) {
        case .cancelled(let job):
            return try APIJSON.response(JobView(job: job))
        case .notFound:
            throw Problem.jobNotFound(id)
        case .notCancellable(let status):
            throw Problem.notCancellable(status)
        }
    }
}

/// A job as the api shows it.
struct JobView: Encodable {
    var job: JobRecord
    /// Only in answers to POST: false when an existing job was returned for its idempotency key.
    var created: Bool?
    /// Only in answers to POST: true when an equal active job of a unique kind was returned.
    var duplicate: Bool?
    var events: [EventView]?
    var attemptList: [AttemptView]?

    enum Keys: String, CodingKey { case created, duplicate, events, attemptHistory }

    func encode(to encoder: Encoder) throws {
        try job.encode(to: encoder)
        var c = encoder.container(keyedBy: Keys.self)
        try c.encodeIfPresent(created, forKey: .created)
        try c.encodeIfPresent(duplicate, forKey: .duplicate)
        try c.encodeIfPresent(events, forKey: .events)
        try c.encodeIfPresent(attemptList, forKey: .attemptHistory)
    }
}

struct JobPage: Encodable {
    var jobs: [JobView]
    var nextCursor: String?
}

struct EnqueuedJob: Encodable {
    var id: UUID
    var kind: String
    var status: JobStatus
    var created: Bool
    /// Present (true) when an equal active job of a unique kind was returned.
    var duplicate: Bool?

    init(_ o: EnqueueOutcome) { id = o.id; kind = o.kind; status = o.status; created = o.created; duplicate = o.duplicate ? true : nil }
}

struct EnqueuedJobs: Encodable {
    var jobs: [EnqueuedJob]
}
