import AMQP
import EsteiraCore
import Foundation
import Testing

/// A kind's queue deleted while services run (by hand, or to change its priorities): job
/// messages are published mandatory, so one that no queue takes comes back instead of being
/// confirmed and dropped; its job stays unpublished, the publishing link reconnects and
/// declares the queue again, and the relay publishes the job.
@Suite struct MissingQueueTests {
    @Test func aJobEnqueuedWhileItsQueueIsGoneStillRuns() async throws {
        let stack = try await JobStack()
        let processor = try await stack.startProcessor(arguments: ["--consumers", "1"])
        let first = try await stack.enqueue([NewJob(kind: "noop")])[0].id
        try await stack.waitFor(first, .completed)

        let connection = try AMQPConnection(try AMQPConfiguration(url: stack.amqpURL))
        defer { try? connection.close() }
        _ = try connection.openChannel().deleteQueue(Topology.workQueue("noop"))

        let second = try await stack.enqueue([NewJob(kind: "noop")])[0].id
        let job = try await stack.waitFor(second, .completed, timeout: .seconds(60))
        #expect(job.attempts == 1, "\(processor.text.suffix(3000))")
    }
}
