import EsteiraCore
import Testing

@Suite struct ConfigurationTests {
    @Test func defaultsSuitTheLocalStack() throws {
        let c = try EsteiraConfiguration(environment: [:], defaultHTTPPort: 9101)
        #expect(c.databaseURL == "postgres://esteira@127.0.0.1:5432/esteira")
        #expect(c.amqpURL == "amqp://guest:guest@127.0.0.1:5672/")
        #expect(c.httpHost == "127.0.0.1")
        #expect(c.httpPort == 9101)
        #expect(c.databasePoolSize == 8)
        #expect(c.logLevel == "info")
        #expect(c.logFormat == .json)
        #expect(c.migrationsDirectory == "migrations")
    }

    @Test func environmentOverridesDefaults() throws {
        let c = try EsteiraConfiguration(environment: [
            "ESTEIRA_DATABASE_URL": "postgresql://u:p@db:5433/x",
            "ESTEIRA_AMQP_URL": "amqp://u:p@mq:5673/v",
            "ESTEIRA_HTTP_PORT": "8081",
            "ESTEIRA_DATABASE_POOL_SIZE": "3",
            "ESTEIRA_LOG_LEVEL": "DEBUG",
            "ESTEIRA_LOG_FORMAT": "text",
        ], defaultHTTPPort: 1)
        #expect(c.databaseURL == "postgresql://u:p@db:5433/x")
        #expect(c.amqpURL == "amqp://u:p@mq:5673/v")
        #expect(c.httpPort == 8081)
        #expect(c.databasePoolSize == 3)
        #expect(c.logLevel == "debug")
        #expect(c.logFormat == .text)
    }

    @Test(arguments: [
        ("ESTEIRA_HTTP_PORT", "eighty"), ("ESTEIRA_HTTP_PORT", "70000"),
        ("ESTEIRA_DATABASE_POOL_SIZE", "0"), ("ESTEIRA_LOG_LEVEL", "loud"),
        ("ESTEIRA_LOG_FORMAT", "xml"), ("ESTEIRA_DATABASE_URL", "mysql://x"),
        ("ESTEIRA_AMQP_URL", "http://x"),
    ])
    func badValuesNameTheirVariable(name: String, value: String) throws {
        let error = #expect(throws: ConfigurationError.self) {
            try EsteiraConfiguration(environment: [name: value], defaultHTTPPort: 1)
        }
        #expect(error?.variable == name)
        #expect(error.map { String(describing: $0) }?.contains(name) == true)
    }

    @Test func urlValuesAreNotEchoedBecauseTheyHoldPasswords() throws {
        let error = #expect(throws: ConfigurationError.self) {
            try EsteiraConfiguration(environment: ["ESTEIRA_DATABASE_URL": "mysql://u:hunter2@x/db"], defaultHTTPPort: 1)
        }
        #expect(error.map { String(describing: $0) }?.contains("hunter2") == false)
    }
}
