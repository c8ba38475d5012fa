import AMQP
import Foundation
import Testing

@Suite struct PublishConsumeTests {
    /// A connection with an exclusive, server-named queue (deleted with the connection).
    func scratchQueue(_ name: String = #function) throws -> (AMQPConnection, AMQPChannel, String) {
        let connection = try TestBroker.connect(name: name)
        let channel = try connection.openChannel()
        let queue = try channel.declareQueue("", durable: false, exclusive: true, autoDelete: true).name
        return (connection, channel, queue)
    }

    @Test func aConsumerWhoseQueueIsDeletedIsToldSo() throws {
        let (connection, channel, _) = try scratchQueue()
        let queue = "cancel-notify-\(UUID().uuidString.prefix(8))"
        try channel.declareQueue(queue, durable: false)
        try channel.consume(queue: queue, prefetch: 1)
        #expect(try channel.nextDelivery(timeout: 0.1) == nil)
        // Another connection deletes the queue: the broker cancels the consumer (basic.cancel,
        // sent only to clients that announce consumer_cancel_notify), and the wait says so.
        let other = try TestBroker.connect(name: "deleter")
        _ = try other.openChannel().deleteQueue(queue)
        try other.close()
        #expect {
            _ = try channel.nextDelivery(timeout: 5)
        } throws: { ($0 as? AMQPError)?.code == .consumerCancelled }
        _ = connection
    }

    @Test func propertiesAndHeadersRoundTrip() throws {
        let (_, channel, queue) = try scratchQueue()
        let headers: AMQPTable = [
            "string": .string("héllo"), "yes": .bool(true), "no": .bool(false),
            "i32": .int32(-42), "i64": .int64(1 << 40), "double": .double(2.5),
            "bytes": .bytes([0, 1, 2, 255]), "when": .timestamp(1_700_000_000),
            "nested": .table(["inner": .string("x"), "n": .int32(1)]),
            "list": .array([.string("a"), .int32(2), .table(["k": .bool(true)])]),
            "nothing": .void,
        ]
        let properties = AMQPProperties(
            contentType: "application/json", contentEncoding: "identity", headers: headers, persistent: true,
            priority: 7, correlationId: "corr-1", replyTo: "replies", expiration: "60000", messageId: "msg-1",
            timestamp: 1_700_000_123, type: "email.send", userId: "guest", appId: "esteira-tests")
        let body: [UInt8] = Array("{\"to\":\"a@b\"}") + [0, 255]
        try channel.enableConfirms()
        try channel.publish(body, routingKey: queue, properties: properties)
        #expect(try channel.waitForConfirms(timeout: 5).allConfirmed)
        try channel.consume(queue: queue, prefetch: 1)
        let delivery = try #require(try channel.nextDelivery(timeout: 5))
        #expect(delivery.body == body)
        #expect(delivery.properties == properties)
        #expect(delivery.properties.headers == headers)
        #expect(delivery.routingKey == queue)
        #expect(delivery.redelivered == false)
        try channel.ack(delivery.deliveryTag)
    }

    @Test func batchedConfirmsForFiveThousandMessages() throws {
        let (_, channel, queue) = try scratchQueue()
        let messages = (0..<5_000).map { index in
            AMQPOutgoingMessage(routingKey: queue, body: Array("job \(index)"),
                                properties: AMQPProperties(messageId: "m\(index)"))
        }
        channel.maxUnconfirmed = 500
        let result = try channel.publishConfirmed(messages, timeout: 30)
        #expect(result.nacked.isEmpty)
        #expect(result.returned.isEmpty)
        #expect(channel.unconfirmedCount == 0)
        #expect(try channel.declareQueuePassive(queue).messageCount == 5_000)

        try channel.consume(queue: queue, prefetch: 500)
        var seen = Set<String>()
        var lastTag: UInt64 = 0
        while seen.count < 5_000, let delivery = try channel.nextDelivery(timeout: 5) {
            seen.insert(delivery.properties.messageId ?? "")
            lastTag = delivery.deliveryTag
            if seen.count % 100 == 0 { try channel.ack(lastTag, multiple: true) }
        }
        try channel.ack(lastTag, multiple: true)
        #expect(seen.count == 5_000)
        #expect(seen.contains("m0") && seen.contains("m4999"))
    }

    @Test func prefetchLimitsUnackedDeliveries() throws {
        let (_, channel, queue) = try scratchQueue()
        #expect(try channel.publishConfirmed((0..<30).map { AMQPOutgoingMessage(routingKey: queue, body: [UInt8($0)]) }).allConfirmed)
        try channel.consume(queue: queue, prefetch: 10)
        var delivered: [AMQPDelivery] = []
        while let delivery = try channel.nextDelivery(timeout: 1) { delivered.append(delivery) }
        #expect(delivered.count == 10)
        try channel.ack(delivered.last!.deliveryTag, multiple: true)
        var more = 0
        while try channel.nextDelivery(timeout: 1) != nil { more += 1 }
        #expect(more == 10)
    }

    @Test func nackWithRequeueRedelivers() throws {
        let (_, channel, queue) = try scratchQueue()
        #expect(try channel.publishConfirmed([AMQPOutgoingMessage(routingKey: queue, body: Array("again"))]).allConfirmed)
        try channel.consume(queue: queue, prefetch: 1)
        let first = try #require(try channel.nextDelivery(timeout: 5))
        #expect(!first.redelivered)
        try channel.nack(first.deliveryTag, requeue: true)
        let second = try #require(try channel.nextDelivery(timeout: 5))
        #expect(second.redelivered)
        #expect(second.body == Array("again"))
        try channel.ack(second.deliveryTag)
    }

    @Test func rejectWithoutRequeueDeadLetters() throws {
        let connection = try TestBroker.connect()
        let channel = try connection.openChannel()
        let dlx = TestBroker.unique("dlx")
        try channel.declareExchange(dlx, type: "fanout", durable: false, autoDelete: false)
        defer { _ = try? channel.deleteExchange(dlx) }
        let dead = try channel.declareQueue("", durable: false, exclusive: true).name
        try channel.bindQueue(dead, exchange: dlx)
        let work = try channel.declareQueue("", durable: false, exclusive: true,
                                            arguments: ["x-dead-letter-exchange": .string(dlx)])
        #expect(try channel.publishConfirmed([AMQPOutgoingMessage(routingKey: work.name, body: Array("poison"),
                                                          properties: AMQPProperties(headers: ["attempt": .int32(3)]))]).allConfirmed)
        try channel.consume(queue: work.name, prefetch: 1)
        let delivery = try #require(try channel.nextDelivery(timeout: 5))
        try channel.reject(delivery.deliveryTag, requeue: false)

        var deadLettered: AMQPDelivery?
        for _ in 0..<50 where deadLettered == nil {
            deadLettered = try channel.get(queue: dead)
            if deadLettered == nil { usleep(100_000) }
        }
        let message = try #require(deadLettered)
        #expect(message.body == Array("poison"))
        #expect(message.properties.headers["attempt"] == .int32(3))
        guard case .array(let deaths)? = message.properties.headers["x-death"],
              case .table(let death)? = deaths.first else {
            Issue.record("no x-death header")
            return
        }
        #expect(death["reason"] == .string("rejected"))
        #expect(death["queue"] == .string(work.name))
    }

    /// The retry tier of docs/topology.md: hold queue with a TTL and a DLX but no DLX routing key sends the
    /// message back through the work exchange with its original routing key.
    @Test func ttlHoldQueueDeadLettersBackWithOriginalRoutingKey() throws {
        let connection = try TestBroker.connect()
        let channel = try connection.openChannel()
        let work = TestBroker.unique("work"), tier = TestBroker.unique("retry-1s")
        try channel.declareExchange(work, type: "direct", durable: false)
        try channel.declareExchange(tier, type: "fanout", durable: false)
        defer {
            _ = try? channel.deleteExchange(work)
            _ = try? channel.deleteExchange(tier)
        }
        let hold = try channel.declareQueue("", durable: false, exclusive: true, arguments: [
            "x-message-ttl": .int32(300), "x-dead-letter-exchange": .string(work),
        ]).name
        try channel.bindQueue(hold, exchange: tier)
        let kindQueue = try channel.declareQueue("", durable: false, exclusive: true).name
        try channel.bindQueue(kindQueue, exchange: work, routingKey: "email.send")

        let start = monotonicNow()
        #expect(try channel.publishConfirmed([AMQPOutgoingMessage(exchange: tier, routingKey: "email.send", body: Array("retry me"),
                                                          properties: AMQPProperties(headers: ["job": .string("j1")]))]).allConfirmed)
        try channel.consume(queue: kindQueue, prefetch: 1)
        let delivery = try #require(try channel.nextDelivery(timeout: 5))
        #expect(monotonicNow() - start >= 0.25)
        #expect(delivery.routingKey == "email.send")
        #expect(delivery.exchange == work)
        #expect(delivery.properties.headers["job"] == .string("j1"))
        #expect(delivery.properties.headers["x-death"] != nil)
        try channel.ack(delivery.deliveryTag)
    }

    @Test func mandatoryUnroutableIsReturned() throws {
        let connection = try TestBroker.connect()
        let channel = try connection.openChannel()
        let exchange = TestBroker.unique("nowhere")
        try channel.declareExchange(exchange, type: "direct", durable: false)
        defer { _ = try? channel.deleteExchange(exchange) }
        let result = try channel.publishConfirmed([
            AMQPOutgoingMessage(exchange: exchange, routingKey: "nobody", body: Array("x"),
                                properties: AMQPProperties(messageId: "unroutable-1"), mandatory: true),
        ], timeout: 5)
        #expect(result.nacked.isEmpty)
        #expect(result.returned.count == 1)
        #expect(result.returned.first?.replyCode == 312)
        #expect(result.returned.first?.properties.messageId == "unroutable-1")
        #expect(result.returned.first?.routingKey == "nobody")
    }

    /// One connection publishing with confirms and consuming: confirm frames and deliveries interleave.
    @Test func publishWithConfirmsAndConsumeOnOneConnection() throws {
        let connection = try TestBroker.connect()
        let consumer = try connection.openChannel()
        let queue = try consumer.declareQueue("", durable: false, exclusive: true).name
        try consumer.consume(queue: queue, prefetch: 50)
        let publisher = try connection.openChannel()
        try publisher.enableConfirms()
        publisher.maxUnconfirmed = 20
        var received = 0
        for index in 0..<300 {
            try publisher.publish(Array("n\(index)"), routingKey: queue)
            if index % 10 == 9 {
                while let delivery = try consumer.nextDelivery(timeout: 0.01) {
                    received += 1
                    try consumer.ack(delivery.deliveryTag)
                }
            }
        }
        #expect(try publisher.waitForConfirms(timeout: 10).allConfirmed)
        while received < 300, let delivery = try consumer.nextDelivery(timeout: 5) {
            received += 1
            try consumer.ack(delivery.deliveryTag)
        }
        #expect(received == 300)
    }
}

func monotonicNow() -> Double {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
}
