import AMQP
import Foundation
import Testing

@Suite struct RecoveryTests {
    @Test func forcedCloseThenReconnectAndConsumeAgain() async throws {
        let management = try Management()
        let admin = try TestBroker.connect()
        let adminChannel = try admin.openChannel()
        let queue = TestBroker.unique("recover")
        try adminChannel.declareQueue(queue, durable: false)
        defer { _ = try? adminChannel.deleteQueue(queue) }

        let configuration = try TestBroker.configuration()
        let consumer = try AMQPConnection(configuration)
        let channel = try consumer.openChannel()
        try channel.consume(queue: queue, prefetch: 10)
        #expect(try channel.nextDelivery(timeout: 0.2) == nil)

        let name = try #require(try await management.connectionName(for: configuration.connectionName!))
        #expect(try await management.closeConnection(named: name, reason: "esteira test") == 204)

        var failure: AMQPError?
        do {
            for _ in 0..<50 where failure == nil { _ = try channel.nextDelivery(timeout: 0.2) }
        } catch let error as AMQPError {
            failure = error
        }
        let error = try #require(failure)
        #expect(error.code == .connectionClosed || error.code == .connectionLost, "got \(error)")
        if error.code == .connectionClosed {
            #expect(error.replyCode == 320)
            #expect(error.replyText?.contains("esteira test") == true)
        }
        #expect(!consumer.isOpen)
        expectAMQPError(error.code) { try channel.ack(1) }

        let fresh = try AMQPConnection.connect(configuration, retry: AMQPReconnectPolicy(initialDelay: 0.05, maxDelay: 1,
                                                                                         maxAttempts: 5))
        let freshChannel = try fresh.openChannel()
        try freshChannel.consume(queue: queue, prefetch: 10)
        try adminChannel.publish(Array("after reconnect"), routingKey: queue)
        let delivery = try #require(try freshChannel.nextDelivery(timeout: 5))
        #expect(delivery.body == Array("after reconnect"))
        try freshChannel.ack(delivery.deliveryTag)
    }

    @Test func reconnectGivesUpOnRefusedPortAfterAttempts() throws {
        var configuration = try TestBroker.configuration()
        configuration.host = "127.0.0.1"
        configuration.port = 1
        let start = monotonicNow()
        expectAMQPError(.connectionRefused) {
            try AMQPConnection.connect(configuration, retry: AMQPReconnectPolicy(initialDelay: 0.05, maxDelay: 0.1,
                                                                                 maxAttempts: 3))
        }
        #expect(monotonicNow() - start >= 0.15)  // waited 0.05 + 0.1 between the three attempts
    }

    /// rabbitmq-c answers heartbeats only inside library calls: waiting in nextDelivery(timeout:)
    /// keeps a 1 s-heartbeat connection alive for 3 s of idleness. (Idle in caller code instead, the
    /// broker would close it after about two intervals.)
    @Test func heartbeatsKeepAnIdleConsumerAlive() throws {
        var configuration = try TestBroker.configuration()
        configuration.heartbeatSeconds = 1
        let connection = try AMQPConnection(configuration)
        let channel = try connection.openChannel()
        let queue = try channel.declareQueue("", durable: false, exclusive: true).name
        try channel.consume(queue: queue, prefetch: 1)
        let start = monotonicNow()
        while monotonicNow() - start < 3.5 {
            #expect(try channel.nextDelivery(timeout: 0.5) == nil)
        }
        #expect(connection.isOpen)
        let publisher = try connection.openChannel()
        try publisher.publish(Array("still here"), routingKey: queue)
        let delivery = try #require(try channel.nextDelivery(timeout: 5))
        #expect(delivery.body == Array("still here"))
    }

    /// The limitation above, shown: idle in caller code past two heartbeat intervals, the broker
    /// drops the connection and the next call reports it as lost.
    @Test func idleOutsideLibraryCallsIsDroppedByTheBroker() throws {
        var configuration = try TestBroker.configuration()
        configuration.heartbeatSeconds = 1
        let connection = try AMQPConnection(configuration)
        let channel = try connection.openChannel()
        usleep(4_000_000)
        let error = expectAMQPError(.connectionLost) {
            try channel.declareQueue("", durable: false, exclusive: true)
        }
        #expect(error != nil)
        #expect(!connection.isOpen)
    }
}
