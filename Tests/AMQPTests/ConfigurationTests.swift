import AMQP
import Testing

/// URL parsing and descriptions: no broker needed.
@Suite struct ConfigurationTests {
    @Test func parsesFullURL() throws {
        let configuration = try AMQPConfiguration(url: "amqp://job%40s:p%3Ass@broker.example:5680/esteira%2Fprod")
        #expect(configuration.user == "job@s")
        #expect(configuration.password == "p:ss")
        #expect(configuration.host == "broker.example")
        #expect(configuration.port == 5680)
        #expect(configuration.vhost == "esteira/prod")
        #expect(configuration.heartbeatSeconds == 30)
    }

    @Test func defaultsPortAndVhost() throws {
        let configuration = try AMQPConfiguration(url: "amqp://guest:guest@localhost/")
        #expect(configuration.port == 5672)
        #expect(configuration.vhost == "/")
        let bare = try AMQPConfiguration(url: "amqp://localhost")
        #expect(bare.vhost == "/")
        #expect(bare.user == "guest")
        let encodedSlash = try AMQPConfiguration(url: "amqp://localhost:1234/%2F")
        #expect(encodedSlash.vhost == "/")
        #expect(encodedSlash.port == 1234)
    }

    @Test func aListNamesTheNodesOfOneCluster() throws {
        let configuration = try AMQPConfiguration(url: "amqp://u:p@node1:5672/v, amqp://u:p@node2:5673/v,amqp://u:p@[::1]:5674/v")
        #expect(configuration.host == "node1" && configuration.port == 5672 && configuration.vhost == "v")
        #expect(configuration.endpoints.map(\.description) == ["node1:5672", "node2:5673", "[::1]:5674"])
        #expect(configuration.description == "amqp://u@node1:5672,node2:5673,[::1]:5674/v")
        let aimed = configuration.aimed(at: configuration.endpoints[1])
        #expect(aimed.host == "node2" && aimed.port == 5673 && aimed.alternates.isEmpty && aimed.password == "p")
        #expect(try AMQPConfiguration(url: "amqp://localhost").endpoints.count == 1)
        // One cluster: one user, password and vhost.
        expectAMQPError(.invalidURL) { try AMQPConfiguration(url: "amqp://u:p@a/v,amqp://u:other@b/v") }
        expectAMQPError(.invalidURL) { try AMQPConfiguration(url: "amqp://u:p@a/v,amqp://u:p@b/w") }
        expectAMQPError(.invalidURL) { try AMQPConfiguration(url: "amqp://u:p@a/v,http://b/v") }
    }

    @Test func rejectsBadURLs() {
        expectAMQPError(.invalidURL) { try AMQPConfiguration(url: "http://localhost") }
        expectAMQPError(.invalidURL) { try AMQPConfiguration(url: "amqp://localhost:99999/") }
        expectAMQPError(.invalidURL) { try AMQPConfiguration(url: "amqp://u:p%zz@localhost/") }
    }

    @Test func descriptionHidesPassword() throws {
        let configuration = try AMQPConfiguration(url: "amqp://user:s3cr3t-pw@localhost:5672/", connectionName: "x")
        #expect(!configuration.description.contains("s3cr3t-pw"))
        #expect(configuration.description.contains("user@localhost:5672"))
        let error = AMQPError(.authenticationFailed, operation: "login", replyCode: 403, replyText: "ACCESS_REFUSED")
        #expect(error.description == "AMQP authenticationFailed in login: 403 ACCESS_REFUSED")
    }

    @Test func reconnectBackoffDoubles() {
        let policy = AMQPReconnectPolicy(initialDelay: 0.1, maxDelay: 1, maxAttempts: 5)
        #expect(policy.delay(after: 1) == 0.1)
        #expect(policy.delay(after: 2) == 0.2)
        #expect(policy.delay(after: 3) == 0.4)
        #expect(policy.delay(after: 10) == 1)
    }
}
