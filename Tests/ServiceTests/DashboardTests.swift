import EsteiraCore
import Foundation
import HTTPClient
import Testing

/// A browser's view of the dashboard: a session cookie, and the CSRF token of its pages.
final class DashboardClient: @unchecked Sendable {
    let api: StackAPI
    let cookie: String
    let csrf: String

    /// Signs in with `token` (the admin's when nil) through the sign-in form.
    init(api: StackAPI, token: String? = nil) async throws {
        self.api = api
        let r = try await Self.form(api, "/ui/sign-in", ["token": token ?? api.adminToken], cookie: nil)
        #expect(r.status == 303, "sign-in: \(r.status) \(r.text)")
        let set = try #require(r.headers["Set-Cookie"])
        cookie = try #require(set.split(separator: ";").first.map(String.init))
        // Any page carries the token; not the overview, whose first visit a test watches.
        let page = try await api.http.execute(HTTPRequest(url: api.base + "/ui/schedules", headers: ["Cookie": cookie, "Accept": "text/html"]))
        let html = String(decoding: page.body, as: UTF8.self)
        let meta = try #require(html.range(of: #"<meta name="csrf-token" content=""#))
        csrf = String(html[meta.upperBound...].prefix(64))
    }

    static func form(_ api: StackAPI, _ path: String, _ fields: [String: String], cookie: String?,
                     headers: [(String, String)] = []) async throws -> StackAPI.Reply {
        var c = URLComponents()
        c.queryItems = fields.sorted { $0.key < $1.key }.map { URLQueryItem(name: $0.key, value: $0.value) }
        var all = [("Content-Type", "application/x-www-form-urlencoded"), ("Accept", "text/html")] + headers
        if let cookie { all.append(("Cookie", cookie)) }
        let body = (c.percentEncodedQuery ?? "").replacingOccurrences(of: "%20", with: "+")
        let r = try await api.http.execute(HTTPRequest(method: .post, url: api.base + path, headers: HTTPHeaders(all), body: body))
        return StackAPI.Reply(status: r.status, headers: r.headers, body: r.body)
    }

    /// GET as a browser (or, `json`, as a script asking for problem+json errors).
    func get(_ path: String, json: Bool = false) async throws -> StackAPI.Reply {
        let r = try await api.http.execute(HTTPRequest(url: api.base + path, headers: ["Cookie": cookie, "Accept": json ? "application/json" : "text/html"]))
        return StackAPI.Reply(status: r.status, headers: r.headers, body: r.body)
    }

    /// The overview's count of `kind` in `status` once the counts are taken (within 10 s).
    func count(kind: String, status: String) async throws -> String? {
        for _ in 0..<50 {
            let page = try await get("/ui/")
            if !page.text.contains("data-pending"),
               let cell = page.text.range(of: "kind=\(kind)&amp;status=\(status)\" class=\"num\">") {
                return String(page.text[cell.upperBound...].prefix { $0 != "<" })
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        return nil
    }

    /// POST a form with this session's cookie and (unless `csrf` is given) its CSRF token.
    func post(_ path: String, _ fields: [String: String] = [:], csrf: String? = nil, headers: [(String, String)] = []) async throws -> StackAPI.Reply {
        var fields = fields
        fields["csrf"] = csrf ?? self.csrf
        if csrf == "" { fields["csrf"] = nil }
        return try await Self.form(api, path, fields, cookie: cookie, headers: headers)
    }
}

/// The dashboard's server side: sessions, CSRF, scopes, escaping, filters and their errors,
/// the queues page's two sources, schedules, tokens. (Tests/Browser drives it in Chromium.)
@Suite struct DashboardTests {
    static func api(_ stack: JobStack, management: String? = nil) async throws -> StackAPI {
        let url = try management ?? TestServers.variable("ESTEIRA_TEST_AMQP_MGMT_URL")
        return try await StackAPI(stack: stack, environment: ["ESTEIRA_RABBITMQ_MANAGEMENT_URL": url])
    }

    @Test func signInMakesAStrictHttpOnlySessionThatEndsWithItsPrincipal() async throws {
        let stack = try await JobStack()
        let api = try await Self.api(stack)
        // No session: pages go to the sign-in page, remembering where they were.
        let anonymous = try await api.http.execute(HTTPRequest(url: api.base + "/ui/jobs?kind=noop", headers: ["Accept": "text/html"]))
        #expect(anonymous.status == 302 && anonymous.headers["Location"] == "/ui/sign-in?next=/ui/jobs?kind%3Dnoop", "\(anonymous.headers)")
        let wrong = try await DashboardClient.form(api, "/ui/sign-in", ["token": "est_not_a_token_of_anyone"], cookie: nil)
        #expect(wrong.status == 401 && wrong.text.contains("not valid") && wrong.headers["Set-Cookie"] == nil)
        // Only the dashboard's own paths are followed after signing in.
        for (next, location) in [("/ui/jobs", "/ui/jobs"), ("//evil.example/ui", "/ui/"), ("https://evil.example/", "/ui/"), ("/ui\\@x", "/ui/")] {
            let r = try await DashboardClient.form(api, "/ui/sign-in", ["token": api.adminToken, "next": next], cookie: nil)
            #expect(r.status == 303 && r.headers["Location"] == location, "\(next): \(r.headers)")
        }
        // A sign-in posted from anywhere but the dashboard's own page is refused.
        for header in [("Sec-Fetch-Site", "cross-site"), ("Sec-Fetch-Site", "same-site"), ("Origin", "http://evil.example")] {
            let r = try await DashboardClient.form(api, "/ui/sign-in", ["token": api.adminToken], cookie: nil, headers: [header])
            #expect(r.status == 403 && r.headers["Set-Cookie"] == nil, "\(header)")
        }
        let own = try await DashboardClient.form(api, "/ui/sign-in", ["token": api.adminToken], cookie: nil,
                                                 headers: [("Origin", api.base), ("Sec-Fetch-Site", "same-origin")])
        #expect(own.status == 303)
        #expect(try await DashboardClient.form(api, "/ui/sign-in", ["token": api.adminToken], cookie: nil, headers: [("Origin", api.base)]).status == 303)

        let user = try await api.userToken("dash-user")
        let r = try await DashboardClient.form(api, "/ui/sign-in", ["token": user], cookie: nil)
        let set = try #require(r.headers["Set-Cookie"])
        #expect(set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Path=/") && !set.contains(user))
        #expect(!set.contains("Secure"), "plain http on loopback")
        let behindTLS = try await DashboardClient.form(api, "/ui/sign-in", ["token": user], cookie: nil, headers: [("X-Forwarded-Proto", "https")])
        let secureCookie = try #require(behindTLS.headers["Set-Cookie"])
        #expect(secureCookie.hasPrefix("__Host-esteira_session=") && secureCookie.contains("; Secure") && secureCookie.contains("Path=/;"))
        // The __Host- cookie signs the browser in like the plain one.
        let viaTLS = try await api.http.execute(HTTPRequest(url: api.base + "/ui/jobs", headers: [
            "Cookie": String(secureCookie.split(separator: ";")[0]), "Accept": "text/html"]))
        #expect(viaTLS.status == 200)
        // Only a hash of the cookie is stored.
        let cookieValue = String(set.split(separator: ";")[0].split(separator: "=")[1])
        #expect(try await stack.scalar("SELECT count(*)::int FROM dashboard_sessions WHERE encode(id_hash, 'hex') = $1", [cookieValue], as: Int.self) == 0)

        let session = try await DashboardClient(api: api, token: user)
        #expect(try await session.get("/ui/jobs").status == 200)
        // Signing out ends it; a revoked principal's sessions end at once; so does an expired session.
        let other = try await DashboardClient(api: api, token: user)
        let out = try await other.post("/ui/sign-out")
        #expect(out.status == 303 && out.headers["Set-Cookie"]?.contains("Max-Age=0") == true)
        #expect(try await other.get("/ui/jobs").status == 302)
        #expect(try await session.get("/ui/jobs").status == 200)
        let third = try await DashboardClient(api: api, token: user)
        _ = try await stack.scalar("UPDATE dashboard_sessions SET expires_at = now() - interval '1 second' WHERE id_hash = sha256(convert_to($1, 'UTF8')) RETURNING 1",
                                   [String(third.cookie.dropFirst("esteira_session=".count))], as: Int.self)
        #expect(try await third.get("/ui/jobs").status == 302)
        let userID = try #require(try await api.get("/v1/whoami", as: user).json["id"] as? String)
        #expect(try await api.post("/v1/tokens/\(userID)/revoke", "").status == 200)
        #expect(try await session.get("/ui/jobs").status == 302)
        // An action without a session: 401 (a page for browsers, problem+json for scripts).
        let noSession = try await DashboardClient.form(api, "/ui/tokens", ["name": "x"], cookie: nil)
        #expect(noSession.status == 401 && noSession.text.contains("<html"))
    }

    @Test func actionsNeedTheCSRFTokenOfTheirOwnSession() async throws {
        let stack = try await JobStack()
        let api = try await Self.api(stack)
        let a = try await DashboardClient(api: api), b = try await DashboardClient(api: api)
        #expect(a.csrf != b.csrf && a.csrf.count == 64)
        let job = try await api.enqueue(#"{"kind": "noop"}"#)
        let altered = (a.csrf.first == "0" ? "1" : "0") + String(a.csrf.dropFirst())
        for token in ["", altered, b.csrf] {
            let r = try await a.post("/ui/jobs/\(job)/cancel", csrf: token)
            #expect(r.status == 403 && r.text.contains("CSRF"), "csrf '\(token.prefix(6))': \(r.status)")
        }
        #expect(try await stack.job(job).status == .queued)
        // The header a script sends works as well as the form field.
        let r = try await a.post("/ui/jobs/\(job)/cancel", csrf: "", headers: [("X-CSRF-Token", a.csrf)])
        #expect(r.status == 303 && r.headers["Location"] == "/ui/jobs/\(job.uuidString.lowercased())")
        let notice = try #require(r.headers["Set-Cookie"])
        #expect(notice.hasPrefix("esteira_notice=Cancelled") && notice.contains("HttpOnly"), "\(notice)")
        #expect(try await stack.job(job).status == .cancelled)
        // The page shows the notice once (and clears it); a notice in a link is not shown.
        let shown = try await api.http.execute(HTTPRequest(url: api.base + "/ui/jobs/\(job)", headers: [
            "Cookie": "\(a.cookie); \(notice.split(separator: ";")[0])", "Accept": "text/html"]))
        #expect(String(decoding: shown.body, as: UTF8.self).contains("id=\"notice\">Cancelled.<"))
        #expect(shown.headers["Set-Cookie"]?.contains("Max-Age=0") == true)
        #expect(!(try await a.get("/ui/jobs/\(job)?notice=Your+token+leaked")).text.contains("leaked"))
        // Again: the job has finished, a 409 that says so.
        let again = try await a.post("/ui/jobs/\(job)/cancel")
        #expect(again.status == 409 && again.text.contains("only jobs that have not finished"))
    }

    @Test func pagesEscapeWhatJobsCarryAndForbidFraming() async throws {
        let stack = try await JobStack()
        let api = try await Self.api(stack)
        let job = try await api.enqueue(#"{"kind": "noop", "payload": {"name": "<script>alert(1)</script>"}, "idempotency_key": "\"><img src=x onerror=alert(2)>"}"#)
        let page = try await DashboardClient(api: api).get("/ui/jobs/\(job)")
        #expect(page.status == 200)
        #expect(page.text.contains("&lt;script&gt;alert(1)&lt;/script&gt;") && !page.text.contains("<script>alert"))
        #expect(page.text.contains("&quot;&gt;&lt;img src=x") && !page.text.contains("<img src=x"))
        #expect(page.headers["Content-Security-Policy"]?.contains("script-src 'self'") == true)
        #expect(page.headers["X-Frame-Options"] == "DENY" && page.headers["Cache-Control"] == "no-store")
    }

    @Test func badFiltersAnswerA400NamingTheField() async throws {
        let stack = try await JobStack()
        let api = try await Self.api(stack)
        let d = try await DashboardClient(api: api)
        for (path, field) in [("/ui/jobs?status=nope", "status"), ("/ui/jobs?kind=nope", "kind"), ("/ui/jobs?q=customer=1", "q"),
                              ("/ui/jobs?q=payload.a%20b=1", "q"), ("/ui/jobs?cursor=zzz", "cursor"), ("/ui/jobs?created_after=yesterday", "created_after"),
                              ("/ui/dead-letters?error_class=nope", "error_class"), ("/ui/dead-letters?kind=NOT%20A%20KIND", "kind"),
                              ("/ui/dead-letters?cursor=-1", "cursor"), ("/ui/jobs/nope", "id"), ("/ui/schedules/nope/edit", "id")] {
            let r = try await d.get(path, json: true)
            #expect(r.status == 400 && r.field == field && r.headers["Content-Type"] == "application/problem+json", "\(path): \(r.status) \(r.text)")
            let page = try await d.get(path)
            #expect(page.status == 400 && page.text.contains("<code>\(field)</code>"), "\(path) as a page")
        }
        #expect(try await d.get("/ui/jobs/\(UUID())", json: true).status == 404)
        #expect(try await d.get("/ui/schedules/\(UUID())/edit", json: true).status == 404)
        for (fields, field) in [([String: String](), "job_id"), (["job_id": "nope"], "job_id")] {
            let r = try await d.post("/ui/dead-letters/requeue", fields)
            #expect(r.status == 400 && r.text.contains("<code>\(field)</code>"))
        }
        #expect(try await d.post("/ui/dead-letters/requeue-matching", ["error_class": "nope"]).status == 400)
        #expect(try await d.post("/ui/queues/nope/pause").status == 404)
        #expect(try await d.post("/ui/lead-migrations/\(UUID())/cancel").status == 404)
    }

    @Test func aPayloadSearchFindsJobsByAField() async throws {
        let stack = try await JobStack()
        let api = try await Self.api(stack)
        var ids: [UUID] = []
        for (i, name) in ["Ana Maria", "Bea", "Ana"].enumerated() {
            ids.append(try await api.enqueue(#"{"kind": "noop", "payload": {"customer": {"id": \#(i), "name": "\#(name)"}}}"#))
        }
        let d = try await DashboardClient(api: api)
        func shown(_ query: String) async throws -> [Bool] {
            let page = try await d.get("/ui/jobs?q=" + query)
            #expect(page.status == 200, "\(query): \(page.text)")
            return ids.map { page.text.contains($0.shortText) }
        }
        #expect(try await shown("payload.customer.id%3D1") == [false, true, false])
        #expect(try await shown("payload.customer.name%3DAna+Maria") == [true, false, false])
        #expect(try await shown("payload.customer.name%3DAna") == [false, false, true])
        #expect(try await shown("payload.customer.name%3Dnobody") == [false, false, false])
    }

    @Test func usersSeeAndActOnTheirOwnOnly() async throws {
        let stack = try await JobStack()
        let api = try await Self.api(stack)
        let user = try await api.userToken("dash-own")
        let admins = try await api.enqueue(#"{"kind": "noop", "payload": {"who": "admin-secret"}}"#)
        _ = try await api.enqueue(#"{"kind": "noop"}"#)
        let own = try await api.enqueue(#"{"kind": "noop", "payload": {"who": "user"}}"#, as: user)
        let d = try await DashboardClient(api: api, token: user)
        let list = try await d.get("/ui/jobs")
        #expect(list.text.contains(own.shortText) && !list.text.contains(admins.shortText))
        #expect(!list.text.contains("/ui/tokens") && !list.text.contains("/ui/queues"), "admin sections not shown")
        let page = try await d.get("/ui/jobs/\(admins)")
        #expect(page.status == 404 && !page.text.contains("admin-secret"))
        #expect(try await d.post("/ui/jobs/\(admins)/cancel").status == 404)
        #expect(try await stack.job(admins).status == .queued)
        #expect(try await d.post("/ui/jobs/\(admins)/retry").status == 409)
        for path in ["/ui/tokens", "/ui/queues"] { #expect(try await d.get(path).status == 403, "\(path)") }
        #expect(try await d.post("/ui/tokens", ["name": "sneaky"]).status == 403)
        #expect(try await d.post("/ui/queues/noop/pause").status == 403)
        // The overview counts the caller's jobs: 1 queued for the user, 3 for the admin.
        #expect(try await d.count(kind: "noop", status: "queued") == "1")
        let admin = try await DashboardClient(api: api)
        #expect(try await admin.count(kind: "noop", status: "queued") == "3")
        // The user's charts are not there (they count everyone's jobs).
        let userOverview = try await d.get("/ui/"), adminOverview = try await admin.get("/ui/")
        #expect(!userOverview.text.contains("<svg") && adminOverview.text.contains("<svg"))
    }

    @Test func overviewCountsAreTakenInTheBackgroundAndKeptFresh() async throws {
        let stack = try await JobStack()
        let api = try await Self.api(stack)
        func insertDead(_ n: Int) async throws {
            _ = try await stack.scalar("""
                WITH i AS (INSERT INTO jobs (id, kind, status, payload, max_attempts, finished_at)
                           SELECT gen_random_uuid(), 'noop', 'dead', '{}', 1, now() FROM generate_series(1, $1::int) RETURNING 1)
                SELECT count(*)::int FROM i
                """, [n], as: Int.self)
        }
        try await insertDead(10_001)
        let d = try await DashboardClient(api: api)
        // The first visit does not wait for the count: it says it is counting.
        let first = try await d.get("/ui/")
        #expect(first.status == 200 && first.text.contains("data-pending"))
        #expect(try await d.count(kind: "noop", status: "dead") == "10,001")
        // Counted again in the background while the page is looked at.
        try await insertDead(5)
        let deadline = ContinuousClock.now + .seconds(30)
        var seen = ""
        while ContinuousClock.now < deadline {
            seen = try await d.count(kind: "noop", status: "dead") ?? ""
            if seen == "10,006" { break }
            try await Task.sleep(for: .milliseconds(500))
        }
        #expect(seen == "10,006")
        #expect(try await d.get("/ui/").text.contains("Counted at"))
    }

    @Test func queuesComeFromTheBrokerOrElsePostgreSQL() async throws {
        let stack = try await JobStack()
        for _ in 0..<2 { _ = try await stack.enqueue([NewJob(kind: "noop", payload: "{}")]) }
        // The broker's figures: the two messages wait in the work queue (no processor runs).
        let api = try await Self.api(stack)
        let d = try await DashboardClient(api: api)
        var page = try await d.get("/ui/queues")
        for _ in 0..<50 where !page.text.contains("<td>2</td>") {
            try await Task.sleep(for: .milliseconds(200))
            page = try await d.get("/ui/queues")
        }
        #expect(page.text.contains("from RabbitMQ&#39;s management API") && page.text.contains("<code>esteira.work.noop</code>"),
                "\(page.text.components(separatedBy: "id=\"queues\"").last?.prefix(600) ?? "")")
        #expect(page.text.contains("<td>2</td>"), "ready messages from the broker")
        // Pause and resume from the page.
        #expect(try await d.post("/ui/queues/noop/pause").status == 303)
        #expect(try await stack.scalar("SELECT count(*)::int FROM paused_kinds WHERE kind = 'noop'", as: Int.self) == 1)
        #expect(try await d.get("/ui/queues").text.contains("paused"))
        #expect(try await d.post("/ui/queues/noop/resume").status == 303)
        #expect(try await stack.scalar("SELECT count(*)::int FROM paused_kinds", as: Int.self) == 0)
        // Management API gone: PostgreSQL's count of queued jobs, and it says so.
        let closed = try await Self.api(stack, management: "http://guest:guest@127.0.0.1:\(freePort())")
        let fallbackClient = try await DashboardClient(api: closed)
        var fallback = try await fallbackClient.get("/ui/queues")
        for _ in 0..<50 where fallback.text.contains("data-pending") {
            try await Task.sleep(for: .milliseconds(200))
            fallback = try await fallbackClient.get("/ui/queues")
        }
        #expect(fallback.status == 200 && fallback.text.contains("not reachable") && fallback.text.contains("<td>2</td>"))
    }

    @Test func schedulesAreMadeAndChangedFromForms() async throws {
        let stack = try await JobStack()
        let api = try await Self.api(stack)
        let d = try await DashboardClient(api: api)
        let preview = try await d.get("/ui/schedules/preview?cron=0+9+*+*+1&time_zone=Europe/Lisbon")
        #expect(preview.text.components(separatedBy: "<li>").count == 6 && preview.text.components(separatedBy: " 09:00:00").count == 6, "\(preview.text)")
        #expect(try await d.get("/ui/schedules/preview?cron=0+25+*+*+*").text.contains("cron-error"))
        #expect(try await d.get("/ui/schedules/preview?cron=0+9+*+*+*&time_zone=Mars/Base").text.contains("unknown time zone"))
        let fields = ["name": "daily", "cron": "0 9 * * *", "time_zone": "Europe/Lisbon", "kind": "noop", "payload": #"{"a": 1}"#, "enabled": "1"]
        for (change, field) in [(["payload": "[1]"], "payload"), (["payload": "{"], "payload"), (["name": ""], "name"),
                                (["cron": "nope"], "cron"), (["kind": "lead-migration.plan"], "kind"), (["time_zone": "Mars/Base"], "time_zone")] {
            let r = try await d.post("/ui/schedules", fields.merging(change) { $1 })
            #expect((400...422).contains(r.status) && r.text.contains("<code>\(field)</code>"), "\(change): \(r.status)")
        }
        #expect(try await d.post("/ui/schedules", fields).status == 303)
        #expect(try await d.post("/ui/schedules", fields).status == 409, "the name is taken")
        let id = try #require(UUID(uuidString: try await stack.scalar("SELECT id::text FROM schedules WHERE name = 'daily'", as: String.self)))
        #expect(try await d.post("/ui/schedules/\(id)/toggle").status == 303)
        #expect(try await stack.scalar("SELECT enabled FROM schedules WHERE id = $1", [id], as: Bool.self) == false)
        // Editing: an unticked box disables; a new expression takes effect.
        #expect(try await d.post("/ui/schedules/\(id)", fields.merging(["cron": "*/5 * * * *", "enabled": ""]) { $1 }).status == 303)
        #expect(try await stack.scalar("SELECT cron || ' ' || enabled::text FROM schedules WHERE id = $1", [id], as: String.self) == "*/5 * * * * false")
        #expect(try await d.get("/ui/schedules/\(id)/edit").text.contains("*/5 * * * *"))
        // Another user's schedule is not found; its owner deletes it.
        let user = try await DashboardClient(api: api, token: try await api.userToken("sched-user"))
        #expect(try await user.get("/ui/schedules/\(id)/edit").status == 404)
        #expect(try await user.post("/ui/schedules/\(id)/delete").status == 404)
        #expect(try await d.post("/ui/schedules/\(id)/delete").status == 303)
        #expect(try await stack.scalar("SELECT count(*)::int FROM schedules", as: Int.self) == 0)
    }

    @Test func tokensAreCreatedOnceAndRevokedFromThePage() async throws {
        let stack = try await JobStack()
        let api = try await Self.api(stack)
        let d = try await DashboardClient(api: api)
        let created = try await d.post("/ui/tokens", ["name": "billing", "role": "user", "expires_in_days": "30"])
        #expect(created.status == 201)
        let start = try #require(created.text.range(of: "<code id=\"new-token\">"))
        let token = String(created.text[start.upperBound...].prefix { $0 != "<" })
        #expect(try await api.get("/v1/whoami", as: token).json["name"] as? String == "billing")
        #expect(!(try await d.get("/ui/tokens")).text.contains(token), "shown once")
        #expect(try await d.post("/ui/tokens", ["name": "billing"]).status == 409)
        #expect(try await d.post("/ui/tokens", ["name": "x", "role": "root"]).status == 400)
        #expect(try await d.post("/ui/tokens", ["name": "x", "expires_in_days": "0"]).status == 400)
        let id = try #require(try await api.get("/v1/whoami", as: token).json["id"] as? String)
        #expect(try await d.post("/ui/tokens/\(id)/revoke").status == 303)
        #expect(try await api.get("/v1/whoami", as: token).status == 401)
        #expect(try await d.post("/ui/tokens/\(UUID())/revoke").status == 404)
    }

    @Test func theLiveStreamIsTheSessionsScopeAndResumesAfterTheLastEventSeen() async throws {
        let stack = try await JobStack()
        let api = try await Self.api(stack)
        let userToken = try await api.userToken("live-user")
        let user = try await DashboardClient(api: api, token: userToken)
        let first = try await api.enqueue(#"{"kind": "noop"}"#, as: userToken)
        let mark = try await stack.scalar("SELECT max(id) FROM job_events", as: Int64.self)
        let admins = try await api.enqueue(#"{"kind": "noop"}"#)
        let second = try await api.enqueue(#"{"kind": "noop"}"#, as: userToken)
        // Resumed after `mark` (the page's own mark, or the browser's Last-Event-ID): the
        // user's second job only, not their first (before it) nor the admin's.
        for (query, header) in [("?last_event_id=\(mark)", nil), ("", mark)] as [(String, Int64?)] {
            let stream = try EventStreamClient(url: api.base + "/ui/events" + query, token: "", lastEventID: header, cookie: user.cookie)
            defer { stream.close() }
            let events = try await stream.waitFor { $0.contains { ($0.data["job_id"] as? String)?.lowercased() == second.uuidString.lowercased() } }
            let jobs = Set(events.compactMap { ($0.data["job_id"] as? String)?.lowercased() })
            #expect(!jobs.contains(first.uuidString.lowercased()) && !jobs.contains(admins.uuidString.lowercased()), "\(jobs)")
            #expect(events.allSatisfy { $0.id > mark })
        }
        // Without a session: not a stream.
        let anonymous = try await api.http.execute(HTTPRequest(url: api.base + "/ui/events", headers: ["Accept": "text/event-stream"]))
        #expect(anonymous.status == 302)
    }

    @Test func theRootSendsBrowsersToTheDashboardAndScriptsToTheIndex() async throws {
        let stack = try await JobStack()
        let api = try await Self.api(stack)
        let browser = try await api.http.execute(HTTPRequest(url: api.base + "/", headers: ["Accept": "text/html,application/xhtml+xml"]))
        #expect(browser.status == 302 && browser.headers["Location"] == "/ui/")
        let script = try await api.call(.get, "/", anonymous: true, headers: [("Accept", "application/json")])
        #expect(script.status == 200 && (script.json["links"] as? [String: Any])?["jobs"] as? String == "/v1/jobs")
        let assets = try await api.http.execute(HTTPRequest(url: api.base + "/ui/assets/app.js"))
        #expect(assets.status == 200 && assets.headers["Content-Type"]?.hasPrefix("text/javascript") == true)
    }
}
