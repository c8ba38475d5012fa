import EsteiraCore
import EsteiraService
import Foundation
import Hummingbird
import Postgres

/// `/v1/dead-letters`: list them, requeue them.
struct DeadLetterController {
    let enqueuer: Enqueuer
    let pool: PostgresPool

    func addRoutes(to routes: RouteRecorder) {
        routes.get("/v1/dead-letters", use: list)
        routes.post("/v1/dead-letters/requeue", use: requeue)
    }

    /// `GET /v1/dead-letters?kind=&error_class=&dead_after=&dead_before=&limit=&cursor=`
    @Sendable func list(_ request: Request, context: APIRequestContext) async throws -> Response {
        let q = QueryInput(request: request)
        var selection = DeadLetterSelection()
        selection.kind = try q.string("kind", maxLength: 63)
        try DeadLetterSelection.checkKind(selection.kind, field: "kind")
        selection.errorClass = try q.string("error_class", maxLength: 20)
        try DeadLetterSelection.checkErrorClass(selection.errorClass, field: "error_class")
        selection.deadAfter = try q.date("dead_after")
        selection.deadBefore = try q.date("dead_before")
        selection.limit = try q.int("limit", in: 1...500) ?? 50
        if let cursor = try q.string("cursor", maxLength: 40) {
            guard let id = Int64(cursor), id > 0 else { throw Problem(.badRequest, detail: "not a cursor this api returned", field: "cursor") }
            selection.beforeID = id
        }
        let scope = context.scope, s = selection
        let page = try await pool.withConnection { try DeadLetterStore.list(s, scope: scope, on: $0) }
        return try APIJSON.response(DeadLetterPage(deadLetters: page.letters.map(DeadLetterView.init),
                                                   nextCursor: page.nextBeforeID.map(String.init)))
    }

    /// `POST /v1/dead-letters/requeue` `{job_ids?, kind?, error_class?, dead_after?, dead_before?, limit?}`
    @Sendable func requeue(_ request: Request, context: APIRequestContext) async throws -> Response {
        let input = try await JSONInput.read(request, limit: 1 << 20)
        try input.allowOnly(["job_ids", "kind", "error_class", "dead_after", "dead_before", "limit"])
        var selection = DeadLetterSelection()
        selection.jobIDs = try input.uuids("job_ids", max: 10_000)
        selection.kind = try input.string("kind", maxLength: 63)
        try DeadLetterSelection.checkKind(selection.kind, field: "kind")
        selection.errorClass = try input.string("error_class", maxLength: 20)
        try DeadLetterSelection.checkErrorClass(selection.errorClass, field: "error_class")
        selection.deadAfter = try input.date("dead_after")
        selection.deadBefore = try input.date("dead_before")
        selection.limit = try input.int("limit", in: 1...10_000) ?? 1000
        guard selection.isNarrowed else {
            throw Problem(.badRequest, detail: "say which dead letters: job_ids, kind, error_class, dead_after or dead_before",
                          field: "job_ids")
        }
        let scope = context.scope, s = selection, who = context.principal!.id
        let result = try await enqueuer.requeue(s, scope: scope, by: who)
        context.logger.info("requeued dead letters", metadata: ["count": "\(result.jobs.count)",
                                                                "requeue": "\(result.requeueID.map(String.init) ?? "-")"])
        return try APIJSON.response(RequeueView(requeueId: result.requeueID, count: result.jobs.count, jobIds: result.jobs.map(\.id)))
    }
}

struct DeadLetterView: Encodable {
    var id: Int64
    var jobId: UUID?
    var kind: String?
    var ownerId: UUID?
    var reason: String
    var errorClass: String
    var attempts: Int
    var deadAt: Date
    var rawMessage: String?

    init(_ d: DeadLetter) {
        id = d.id; jobId = d.jobID; kind = d.kind; ownerId = d.ownerID; reason = d.reason; errorClass = d.errorClass
        attempts = d.attempts; deadAt = d.deadAt; rawMessage = d.rawMessage?.base64EncodedString()
    }
}

struct DeadLetterPage: Encodable {
    var deadLetters: [DeadLetterView]
    var nextCursor: String?
}

struct RequeueView: Encodable {
    var requeueId: Int64?
    var count: Int
    var jobIds: [UUID]
}
