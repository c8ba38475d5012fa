import Foundation

/// The settings every Esteira process reads at start, from environment variables that
/// command-line flags may override. Defaults suit the stack `make up` starts.
public struct EsteiraConfiguration: Sendable, Equatable {
    /// `ESTEIRA_DATABASE_URL`: PostgreSQL, the record of every job. Default `postgres://esteira@127.0.0.1:5432/esteira`.
    public var databaseURL: String
    /// `ESTEIRA_AMQP_URL`: RabbitMQ. Default `amqp://guest:guest@127.0.0.1:5672/`.
    public var amqpURL: String
    /// `ESTEIRA_QUEUE_TYPE`: the type of the work queues and hold tiers, `classic` (default)
    /// or `quorum` (for a RabbitMQ cluster; docs/topology.md). Every process of a deployment
    /// needs the same.
    public var queueType: Topology.QueueType
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

    /// `ESTEIRA_KINDS_FILE`: the kinds file (YAML) every service reads; nil: built-in kinds only.
    public var kindsFile: String?
    /// `ESTEIRA_HTTP_SIGNING_SECRET`: signs requests to named endpoints without a secret of their own.
    public var signingSecret: String?

    /// The variables above, for `--help`.
    public static let settings: [Setting] = [
        Setting("ESTEIRA_DATABASE_URL", "PostgreSQL URL (default postgres://esteira@127.0.0.1:5432/esteira).", flag: "--database-url"),
        Setting("ESTEIRA_AMQP_URL", "RabbitMQ URL, or the comma-separated URLs of a cluster's nodes, tried in order (default amqp://guest:guest@127.0.0.1:5672/).", flag: "--amqp-url"),
        Setting("ESTEIRA_QUEUE_TYPE", "classic (the default) or quorum: the type of the work queues and retry tiers; quorum for a RabbitMQ cluster, the same in every process."),
        Setting("ESTEIRA_HTTP_HOST", "address the HTTP server binds (default 127.0.0.1).", flag: "--host"),
        Setting("ESTEIRA_HTTP_PORT", "port of the HTTP server: /healthz and /metrics, and the /v1 routes on the api.", flag: "--port"),
        Setting("ESTEIRA_MIGRATIONS_DIR", "folder of the numbered SQL migrations (default ./migrations).", flag: "--migrations"),
        Setting("ESTEIRA_DATABASE_POOL_SIZE", "PostgreSQL connections this process may open, 1-500 (default 8)."),
        Setting("ESTEIRA_LOG_LEVEL", "trace, debug, info, notice, warning, error or critical (default info).", flag: "--log-level"),
        Setting("ESTEIRA_LOG_FORMAT", "json (one object a line, the default) or text.", flag: "--log-format"),
        Setting("ESTEIRA_KINDS_FILE", "YAML file of kinds, their policies and named endpoints; the same file for every service (default: the built-in and workload kinds with their policies)."),
        Setting("ESTEIRA_HTTP_SIGNING_SECRET", "signs requests to named endpoints without a secret of their own (never a job's own url)."),
    ]

    /// Reads the configuration from `environment`.
    /// - Parameter defaultHTTPPort: the port used when `ESTEIRA_HTTP_PORT` is not set.
    /// - Throws: ``ConfigurationError`` naming the variable whose value is not valid.
    public init(environment: [String: String] = ProcessInfo.processInfo.environment, defaultHTTPPort: Int) throws {
        try self.init(reader: SettingsReader(environment: environment), defaultHTTPPort: defaultHTTPPort)
    }

    /// Reads the configuration through `reader` (the environment with any flags laid over it).
    public init(reader: SettingsReader, defaultHTTPPort: Int) throws {
        databaseURL = reader.string("ESTEIRA_DATABASE_URL") ?? "postgres://esteira@127.0.0.1:5432/esteira"
        amqpURL = reader.string("ESTEIRA_AMQP_URL") ?? "amqp://guest:guest@127.0.0.1:5672/"
        queueType = Topology.QueueType(rawValue: try reader.choice("ESTEIRA_QUEUE_TYPE", default: "classic",
                                                                   among: Topology.QueueType.allCases.map(\.rawValue)))!
        httpHost = reader.string("ESTEIRA_HTTP_HOST") ?? "127.0.0.1"
        httpPort = try reader.integer("ESTEIRA_HTTP_PORT", default: defaultHTTPPort, range: 0...65535)
        migrationsDirectory = reader.string("ESTEIRA_MIGRATIONS_DIR") ?? "migrations"
        databasePoolSize = try reader.integer("ESTEIRA_DATABASE_POOL_SIZE", default: 8, range: 1...500)
        logLevel = try reader.choice("ESTEIRA_LOG_LEVEL", default: "info",
                                     among: ["trace", "debug", "info", "notice", "warning", "error", "critical"])
        logFormat = LogFormat(rawValue: try reader.choice("ESTEIRA_LOG_FORMAT", default: "json", among: ["json", "text"]))!
        kindsFile = reader.string("ESTEIRA_KINDS_FILE")
        signingSecret = reader.string("ESTEIRA_HTTP_SIGNING_SECRET")
        guard databaseURL.hasPrefix("postgres://") || databaseURL.hasPrefix("postgresql://") else {
            throw ConfigurationError(variable: "ESTEIRA_DATABASE_URL", value: nil, expected: "a postgres:// URL")
        }
        guard amqpURL.split(separator: ",").allSatisfy({ $0.trimmingCharacters(in: .whitespaces).hasPrefix("amqp://") }) else {
            throw ConfigurationError(variable: "ESTEIRA_AMQP_URL", value: nil, expected: "an amqp:// URL, or several separated by commas")
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
