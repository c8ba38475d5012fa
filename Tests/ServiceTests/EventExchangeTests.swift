import AMQP
import EsteiraCore
import Foundation
import Testing

/// The `esteira.events` topic exchange carries every state change a processor records, as
/// one message per kind and status per recorded batch (a JSON array), routed
/// `job.<kind>.<status>`, so a subscriber can bind `job.noop.#` or `job.*.completed`.
@Suite struct EventExchangeTests {
    @Test func everyClaimAndCompletionReachesASubscriberGroupedByKindAndStatus() async throws {
        let stack = try await JobStack()
        let connection = try AMQPConnection(try AMQPConfiguration(url: stack.amqpURL))
        defer { try? connection.close() }
        let channel = try connection.openChannel()
        try channel.declareExchange(Topology.eventsExchange, type: "topic")
        let queue = "test.events.\(UUID().uuidString.prefix(8))"
        try channel.declareQueue(queue)
        try channel.bindQueue(queue, exchange: Topology.eventsExchange, routingKey: "job.noop.#")

        let ids = try await stack.enqueue((0..<300).map { i in NewJob(kind: "noop", payload: #"{"i": \#(i)}"#) }).map(\.id)
        try await stack.startProcessor()
        try await stack.waitForCount(.completed, ids.count, among: ids)

        var seen: [UUID: [String]] = [:], messages = 0
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline, seen.values.reduce(0, { $0 + $1.count }) < 2 * ids.count {
            guard let delivery = try channel.get(queue: queue, noAck: true) else {
                try await Task.sleep(for: .milliseconds(100))
                continue
            }
            messages += 1
            let items = try #require(try JSONSerialization.jsonObject(with: Data(delivery.body)) as? [[String: Any]])
            #expect(!items.isEmpty)
            for item in items {
                let status = try #require(item["status"] as? String)
                #expect(delivery.routingKey == "job.\(item["kind"] as? String ?? "?").\(status)", "\(item)")
                #expect(item["attempt"] as? Int == 1)
                seen[try #require(UUID(uuidString: item["id"] as? String ?? "")), default: []].append(status)
            }
        }
        for id in ids {
            #expect(seen[id] == ["running", "completed"], "job \(id): \(seen[id] ?? [])")
        }
        #expect(messages < 2 * ids.count, "events are grouped per batch, not one message per change (\(messages) messages)")
    }
}
