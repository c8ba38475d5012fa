import EsteiraCore
import Foundation
import HTTPClient
import StandIns
import Testing

/// The api against real servers: jobs through HTTP, processed by a real processor.
@Suite struct APITests {
    @Test func enqueuedJobCompletesAndShowsItsAttemptsAndHistory() async throws {
        let stack = try await JobStack()
        let api = try await StackAPI(stack: stack)
        try await stack.startProcessor()
        let id = try await api.enqueue(#"{"kind": "noop", "payload": {"sleep_ms": 5, "n": 1}}"#)
        try await stack.waitFor(id, .completed)
        let r = try await api.get("/v1/jobs/\(id)")
        #expect(r.status == 200)
        let job = r.json
        #expect(job["status"] as? String == "completed")
        #expect((job["payload"] as? [String: Any])?["n"] as? Int == 1)
        let events = try #require(job["events"] as? [[String: Any]])
        #expect(events.map { $0["status"] as? String } == ["queued", "running", "completed"])
        let attempts = try #require(job["attempt_history"] as? [[String: Any]])
        #expect(attempts.count == 1)
        #expect(attempts.first?["outcome"] as? String == "completed")
        #expect(attempts.first?["attempt"] as? Int == 1)
    }

    @Test func theSameIdempotencyKeyReturnsTheSameJob() async throws {
        let stack = try await JobStack()
        let api = try await StackAPI(stack: stack)
        let body = #"{"kind": "noop", "idempotency_key": "order-42"}"#
        let first = try await api.post("/v1/jobs", body)
        let second = try await api.post("/v1/jobs", body)
        #expect(first.status == 201)
        #expect(second.status == 200)
        #expect(first.json["id"] as? String == second.json["id"] as? String)
        #expect(second.json["created"] as? Bool == false)
        #expect(try await stack.scalar("SELECT count(*) FROM jobs", as: Int.self) == 1)
    }

    /// Keys belong to their owner: another user's same key makes a job of its own and learns
    /// nothing of the first; the same owner's key with a different payload is a 409.
    @Test func idempotencyKeysArePerOwnerAndBoundToTheirRequest() async throws {
        let stack = try await JobStack()
        let api = try await StackAPI(stack: stack)
        let alice = try await api.userToken("alice"), bob = try await api.userToken("bob")
        let body = #"{"kind": "noop", "idempotency_key": "order-42", "payload": {"secret": "alice's"}}"#
        let first = try await api.call(.post, "/v1/jobs", token: alice, body: body)
        #expect(first.status == 201)
        let other = try await api.call(.post, "/v1/jobs", token: bob, body: #"{"kind": "noop", "idempotency_key": "order-42"}"#)
        #expect(other.status == 201, "\(other.text)")
        #expect(other.json["id"] as? String != first.json["id"] as? String)
        #expect(!other.text.contains("alice's"))
        let again = try await api.call(.post, "/v1/jobs", token: alice, body: body)
        #expect(again.status == 200 && again.json["id"] as? String == first.json["id"] as? String)
        let changed = try await api.call(.post, "/v1/jobs", token: alice, body: #"{"kind": "noop", "idempotency_key": "order-42", "payload": {"secret": "other"}}"#)
        #expect(changed.status == 409, "\(changed.text)")
        #expect(changed.field == "idempotency_key")
        let batch = try await api.call(.post, "/v1/jobs", token: alice, body: #"{"jobs": [{"kind": "noop"}, {"kind": "noop", "idempotency_key": "order-42"}]}"#)
        #expect(batch.status == 409 && batch.field == "jobs[1].idempotency_key", "\(batch.text)")
        #expect(try await stack.scalar("SELECT count(*) FROM jobs", as: Int.self) == 2)
    }

    @Test func aBatchIsEnqueuedInOneCall() async throws {
        let stack = try await JobStack()
        let api = try await StackAPI(stack: stack)
        let jobs = (0..<500).map { #"{"kind": "noop", "payload": {"i": \#($0)}}"# }.joined(separator: ",")
        let r = try await api.post("/v1/jobs", #"{"jobs": [\#(jobs)]}"#)
        #expect(r.status == 201)
        let listed = try #require(r.json["jobs"] as? [[String: Any]])
        #expect(listed.count == 500)
        #expect(Set(listed.compactMap { $0["id"] as? String }).count == 500)
        // All 500 published (the broker confirmed them): no outbox row left.
        #expect(try await stack.scalar("SELECT count(*) FROM jobs", as: Int.self) == 500)
        #expect(try await stack.scalar("SELECT count(*) FROM job_outbox", as: Int.self) == 0)
    }

    /// Every bad input gets a 4xx problem naming the field, and writes nothing.
    @Test func badInputGetsAProblemNamingTheField() async throws {
        let stack = try await JobStack()
        let api = try await StackAPI(stack: stack, environment: ["ESTEIRA_API_MAX_PAYLOAD_BYTES": "2048"])
        let big = String(repeating: "x", count: 3000)
        let cases: [(method: HTTPMethod, path: String, body: String?, status: Int, field: String)] = [
            (.post, "/v1/jobs", #"{"kind": "noop", "payload": {"#, 400, "body"),
            (.post, "/v1/jobs", "", 400, "body"),
            (.post, "/v1/jobs", #"[1, 2]"#, 400, "body"),
            (.post, "/v1/jobs", #"{"payload": {}}"#, 400, "kind"),
            (.post, "/v1/jobs", #"{"kind": "no-such-kind"}"#, 422, "kind"),
            (.post, "/v1/jobs", #"{"kind": "noop", "payload": {"blob": "\#(big)"}}"#, 413, "payload"),
            (.post, "/v1/jobs", #"{"kind": "noop", "priority": 10}"#, 400, "priority"),
            (.post, "/v1/jobs", #"{"kind": "noop", "priority": true}"#, 400, "priority"),
            (.post, "/v1/jobs", #"{"kind": "noop", "priority": 5}"#, 422, "priority"),
            (.post, "/v1/jobs", #"{"jobs": [{"kind": "noop", "priority": 0}, {"kind": "http", "priority": 1}]}"#, 422, "jobs[1].priority"),
            (.post, "/v1/jobs", #"{"kind": "noop", "run_after": "tomorrow"}"#, 400, "run_after"),
            (.post, "/v1/jobs", #"{"kind": "noop", "colour": "red"}"#, 400, "colour"),
            (.post, "/v1/jobs", #"{"jobs": [{"kind": "noop"}, {"kind": "noop", "max_attempts": 0}]}"#, 400, "jobs[1].max_attempts"),
            (.post, "/v1/jobs", #"{"jobs": [{"kind": "noop"}, {"kind": "nope"}]}"#, 422, "jobs[1].kind"),
            (.post, "/v1/jobs", #"{"jobs": []}"#, 400, "jobs"),
            (.post, "/v1/jobs", #"{"jobs": [7]}"#, 400, "jobs[0]"),
            (.get, "/v1/jobs/not-a-uuid", nil, 400, "id"),
            (.post, "/v1/jobs/42/cancel", nil, 400, "id"),
            (.get, "/v1/jobs/\(UUID())", nil, 404, "id"),
            (.get, "/v1/jobs?status=done", nil, 400, "status"),
            (.get, "/v1/jobs?kind=nope", nil, 400, "kind"),
            (.get, "/v1/jobs?created_after=yesterday", nil, 400, "created_after"),
            (.get, "/v1/jobs?created_after=2026-01-02T00:00:00Z&created_before=2026-01-01T00:00:00Z", nil, 400, "created_before"),
            (.get, "/v1/jobs?limit=0", nil, 400, "limit"),
            (.get, "/v1/jobs?cursor=bm90LWEtY3Vyc29y", nil, 400, "cursor"),
            (.get, "/v1/dead-letters?error_class=boom", nil, 400, "error_class"),
            (.get, "/v1/dead-letters?cursor=abc", nil, 400, "cursor"),
            (.post, "/v1/dead-letters/requeue", "{}", 400, "job_ids"),
            (.post, "/v1/dead-letters/requeue", #"{"job_ids": ["x"]}"#, 400, "job_ids[0]"),
            (.post, "/v1/dead-letters/requeue", #"{"kind": "noop", "limit": 0}"#, 400, "limit"),
            (.get, "/v1/stats?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z", nil, 400, "from"),
            (.get, "/v1/events?job_id=zzz", nil, 400, "job_id"),
            (.post, "/v1/tokens", #"{"name": "x", "role": "root"}"#, 400, "role"),
        ]
        for c in cases {
            let r = try await api.call(c.method, c.path, body: c.body)
            #expect(r.status == c.status, "\(c.method) \(c.path) \(c.body ?? ""): \(r.status) \(r.text)")
            #expect(r.field == c.field, "\(c.method) \(c.path) \(c.body ?? ""): \(r.text)")
            #expect(r.headers["content-type"]?.hasPrefix("application/problem+json") == true, "\(c.path)")
        }
        let lastEvent = try await api.call(.get, "/v1/events", headers: [("Last-Event-ID", "minus-one")])
        #expect(lastEvent.status == 400 && lastEvent.field == "Last-Event-ID", "\(lastEvent.text)")
        // Nothing was half-written: not one job, not one event.
        #expect(try await stack.scalar("SELECT count(*) FROM jobs", as: Int.self) == 0)
        #expect(try await stack.scalar("SELECT count(*) FROM job_events", as: Int.self) == 0)
    }

    @Test func tokensRolesAndOwnership() async throws {
        let stack = try await JobStack()
        let api = try await StackAPI(stack: stack)
        #expect(try await api.call(.get, "/v1/jobs", anonymous: true).status == 401)
        #expect(try await api.get("/v1/jobs", as: "est_wrong_token_0123456789").status == 401)
        let alice = try await api.userToken("alice"), bob = try await api.userToken("bob")
        #expect(try await api.post("/v1/tokens", #"{"name": "alice"}"#).status == 409)
        #expect(try await api.post("/v1/tokens", #"{"name": "mallory"}"#, as: alice).status == 403)
        #expect(try await api.get("/v1/whoami", as: alice).json["name"] as? String == "alice")

        let aliceJob = try await api.enqueue(#"{"kind": "noop", "delay_seconds": 3600}"#, as: alice)
        let bobJob = try await api.enqueue(#"{"kind": "noop", "delay_seconds": 3600}"#, as: bob)
        // Bob cannot see or cancel Alice's job: 404, as if it did not exist.
        #expect(try await api.get("/v1/jobs/\(aliceJob)", as: bob).status == 404)
        #expect(try await api.post("/v1/jobs/\(aliceJob)/cancel", "", as: bob).status == 404)
        #expect(try await stack.job(aliceJob).status == .scheduled)
        let bobsList = try await api.get("/v1/jobs", as: bob).json["jobs"] as? [[String: Any]]
        #expect(bobsList?.compactMap { $0["id"] as? String }.map { $0.lowercased() } == [bobJob.uuidString.lowercased()])
        #expect(try await api.get("/v1/jobs?owner_id=\(UUID())", as: bob).status == 403)
        // The admin sees both, and can narrow to one owner.
        let all = try await api.get("/v1/jobs").json["jobs"] as? [[String: Any]]
        #expect(all?.count == 2)
        let aliceID = try #require(try await api.get("/v1/whoami", as: alice).json["id"] as? String)
        let onlyAlice = try await api.get("/v1/jobs?owner_id=\(aliceID)").json["jobs"] as? [[String: Any]]
        #expect(onlyAlice?.count == 1)
        #expect(try await api.post("/v1/jobs/\(aliceJob)/cancel", "", as: alice).status == 200)
    }

    @Test func listingPagesWithACursorAndFilters() async throws {
        let stack = try await JobStack()
        let api = try await StackAPI(stack: stack)
        var ids: [String] = []
        for i in 0..<7 { ids.append(try await api.enqueue(#"{"kind": "noop", "delay_seconds": 3600, "payload": {"i": \#(i)}}"#).uuidString) }
        _ = try await api.enqueue(#"{"kind": "http", "delay_seconds": 3600, "payload": {"url": "http://127.0.0.1:9/"}}"#)
        var seen: [String] = [], cursor: String?, pages = 0
        repeat {
            let r = try await api.get("/v1/jobs?kind=noop&status=scheduled&limit=3" + (cursor.map { "&cursor=\($0)" } ?? ""))
            #expect(r.status == 200, "\(r.text)")
            seen += (r.json["jobs"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String }
            cursor = r.json["next_cursor"] as? String
            pages += 1
        } while cursor != nil && pages < 10
        #expect(pages == 3)
        #expect(seen == ids.reversed(), "newest first, each once")
        let none = try await api.get("/v1/jobs?status=completed,dead").json["jobs"] as? [[String: Any]]
        #expect(none?.isEmpty == true)
        let recent = try await api.get("/v1/jobs?created_after=\(ISO8601DateFormatter().string(from: Date().addingTimeInterval(3600)))")
        #expect((recent.json["jobs"] as? [Any])?.isEmpty == true)
    }

    @Test func cancelStopsWaitingJobsAndRefusesFinishedOnes() async throws {
        let stack = try await JobStack()
        let api = try await StackAPI(stack: stack)
        let delayed = try await api.enqueue(#"{"kind": "noop", "delay_seconds": 2}"#)
        let cancelled = try await api.post("/v1/jobs/\(delayed)/cancel", "")
        #expect(cancelled.status == 200)
        #expect(cancelled.json["status"] as? String == "cancelled")
        let refused = try await api.post("/v1/jobs/\(delayed)/cancel", "")
        #expect(refused.status == 409)
        #expect(refused.field == "status")

        try await stack.startProcessor()
        let done = try await api.enqueue(#"{"kind": "noop"}"#)
        try await stack.waitFor(done, .completed)
        #expect(try await api.post("/v1/jobs/\(done)/cancel", "").status == 409)
        // The cancelled delayed job never ran, also after its time passed.
        try await Task.sleep(for: .seconds(3))
        let job = try await stack.job(delayed)
        #expect(job.status == .cancelled)
        #expect(job.attempts == 0)
    }

    @Test func requeueFromTheDeadLettersCompletes() async throws {
        try await StandInHTTPServer.withServer { server in
            server.on("POST", "/hook", respond: StandInResponse(status: 400, body: "bad input"))
            let stack = try await JobStack()
            let api = try await StackAPI(stack: stack)
            try await stack.startProcessor()
            let id = try await api.enqueue(#"{"kind": "http", "payload": {"url": "\#(server.url("/hook"))"}}"#)
            try await stack.waitFor(id, .dead)
            let letters = try await api.get("/v1/dead-letters?kind=http")
            let rows = try #require(letters.json["dead_letters"] as? [[String: Any]])
            #expect(rows.count == 1)
            #expect((rows.first?["job_id"] as? String)?.lowercased() == id.uuidString.lowercased())
            #expect(rows.first?["error_class"] as? String == "permanent")

            server.on("POST", "/hook", respond: StandInResponse(status: 200))
            let r = try await api.post("/v1/dead-letters/requeue", #"{"job_ids": ["\#(id)"]}"#)
            #expect(r.status == 200, "\(r.text)")
            #expect(r.json["count"] as? Int == 1)
            let job = try await stack.waitFor(id, .completed)
            #expect(job.attempts == 1, "attempts start again from zero")
            #expect(server.requests(path: "/hook").count == 2)
            // Recorded: who, how many, which jobs; the dead letter is closed.
            #expect(try await stack.scalar("SELECT count(*) FROM requeues WHERE job_count = 1 AND $1 = ANY(job_ids) AND requested_by IS NOT NULL",
                                           [id], as: Int.self) == 1)
            let open = try await api.get("/v1/dead-letters").json["dead_letters"] as? [Any]
            #expect(open?.isEmpty == true)
            // Requeueing again finds nothing open.
            #expect(try await api.post("/v1/dead-letters/requeue", #"{"kind": "http"}"#).json["count"] as? Int == 0)
        }
    }

    @Test func eventsStreamInOrderAndResumeWithLastEventID() async throws {
        let stack = try await JobStack()
        let api = try await StackAPI(stack: stack)
        let first = try EventStreamClient(url: api.base + "/v1/events?kind=noop", token: api.adminToken)
        defer { first.close() }
        try await first.waitUntilOpen()
        try await stack.startProcessor()
        let id = try await api.enqueue(#"{"kind": "noop", "payload": {"sleep_ms": 200}}"#)
        let events = try await first.waitFor { $0.contains { $0.data["status"] as? String == "completed" } }
        let mine = events.filter { ($0.data["job_id"] as? String)?.lowercased() == id.uuidString.lowercased() }
        try #require(mine.map { $0.data["status"] as? String } == ["queued", "running", "completed"])
        #expect(mine.map(\.id) == mine.map(\.id).sorted())
        #expect(mine.allSatisfy { $0.name == "job" })
        first.close()

        // Reconnect after the first event: the rest arrive, and nothing twice.
        let resumed = try EventStreamClient(url: api.base + "/v1/events?job_id=\(id)", token: api.adminToken, lastEventID: mine[0].id)
        defer { resumed.close() }
        let rest = try await resumed.waitFor { $0.count >= 2 }
        try await Task.sleep(for: .milliseconds(1500))
        #expect(resumed.events.map { $0.data["status"] as? String } == ["running", "completed"])
        #expect(rest.first?.id == mine[1].id)

        // A user's stream carries only that user's jobs.
        let alice = try await api.userToken("alice")
        let aliceStream = try EventStreamClient(url: api.base + "/v1/events", token: alice)
        defer { aliceStream.close() }
        try await aliceStream.waitUntilOpen()
        _ = try await api.enqueue(#"{"kind": "noop"}"#)
        let aliceJob = try await api.enqueue(#"{"kind": "noop"}"#, as: alice)
        let seen = try await aliceStream.waitFor { $0.contains { $0.data["status"] as? String == "completed" } }
        #expect(Set(seen.compactMap { ($0.data["job_id"] as? String)?.lowercased() }) == [aliceJob.uuidString.lowercased()])
        // Another user's job cannot be followed.
        #expect(try await api.get("/v1/events?job_id=\(id)", as: alice).status == 404)
    }

    @Test func statsCountAndTimeJobsPerKindAndStatus() async throws {
        let stack = try await JobStack()
        let api = try await StackAPI(stack: stack)
        try await stack.startProcessor()
        var ids: [UUID] = []
        for _ in 0..<4 { ids.append(try await api.enqueue(#"{"kind": "noop", "payload": {"sleep_ms": 100}}"#)) }
        _ = try await api.enqueue(#"{"kind": "noop", "delay_seconds": 3600}"#)
        for id in ids { try await stack.waitFor(id, .completed) }
        let r = try await api.get("/v1/stats")
        #expect(r.status == 200)
        let rows = try #require(r.json["rows"] as? [[String: Any]])
        let completed = try #require(rows.first { $0["kind"] as? String == "noop" && $0["status"] as? String == "completed" })
        #expect(completed["count"] as? Int == 4)
        #expect(completed["average_attempts"] as? Double == 1)
        let runP50 = try #require(completed["run_p50"] as? Double)
        #expect(runP50 >= 0.1 && runP50 < 5)
        #expect(completed["wait_p95"] is Double)
        let scheduled = rows.first { $0["status"] as? String == "scheduled" }
        #expect(scheduled?["count"] as? Int == 1)
        #expect(scheduled?["run_p50"] == nil)
    }

    /// Every operation /openapi.json documents is served (the api also refuses to start when
    /// a served route is missing from it).
    @Test func openAPIDocumentsEveryRoute() async throws {
        let stack = try await JobStack()
        let api = try await StackAPI(stack: stack)
        let r = try await api.call(.get, "/openapi.json", anonymous: true)
        #expect(r.status == 200)
        #expect(r.json["openapi"] as? String == "3.1.0")
        let paths = try #require(r.json["paths"] as? [String: [String: Any]])
        for required in ["/v1/jobs", "/v1/jobs/{id}", "/v1/jobs/{id}/cancel", "/v1/dead-letters", "/v1/dead-letters/requeue",
                         "/v1/stats", "/v1/events", "/v1/tokens", "/v1/kinds", "/v1/kinds/{kind}/pause", "/healthz", "/metrics"] {
            #expect(paths[required] != nil, "\(required) is not documented")
        }
        // Event streams never end: schemathesis reads them for a second each.
        for (path, item) in paths where path != "/v1/events" && !path.hasPrefix("/v1/feeds/") {
            for method in item.keys {
                let concrete = path.replacingOccurrences(of: "{id}", with: UUID().uuidString)
                    .replacingOccurrences(of: "{kind}", with: "noop").replacingOccurrences(of: "{name}", with: "none")
                let reply = try await api.call(HTTPMethod(rawValue: method.uppercased()), concrete, body: method == "post" ? "{}" : nil)
                // A route the router does not know answers 404 without a field; ours answer
                // anything else, or a 404 naming the id.
                #expect(reply.status != 404 || reply.field == "id" || reply.field == "name", "\(method) \(path) is documented but not served: \(reply.text)")
            }
        }
        let unknown = try await api.get("/v1/nothing-here")
        #expect(unknown.status == 404 && unknown.field == nil)
    }

    @Test func metricsCountJobsPerKind() async throws {
        let stack = try await JobStack()
        let api = try await StackAPI(stack: stack)
        let port = freePort()
        try await stack.startProcessor(environment: ["ESTEIRA_HTTP_PORT": "\(port)"])
        let id = try await api.enqueue(#"{"kind": "noop"}"#)
        try await stack.waitFor(id, .completed)
        let apiMetrics = try await api.call(.get, "/metrics", anonymous: true).text
        #expect(apiMetrics.contains(#"esteira_jobs_enqueued_total{kind="noop"} 1"#), "\(apiMetrics.prefix(2000))")
        let text = try await api.http.execute(HTTPRequest(method: .get, url: "http://127.0.0.1:\(port)/metrics")).body
        let processorMetrics = String(decoding: text, as: UTF8.self)
        for line in [#"esteira_jobs_started_total{kind="noop"} 1"#, #"esteira_jobs_completed_total{kind="noop"} 1"#] {
            #expect(processorMetrics.contains(line), "missing \(line)")
        }
        for name in ["esteira_job_wait_seconds", "esteira_job_run_seconds", "esteira_consumer_connected"] {
            #expect(processorMetrics.contains(name), "missing \(name)")
        }
    }
}
