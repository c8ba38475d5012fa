import EsteiraCore
import Foundation
import StandIns
import Testing

/// Circuit breakers shared by every processor, with their state in PostgreSQL.
@Suite struct CircuitBreakerTests {
    static let kinds = """
        breakers:
          mailer: { failures: 3, window: 60, coolDown: 10 }
        kinds:
          mail.send: { handler: http, breaker: mailer, backoffBase: 1, backoffCap: 2, maxAttempts: 20 }
        """

    /// A service that fails while `failing` is set.
    final class Switch: @unchecked Sendable {
        private let lock = NSLock()
        private var on = true
        var failing: Bool {
            get { lock.withLock { on } }
            set { lock.withLock { on = newValue } }
        }
    }

    @Test func failuresOpenItJobsWaitWithoutAttemptsAcrossRestartsAndOneProbeClosesIt() async throws {
        try await StandInHTTPServer.withServer { server in
            let service = Switch()
            server.on("POST", "/send") { _ in service.failing ? StandInResponse(status: 500, body: "down") : StandInResponse(status: 200, body: "{}") }
            let stack = try await JobStack(kinds: Self.kinds)
            let api = try await StackAPI(stack: stack)
            let processor = try await stack.startProcessor()
            try await stack.startScheduler()
            let payload = #"{"url": "\#(server.url("/send"))"}"#

            // Three failures open it.
            let first = try await stack.enqueue((0..<3).map { _ in NewJob(kind: "mail.send", payload: payload) }).map(\.id)
            try await eventually("the breaker opens") {
                try await api.call(.get, "/v1/breakers/mailer").json["state"] as? String == "open"
            }
            let requestsWhenOpened = server.requests(path: "/send").count
            // Jobs that need the service now wait, spending no attempt, and the service sees none of them.
            let waiting = try await stack.enqueue((0..<4).map { _ in NewJob(kind: "mail.send", payload: payload) }).map(\.id)
            try await eventually("the new jobs wait for the breaker") {
                try await stack.scalar("""
                    SELECT count(DISTINCT job_id)::int FROM job_events WHERE job_id = ANY($1) AND detail->>'breaker' = 'mailer'
                    """, [waiting], as: Int.self) == waiting.count
            }
            #expect(try await stack.scalar("SELECT max(attempts) FROM jobs WHERE id = ANY($1)", [waiting], as: Int.self) == 0)
            #expect(server.requests(path: "/send").count == requestsWhenOpened)

            // Its state survives a processor restart.
            processor.signal(SIGKILL)
            _ = await processor.waitForExit(timeout: .seconds(5))
            let port = freePort()
            try await stack.startProcessor(environment: ["ESTEIRA_HTTP_PORT": "\(port)"])
            let state = try await api.call(.get, "/v1/breakers")
            let mailer = (state.json["breakers"] as? [[String: Any]])?.first
            #expect(["open", "half_open"].contains(mailer?["state"] as? String ?? ""), "\(state.text)")

            // The service is back: after the cool-down one probe closes it, and everything completes.
            service.failing = false
            try await stack.waitForCount(.completed, 7, among: first + waiting, timeout: .seconds(60))
            let one = try await api.call(.get, "/v1/breakers/mailer")
            #expect(one.json["state"] as? String == "closed", "\(one.text)")
            let states = ((one.json["events"] as? [[String: Any]]) ?? []).compactMap { $0["state"] as? String }
            #expect(states.first == "open" && states.last == "closed" && states.contains("half_open"), "\(states)")
            #expect(try await stack.scalar("SELECT max(attempts) FROM jobs WHERE id = ANY($1)", [waiting], as: Int.self) <= 2)
            let metrics = try await PauseAndCancelTests.metric(#"esteira_breaker_state{breaker="mailer"}"#, port: port)
            #expect(metrics == 0)
        }
    }

    @Test func adminsResetABreakerAndOthersCannot() async throws {
        let stack = try await JobStack(kinds: Self.kinds)
        let api = try await StackAPI(stack: stack)
        try await stack.pool.withConnection { c in
            _ = try CircuitBreakers.record("mailer", policy: stack.catalog.breakers["mailer"]!, failed: true, error: "x", on: c)
            _ = try CircuitBreakers.record("mailer", policy: stack.catalog.breakers["mailer"]!, failed: true, error: "x", on: c)
            let t = try CircuitBreakers.record("mailer", policy: stack.catalog.breakers["mailer"]!, failed: true, error: "boom", on: c)
            #expect(t == CircuitBreakers.Transition(breaker: "mailer", state: .open))
        }
        let open = try await api.call(.get, "/v1/breakers/mailer")
        #expect(open.json["state"] as? String == "open" && open.json["retry_at"] != nil && open.json["last_error"] as? String == "boom", "\(open.text)")
        let user = try await api.userToken()
        let refused = try await api.call(.post, "/v1/breakers/mailer/reset", token: user)
        #expect(refused.status == 403 && refused.field == "token", "\(refused.text)")
        let unknown = try await api.call(.post, "/v1/breakers/nope/reset")
        #expect(unknown.status == 404 && unknown.field == "name", "\(unknown.text)")
        let reset = try await api.call(.post, "/v1/breakers/mailer/reset")
        #expect(reset.status == 200 && reset.json["state"] as? String == "closed" && reset.json["failures"] as? Int == 0, "\(reset.text)")
        let last = (reset.json["events"] as? [[String: Any]])?.last
        #expect((last?["detail"] as? [String: Any])?["reset_by"] != nil, "\(reset.text)")
    }
}
