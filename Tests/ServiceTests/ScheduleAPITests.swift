import EsteiraCore
import Foundation
import HTTPClient
import StandIns
import Testing

/// `/v1/schedules` and `/v1/metrics/queues` through the api, with a real scheduler and
/// processor behind them.
@Suite struct ScheduleAPITests {
    @Test func schedulesAreCreatedListedChangedAndDeletedAndTheirTicksRun() async throws {
        let stack = try await JobStack()
        let api = try await StackAPI(stack: stack)
        try await stack.startProcessor(arguments: ["--no-relay"])
        try await stack.startScheduler(arguments: ["--tick-interval", "0.1", "--leader-interval", "0.5"])
        let alice = try await api.userToken("alice")

        let created = try await api.post("/v1/schedules", #"""
            {"name": "heartbeat", "cron": "*/2 * * * * *", "time_zone": "Europe/Lisbon", "kind": "noop", "payload": {"ping": true}}
            """#, as: alice)
        #expect(created.status == 201, "\(created.text)")
        let id = try #require(created.json["id"] as? String)
        #expect(created.headers["location"] == "/v1/schedules/\(id.lowercased())")
        #expect(created.json["enabled"] as? Bool == true)
        #expect(created.json["time_zone"] as? String == "Europe/Lisbon")
        #expect(created.json["next_run_at"] is String)

        // Its ticks become alice's jobs, with the payload.
        try await eventually("two ticks ran") {
            let jobs = try await api.get("/v1/jobs?kind=noop&status=completed", as: alice).json["jobs"] as? [[String: Any]] ?? []
            return jobs.count >= 2
        }
        let jobs = try await api.get("/v1/jobs?kind=noop", as: alice).json["jobs"] as? [[String: Any]] ?? []
        #expect(jobs.allSatisfy { ($0["payload"] as? [String: Any])?["ping"] as? Bool == true })
        let shown = try await api.get("/v1/schedules/\(id)", as: alice)
        #expect(shown.json["last_job_id"] is String)
        #expect(shown.json["last_run_at"] is String)

        // Listing: alice sees hers; bob sees none and cannot name hers; the admin sees all.
        let bob = try await api.userToken("bob")
        #expect((try await api.get("/v1/schedules", as: alice).json["schedules"] as? [Any])?.count == 1)
        #expect((try await api.get("/v1/schedules", as: bob).json["schedules"] as? [Any])?.isEmpty == true)
        #expect(try await api.get("/v1/schedules/\(id)", as: bob).status == 404)
        #expect(try await api.call(.patch, "/v1/schedules/\(id)", token: bob, body: #"{"enabled": false}"#).status == 404)
        #expect(try await api.call(.delete, "/v1/schedules/\(id)", token: bob).status == 404)
        #expect((try await api.get("/v1/schedules?kind=noop").json["schedules"] as? [Any])?.count == 1)

        // Disabled: no next tick, and no more jobs.
        let disabled = try await api.call(.patch, "/v1/schedules/\(id)", token: alice, body: #"{"enabled": false}"#)
        #expect(disabled.status == 200, "\(disabled.text)")
        #expect(disabled.json["enabled"] as? Bool == false)
        #expect(disabled.json["next_run_at"] == nil)
        try await Task.sleep(for: .milliseconds(300))
        let count = try await stack.scalar("SELECT count(*) FROM jobs", as: Int.self)
        try await Task.sleep(for: .seconds(3))
        #expect(try await stack.scalar("SELECT count(*) FROM jobs", as: Int.self) == count)

        // A new expression and enabling again: the next tick after now.
        let changed = try await api.call(.patch, "/v1/schedules/\(id)", token: alice, body: #"{"cron": "0 9 * * mon", "enabled": true}"#)
        #expect(changed.status == 200)
        #expect(changed.json["cron"] as? String == "0 9 * * mon")
        let next = try #require(changed.json["next_run_at"] as? String)
        #expect(next.hasSuffix("Z"))

        #expect(try await api.call(.delete, "/v1/schedules/\(id)", token: alice).status == 204)
        #expect(try await api.get("/v1/schedules/\(id)", as: alice).status == 404)
        #expect(try await api.call(.delete, "/v1/schedules/\(id)", token: alice).status == 404)
        // The jobs it enqueued stay.
        #expect(try await stack.scalar("SELECT count(*) FROM jobs", as: Int.self) == count)
    }

    @Test func badSchedulesGetAProblemNamingTheField() async throws {
        let stack = try await JobStack()
        let api = try await StackAPI(stack: stack)
        let ok = try await api.post("/v1/schedules", #"{"name": "taken", "cron": "@daily", "kind": "noop"}"#)
        #expect(ok.status == 201)
        let id = try #require(ok.json["id"] as? String)
        let cases: [(method: HTTPMethod, path: String, body: String, status: Int, field: String, says: String)] = [
            (.post, "/v1/schedules", #"{"name": "a", "cron": "61 * * * *", "kind": "noop"}"#, 422, "cron", "minute: '61'"),
            (.post, "/v1/schedules", #"{"name": "a", "cron": "* * *", "kind": "noop"}"#, 422, "cron", "expected 5 fields"),
            (.post, "/v1/schedules", #"{"name": "a", "cron": "0 0 30 2 *", "kind": "noop"}"#, 422, "cron", "never fires"),
            (.post, "/v1/schedules", #"{"name": "a", "cron": "@daily", "kind": "no-such-kind"}"#, 422, "kind", "unknown kind"),
            (.post, "/v1/schedules", #"{"name": "a", "cron": "@daily", "kind": "noop", "time_zone": "Mars/Olympus"}"#, 422, "time_zone", "unknown time zone"),
            (.post, "/v1/schedules", #"{"name": "a", "kind": "noop"}"#, 400, "cron", "is required"),
            (.post, "/v1/schedules", #"{"cron": "@daily", "kind": "noop"}"#, 400, "name", "is required"),
            (.post, "/v1/schedules", #"{"name": "a", "cron": "@daily"}"#, 400, "kind", "is required"),
            (.post, "/v1/schedules", #"{"name": "a", "cron": "@daily", "kind": "noop", "enabled": "yes"}"#, 400, "enabled", "true or false"),
            (.post, "/v1/schedules", #"{"name": "a", "cron": 5, "kind": "noop"}"#, 400, "cron", "must be a string"),
            (.post, "/v1/schedules", #"{"name": "a", "cron": "@daily", "kind": "noop", "every": 5}"#, 400, "every", "unknown field"),
            (.post, "/v1/schedules", #"{"name": "a", "#, 400, "body", ""),
            (.post, "/v1/schedules", #"{"name": "taken", "cron": "@hourly", "kind": "noop"}"#, 409, "name", "exists"),
            (.patch, "/v1/schedules/\(id)", #"{"cron": "every day"}"#, 422, "cron", "invalid cron expression"),
            (.patch, "/v1/schedules/\(id)", #"{}"#, 400, "body", "nothing to change"),
            (.patch, "/v1/schedules/not-a-uuid", #"{"enabled": true}"#, 400, "id", "not a schedule id"),
            (.patch, "/v1/schedules/\(UUID())", #"{"enabled": true}"#, 404, "id", "no schedule"),
        ]
        for c in cases {
            let r = try await api.call(c.method, c.path, body: c.body)
            #expect(r.status == c.status, "\(c.method) \(c.body): \(r.status) \(r.text)")
            #expect(r.field == c.field, "\(c.body): \(r.text)")
            #expect(r.headers["content-type"]?.hasPrefix("application/problem+json") == true)
            if !c.says.isEmpty { #expect((r.json["detail"] as? String)?.contains(c.says) == true, "\(c.body): \(r.text)") }
        }
        // Nothing half-written: the one good schedule, unchanged.
        #expect(try await stack.scalar("SELECT count(*) FROM schedules", as: Int.self) == 1)
        #expect(try await stack.scalar("SELECT cron FROM schedules", as: String.self) == "@daily")
    }

    @Test func queueMetricsRollUpPerKindPerMinute() async throws {
        try await StandInHTTPServer.withServer { server in
            // A transient failure (retried), then a permanent one (dead).
            server.on("POST", "/hook", sequence: [StandInResponse(status: 503), StandInResponse(status: 400, body: "no")])
            let stack = try await JobStack(kinds: "kinds:\n  http: { maxAttempts: 2 }\n")
            let api = try await StackAPI(stack: stack)
            try await stack.startProcessor()
            try await stack.startScheduler(arguments: ["--rollup-interval", "0.5", "--leader-interval", "0.5"])
            let noops = try await stack.enqueue((0..<6).map { _ in NewJob(kind: "noop", payload: #"{"sleep_ms": 50}"#) }).map(\.id)
            let failing = try await stack.enqueue([NewJob(kind: "http", payload: #"{"url": "\#(server.url("/hook"))"}"#)])[0].id
            try await stack.waitForCount(.completed, 6, among: noops)
            try await stack.waitFor(failing, .dead)
            func totals(_ kind: String) async throws -> [String: Double] {
                let r = try await api.get("/v1/metrics/queues?kind=\(kind)&from=\(APIDatesForTests.now(-600))")
                #expect(r.status == 200, "\(r.text)")
                let minutes = r.json["minutes"] as? [[String: Any]] ?? []
                var t: [String: Double] = [:]
                for m in minutes {
                    #expect(m["kind"] as? String == kind)
                    for (k, v) in m { if let n = v as? Double { t[k, default: 0] += n } }
                }
                return t
            }
            try await eventually("the roll-up counts the noop jobs") { try await totals("noop")["completed"] == 6 }
            let noop = try await totals("noop")
            #expect(noop["enqueued"] == 6)
            #expect(noop["started"] == 6)
            #expect(noop["failed"] == 0)
            #expect((noop["run_p50"] ?? 0) >= 0.04, "noop jobs sleep 50 ms: \(noop)")
            #expect(noop["wait_p99"] != nil)
            try await eventually("the roll-up counts the dead http job") { try await totals("http")["dead"] == 1 }
            let http = try await totals("http")
            #expect(http["started"] == 2)
            #expect(http["failed"] == 2)
            #expect(http["retried"] == 1)
            #expect(http["completed"] == 0)

            // Bad input, and users may not read every principal's figures.
            let bad = try await api.get("/v1/metrics/queues?from=yesterday")
            #expect(bad.status == 400)
            #expect(bad.field == "from")
            let backwards = try await api.get("/v1/metrics/queues?from=\(APIDatesForTests.now(0))&to=\(APIDatesForTests.now(-60))")
            #expect(backwards.status == 400)
            #expect(backwards.field == "from")
            let user = try await api.userToken()
            #expect(try await api.get("/v1/metrics/queues", as: user).status == 403)
        }
    }
}

enum APIDatesForTests {
    /// Now plus `seconds`, as RFC 3339 in UTC.
    static func now(_ seconds: Double) -> String {
        ISO8601DateFormatter().string(from: Date().addingTimeInterval(seconds))
    }
}
