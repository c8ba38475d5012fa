import AMQP
@testable import EsteiraCore
import Foundation
import Testing

/// The processor's acks on a real broker: acks out of the settled run wait for it (one
/// multiple ack covers them) up to the hold limit, then go alone; a delivery never settled
/// is the only one the broker gives back.
@Suite struct AckCoalescerTests {
    @Test func acksOutOfTheRunWaitForItThenGoAloneAndNothingElseIsRequeued() throws {
        let configuration = try AMQPConfiguration(url: TestServers.amqpURL(), connectionName: "ack-coalescer-test")
        let queue = "test.acks.\(UUID().uuidString)"
        let setup = try AMQPConnection(configuration)
        defer { try? setup.close() }
        let admin = try setup.openChannel()
        _ = try admin.declareQueue(queue, durable: false)
        defer { _ = try? admin.deleteQueue(queue) }
        for n in 1...5 { try admin.publish(Array("m\(n)".utf8), routingKey: queue) }

        let consumer = try AMQPConnection(configuration)
        let channel = try consumer.openChannel()
        try channel.qos(prefetchCount: 10)
        _ = try channel.consume(queue: queue)
        var tags: [String: UInt64] = [:]
        var acks = AckCoalescer(holdLimit: .milliseconds(50))
        while tags.count < 5, let delivery = try channel.nextDelivery(timeout: 5) {
            tags[String(decoding: delivery.body, as: UTF8.self)] = delivery.deliveryTag
            acks.delivered(delivery.deliveryTag)
        }
        #expect(tags.count == 5)
        let t0 = ContinuousClock.now
        // m2 and m3 end while m1 still runs: held.
        try acks.settle([(tags["m2"]!, .ack), (tags["m3"]!, .ack)], on: channel, now: t0)
        #expect(acks.heldCount == 2)
        // m1 ends: one multiple ack covers m1 to m3.
        try acks.settle([(tags["m1"]!, .ack)], on: channel, now: t0 + .milliseconds(10))
        #expect(acks.heldCount == 0)
        // m5 ends while m4 runs: held, and sent alone once the hold limit has passed.
        try acks.settle([(tags["m5"]!, .ack)], on: channel, now: t0 + .milliseconds(20))
        try acks.settle([], on: channel, now: t0 + .milliseconds(40))
        #expect(acks.heldCount == 1)
        try acks.settle([], on: channel, now: t0 + .milliseconds(80))
        #expect(acks.heldCount == 0)
        // m4 never ends: closing the connection gives back m4 alone.
        try consumer.close()
        var ready: UInt32 = 0
        for _ in 0..<50 {
            ready = try admin.declareQueuePassive(queue).messageCount
            if ready > 0 { break }
            Thread.sleep(forTimeInterval: 0.1)
        }
        Thread.sleep(forTimeInterval: 0.3)
        #expect(try admin.declareQueuePassive(queue).messageCount == 1)
        let back = try #require(try admin.get(queue: queue, noAck: true))
        #expect(String(decoding: back.body, as: UTF8.self) == "m4")
        #expect(back.redelivered)
    }
}
