import EsteiraCore
import Foundation
import HTTPClient
import Postgres
import StandIns
import Testing

/// The crash suite: a whole stack (its own PostgreSQL and RabbitMQ, an api, two processors,
/// a scheduler) under a steady load of `http` and `noop` jobs sent through the api, with one
/// fault at a time: kill -9 of a processor, kill -9 of the api, a RabbitMQ restart, a
/// PostgreSQL restart, SIGTERM of everything and a fresh start. After each, every job the api
/// answered 201 for must end completed (or dead, for the jobs whose target refuses them)
/// exactly once in PostgreSQL, and the `http` target must have seen each success at least
/// once; deliveries it saw twice are counted and reported (delivery is at least once).
/// Prints "crash suite, <scenario>: N passed, N failed" per scenario, N counting jobs.
@Suite struct CrashSuiteTests {
    /// A killed processor's attempts run again once their heartbeat is 10 s old (a
    /// redelivered copy does not take over a fresher one).
    static let kinds = """
        kinds:
          http: { maxAttempts: 5, backoffBase: 1, backoffFactor: 1, timeout: 5, heartbeatTimeout: 10 }
          noop: { heartbeatTimeout: 10 }
        """

    @Test func everyAcceptedJobEndsExactlyOnceAcrossFaults() async throws {
        let suite = try await CrashStack()

        let scenarios: [(String, (CrashStack) async throws -> Void)] = [
            ("kill -9 a processor", { s in
                s.stack.processors.first { $0.isRunning }?.signal(SIGKILL)
                try await Task.sleep(for: .milliseconds(500))
                try await s.stack.startProcessor(arguments: CrashStack.processorArguments)
            }),
            ("kill -9 the api", { s in
                s.api?.child.signal(SIGKILL)
                try await Task.sleep(for: .milliseconds(500))
                try await s.startAPI()
            }),
            ("restart RabbitMQ", { s in
                try await s.rabbit!.stop()
                try await Task.sleep(for: .seconds(2))
                try await s.rabbit!.start()
            }),
            ("restart PostgreSQL", { s in
                try await s.postgres.stop()
                try await Task.sleep(for: .seconds(2))
                try await s.postgres.start()
            }),
            ("SIGTERM everything, start again", { s in
                let children = [s.api?.child].compactMap { $0 } + s.stack.processors + s.stack.schedulers
                for c in children where c.isRunning { c.signal(SIGTERM) }
                for c in children {
                    if await c.waitForExit(timeout: .seconds(60)) == nil {
                        Issue.record("a service did not stop within 60 s of SIGTERM: \(c.text.suffix(2000))")
                        c.signal(SIGKILL)
                    }
                }
                try await s.startAPI()
                try await s.startWorkers()
            }),
        ]

        for (name, fault) in scenarios {
            try await suite.run(name, fault: fault).report("crash suite", name)
        }
        await suite.shutdown()
    }
}

/// The stack the crash suite runs, and its load.
final class CrashStack: @unchecked Sendable {
    static let processorArguments = ["--consumers", "2", "--prefetch", "20"]
    /// Jobs a scenario must have accepted to count as run under load.
    static let minimumSample = 200
    /// The RabbitMQ of its own, when the stack was not given a broker's URL.
    let rabbit: PrivateRabbit?
    let postgres: PrivatePostgres
    let stack: JobStack
    let target: StandInHTTPServer
    let adminToken = "est_admin_" + UUID().uuidString.replacingOccurrences(of: "-", with: "")
    let http = HTTPClient()
    private let lock = NSLock()
    private var _api: StackAPI?
    /// Jobs whose first delivery the flaky endpoint already refused.
    private var refusedOnce: Set<String> = []
    /// Deliveries the target answered with a success, per job id.
    private var successes: [String: Int] = [:]
    /// Requests of each job the target is answering now, and the jobs it ever saw two
    /// requests of at once (two processors running one job at the same time).
    private var inFlight: [String: Int] = [:]
    private var overlapping: Set<String> = []
    private var _accepted: Accepted?

    /// The jobs the running scenario's load got accepted so far.
    var accepted: Accepted? { lock.withLock { _accepted } }

    var api: StackAPI? { lock.withLock { _api } }

    /// What a job of the load should end as.
    enum Expectation: Sendable { case completed, dead }

    struct Result {
        var accepted = 0, refused = 0, passed = 0, failed = 0, duplicates = 0
        /// Jobs the http target saw two requests of at the same time: two processors running
        /// one job at once.
        var atOnce = 0
        var problems: [String] = []

        /// Prints "<suite>, <scenario>: N passed, N failed (...)" and the first problems, and
        /// records an issue unless every accepted job ended exactly once, none ran twice at
        /// once, under a load that ran.
        func report(_ suite: String, _ scenario: String) {
            print("\(suite), \(scenario): \(passed) passed, \(failed) failed (\(accepted) jobs accepted, \(refused) refused while"
                  + " faulty, \(duplicates) http successes delivered more than once, \(atOnce) run twice at once)")
            for problem in problems.prefix(10) { print("  \(problem)") }
            #expect(failed == 0, "\(scenario): \(failed) of \(accepted) accepted jobs did not end exactly once: \(problems.prefix(10))")
            #expect(atOnce == 0, "\(scenario): \(atOnce) jobs ran on two processors at once")
            #expect(accepted >= 100, "\(scenario): the load ran (\(accepted) jobs accepted)")
        }
    }

    /// `amqpURL`: a broker (or cluster) of the caller's, else a RabbitMQ of its own;
    /// `targetAddress`: where the http target listens (processors must reach it);
    /// `workers`: start two processors and a scheduler here (else the caller starts its own).
    /// `databaseAdminURL`: where to reach `postgres` (e.g. through a forwarder standing for
    /// its name), else its own URL.
    init(amqpURL: String? = nil, postgres: PrivatePostgres? = nil, databaseAdminURL: String? = nil,
         queueType: Topology.QueueType = .classic, kinds: String = CrashSuiteTests.kinds,
         targetAddress: String = StandInHTTPServer.host, workers: Bool = true) async throws {
        rabbit = amqpURL == nil ? try await PrivateRabbit() : nil
        if let postgres { self.postgres = postgres } else { self.postgres = try await PrivatePostgres() }
        stack = try await JobStack(kinds: kinds, amqpURL: amqpURL ?? rabbit!.amqpURL,
                                   databaseAdminURL: databaseAdminURL ?? self.postgres.adminURL, queueType: queueType)
        target = StandInHTTPServer(address: targetAddress)
        try await target.start()
        // /ok answers 200; /flaky answers 503 to a job's first delivery (a transient failure,
        // retried through the 1 s tier), then 200; /gone answers 422 (permanent: dead at once).
        // The handlers hold the stack weakly: the target belongs to it, and a cycle would keep it
        // (and so its own RabbitMQ and PostgreSQL, stopped when it goes) alive after the test.
        target.on("POST", "/ok") { [weak self] request in
            guard let self else { return StandInResponse(status: 503) }
            let id = request.header("X-Esteira-Job-Id") ?? ""
            self.lock.withLock {
                self.inFlight[id, default: 0] += 1
                if self.inFlight[id]! > 1 { self.overlapping.insert(id) }
            }
            try? await Task.sleep(for: .milliseconds(50))
            self.lock.withLock {
                self.inFlight[id]! -= 1
                self.successes[id, default: 0] += 1
            }
            return StandInResponse(status: 200)
        }
        target.on("POST", "/gone", respond: StandInResponse(status: 422, body: "no such thing"))
        target.on("POST", "/flaky") { [weak self] request in
            guard let self else { return StandInResponse(status: 503) }
            let id = request.header("X-Esteira-Job-Id") ?? ""
            let first = self.lock.withLock {
                let first = self.refusedOnce.insert(id).inserted
                if !first { self.successes[id, default: 0] += 1 }
                return first
            }
            return StandInResponse(status: first ? 503 : 200)
        }
        try await startAPI()
        if workers { try await startWorkers() }
    }

    func startAPI() async throws {
        let api = try await StackAPI(stack: stack, adminToken: adminToken, environment: ["ESTEIRA_LOG_LEVEL": "info"])
        lock.withLock { _api = api }
    }

    func startWorkers() async throws {
        for _ in 0..<2 { try await stack.startProcessor(arguments: Self.processorArguments, environment: ["ESTEIRA_LOG_LEVEL": "info"]) }
        try await stack.startScheduler(arguments: ["--leader-interval", "0.5"], environment: ["ESTEIRA_LOG_LEVEL": "info"])
    }

    /// Runs the load for a while, applies `fault`, keeps the load on for a while after it,
    /// then waits for every accepted job to end and checks each.
    func run(_ name: String, fault: @escaping (CrashStack) async throws -> Void) async throws -> Result {
        let accepted = Accepted()
        lock.withLock { _accepted = accepted }
        let load = Task { await self.load(into: accepted) }
        try await Task.sleep(for: .seconds(3))
        try await fault(self)
        try await Task.sleep(for: .seconds(3))
        // On a loaded machine a restart can eat most of that: keep the load on until the
        // scenario has a sample worth checking (up to 30 s more).
        let deadline = ContinuousClock.now + .seconds(30)
        while accepted.jobs.count < CrashStack.minimumSample, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(200))
        }
        load.cancel()
        await load.value
        return try await check(accepted)
    }

    /// Four senders, one job each about every 40 ms: `noop`, `http` to /ok, /flaky and /gone.
    private func load(into accepted: Accepted) async {
        await withTaskGroup(of: Void.self) { group in
            for lane in 0..<4 {
                group.addTask {
                    var i = 0
                    while !Task.isCancelled {
                        i += 1
                        let (body, expectation) = self.job(lane: lane, i: i)
                        let request = HTTPRequest(method: .post, url: (self.api?.base ?? "") + "/v1/jobs",
                                                  headers: HTTPHeaders([("Authorization", "Bearer \(self.adminToken)"),
                                                                        ("Content-Type", "application/json")]),
                                                  body: Array(body.utf8), timeout: .seconds(5), connectTimeout: .seconds(2))
                        if let r = try? await self.http.execute(request), r.status == 201,
                           let o = try? JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any],
                           let id = (o["id"] as? String).flatMap(UUID.init(uuidString:)) {
                            accepted.add(id, expectation)
                        } else {
                            accepted.refuse()
                        }
                        try? await Task.sleep(for: .milliseconds(40))
                    }
                }
            }
        }
    }

    private func job(lane: Int, i: Int) -> (String, Expectation) {
        switch (lane + i) % 8 {
        case 0, 1, 2: return (#"{"kind": "noop", "payload": {"sleep_ms": 20, "lane": \#(lane), "i": \#(i)}}"#, .completed)
        case 3, 4, 5: return (#"{"kind": "http", "payload": {"url": "\#(target.url("/ok"))", "i": \#(i)}}"#, .completed)
        case 6: return (#"{"kind": "http", "payload": {"url": "\#(target.url("/flaky"))", "i": \#(i)}}"#, .completed)
        default: return (#"{"kind": "http", "payload": {"url": "\#(target.url("/gone"))", "i": \#(i)}}"#, .dead)
        }
    }

    private func check(_ accepted: Accepted) async throws -> Result {
        let jobs = accepted.jobs
        var result = Result(accepted: jobs.count, refused: accepted.refused)
        let ids = Array(jobs.keys)
        // Every accepted job reaches a final state (a /flaky job waits out its 1 s tier; jobs
        // whose messages waited for the relay or a reconnect come after).
        let deadline = ContinuousClock.now + .seconds(120)
        var open = ids.count
        while ContinuousClock.now < deadline {
            open = (try? await stack.scalar("SELECT count(*) FROM jobs WHERE id = ANY($1::uuid[]) AND status NOT IN ('completed', 'dead')",
                                            [ids], as: Int.self)) ?? open
            if open == 0 { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        // Give a duplicate delivery in flight the time to show in the counts.
        try await Task.sleep(for: .milliseconds(500))
        let rows = try await stack.pool.withConnection { c in
            try c.query("""
                SELECT j.id, j.status, j.kind,
                       (SELECT count(*) FROM job_events e WHERE e.job_id = j.id AND e.status = 'completed')::bigint,
                       (SELECT count(*) FROM job_events e WHERE e.job_id = j.id AND e.status = 'dead')::bigint,
                       (SELECT count(*) FROM dead_letters d WHERE d.job_id = j.id)::bigint
                FROM jobs j WHERE j.id = ANY($1::uuid[])
                """, [ids]).map {
                (try $0.decode(UUID.self, at: 0), try $0.decode(String.self, at: 1), try $0.decode(String.self, at: 2),
                 try $0.decode(Int.self, at: 3), try $0.decode(Int.self, at: 4), try $0.decode(Int.self, at: 5))
            }
        }
        let (successes, overlapping) = lock.withLock { (self.successes, self.overlapping) }
        var seen = Set<UUID>()
        for (id, status, kind, completedEvents, deadEvents, deadLetters) in rows {
            seen.insert(id)
            let key = id.uuidString.lowercased()
            let expected = jobs[id]!
            var problem: String?
            switch expected {
            case .completed:
                if status != "completed" || completedEvents != 1 || deadEvents != 0 || deadLetters != 0 {
                    problem = "\(id) (\(kind)): \(status), \(completedEvents) completed and \(deadEvents) dead events, \(deadLetters) dead letters; expected completed once"
                } else if kind == "http", successes[key, default: 0] == 0 {
                    problem = "\(id): completed, but the http target never answered it with a success"
                }
            case .dead:
                if status != "dead" || deadEvents != 1 || completedEvents != 0 || deadLetters != 1 {
                    problem = "\(id) (\(kind)): \(status), \(completedEvents) completed and \(deadEvents) dead events, \(deadLetters) dead letters; expected dead once"
                }
            }
            if successes[key, default: 0] > 1 { result.duplicates += 1 }
            if overlapping.contains(key) { result.atOnce += 1 }
            if let problem { result.failed += 1; result.problems.append(problem) } else { result.passed += 1 }
        }
        for id in ids where !seen.contains(id) {
            result.failed += 1
            result.problems.append("\(id): accepted with 201 but not in the jobs table")
        }
        return result
    }

    func shutdown() async {
        let children = [api?.child].compactMap { $0 } + stack.processors + stack.schedulers
        for c in children where c.isRunning { c.signal(SIGKILL) }
        await target.stop()
    }
}

/// The jobs a scenario's load got 201 for, and how many requests were not accepted.
final class Accepted: @unchecked Sendable {
    private let lock = NSLock()
    private var _jobs: [UUID: CrashStack.Expectation] = [:]
    private var _refused = 0

    func add(_ id: UUID, _ expectation: CrashStack.Expectation) { lock.withLock { _jobs[id] = expectation } }
    func refuse() { lock.withLock { _refused += 1 } }
    var jobs: [UUID: CrashStack.Expectation] { lock.withLock { _jobs } }
    var refused: Int { lock.withLock { _refused } }
}
