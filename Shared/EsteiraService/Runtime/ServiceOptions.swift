import Foundation
import ArgumentParser
import EsteiraCore

/// The flags every Esteira executable takes. Each overrides the environment variable named
/// in its help; without either, ``EsteiraConfiguration`` documents the default.
public struct ServiceOptions: ParsableArguments {
    @Option(name: .customLong("database-url"), help: "PostgreSQL URL (env ESTEIRA_DATABASE_URL).")
    public var databaseURL: String?

    @Option(name: .customLong("amqp-url"), help: "RabbitMQ URL, or a cluster's node URLs separated by commas (env ESTEIRA_AMQP_URL).")
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

    /// The environment with these flags laid over it.
    public func reader(environment: [String: String] = ProcessInfo.processInfo.environment) -> SettingsReader {
        SettingsReader(environment: environment)
            .overriding("ESTEIRA_DATABASE_URL", with: databaseURL)
            .overriding("ESTEIRA_AMQP_URL", with: amqpURL)
            .overriding("ESTEIRA_HTTP_HOST", with: host)
            .overriding("ESTEIRA_HTTP_PORT", with: port.map(String.init))
            .overriding("ESTEIRA_MIGRATIONS_DIR", with: migrations)
            .overriding("ESTEIRA_LOG_LEVEL", with: logLevel)
            .overriding("ESTEIRA_LOG_FORMAT", with: logFormat)
    }

    /// The environment with these flags laid over it, read into a configuration.
    public func configuration(defaultHTTPPort: Int,
                              environment: [String: String] = ProcessInfo.processInfo.environment) throws -> EsteiraConfiguration {
        try EsteiraConfiguration(reader: reader(environment: environment), defaultHTTPPort: defaultHTTPPort)
    }
}
