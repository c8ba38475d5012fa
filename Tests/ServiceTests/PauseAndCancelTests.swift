import EsteiraCore
import Foundation
import HTTPClient
import Testing

/// Pausing and resuming a kind across processors, and cancelling a running job.
@Suite struct PauseAndCancelTests {
    static let kinds = """
        kinds:
          single: { handler: noop, globalConcurrency: 1, heartbeatTimeout: 30 }
        """

    /// The value of `metric` (a full series name with labels) on `port`'s /metrics.
    static func metric(_ series: String, port: Int) async throws -> Double? {
        let r = try await HTTPClient().execute(HTTPRequest(method: .get, url: "http://127.0.0.1:\(port)/metrics"))
        let text = String(decoding: r.body, as: UTF8.self)
        return text.split(separator: "\n").first { $0.hasPrefix(series + " ") }.flatMap { Double($0.split(separator: " ").last ?? "") }
    }

    @Test func aPausedKindWaitsOnEveryProcessorAndAcrossRestartsThenResumesLosingNothing() async throws {
        let stack = try await JobStack()
        let api = try await StackAPI(stack: stack)
        let port = freePort()
        let first = try await stack.startProcessor(environment: ["ESTEIRA_HTTP_PORT": "\(port)"])
        try await stack.startProcessor()

        // Refused: not an admin, no such kind, a bad reason.
        let user = try await api.userToken()
        let forbidden = try await api.call(.post, "/v1/kinds/noop/pause", token: user)
        #expect(forbidden.status == 403 && forbidden.field == "token", "\(forbidden.text)")
        let unknown = try await api.call(.post, "/v1/kinds/no-such-kind/pause")
        #expect(unknown.status == 404 && unknown.field == "kind", "\(unknown.text)")
        let badReason = try await api.call(.post, "/v1/kinds/noop/pause", body: #"{"reason": 5}"#)
        #expect(badReason.status == 400 && badReason.field == "reason", "\(badReason.text)")
        let extra = try await api.call(.post, "/v1/kinds/noop/pause", body: #"{"why": "x"}"#)
        #expect(extra.status == 400 && extra.field == "why", "\(extra.text)")
        #expect(try await api.call(.get, "/v1/kinds/noop").json["paused"] as? Bool == false)

        let paused = try await api.call(.post, "/v1/kinds/noop/pause", body: #"{"reason": "provider outage"}"#)
        #expect(paused.status == 200 && paused.json["paused"] as? Bool == true, "\(paused.text)")
        let pause = paused.json["pause"] as? [String: Any]
        #expect(pause?["reason"] as? String == "provider outage" && pause?["paused_by"] as? String != nil, "\(paused.text)")
        // A second above the time it takes to reach every processor.
        try await Task.sleep(for: .seconds(1))
        let jobs = try await stack.enqueue((0..<10).map { _ in NewJob(kind: "noop") }).map(\.id)
        try await Task.sleep(for: .seconds(2))
        #expect(try await stack.scalar("SELECT count(*) FROM jobs WHERE id = ANY($1) AND status = 'queued'", [jobs], as: Int.self) == 10)
        #expect(try await Self.metric(#"esteira_kind_paused{kind="noop"}"#, port: port) == 1)
        let listed = try await api.call(.get, "/v1/kinds", token: user)
        let noop = (listed.json["kinds"] as? [[String: Any]])?.first { $0["name"] as? String == "noop" }
        #expect(noop?["paused"] as? Bool == true, "\(listed.text)")

        // The pause survives a restart: a new processor does not take them either.
        first.signal(SIGKILL)
        _ = await first.waitForExit(timeout: .seconds(5))
        try await stack.startProcessor()
        try await Task.sleep(for: .seconds(2))
        #expect(try await stack.scalar("SELECT count(*) FROM jobs WHERE id = ANY($1) AND status = 'queued'", [jobs], as: Int.self) == 10)

        let resumed = try await api.call(.post, "/v1/kinds/noop/resume")
        #expect(resumed.status == 200 && resumed.json["paused"] as? Bool == false, "\(resumed.text)")
        try await stack.waitForCount(.completed, jobs.count, among: jobs, timeout: .seconds(30))
        #expect(try await stack.scalar("SELECT max(attempts) FROM jobs WHERE id = ANY($1)", [jobs], as: Int.self) == 1)
    }

    @Test func cancellingARunningJobStopsItsHandlerWithinASecondAndFreesItsSlot() async throws {
        let stack = try await JobStack(kinds: Self.kinds)
        let api = try await StackAPI(stack: stack)
        let processor = try await stack.startProcessor()
        // Twenty seconds in a hundred steps, each a cancellable sleep with a progress report.
        let long = try await api.enqueue(#"{"kind": "single", "payload": {"sleep_ms": 20000, "steps": 100}}"#)
        try await stack.waitFor(long, .running)
        let next = try await api.enqueue(#"{"kind": "single", "payload": {}}"#)
        try await eventually("the second job waits for the slot") {
            try await stack.scalar("SELECT count(*) FROM job_outbox WHERE job_id = $1 AND waiting_kind = 'single'", [next], as: Int.self) == 1
        }
        let cancelledAt = ContinuousClock.now
        let r = try await api.call(.post, "/v1/jobs/\(long)/cancel")
        #expect(r.status == 200 && r.json["status"] as? String == "cancelled", "\(r.text)")
        // The processor running it heard of it, and its handler stopped.
        while !processor.text.contains("running job cancelled"), ContinuousClock.now - cancelledAt < .seconds(10) {
            try await Task.sleep(for: .milliseconds(20))
        }
        let reached = ContinuousClock.now - cancelledAt
        #expect(reached < .seconds(1), "the cancel reached the processor after \(reached): \(processor.text.suffix(3000))")
        try await eventually("the handler stopped", timeout: .seconds(5)) { processor.text.contains("attempt stopped: the job was cancelled") }
        // Its slot is free: the waiting job runs now, not at its fallback a while later.
        _ = try await stack.waitFor(next, .completed, timeout: .seconds(10))
        let job = try await stack.job(long)
        #expect(job.status == .cancelled && job.attempts == 1)
        let events = try await stack.events(long)
        #expect(events.last?.status == "cancelled" && events.last?.detail?.contains(#""was": "running""#) == true, "\(events)")
        #expect(try await stack.scalar("SELECT count(*) FROM job_leases WHERE job_id = $1", [long], as: Int.self) == 0)
        // A finished job is not cancelled.
        let again = try await api.call(.post, "/v1/jobs/\(long)/cancel")
        #expect(again.status == 409 && again.field == "status", "\(again.text)")
    }

    @Test func aCancelWhoseNoticeWasMissedIsNoticedAtTheNextHeartbeat() async throws {
        // A heartbeat every second (a quarter of the timeout).
        let stack = try await JobStack(kinds: """
            kinds:
              single: { handler: noop, globalConcurrency: 1, heartbeatTimeout: 4 }
            """)
        let api = try await StackAPI(stack: stack)
        let processor = try await stack.startProcessor()
        let long = try await api.enqueue(#"{"kind": "single", "payload": {"sleep_ms": 30000, "steps": 300}}"#)
        try await stack.waitFor(long, .running)
        let next = try await api.enqueue(#"{"kind": "single", "payload": {}}"#)
        // Cancelled as the api does, but with no notice on the control channel (as when the
        // processor's listener was reconnecting).
        let changed = try await stack.scalar("""
            WITH c AS (UPDATE jobs SET status = 'cancelled', finished_at = now(), run_after = NULL
                       WHERE id = $1 AND status = 'running' RETURNING id) SELECT count(*) FROM c
            """, [long], as: Int.self)
        #expect(changed == 1)
        // A heartbeat is due within a second; the window is wider for a loaded machine, and
        // still far short of the handler's 30 s.
        try await eventually("the handler stopped at the next heartbeat", timeout: .seconds(10)) {
            processor.text.contains("attempt stopped: the job was cancelled")
        }
        #expect(processor.text.contains("running job cancelled"))
        _ = try await stack.waitFor(next, .completed, timeout: .seconds(10))
        #expect(try await stack.job(long).status == .cancelled)
        #expect(try await stack.scalar("SELECT count(*) FROM job_leases WHERE job_id = $1", [long], as: Int.self) == 0)
    }
}
