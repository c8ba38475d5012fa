import AMQP
import Foundation
import Testing

@Suite struct TopologyTests {
    @Test func classicQueueArgumentsReachTheBroker() async throws {
        let connection = try TestBroker.connect()
        let channel = try connection.openChannel()
        let name = TestBroker.unique("args")
        let arguments: AMQPTable = [
            "x-message-ttl": .int32(60_000),
            "x-dead-letter-exchange": .string("esteira.dlx"),
            "x-dead-letter-routing-key": .string("dead"),
            "x-max-priority": .int32(5),
        ]
        let info = try channel.declareQueue(name, durable: true, arguments: arguments)
        #expect(info.name == name)
        #expect(info.messageCount == 0)
        defer { _ = try? channel.deleteQueue(name) }
        let queue = try await Management().queue(name)
        let stored = queue["arguments"] as? [String: Any] ?? [:]
        #expect(stored["x-message-ttl"] as? Int == 60_000)
        #expect(stored["x-dead-letter-exchange"] as? String == "esteira.dlx")
        #expect(stored["x-dead-letter-routing-key"] as? String == "dead")
        #expect(stored["x-max-priority"] as? Int == 5)
        #expect(queue["durable"] as? Bool == true)
    }

    @Test func quorumQueueWithDeliveryLimit() async throws {
        let connection = try TestBroker.connect()
        let channel = try connection.openChannel()
        let name = TestBroker.unique("quorum")
        try channel.declareQueue(name, durable: true, arguments: [
            "x-queue-type": .string("quorum"), "x-delivery-limit": .int64(3),
        ])
        defer { _ = try? channel.deleteQueue(name) }
        let queue = try await Management().queue(name)
        let stored = queue["arguments"] as? [String: Any] ?? [:]
        #expect(stored["x-queue-type"] as? String == "quorum")
        #expect(stored["x-delivery-limit"] as? Int == 3)
        #expect(queue["type"] as? String == "quorum")
    }

    @Test func redeclareWithOtherArgumentsClosesTheChannelWith406() throws {
        let connection = try TestBroker.connect()
        let channel = try connection.openChannel()
        let name = TestBroker.unique("redeclare")
        try channel.declareQueue(name, durable: false, autoDelete: false, arguments: ["x-message-ttl": .int32(1000)])
        let error = expectAMQPError(.channelClosed) {
            try channel.declareQueue(name, durable: false, arguments: ["x-message-ttl": .int32(2000)])
        }
        #expect(error?.replyCode == 406)
        #expect(error?.replyText?.contains("PRECONDITION_FAILED") == true)
        #expect(!channel.isOpen)
        expectAMQPError(.channelClosed) { try channel.purgeQueue(name) }
        #expect(connection.isOpen)
        let reopened = try connection.openChannel()
        let info = try reopened.declareQueuePassive(name)
        #expect(info.name == name)
        try reopened.deleteQueue(name)
    }

    @Test func missingQueueIs404() throws {
        let connection = try TestBroker.connect()
        let channel = try connection.openChannel()
        let missing = TestBroker.unique("missing")
        let consumeError = expectAMQPError(.channelClosed) { try channel.consume(queue: missing) }
        #expect(consumeError?.replyCode == 404)
        #expect(consumeError?.replyText?.contains("NOT_FOUND") == true)
        let passive = try connection.openChannel()
        let passiveError = expectAMQPError(.channelClosed) { try passive.declareQueuePassive(missing) }
        #expect(passiveError?.replyCode == 404)
        let exchange = try connection.openChannel()
        let exchangeError = expectAMQPError(.channelClosed) { try exchange.declareExchangePassive(missing) }
        #expect(exchangeError?.replyCode == 404)
    }

    @Test func exchangesBindingsPurgeAndGet() throws {
        let connection = try TestBroker.connect()
        let channel = try connection.openChannel()
        let source = TestBroker.unique("source"), destination = TestBroker.unique("destination")
        try channel.declareExchange(source, type: "topic", durable: false, autoDelete: false)
        try channel.declareExchange(destination, type: "fanout", durable: false, autoDelete: false, internal: false)
        defer {
            _ = try? channel.deleteExchange(source)
            _ = try? channel.deleteExchange(destination)
        }
        try channel.bindExchange(destination: destination, source: source, routingKey: "jobs.#")
        let queue = try channel.declareQueue("", durable: false, exclusive: true, autoDelete: true).name
        try channel.bindQueue(queue, exchange: destination)
        try channel.enableConfirms()
        try channel.publish(Array("one"), exchange: source, routingKey: "jobs.email")
        try channel.publish(Array("two"), exchange: source, routingKey: "jobs.sms")
        try channel.publish(Array("lost"), exchange: source, routingKey: "other")
        #expect(try channel.waitForConfirms(timeout: 5).allConfirmed)
        #expect(try channel.declareQueuePassive(queue).messageCount == 2)
        let first = try #require(try channel.get(queue: queue))
        #expect(first.body == Array("one"))
        #expect(first.routingKey == "jobs.email")
        #expect(first.exchange == source)
        try channel.ack(first.deliveryTag)
        #expect(try channel.purgeQueue(queue) == 1)
        #expect(try channel.get(queue: queue) == nil)
    }
}
