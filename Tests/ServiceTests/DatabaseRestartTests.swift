import EsteiraCore
import Foundation
import Postgres
import Testing

/// A PostgreSQL cluster of its own (restarting the shared test server would disturb other
/// tests), started and stopped with the project's own stack functions.
final class PrivatePostgres {
    let directory: URL
    let port = freePortBlock(1)

    var adminURL: String { "postgres://esteira@127.0.0.1:\(port)/esteira" }

    /// One more address it listens on, and a network whose clients it trusts (tests'
    /// network namespaces), beside loopback.
    let listen: String?, trust: String?

    init(listen: String? = nil, trust: String? = nil) async throws {
        directory = URL(fileURLWithPath: TestPaths.scratch("esteira-pg"))
        (self.listen, self.trust) = (listen, trust)
        try await start()
    }

    func start() async throws {
        let env = (listen.map { "PG_LISTEN_EXTRA=\($0) " } ?? "") + (trust.map { "PG_TRUST_NET=\($0) " } ?? "")
        try await stackScript("mkdir -p '\(directory.path)'; \(env)pg_start '\(directory.path)' \(port)")
    }

    func stop() async throws {
        try await stackScript("pg_stop '\(directory.path)'")
    }

    deinit {
        stackScriptBlocking("pg_stop '\(directory.path)'; pg_destroy '\(directory.path)'; rm -rf '\(directory.path)'")
    }
}

@Suite struct DatabaseRestartTests {
    /// PostgreSQL goes away mid-run: processors keep their deliveries unacked, reconnect, and
    /// every job completes exactly once.
    @Test func postgresRestartMidRunLosesNoJob() async throws {
        let postgres = try await PrivatePostgres()
        let stack = try await JobStack(databaseAdminURL: postgres.adminURL)
        try await stack.startProcessor(arguments: ["--consumers", "1", "--prefetch", "10"])
        // 300 jobs of 100 ms, 10 at a time: about 3 s of work, so the restart lands mid-run.
        let jobs = try await stack.enqueue((0..<300).map { NewJob(kind: "noop", payload: #"{"sleep_ms": 100, "i": \#($0)}"#) })
        let deadline = ContinuousClock.now + .seconds(30)
        while try await stack.scalar("SELECT count(*) FROM jobs WHERE status = 'completed'", as: Int.self) < 20,
              ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        let before = try await stack.scalar("SELECT count(*) FROM jobs WHERE status = 'completed'", as: Int.self)
        try await postgres.stop()
        try await Task.sleep(for: .seconds(3))
        try await postgres.start()
        try await stack.waitForCount(.completed, 300, among: jobs.map(\.id), timeout: .seconds(90))
        // Each job ran once to completion: one completed event, no dead letters.
        #expect(try await stack.scalar("SELECT count(*) FROM job_events WHERE status = 'completed'", as: Int.self) == 300)
        #expect(try await stack.scalar("SELECT count(*) FROM dead_letters", as: Int.self) == 0)
        #expect(before < 280, "the database went away mid-run, not after it (\(before) completed before)")
    }
}
