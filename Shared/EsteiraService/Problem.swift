import EsteiraCore
import Foundation
import Hummingbird
import Logging

/// An RFC 9457 problem: every 4xx and 5xx the services answer is `application/problem+json`
/// with these fields, so clients parse one error shape.
public struct Problem: Error, HTTPResponseError, Sendable, Equatable {
    /// The HTTP status.
    public var status: HTTPResponse.Status
    /// A short, stable summary of the kind of problem (the status phrase unless given).
    public var title: String
    /// What exactly went wrong, for a person.
    public var detail: String
    /// The request field at fault, when one is (e.g. `payload`, `kind`, `cursor`).
    public var field: String?
    /// Extra response headers (e.g. `WWW-Authenticate`, `Retry-After`).
    public var headers: HTTPFields

    /// A problem with `status`, explained by `detail`.
    public init(_ status: HTTPResponse.Status, title: String? = nil, detail: String, field: String? = nil,
                headers: HTTPFields = [:]) {
        self.status = status
        self.title = title ?? status.reasonPhrase
        self.detail = detail
        self.field = field
        self.headers = headers
    }

    private struct Body: Encodable {
        var type = "about:blank"
        var title: String
        var status: Int
        var detail: String
        var field: String?
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        var headers = self.headers
        headers[.contentType] = "application/problem+json"
        let body = Body(title: title, status: status.code, detail: detail, field: field)
        let data = try JSONEncoder().encode(body)
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}

/// Turns every error a route throws into a ``Problem``: Hummingbird's own `HTTPError`s (bad
/// JSON, no route) keep their status; anything else is a 500 whose details go to the log only.
public struct ProblemMiddleware<Context: RequestContext>: RouterMiddleware {
    /// Creates the middleware.
    public init() {}

    public func handle(_ request: Request, context: Context,
                       next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch {
            throw Problem(error, request: request, logger: context.logger)
        }
    }
}

extension Problem {
    /// The problem a route's `error` answers with: a ``Problem`` as it is; a store's error
    /// that names its field (a schedule refused) as a 409 or 422 naming it; Hummingbird's own
    /// errors (bad JSON, no route) with their status; anything else a 500 whose details go
    /// to the log only.
    public init(_ error: any Error, request: Request, logger: Logger) {
        switch error {
        case let problem as Problem: self = problem
        case let error as any ProblemConvertible: self = error.problem
        case let error as ScheduleError: self.init(error)
        case let error as HTTPError: self.init(error.status, detail: error.body ?? error.status.reasonPhrase, headers: error.headers)
        case let error as HTTPResponseError: self.init(error.status, detail: error.status.reasonPhrase)
        default:
            logger.error("request failed", metadata: ["error": "\(error)", "path": "\(request.uri.path)"])
            self.init(.internalServerError, detail: "the server could not complete the request; see its log")
        }
    }
}

/// A module's error that knows the problem it answers with (a workload's refusals), so the
/// one mapping above serves it without knowing the module.
public protocol ProblemConvertible: Error {
    var problem: Problem { get }
}
