import EsteiraCore
import Foundation
import Testing

/// A RabbitMQ node of its own (restarting the shared test node would disturb other tests),
/// started and stopped with the project's own stack functions.
final class PrivateRabbit {
    let directory: URL
    let node: String
    // Below the kernel's ephemeral range, with room after the distribution port for the
    // CLI tools' ports (dist+1...dist+10, see scripts/stack.sh).
    let amqpPort: Int, managementPort: Int, prometheusPort: Int, distributionPort: Int

    var amqpURL: String { "amqp://guest:guest@127.0.0.1:\(amqpPort)/" }

    init() async throws {
        let base = freePortBlock(14)
        (amqpPort, managementPort, prometheusPort, distributionPort) = (base, base + 1, base + 2, base + 3)
        directory = URL(fileURLWithPath: TestPaths.scratch("esteira-rabbit"))
        node = "restart-\(UUID().uuidString.prefix(8).lowercased())@localhost"
        try await start()
    }

    func start() async throws {
        try await stackScript("rabbit_start '\(directory.path)' '\(node)' \(amqpPort) \(managementPort) \(prometheusPort) \(distributionPort)")
    }

    func stop() async throws {
        try await stackScript("rabbit_stop '\(directory.path)' '\(node)'")
    }

    deinit {
        stackScriptBlocking("rabbit_stop '\(directory.path)' '\(node)'; rm -rf '\(directory.path)'")
    }
}

@Suite struct BrokerRestartTests {
    @Test func rabbitMQRestartMidRunLosesNoJob() async throws {
        let rabbit = try await PrivateRabbit()
        let stack = try await JobStack(amqpURL: rabbit.amqpURL)
        try await stack.startProcessor(arguments: ["--consumers", "1", "--prefetch", "10"])
        let before = try await stack.enqueue((0..<400).map { NewJob(kind: "noop", payload: #"{"sleep_ms": 200, "i": \#($0)}"#) })
        // Let some finish, then take the broker away mid-run.
        let deadline = ContinuousClock.now + .seconds(30)
        while try await stack.scalar("SELECT count(*) FROM jobs WHERE status = 'completed'", as: Int.self) < 20,
              ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        let completedBefore = try await stack.scalar("SELECT count(*) FROM jobs WHERE status = 'completed'", as: Int.self)
        try await rabbit.stop()
        // Enqueued while the broker is down: written, published later by the relay.
        let during = try await stack.enqueue((0..<50).map { NewJob(kind: "noop", payload: #"{"during": \#($0)}"#) })
        #expect(try await stack.scalar("SELECT count(*) FROM job_outbox o JOIN jobs j ON j.id = o.job_id WHERE j.published_at IS NULL",
                                       as: Int.self) >= 50)
        try await Task.sleep(for: .seconds(2))
        try await rabbit.start()
        try await stack.waitForCount(.completed, 450, timeout: .seconds(90))
        let ids = (before + during).map(\.id)
        let unfinished = try await stack.scalar("SELECT count(*) FROM jobs WHERE id = ANY($1::uuid[]) AND status <> 'completed'", [ids], as: Int.self)
        #expect(unfinished == 0)
        #expect(try await stack.scalar("SELECT count(*) FROM dead_letters", as: Int.self) == 0)
        #expect(completedBefore < 380, "the broker went away mid-run, not after it (\(completedBefore) completed before)")
    }
}
