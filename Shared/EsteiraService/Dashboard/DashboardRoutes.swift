import EsteiraCore
import Foundation
import HTTPTypes
import Hummingbird

/// The web dashboard's routes under `/ui`: pages (GET) and actions (POST) of a signed-in
/// browser, and the sections listed in its navigation. The core pages and every workload's
/// page are added here; an action's form must carry the session's CSRF token.
public final class DashboardRoutes: @unchecked Sendable {
    /// The session cookie's name over plain http (a loopback or private network).
    public static let cookieName = "esteira_session"
    /// Its name behind TLS: a `__Host-` cookie is `Secure`, has no domain and `Path=/`, so a
    /// sibling subdomain or a plain-http page cannot set one that shadows it.
    public static let secureCookieName = "__Host-esteira_session"
    /// Largest form body an action reads.
    public static let maxFormBytes = 1 << 20

    /// One entry of the navigation.
    public struct Section: Sendable {
        public var title: String
        public var path: String
        /// Shown to admins only (its pages refuse others too).
        public var adminOnly: Bool
    }

    public typealias Handler = @Sendable (Request, APIRequestContext) async throws -> Response

    public let router: Router<APIRequestContext>
    public let sessions: DashboardSessions
    /// The newest job event id now (where a rendered page's live stream resumes).
    let liveMark: @Sendable () async -> Int64
    let signedIn: RouterGroup<APIRequestContext>
    /// The per-principal limits (requests and open streams), when the api has them.
    public let limits: PrincipalLimits?
    public private(set) var sections: [Section] = []

    /// Routes on `router`: `/ui/sign-in`, `/ui/sign-out`, `/ui/assets/*` and the pages added
    /// later, which answer a browser without a session with the sign-in page.
    public init(router: Router<APIRequestContext>, sessions: DashboardSessions, principals: PrincipalStore,
                limits: PrincipalLimits? = nil, liveMark: @escaping @Sendable () async -> Int64) {
        self.router = router
        self.sessions = sessions
        self.liveMark = liveMark
        self.limits = limits
        let ui = router.group("/ui").add(middleware: DashboardErrorMiddleware())
        signedIn = ui.group().add(middleware: DashboardSessionMiddleware(sessions: sessions))
        if let limits { signedIn.add(middleware: PrincipalRateLimitMiddleware(limits: limits)) }
        SignIn(sessions: sessions, principals: principals).addRoutes(to: ui)
        ui.get("/assets/app.css") { _, _ in DashboardAssets.response(DashboardAssets.css, type: "text/css; charset=utf-8") }
        ui.get("/assets/app.js") { _, _ in DashboardAssets.response(DashboardAssets.js, type: "text/javascript; charset=utf-8") }
        signedIn.post("/sign-out") { request, context in
            if let cookie = DashboardSessionMiddleware.sessionCookie(in: request) { try await sessions.delete(cookie: cookie) }
            var response = Response(status: .seeOther, headers: [.location: "/ui/sign-in?signed_out=1"])
            response.headers[values: .setCookie] = DashboardSessionMiddleware.clearCookies
            return response
        }
    }

    /// The newest event id when the page being rendered started reading: its live stream
    /// resumes there, so an event between its reads and its stream is not missed.
    @TaskLocal static var pageMark: Int64?

    /// The fields of an action's form (at most ``maxFormBytes``).
    public static func form(_ request: Request) async throws -> QueryInput {
        var request = request
        return QueryInput(form: try await request.collectBody(upTo: maxFormBytes))
    }

    /// Whether a browser asked for a page rather than JSON.
    public static func wantsHTML(_ request: Request) -> Bool {
        let accept = request.headers[.accept] ?? ""
        return accept.contains("text/html") && !accept.hasPrefix("application/json")
    }

    /// A page at `/ui` + `path` (GET).
    public func page(_ path: String, use handler: @escaping Handler) {
        let liveMark = self.liveMark
        signedIn.get(RouterPath(path)) { request, context in
            try await Self.$pageMark.withValue(await liveMark()) { try await handler(request, context) }
        }
    }

    /// An action at `/ui` + `path` (POST, CSRF-checked), answered with a redirect or a page.
    public func action(_ path: String, use handler: @escaping Handler) {
        let liveMark = self.liveMark
        signedIn.post(RouterPath(path)) { request, context in
            try await Self.$pageMark.withValue(await liveMark()) { try await handler(request, context) }
        }
    }

    /// Adds `title` at `/ui` + `path` to the navigation.
    public func section(_ title: String, _ path: String, adminOnly: Bool = false) {
        sections.append(Section(title: title, path: "/ui" + path, adminOnly: adminOnly))
    }

    /// The cookie that carries an action's outcome to the page it redirects to (a cookie,
    /// not the URL, so a link from elsewhere cannot put words on a page).
    static let noticeCookie = "esteira_notice"

    /// Where an action sends the browser (303, so a reload does not post again), with
    /// `notice` for that page to show once.
    public static func redirect(_ path: String, notice: String? = nil) -> Response {
        var response = Response(status: .seeOther, headers: [.location: path])
        if let notice {
            let value = notice.prefix(300).addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? ""
            response.headers[values: .setCookie] = ["\(noticeCookie)=\(value); Path=/ui; HttpOnly; SameSite=Strict; Max-Age=60"]
        }
        return response
    }
}

/// Resolves the session cookie into the caller; a POST must carry the session's CSRF token
/// (form field `csrf` or header `X-CSRF-Token`), else 403. No session: a page redirects to
/// the sign-in page, an action answers 401.
struct DashboardSessionMiddleware: RouterMiddleware {
    typealias Context = APIRequestContext
    let sessions: DashboardSessions

    static let csrfHeader = HTTPField.Name("X-CSRF-Token")!
    static let clearCookies = ["\(DashboardRoutes.cookieName)=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0",
                               "\(DashboardRoutes.secureCookieName)=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0"]

    /// The session cookie: the `__Host-` one when there is one.
    static func sessionCookie(in request: Request) -> String? {
        cookie(DashboardRoutes.secureCookieName, in: request) ?? cookie(DashboardRoutes.cookieName, in: request)
    }

    static func cookie(_ name: String, in request: Request) -> String? {
        for header in request.headers[values: .cookie] {
            for part in header.split(separator: ";") {
                let pair = part.trimmingCharacters(in: .whitespaces).split(separator: "=", maxSplits: 1)
                if pair.count == 2, pair[0] == name { return String(pair[1]) }
            }
        }
        return nil
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let cookie = Self.sessionCookie(in: request), let session = try await sessions.session(cookie: cookie) else {
            if request.method == .get || request.method == .head {
                var target = request.uri.path
                if let query = request.uri.query, !query.isEmpty { target += "?" + query }
                var components = URLComponents()
                components.queryItems = [URLQueryItem(name: "next", value: target)]
                return .redirect(to: "/ui/sign-in?" + (components.percentEncodedQuery ?? ""), type: .found)
            }
            throw Problem(.unauthorized, detail: "not signed in, or the session ended: sign in again", field: "session")
        }
        var context = context
        context.principal = session.principal
        context.csrfToken = session.csrfToken
        context.logger[metadataKey: "principal"] = "\(session.principal.name)"
        guard request.method == .post else { return try await next(request, context) }
        var request = request
        let body = try await request.collectBody(upTo: DashboardRoutes.maxFormBytes)
        let sent = request.headers[Self.csrfHeader] ?? QueryInput(form: body).parameters.get("csrf").map { String($0) }
        guard let sent, DashboardSessions.sameToken(sent, session.csrfToken) else {
            throw Problem(.forbidden, detail: "the form's CSRF token is missing or wrong: reload the page and try again", field: "csrf")
        }
        return try await next(request, context)
    }
}

/// Answers a browser's failed request with an HTML page that says what went wrong (status,
/// detail, field), and a script's (`Accept` without `text/html`) with the problem+json.
struct DashboardErrorMiddleware: RouterMiddleware {
    typealias Context = APIRequestContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            var response = try await next(request, context)
            DashboardPage.secure(&response.headers)
            return response
        } catch {
            let problem = Problem(error, request: request, logger: context.logger)
            guard DashboardRoutes.wantsHTML(request) else { throw problem }
            var page = DashboardPage(title: problem.title, body: """
                <div class="notice error" role="alert"><p>\(problem.detail)</p>\
                \(problem.field.map { "<p>Field: <code>\($0)</code></p>" as HTML })</div>
                <p><a href="/ui/">Back to the overview</a></p>
                """)
            page.status = problem.status
            var response = page.response(context: context, sections: [])
            for field in problem.headers { response.headers.append(field) }
            return response
        }
    }
}
