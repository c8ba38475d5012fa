import Foundation

/// The settings every Esteira process reads at start, from environment variables that
/// command-line flags may override. Defaults suit the stack `make up` starts.
public struct EsteiraConfiguration: Sendable, Equatable {
    /// `ESTEIRA_DATABASE_URL`: PostgreSQL, the record of every job. Default `postgres://esteira@127.0.0.1:5432/esteira`.
    public var databaseURL: String
    /// `ESTEIRA_AMQP_URL`: RabbitMQ. Default `amqp://guest:guest@127.0.0.1:5672/`.
    public var amqpURL: String
    /// `ESTEIRA_HTTP_HOST`: the address this process's HTTP server binds. Default `127.0.0.1`.
    public var httpHost: String
    /// `ESTEIRA_HTTP_PORT`: the port of this process's HTTP server (the api itself, or /healthz and /metrics).
    public var httpPort: Int
    /// `ESTEIRA_MIGRATIONS_DIR`: the folder of numbered SQL files. Default `migrations`.
    public var migrationsDirectory: String
    /// `ESTEIRA_DATABASE_POOL_SIZE`: connections this process may open to PostgreSQL. Default 8.
    public var databasePoolSize: Int
    /// `ESTEIRA_LOG_LEVEL`: trace, debug, info, notice, warning, error or critical. Default `info`.
    public var logLevel: String
    /// `ESTEIRA_LOG_FORMAT`: `json` (one object a line, the default) or `text`.
    public var logFormat: LogFormat

    /// How log lines are written.
    public enum LogFormat: String, Sendable, CaseIterable {
        case json, text
    }

    /// Reads the configuration from `environment`.
    /// - Parameter defaultHTTPPort: the port used when `ESTEIRA_HTTP_PORT` is not set.
    /// - Throws: ``ConfigurationError`` naming the variable whose value is not valid.
    public init(environment: [String: String] = ProcessInfo.processInfo.environment, defaultHTTPPort: Int) throws {
        func value(_ name: String) -> String? {
            guard let v = environment[name]?.trimmingCharacters(in: .whitespaces), !v.isEmpty else { return nil }
            return v
        }
        func integer(_ name: String, default fallback: Int, range: ClosedRange<Int>) throws -> Int {
            guard let raw = value(name) else { return fallback }
            guard let v = Int(raw), range.contains(v) else {
                throw ConfigurationError(variable: name, value: raw, expected: "an integer in \(range.lowerBound)...\(range.upperBound)")
            }
            return v
        }
        databaseURL = value("ESTEIRA_DATABASE_URL") ?? "postgres://esteira@127.0.0.1:5432/esteira"
        amqpURL = value("ESTEIRA_AMQP_URL") ?? "amqp://guest:guest@127.0.0.1:5672/"
        httpHost = value("ESTEIRA_HTTP_HOST") ?? "127.0.0.1"
        httpPort = try integer("ESTEIRA_HTTP_PORT", default: defaultHTTPPort, range: 0...65535)
        migrationsDirectory = value("ESTEIRA_MIGRATIONS_DIR") ?? "migrations"
        databasePoolSize = try integer("ESTEIRA_DATABASE_POOL_SIZE", default: 8, range: 1...500)
        logLevel = value("ESTEIRA_LOG_LEVEL")?.lowercased() ?? "info"
        let levels = ["trace", "debug", "info", "notice", "warning", "error", "critical"]
        guard levels.contains(logLevel) else {
            throw ConfigurationError(variable: "ESTEIRA_LOG_LEVEL", value: logLevel, expected: "one of \(levels.joined(separator: ", "))")
        }
        let format = value("ESTEIRA_LOG_FORMAT")?.lowercased() ?? "json"
        guard let f = LogFormat(rawValue: format) else {
            throw ConfigurationError(variable: "ESTEIRA_LOG_FORMAT", value: format, expected: "json or text")
        }
        logFormat = f
        guard databaseURL.hasPrefix("postgres://") || databaseURL.hasPrefix("postgresql://") else {
            throw ConfigurationError(variable: "ESTEIRA_DATABASE_URL", value: nil, expected: "a postgres:// URL")
        }
        guard amqpURL.hasPrefix("amqp://") else {
            throw ConfigurationError(variable: "ESTEIRA_AMQP_URL", value: nil, expected: "an amqp:// URL")
        }
    }
}

/// A configuration value that cannot be used. The value is left out for URLs, which may hold passwords.
public struct ConfigurationError: Error, CustomStringConvertible, Equatable {
    /// The environment variable (or flag) at fault.
    public var variable: String
    /// The rejected value, when it is safe to show.
    public var value: String?
    /// What would have been accepted.
    public var expected: String

    /// A rejected `value` of `variable`, and what would have been accepted.
    public init(variable: String, value: String?, expected: String) {
        self.variable = variable
        self.value = value
        self.expected = expected
    }

    public var description: String {
        if let value { return "\(variable)=\(value) is not valid: expected \(expected)" }
        return "\(variable) is not valid: expected \(expected)"
    }
}
