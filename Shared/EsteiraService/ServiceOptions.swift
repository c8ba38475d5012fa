import ArgumentParser
import EsteiraCore

/// The flags every Esteira executable takes. Each overrides the environment variable named
/// in its help; without either, ``EsteiraConfiguration`` documents the default.
public struct ServiceOptions: ParsableArguments {
    @Option(name: .customLong("database-url"), help: "PostgreSQL URL (env ESTEIRA_DATABASE_URL).")
    public var databaseURL: String?

    @Option(name: .customLong("amqp-url"), help: "RabbitMQ URL (env ESTEIRA_AMQP_URL).")
    public var amqpURL: String?

    @Option(name: .customLong("host"), help: "Address the HTTP server binds (env ESTEIRA_HTTP_HOST, default 127.0.0.1).")
    public var host: String?

    @Option(name: .customLong("port"), help: "Port of the HTTP server: /healthz and /metrics, and the /v1 routes on the api (env ESTEIRA_HTTP_PORT; default 8080 api, 9101 processor, 9105 scheduler).")
    public var port: Int?

    @Option(name: .customLong("migrations"), help: "Folder of numbered SQL migrations (env ESTEIRA_MIGRATIONS_DIR, default ./migrations).")
    public var migrations: String?

    @Option(name: .customLong("log-level"), help: "trace|debug|info|notice|warning|error|critical (env ESTEIRA_LOG_LEVEL, default info).")
    public var logLevel: String?

    @Option(name: .customLong("log-format"), help: "json|text (env ESTEIRA_LOG_FORMAT, default json).")
    public var logFormat: String?

    public init() {}

    /// The environment with these flags laid over it, read into a configuration.
    public func configuration(defaultHTTPPort: Int,
                              environment: [String: String] = ProcessInfo.processInfo.environment) throws -> EsteiraConfiguration {
        var env = environment
        let overrides: [(String, String?)] = [
            ("ESTEIRA_DATABASE_URL", databaseURL), ("ESTEIRA_AMQP_URL", amqpURL),
            ("ESTEIRA_HTTP_HOST", host), ("ESTEIRA_HTTP_PORT", port.map(String.init)),
            ("ESTEIRA_MIGRATIONS_DIR", migrations), ("ESTEIRA_LOG_LEVEL", logLevel),
            ("ESTEIRA_LOG_FORMAT", logFormat),
        ]
        for case let (name, value?) in overrides { env[name] = value }
        return try EsteiraConfiguration(environment: env, defaultHTTPPort: defaultHTTPPort)
    }
}

import Foundation
