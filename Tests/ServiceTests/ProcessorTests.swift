import AMQP
import EsteiraCore
import Foundation
import HTTPClient
import Postgres
import StandIns
import Testing

/// The job lifecycle end to end: real processors, RabbitMQ and PostgreSQL.
@Suite struct ProcessorTests {
    static let fastHTTP = """
        kinds:
          http: { maxAttempts: 4, backoffBase: 1, backoffFactor: 2, timeout: 5 }
          short: { handler: noop, timeout: 1, maxAttempts: 1 }
        """

    @Test func noopJobCompletesWithItsHistory() async throws {
        let stack = try await JobStack()
        try await stack.startProcessor()
        let outcome = try await stack.enqueue([NewJob(kind: "noop", payload: #"{"n": 1}"#)])[0]
        #expect(outcome.created)
        let job = try await stack.waitFor(outcome.id, .completed)
        #expect(job.attempts == 1)
        #expect(job.publishedAt != nil)
        #expect(try await stack.statuses(outcome.id) == ["queued", "running", "completed"])
    }

    /// A handler's progress reports land on the job and in its history as `progress` events,
    /// between its running and completed events.
    @Test func aHandlersProgressIsStoredAndSentAsEvents() async throws {
        let stack = try await JobStack()
        try await stack.startProcessor()
        let id = try await stack.enqueue([NewJob(kind: "noop", payload: #"{"steps": 4, "sleep_ms": 200}"#)])[0].id
        let job = try await stack.waitFor(id, .completed)
        #expect(job.progress?["percent"]?.doubleValue == 100)
        #expect(job.progress?["done"]?.doubleValue == 4 && job.progress?["total"]?.doubleValue == 4)
        #expect(job.progress?["message"]?.stringValue == "step 4 of 4")
        let events = try await stack.events(id)
        #expect(events.map(\.status) == ["queued", "running", "progress", "progress", "progress", "progress", "completed"])
        let percents = events.filter { $0.status == "progress" }.compactMap { $0.detail.flatMap(JSONValue.parse)?["percent"]?.doubleValue }
        #expect(percents == [25, 50, 75, 100])
    }

    @Test func sameIdempotencyKeyReturnsTheSameJob() async throws {
        let stack = try await JobStack()
        let first = try await stack.enqueue([NewJob(kind: "noop", idempotencyKey: "order-42")])[0]
        let again = try await stack.enqueue([NewJob(kind: "noop", idempotencyKey: "order-42"),
                                             NewJob(kind: "noop", idempotencyKey: "order-43")])
        #expect(first.created)
        #expect(again[0].id == first.id)
        #expect(!again[0].created)
        #expect(again[1].created && again[1].id != first.id)
        #expect(try await stack.scalar("SELECT count(*) FROM jobs", as: Int.self) == 2)
    }

    @Test func batchEnqueueWritesThousandsInOneCallAndRunsThem() async throws {
        let stack = try await JobStack()
        let jobs = (0..<3000).map { NewJob(kind: "noop", payload: #"{"i": \#($0)}"#) }
        let outcomes = try await stack.enqueue(jobs)
        #expect(Set(outcomes.map(\.id)).count == 3000)
        #expect(try await stack.scalar("SELECT count(*) FROM job_outbox", as: Int.self) == 0, "all 3000 confirmed by the broker")
        try await stack.startProcessor()
        try await stack.waitForCount(.completed, 3000)
    }

    @Test func transientHTTPFailuresWalkTheTiersThenComplete() async throws {
        try await StandInHTTPServer.withServer { server in
            server.on("POST", "/hook", sequence: [
                StandInResponse(status: 503),
                .tooManyRequests(retryAfter: 2),
                .json(#"{"ok": true}"#),
            ])
            let stack = try await JobStack(kinds: Self.fastHTTP)
            try await stack.startProcessor()
            let id = try await stack.enqueue([NewJob(kind: "http", payload: #"{"url": "\#(server.url("/hook"))", "body": {"a": 1}}"#)])[0].id
            let job = try await stack.waitFor(id, .completed, timeout: .seconds(30))
            #expect(job.attempts == 3)
            let events = try await stack.events(id).filter { !($0.status == "queued" && $0.detail?.contains("released") == true) }
            #expect(events.map(\.status) == ["queued", "running", "retrying", "running", "retrying", "running", "completed"])
            // 503 → base delay 1 s (tier 1 s); 429 with Retry-After 2 → tier 2 s.
            #expect(events[2].detail?.contains(#""retry_in_seconds": 1"#) == true)
            #expect(events[4].detail?.contains(#""retry_in_seconds": 2"#) == true)
            let requests = server.requests(path: "/hook")
            #expect(requests.count == 3)
            // A URL the job chose is never signed with the operator's secret (no signing oracle).
            let last = try #require(requests.last)
            #expect(last.header("X-Esteira-Signature") == nil)
            #expect(last.header("X-Esteira-Timestamp") != nil)
            #expect(last.bodyString == #"{"a":1}"#)
            #expect(last.header("X-Esteira-Attempt") == "3")
        }
    }

    @Test func permanentFailureGoesToTheDeadLettersAtOnce() async throws {
        try await StandInHTTPServer.withServer { server in
            server.on("POST", "/hook", respond: StandInResponse(status: 422, body: "bad input"))
            let stack = try await JobStack(kinds: Self.fastHTTP)
            try await stack.startProcessor()
            let id = try await stack.enqueue([NewJob(kind: "http", payload: #"{"url": "\#(server.url("/hook"))"}"#)])[0].id
            let job = try await stack.waitFor(id, .dead)
            #expect(job.attempts == 1)
            #expect(job.lastErrorClass == "permanent")
            #expect(job.lastError?.contains("HTTP 422") == true)
            #expect(try await stack.scalar("SELECT count(*) FROM dead_letters WHERE job_id = $1 AND error_class = 'permanent'", [id], as: Int.self) == 1)
            #expect(server.requests(path: "/hook").count == 1)
        }
    }

    @Test func lastAttemptGoesToTheDeadLetters() async throws {
        try await StandInHTTPServer.withServer { server in
            server.on("POST", "/hook", respond: StandInResponse(status: 500))
            let stack = try await JobStack(kinds: Self.fastHTTP)
            try await stack.startProcessor()
            let id = try await stack.enqueue([NewJob(kind: "http", payload: #"{"url": "\#(server.url("/hook"))"}"#, maxAttempts: 2)])[0].id
            let job = try await stack.waitFor(id, .dead)
            #expect(job.attempts == 2)
            #expect(job.lastErrorClass == "transient")
            #expect(server.requests(path: "/hook").count == 2)
            #expect(try await stack.scalar("SELECT attempts FROM dead_letters WHERE job_id = $1", [id], as: Int.self) == 2)
        }
    }

    @Test func attemptPastItsTimeoutFailsAsTimeout() async throws {
        let stack = try await JobStack(kinds: Self.fastHTTP)
        try await stack.startProcessor()
        let id = try await stack.enqueue([NewJob(kind: "short", payload: #"{"sleep_ms": 5000}"#)])[0].id
        let job = try await stack.waitFor(id, .dead, timeout: .seconds(60))
        #expect(job.lastErrorClass == "timeout")
        let finished = try #require(job.finishedAt), started = try #require(job.startedAt)
        #expect(finished.timeIntervalSince(started) < 4)
    }

    @Test func poisonMessagesAreDeadLetteredWithTheReason() async throws {
        let stack = try await JobStack()
        try await stack.startProcessor()
        let garbage = AMQPOutgoingMessage(exchange: Topology.workExchange, routingKey: "noop", body: Array("not json".utf8))
        let ghost = JobMessage(id: UUID(), kind: "ghost", attempt: 1).outgoing(priority: 0)
        var misrouted = ghost
        misrouted.routingKey = "noop"
        try await stack.link.publishConfirmed([garbage, misrouted])
        let deadline = ContinuousClock.now + .seconds(20)
        var reasons: [String] = []
        while ContinuousClock.now < deadline {
            reasons = try await stack.pool.withConnection { c in
                try c.query("SELECT reason FROM dead_letters WHERE job_id IS NULL ORDER BY id").map { try $0.decode(String.self, at: 0) }
            }
            if reasons.count >= 2 { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(reasons.count == 2)
        #expect(reasons.contains { $0.contains("not a job message") })
        #expect(reasons.contains { $0.contains("does not match routing key") })
        let raw = try await stack.scalar("SELECT raw_message FROM dead_letters WHERE reason LIKE '%not a job message%'", as: [UInt8].self)
        #expect(raw == Array("not json".utf8))
        // The work queue is empty again: nothing is redelivered forever.
        #expect(try await stack.link.withConnection { c in try c.openChannel().declareQueuePassive(Topology.workQueue("noop")).messageCount } == 0)
    }

    @Test func cancelledJobIsNotRun() async throws {
        try await StandInHTTPServer.withServer { server in
            server.on("POST", "/hook", respond: StandInResponse(status: 200))
            let stack = try await JobStack(kinds: Self.fastHTTP)
            let id = try await stack.enqueue([NewJob(kind: "http", payload: #"{"url": "\#(server.url("/hook"))"}"#)])[0].id
            try await stack.pool.withConnection { c in
                _ = try c.execute("UPDATE jobs SET status = 'cancelled' WHERE id = $1", [id])
            }
            let marker = try await stack.enqueue([NewJob(kind: "http", payload: #"{"url": "\#(server.url("/hook"))", "body": {"marker": 1}}"#)])[0].id
            try await stack.startProcessor()
            try await stack.waitFor(marker, .completed)
            #expect(try await stack.job(id).status == .cancelled)
            #expect(server.requests(path: "/hook").count == 1)
        }
    }

    @Test func unpublishedRowsAreRelayedAndDelayedJobsWaitForTheirTime() async throws {
        let stack = try await JobStack()
        // A row committed by an enqueuer that crashed before publishing.
        let orphan = UUID()
        try await stack.pool.withConnection { c in
            // The job's row and its outbox row, committed together as the enqueuer does.
            _ = try c.execute("""
                WITH j AS (
                    INSERT INTO jobs (id, kind, status, payload, max_attempts, created_at)
                    VALUES ($1, 'noop', 'queued', '{}', 3, now() - interval '1 minute') RETURNING id, created_at
                )
                INSERT INTO job_outbox (job_id, due_at) SELECT id, created_at FROM j
                """, [orphan])
        }
        let runAfter = Date().addingTimeInterval(3)
        let delayed = try await stack.enqueue([NewJob(kind: "noop", runAfter: runAfter)])[0]
        #expect(delayed.status == .scheduled)
        try await stack.startProcessor()
        try await stack.waitFor(orphan, .completed)
        let job = try await stack.waitFor(delayed.id, .completed)
        let started = try #require(job.startedAt)
        // Not before its time (the database's clock and ours are the same machine's), and
        // released by the relay's next rounds after it.
        #expect(started.timeIntervalSince(runAfter) >= -0.05)
        #expect(started.timeIntervalSince(runAfter) < 10, "released far too late (the scheduler's test holds it to 1 s)")
    }

    /// A killed processor's attempt runs again once its heartbeat is older than the kind's
    /// timeout: the copy the broker redelivers at once is not run while the heartbeat is
    /// fresh (the processor might only have lost its connection), the scheduler's rescue or
    /// a later copy runs it.
    @Test func killedProcessorsJobCompletesOnAnother() async throws {
        let stack = try await JobStack(kinds: "kinds:\n  noop: { heartbeatTimeout: 3 }\n")
        let first = try await stack.startProcessor()
        try await stack.startScheduler(arguments: ["--rescue-interval", "0.5"])
        // Long enough (under the noop timeout of 10 s) that the kill lands mid-job on a loaded machine.
        let id = try await stack.enqueue([NewJob(kind: "noop", payload: #"{"sleep_ms": 9000}"#)])[0].id
        try await stack.waitFor(id, .running, timeout: .seconds(30))
        first.signal(SIGKILL)
        _ = await first.waitForExit(timeout: .seconds(5))
        try await stack.startProcessor()
        let job = try await stack.waitFor(id, .completed, timeout: .seconds(60))
        #expect(job.attempts <= 2)
        let events = try await stack.events(id)
        #expect(events.filter { $0.status == "completed" }.count == 1, "\(events)")
        #expect(events.filter { $0.status == "running" }.count == 2, "\(events)")
    }

    /// The claim's rule for a redelivered copy of a running attempt, for plain and gated
    /// kinds: it takes over only when no other processor reported holding the attempt within
    /// the kind's heartbeat timeout (a processor's own lease it may take over).
    @Test func aRedeliveredCopyTakesOverOnlyAnAttemptWhoseHeartbeatStopped() async throws {
        let stack = try await JobStack(kinds: """
            limiters:
              roomy: { rate: 1000, burst: 1000 }
            kinds:
              metered: { handler: noop, limiter: roomy }
            """)
        let store = JobStore(catalog: stack.catalog)
        let catalog = stack.catalog, metered = try #require(catalog["metered"])
        // What each step did, checked outside the pool's thread (where expectations find their test).
        let steps = try await stack.pool.withConnection { c -> [(step: String, started: Bool, expected: Bool)] in
            let ids = try store.insert([NewJob(kind: "noop"), NewJob(kind: "metered")], on: c).map(\.id)
            var steps: [(String, Bool, Bool)] = []
            for i in ids.indices {
                func claim(_ step: String, _ worker: String, redelivered: Bool, expected: Bool) throws {
                    let claim = AttemptClaim(id: ids[i], attempt: 1, redelivered: redelivered, heartbeatTimeout: 5)
                    let started = i == 0 ? try !AttemptStore.start([claim], worker: worker, on: c).isEmpty
                        : try !FlowGate.claim([claim], kind: metered, catalog: catalog, parkFor: 60, worker: worker, on: c).started.isEmpty
                    steps.append(("\(i == 0 ? "noop" : "metered"): \(step)", started, expected))
                }
                try claim("first delivery", "a", redelivered: false, expected: true)
                try claim("a stale duplicate", "b", redelivered: false, expected: false)
                try claim("a copy, another processor's heartbeat fresh", "b", redelivered: true, expected: false)
                try claim("a copy, its own processor's lease", "a", redelivered: true, expected: true)
                try c.execute("UPDATE job_leases SET heartbeat_at = now() - interval '6 seconds' WHERE job_id = $1", [ids[i]])
                try claim("a copy, the heartbeat older than the timeout", "b", redelivered: true, expected: true)
                let holder = try c.query("SELECT worker FROM job_leases WHERE job_id = $1", [ids[i]]).first?.decode(String.self, at: 0)
                steps.append(("\(i == 0 ? "noop" : "metered"): the lease moved", holder == "b", true))
                try claim("a copy, the attempt taken over", "a", redelivered: true, expected: false)
            }
            return steps
        }
        for step in steps { #expect(step.started == step.expected, "\(step.step)") }
        #expect(steps.count == 14)
    }

    /// Leases handed back at a drain timeout: a copy of a plain kind's attempt takes it over at
    /// once; a limited kind's attempt is rescued at the scheduler's next pass (the rescue
    /// reads the lease's age, which stays finite).
    @Test func leasesHandedBackAreTakenOverOrRescuedAtOnce() async throws {
        let stack = try await JobStack(kinds: "kinds:\n  single: { handler: noop, globalConcurrency: 1, heartbeatTimeout: 30 }\n")
        let store = JobStore(catalog: stack.catalog)
        let catalog = stack.catalog, single = try #require(catalog["single"])
        let (plainStarted, limitedStarted, takenOver, rescued) = try await stack.pool.withConnection { c in
            let ids = try store.insert([NewJob(kind: "noop"), NewJob(kind: "single")], on: c).map(\.id)
            let plain = try AttemptStore.start([AttemptClaim(id: ids[0], attempt: 1, redelivered: false)], worker: "a", on: c)
            let limited = try FlowGate.claim([AttemptClaim(id: ids[1], attempt: 1, redelivered: false, heartbeatTimeout: 30)], kind: single,
                                             catalog: catalog, parkFor: 60, worker: "a", on: c).started
            try AttemptStore.handBack([(ids[0], 1, 600), (ids[1], 1, 30)], worker: "a", on: c)
            let takenOver = try AttemptStore.start([AttemptClaim(id: ids[0], attempt: 1, redelivered: true)], worker: "b", on: c)
            let rescued = try StuckJobRescue.rescue(catalog: catalog, on: c)
            return (plain.map(\.id), limited.map(\.id), takenOver.map(\.id), rescued.map { "\($0.id) \($0.status)" })
        }
        #expect(plainStarted.count == 1 && limitedStarted.count == 1)
        #expect(takenOver == plainStarted)
        #expect(rescued == ["\(limitedStarted[0]) queued"])
    }

    /// A processor whose broker connection is closed while it runs a job (a network failure,
    /// not a crash) keeps its attempt: the copy the broker redelivers, to another processor
    /// or back to it once reconnected, is not run again. Each job runs once, at attempt 1.
    @Test func aProcessorThatLosesItsBrokerConnectionKeepsItsAttempt() async throws {
        let stack = try await JobStack(kinds: "kinds:\n  noop: { timeout: 60 }\n")
        try await stack.startProcessor()
        for round in 0..<2 {
            // Round 1 with a second processor consuming the same queue.
            if round == 1 { try await stack.startProcessor() }
            let id = try await stack.enqueue([NewJob(kind: "noop", payload: #"{"sleep_ms": 20000}"#)])[0].id
            try await stack.waitFor(id, .running, timeout: .seconds(30))
            let holder = try await stack.scalar("SELECT worker FROM job_leases WHERE job_id = $1", [id], as: String.self)
            // The management API lists a connection once its statistics were first collected.
            var seen: [String] = []
            let closed = try await eventually("a consumer connection of \(holder) closed", timeout: .seconds(15), every: .seconds(1)) {
                let (closed, names) = try await stack.vhost.closeConnections(named: holder + "-consumer-")
                seen = names
                return closed >= 1
            }
            #expect(closed, "no consumer connection of \(holder) among \(seen)")
            #expect(try await stack.scalar("SELECT status FROM jobs WHERE id = $1", [id], as: String.self) == "running",
                    "the job ended before the connection was closed")
            let job = try await stack.waitFor(id, .completed, timeout: .seconds(60))
            #expect(job.attempts == 1)
            let events = try await stack.events(id)
            #expect(events.filter { $0.status == "running" }.count == 1, "round \(round): run again: \(events)")
            // The redelivered copy was settled, not left in the queue.
            try await eventually("the copy acked", timeout: .seconds(20)) {
                let info = try await stack.vhost.queueInfo("esteira.work.noop")
                return info["messages"] as? Int == 0
            }
        }
    }

    @Test func sigtermDrainsRunningJobs() async throws {
        let stack = try await JobStack()
        // A drain timeout far above the jobs' 4 s, so a loaded machine still drains in time.
        let processor = try await stack.startProcessor(arguments: ["--drain-timeout", "60"])
        let ids = try await stack.enqueue((0..<5).map { _ in NewJob(kind: "noop", payload: #"{"sleep_ms": 4000}"#) }).map(\.id)
        try await stack.waitForCount(.running, 5, among: ids, timeout: .seconds(20))
        processor.signal(SIGTERM)
        try await expectDrained(processor, ids, in: stack)
    }
}

extension ProcessorTests {
    /// A job still running at the drain timeout goes to another processor at once: its
    /// lease ends with the drain, so the redelivered copy does not wait for the heartbeat
    /// timeout (600 s by default).
    @Test func aJobHandedBackAtTheDrainTimeoutRunsOnAnotherAtOnce() async throws {
        let stack = try await JobStack(kinds: "kinds:\n  noop: { timeout: 60 }\n")
        let first = try await stack.startProcessor(arguments: ["--drain-timeout", "1"])
        let id = try await stack.enqueue([NewJob(kind: "noop", payload: #"{"sleep_ms": 8000}"#)])[0].id
        try await stack.waitFor(id, .running, timeout: .seconds(30))
        try await stack.startProcessor()
        first.signal(SIGTERM)
        #expect(await first.waitForExit(timeout: .seconds(30)) == 0, "\(first.text.suffix(2000))")
        let job = try await stack.waitFor(id, .completed, timeout: .seconds(60))
        #expect(job.attempts == 1)
        #expect(try await stack.events(id).filter { $0.status == "running" }.count == 2)
    }
}

/// After a SIGTERM: the processor exits 0 within 70 s and every job in `ids` completed at its
/// first attempt (the failure messages carry the time since the call and the processor's output).
func expectDrained(_ processor: ChildProcess, _ ids: [UUID], in stack: JobStack,
                   sourceLocation: SourceLocation = #_sourceLocation) async throws {
    let since = ContinuousClock.now
    let status = await processor.waitForExit(timeout: .seconds(70))
    #expect(status == 0, "processor output: \(processor.text.suffix(3000))", sourceLocation: sourceLocation)
    for id in ids {
        let job = try await stack.job(id)
        #expect(job.status == .completed, "after \(ContinuousClock.now - since); processor output: \(processor.text.suffix(3000))",
                sourceLocation: sourceLocation)
        #expect(job.attempts == 1, sourceLocation: sourceLocation)
    }
}

@Suite struct DrainDuringClaimTests {
    /// SIGTERM while a batch's claim is under way (held here by a table lock): the drain
    /// waits for the claim and runs the claimed jobs to completion, instead of seeing nothing
    /// in flight and leaving them marked running.
    @Test func sigtermDuringAClaimWaitsForIt() async throws {
        let stack = try await JobStack()
        let ids = try await stack.enqueue((0..<3).map { _ in NewJob(kind: "noop", payload: #"{"sleep_ms": 300}"#) }).map(\.id)
        let blocker = try stack.database.connect()
        try blocker.execute("BEGIN")
        try blocker.execute("LOCK TABLE jobs IN EXCLUSIVE MODE")
        let processor = try await stack.startProcessor(arguments: ["--drain-timeout", "60"],
                                                       environment: ["ESTEIRA_LOG_LEVEL": "debug"])
        // The processor's claim waits for the lock: the one statement of the processor that
        // asks for a row-exclusive lock on jobs before this lock is released (the relay asks
        // for row-share first, to lock the rows it publishes, and waits there). Found by the
        // lock it waits for rather than by pg_stat_activity's query text, which under load was
        // once seen still showing the session's previous statement.
        let deadline = ContinuousClock.now + .seconds(30)
        var waiting = 0
        while waiting == 0, ContinuousClock.now < deadline {
            waiting = try blocker.query("""
                SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                WHERE a.datname = current_database() AND a.application_name = 'esteira-processor'
                  AND NOT l.granted AND l.relation = 'jobs'::regclass AND l.mode = 'RowExclusiveLock'
                """).first!.decode(Int.self, at: 0)
            if waiting == 0 { try await Task.sleep(for: .milliseconds(50)) }
        }
        if waiting != 1 {
            let activity = try blocker.query("""
                SELECT a.pid || ' ' || coalesce(a.application_name, '') || ' ' || coalesce(a.state, '-') || ' '
                       || coalesce(a.wait_event_type || ':' || a.wait_event, '-') || ' waits for '
                       || coalesce((SELECT string_agg(coalesce(l.relation::regclass::text, l.locktype) || ' ' || l.mode, ', ')
                                    FROM pg_locks l WHERE l.pid = a.pid AND NOT l.granted), 'nothing')
                       || ': ' || left(regexp_replace(a.query, '\\s+', ' ', 'g'), 120)
                FROM pg_stat_activity a WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()
                """).map { try $0.decode(String.self, at: 0) }
            let queue = try await stack.vhost.queueInfo("esteira.work.noop")
            let counts = ["messages", "messages_ready", "messages_unacknowledged", "consumers"].map { "\($0)=\(queue[$0] ?? "?")" }
            let outbox = try blocker.query("SELECT count(*) FROM job_outbox").first!.decode(Int.self, at: 0)
            Issue.record("""
                the claim did not wait for the lock; sessions: \(activity); noop queue: \(counts); outbox rows: \(outbox); \
                processor: \(processor.text.suffix(6000))
                """)
        }
        processor.signal(SIGTERM)
        try await Task.sleep(for: .seconds(1))
        try blocker.execute("COMMIT")
        try await expectDrained(processor, ids, in: stack)
    }
}
