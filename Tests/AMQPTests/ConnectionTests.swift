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

    /// A cluster's list of nodes: the first that answers is used; none answering is the last
    /// node's error; a refused login is not tried on the other nodes.
    @Test func openMovesToTheNextNodeWhenOneDoesNotAnswer() async throws {
        var configuration = try TestBroker.configuration()
        let live = AMQPConfiguration.Endpoint(host: configuration.host, port: configuration.port)
        let down = AMQPConfiguration.Endpoint(host: "127.0.0.1", port: 1)
        configuration.host = down.host
        configuration.port = down.port
        configuration.alternates = [AMQPConfiguration.Endpoint(host: "no-such-host.invalid", port: 5672), live]
        let connection = try AMQPConnection.open(configuration)
        #expect(connection.isOpen)
        let channel = try connection.openChannel()
        _ = try channel.declareQueue("", durable: false, exclusive: true, autoDelete: true)
        try connection.close()
        configuration.alternates = [AMQPConfiguration.Endpoint(host: "no-such-host.invalid", port: 5672)]
        expectAMQPError(.hostNotFound) { try AMQPConnection.open(configuration) }
        configuration.alternates = [live, down]
        configuration.password = "definitely-wrong"
        expectAMQPError(.authenticationFailed) { try AMQPConnection.open(configuration) }
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
