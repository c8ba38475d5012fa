import EsteiraCore
import Logging
import Metrics
import Prometheus
import Synchronization

/// Logging and metrics are process-wide in swift-log and swift-metrics; this bootstraps both
/// exactly once per process, whichever command runs first.
public enum Observability {
    private static let state = Mutex<PrometheusCollectorRegistry?>(nil)

    /// The Prometheus registry behind `/metrics`.
    public static var registry: PrometheusCollectorRegistry {
        state.withLock { current in
            if let current { return current }
            let registry = PrometheusCollectorRegistry()
            MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
            current = registry
            return registry
        }
    }

    /// Sets up logging for `service` from `configuration` and returns its root logger.
    public static func bootstrap(service: String, configuration: EsteiraConfiguration) -> Logger {
        _ = registry
        let level = Logger.Level(rawValue: configuration.logLevel) ?? .info
        LoggingSystem.bootstrapOnce { label in
            var handler: LogHandler
            switch configuration.logFormat {
            case .json: handler = JSONLogHandler(label: label, service: service)
            case .text: handler = StreamLogHandler.standardError(label: label)
            }
            handler.logLevel = level
            return handler
        }
        var logger = Logger(label: "esteira.\(service)")
        logger.logLevel = level
        return logger
    }
}

extension LoggingSystem {
    private static let done = Mutex(false)

    /// `LoggingSystem.bootstrap` traps when called twice (tests run several commands in one process).
    static func bootstrapOnce(_ factory: @escaping @Sendable (String) -> LogHandler) {
        let first = done.withLock { done in
            defer { done = true }
            return !done
        }
        if first { bootstrap(factory) }
    }
}
