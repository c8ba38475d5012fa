#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// How to retry connecting after a connection is lost: exponential backoff from `initialDelay`,
/// doubling up to `maxDelay`, for at most `maxAttempts` attempts.
public struct AMQPReconnectPolicy: Sendable {
    /// Wait before the second attempt, in seconds (the first attempt is immediate).
    public var initialDelay: Double
    /// Longest wait between attempts, in seconds.
    public var maxDelay: Double
    /// Attempts in all, including the first; nil retries forever.
    public var maxAttempts: Int?

    /// Makes a policy; defaults: 0.1 s doubling up to 5 s, 10 attempts.
    public init(initialDelay: Double = 0.1, maxDelay: Double = 5, maxAttempts: Int? = 10) {
        self.initialDelay = initialDelay
        self.maxDelay = maxDelay
        self.maxAttempts = maxAttempts
    }

    /// The wait after failed attempt number `attempt` (1-based).
    public func delay(after attempt: Int) -> Double {
        min(maxDelay, initialDelay * pow(2, Double(max(0, attempt - 1))))
    }
}

extension AMQPConnection {
    /// Connects to the first of the configuration's nodes that answers (``AMQPConfiguration/endpoints``,
    /// in order), so a client of a cluster moves to another node when one is down. Throws the
    /// error of the last node tried when none answers; an authentication or URL error at once.
    public static func open(_ configuration: AMQPConfiguration) throws -> AMQPConnection {
        let endpoints = configuration.endpoints
        for (i, endpoint) in endpoints.enumerated() {
            do {
                return try AMQPConnection(endpoints.count == 1 ? configuration : configuration.aimed(at: endpoint))
            } catch let error as AMQPError where error.isTransient && i < endpoints.count - 1 {
                continue
            }
        }
        preconditionFailure("a configuration has at least one endpoint")
    }

    /// Connects (``open(_:)``), retrying transient failures (refused, lost, closed, timeout, DNS)
    /// with `retry`'s backoff. Authentication and URL errors are thrown at once: retrying cannot
    /// fix them. Blocks the calling thread while it waits, like every call here.
    public static func connect(_ configuration: AMQPConfiguration, retry: AMQPReconnectPolicy) throws -> AMQPConnection {
        var attempt = 0
        while true {
            attempt += 1
            do {
                return try open(configuration)
            } catch let error as AMQPError where error.isTransient {
                if let maxAttempts = retry.maxAttempts, attempt >= maxAttempts { throw error }
                let delay = retry.delay(after: attempt)
                usleep(useconds_t(delay * 1_000_000))
            }
        }
    }
}
