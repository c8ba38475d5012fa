import AMQP
import EsteiraCore
import Foundation
import Postgres
import Testing

/// Priorities are a kind's choice: only kinds whose policy sets `priorities` get a priority
/// queue, their jobs run highest priority first, and a queue made with the other setting
/// (by an earlier version, or before the policy changed) is used as it is, with a notice.
@Suite struct PriorityTests {
    static let kinds = """
        kinds:
          ranked: { handler: noop, priorities: true, concurrency: 1 }
        """

    @Test func onlyKindsWithPrioritiesGetAPriorityQueueAndTheirJobsRunHighestFirst() async throws {
        let stack = try await JobStack(kinds: Self.kinds)
        // Everything is queued before any consumer exists.
        let low = try await stack.enqueue((0..<20).map { i in NewJob(kind: "ranked", payload: #"{"i": \#(i)}"#, priority: 1) }).map(\.id)
        let high = try await stack.enqueue((0..<5).map { i in NewJob(kind: "ranked", payload: #"{"i": \#(i)}"#, priority: 9) }).map(\.id)
        let ranked = try await stack.vhost.queueInfo("esteira.work.ranked")
        #expect((ranked["arguments"] as? [String: Any])?["x-max-priority"] as? Int == 9, "\(ranked)")
        let noop = try await stack.vhost.queueInfo("esteira.work.noop")
        #expect((noop["arguments"] as? [String: Any])?["x-max-priority"] == nil, "\(noop)")

        // One consumer taking one message at a time: the broker hands out the highest first.
        try await stack.startProcessor(arguments: ["--consumers", "1", "--prefetch", "1"])
        try await stack.waitForCount(.completed, 25, among: low + high)
        let order = try await stack.pool.withConnection { c in
            try c.query("SELECT id FROM jobs WHERE kind = 'ranked' ORDER BY first_started_at, id").map { try $0.decode(UUID.self, at: 0) }
        }
        #expect(Set(order.prefix(5)) == Set(high), "the priority 9 jobs run before the 20 of priority 1")
    }

    @Test func aQueueWithTheOtherPrioritySettingIsUsedAsItIsWithANotice() async throws {
        let stack = try await JobStack()
        // An earlier version made every work queue a priority queue.
        let connection = try AMQPConnection(try AMQPConfiguration(url: stack.amqpURL))
        let channel = try connection.openChannel()
        try channel.declareExchange(Topology.workExchange, type: "direct")
        try channel.declareQueue(Topology.workQueue("noop"), arguments: [
            "x-queue-type": .string("classic"), "x-queue-version": .int64(2),
            "x-max-priority": .int64(9), "x-dead-letter-exchange": .string(Topology.deadExchange),
        ])
        try connection.close()

        let processor = try await stack.startProcessor()
        let id = try await stack.enqueue([NewJob(kind: "noop")])[0].id
        #expect(try await stack.waitFor(id, .completed).attempts == 1)
        let info = try await stack.vhost.queueInfo("esteira.work.noop")
        #expect((info["arguments"] as? [String: Any])?["x-max-priority"] as? Int == 9, "the queue is left as it was")
        #expect(processor.text.contains("queue esteira.work.noop exists with priorities, but kind noop's policy has priorities: false"),
                "\(processor.text.suffix(2000))")
    }
}
