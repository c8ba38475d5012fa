import Hummingbird

/// Adds routes to the router and remembers them, so the api can check at start that
/// /openapi.json documents exactly the routes it serves (no drift either way).
public final class RouteRecorder: @unchecked Sendable {
    public let router: Router<APIRequestContext>
    /// Every `/v1` route runs behind this (bearer tokens).
    public let authenticated: RouterGroup<APIRequestContext>
    private(set) var routes: [(method: String, path: String)] = []
    /// The per-principal limits (requests and open streams), when the api has them.
    public let limits: PrincipalLimits?

    /// `/v1` routes go through `authentication`, then, when given, the per-principal rate limit.
    public init(router: Router<APIRequestContext>, authentication: BearerAuthMiddleware, limits: PrincipalLimits? = nil) {
        self.router = router
        self.limits = limits
        let group = router.group().add(middleware: authentication)
        self.authenticated = limits.map { group.add(middleware: PrincipalRateLimitMiddleware(limits: $0)) } ?? group
    }

    public typealias Handler = @Sendable (Request, APIRequestContext) async throws -> Response

    /// `path` in OpenAPI syntax (`/v1/jobs/{id}`), which Hummingbird reads too.
    public func get(_ path: String, open: Bool = false, use handler: @escaping Handler) { add(.get, path, open, handler) }
    public func post(_ path: String, open: Bool = false, use handler: @escaping Handler) { add(.post, path, open, handler) }
    public func patch(_ path: String, use handler: @escaping Handler) { add(.patch, path, false, handler) }
    public func delete(_ path: String, use handler: @escaping Handler) { add(.delete, path, false, handler) }

    private func add(_ method: HTTPRequest.Method, _ path: String, _ open: Bool, _ handler: @escaping Handler) {
        routes.append((method.rawValue.lowercased(), path))
        if open {
            router.on(RouterPath(path), method: method, use: handler)
        } else {
            authenticated.on(RouterPath(path), method: method, use: handler)
        }
    }

    /// Records a route added elsewhere (the shared operations routes).
    public func record(_ method: HTTPRequest.Method, _ path: String) { routes.append((method.rawValue.lowercased(), path)) }

    /// Routes served but not documented, and documented but not served.
    public func drift(from document: OpenAPIDocument) -> (undocumented: [String], unserved: [String]) {
        let served = Set(routes.map { "\($0.method.uppercased()) \($0.path)" })
        let documented = Set(document.operations.map { "\($0.method.uppercased()) \($0.path)" })
        return (served.subtracting(documented).sorted(), documented.subtracting(served).sorted())
    }

    /// Throws ``OpenAPIDriftError`` when the routes and `document` differ.
    public func checkDocumented(by document: OpenAPIDocument) throws {
        let drift = drift(from: document)
        guard drift.undocumented.isEmpty && drift.unserved.isEmpty else {
            throw OpenAPIDriftError(undocumented: drift.undocumented, unserved: drift.unserved)
        }
    }
}
