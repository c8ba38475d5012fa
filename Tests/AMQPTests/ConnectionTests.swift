import AMQP
import Foundation
import Testing

@Suite struct ConnectionTests {
    @Test func connectsAndShowsConnectionName() async throws {
        let configuration = try TestBroker.configuration()
        let connection = try AMQPConnection(configuration)
        #expect(connection.isOpen)
        let channel = try connection.openChannel()
        let queue = try channel.declareQueue("", durable: false, exclusive: true, autoDelete: true)
        #expect(queue.name.hasPrefix("amq.gen-"))
        let listed = try await Management().connectionName(for: configuration.connectionName!)
        #expect(listed != nil, "connection_name not visible in the management API")
        try channel.close()
        try connection.close()
        #expect(!connection.isOpen)
    }

    @Test func wrongPasswordIsAuthenticationFailed() throws {
        var configuration = try TestBroker.configuration()
        configuration.password = "definitely-wrong"
        let error = expectAMQPError(.authenticationFailed) { try AMQPConnection(configuration) }
        #expect(error?.description.contains("definitely-wrong") == false)
    }

    @Test func unknownHostIsHostNotFound() throws {
        var configuration = try TestBroker.configuration()
        configuration.host = "no-such-host.invalid"
        expectAMQPError(.hostNotFound) { try AMQPConnection(configuration) }
    }

    @Test func closedPortIsConnectionRefused() throws {
        var configuration = try TestBroker.configuration()
        configuration.host = "127.0.0.1"
        configuration.port = 1
        expectAMQPError(.connectionRefused) { try AMQPConnection(configuration) }
    }

    @Test func channelsOpenAndCloseIndependently() throws {
        let connection = try TestBroker.connect()
        let first = try connection.openChannel()
        let second = try connection.openChannel()
        #expect(first.id != second.id)
        try first.close()
        #expect(!first.isOpen)
        expectAMQPError(.channelClosed) { try first.declareQueue("", exclusive: true) }
        try second.declareQueue("", durable: false, exclusive: true)
    }
}
