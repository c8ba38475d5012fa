import EsteiraCore
import EsteiraService
import Foundation
import HTTPTypes
import Hummingbird
import Postgres
import ServiceLifecycle

/// `GET /v1/events`: Server-Sent Events of job state changes, filterable by kind, job and
/// owner, resumable with Last-Event-ID.
struct EventsController {
    let stream: JobEventStream

    func addRoutes(to routes: RouteRecorder) {
        routes.get("/v1/events", use: events)
    }

    @Sendable func events(_ request: Request, context: APIRequestContext) async throws -> Response {
        let q = QueryInput(request: request)
        let kind = try q.string("kind", maxLength: 63)
        let jobID = try q.uuid("job_id")
        var ownerID = try q.uuid("owner_id")
        let principal = context.principal!
        if principal.role != .admin {
            if let ownerID, ownerID != principal.id {
                throw Problem(.forbidden, detail: "only admins follow other principals' jobs", field: "owner_id")
            }
            ownerID = principal.id
        }
        return try await stream.response(request, principal: principal, kind: kind, jobID: jobID, ownerID: ownerID,
                                         logger: context.logger)
    }
}
