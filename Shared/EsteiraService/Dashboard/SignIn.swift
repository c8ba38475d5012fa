import EsteiraCore
import Foundation
import HTTPTypes
import Hummingbird

/// `/ui/sign-in`: a token pasted into a form becomes an HttpOnly, SameSite=Strict session
/// cookie. The token itself is never stored in the browser.
struct SignIn {
    let sessions: DashboardSessions
    let principals: PrincipalStore

    func addRoutes(to ui: RouterGroup<APIRequestContext>) {
        ui.get("/sign-in") { request, context in
            let q = QueryInput(pageQuery: request)
            let notice = q.has("signed_out") ? "Signed out." : nil
            return Self.form(next: try? q.string("next", maxLength: 2000), notice: notice, error: nil, context: context)
        }
        ui.post("/sign-in", use: signIn)
    }

    @Sendable func signIn(_ request: Request, context: APIRequestContext) async throws -> Response {
        // Only the dashboard's own sign-in page may sign a browser in: a form on another site
        // (or a sibling subdomain) must not sign it in to someone else's session.
        guard Self.fromOwnPage(request) else {
            throw Problem(.forbidden, detail: "sign in from the dashboard's own page", field: "token")
        }
        let form = try await DashboardRoutes.form(request)
        let next = Self.safeNext(try? form.string("next", maxLength: 2000))
        guard let token = try? form.string("token", maxLength: 512),
              let principal = try await principals.authenticate(token: token.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            var response = Self.form(next: next, notice: nil, error: "That token is not valid, was revoked or has expired.", context: context)
            response.status = .unauthorized
            return response
        }
        let (cookie, _) = try await sessions.create(for: principal)
        context.logger.info("dashboard sign-in", metadata: ["principal": "\(principal.name)"])
        var response = Response(status: .seeOther, headers: [.location: next])
        let tls = request.headers[HTTPField.Name("X-Forwarded-Proto")!] == "https"
        let name = tls ? DashboardRoutes.secureCookieName : DashboardRoutes.cookieName
        response.headers[values: .setCookie] = [
            "\(name)=\(cookie); Path=/; HttpOnly; SameSite=Strict; Max-Age=\(Int(sessions.lifetime))\(tls ? "; Secure" : "")"
        ]
        return response
    }

    /// Whether a browser says the request comes from this origin: `Sec-Fetch-Site` is
    /// `same-origin` or `none` (typed in); without it, an `Origin` is this host's. A client
    /// that sends neither (not a browser) is not refused.
    static func fromOwnPage(_ request: Request) -> Bool {
        if let site = request.headers[HTTPField.Name("Sec-Fetch-Site")!] { return site == "same-origin" || site == "none" }
        guard let origin = request.headers[HTTPField.Name("Origin")!] else { return true }
        guard let host = request.head.authority else { return false }
        return origin == "http://" + host || origin == "https://" + host
    }

    /// Only a path of the dashboard itself (never another site: `//host`, `/\host`).
    static func safeNext(_ next: String?) -> String {
        guard let next, next.hasPrefix("/ui"), !next.hasPrefix("//"), !next.contains("\\"),
              !next.unicodeScalars.contains(where: { $0.value < 0x20 }) else { return "/ui/" }
        return next
    }

    static func form(next: String?, notice: String?, error: String?, context: APIRequestContext) -> Response {
        let body: HTML = """
            \(notice.map { "<div class=\"notice\" role=\"status\">\($0)</div>" as HTML })
            \(error.map { "<div class=\"notice error\" role=\"alert\" id=\"sign-in-error\">\($0)</div>" as HTML })
            <form method="post" action="/ui/sign-in" class="card sign-in">
              <input type="hidden" name="next" value="\(safeNext(next))">
              <label for="token">API token</label>
              <input id="token" name="token" type="password" autocomplete="off" required minlength="16" maxlength="512"
                     placeholder="est_…" autofocus>
              <p class="hint">Paste a token the api gave you (an admin creates them on the Tokens page or with
              <code>POST /v1/tokens</code>; the first admin's is <code>ESTEIRA_ADMIN_TOKEN</code>). The browser keeps
              a session cookie for 12 hours, never the token.</p>
              <button type="submit">Sign in</button>
            </form>
            """
        return DashboardPage(title: "Sign in", body: body).response(context: context, sections: [])
    }
}
