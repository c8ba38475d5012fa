import AMQP
import Dispatch
import Foundation
import Postgres
import Synchronization

/// One dependency a process needs, checked by `/healthz`.
public struct HealthCheck: Sendable {
    /// The name shown in the report (`database`, `broker`, ...).
    public var name: String
    /// Throws when the dependency is not usable.
    public var probe: @Sendable () async throws -> Void

    /// A check named `name` that passes when `probe` returns.
    public init(name: String, probe: @escaping @Sendable () async throws -> Void) {
        self.name = name
        self.probe = probe
    }

    /// PostgreSQL answers `SELECT 1` through `pool`.
    public static func database(_ pool: PostgresPool) -> HealthCheck {
        HealthCheck(name: "database") {
            _ = try await pool.withConnection { conn in try conn.query("SELECT 1") }
        }
    }

    /// RabbitMQ accepts a connection and a login with `configuration`. The outcome is kept
    /// for `cacheFor`, and one probe runs at a time (callers meanwhile get the last outcome):
    /// `/healthz` is open, and a new broker connection per request would let anyone load the
    /// broker through it.
    public static func broker(_ configuration: AMQPConfiguration, cacheFor: Duration = .seconds(5)) -> HealthCheck {
        let cache = ProbeCache(ttl: cacheFor)
        return HealthCheck(name: "broker") {
            try await cache.outcome {
                try await connectOnce(configuration)
            }
        }
    }

    private static func connectOnce(_ configuration: AMQPConfiguration) async throws {
            // rabbitmq-c blocks; keep it off Swift's cooperative threads.
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, Error>) in
                DispatchQueue.global().async {
                    continuation.resume(with: Result {
                        let connection = try AMQPConnection.open(configuration)
                        try? connection.close()
                    })
                }
            }
    }
}

/// The last outcome of a probe, reused while fresh; one probe at a time.
final class ProbeCache: Sendable {
    private struct State {
        var last: (at: ContinuousClock.Instant, error: String?)?
        var probing = false
    }
    private let ttl: Duration
    private let state = Mutex(State())

    init(ttl: Duration) {
        self.ttl = ttl
    }

    struct Failed: Error, CustomStringConvertible {
        var description: String
    }

    /// The fresh outcome, or `probe`'s.
    func outcome(_ probe: () async throws -> Void) async throws {
        let now = ContinuousClock.now
        // nil: probe now; otherwise the last outcome (its error, if it failed).
        let cached: (error: String?, Void)? = state.withLock { s in
            if let last = s.last, now - last.at < ttl || s.probing { return (last.error, ()) }
            s.probing = true
            return nil
        }
        if let cached {
            if let error = cached.error { throw Failed(description: error) }
            return
        }
        var failure: String?
        do { try await probe() } catch { failure = String(describing: error) }
        state.withLock { $0 = State(last: (ContinuousClock.now, failure), probing: false) }
        if let failure { throw Failed(description: failure) }
    }
}

/// The outcome of every ``HealthCheck``: `ok` only when all pass.
public struct HealthReport: Codable, Sendable, Equatable {
    /// `ok` or `failing`.
    public var status: String
    /// Each check's outcome by name.
    public var checks: [String: Outcome]

    /// One check's outcome.
    public struct Outcome: Codable, Sendable, Equatable {
        /// `ok` or `failing`.
        public var status: String
        /// Why it failed (never a secret: errors of the wrappers redact passwords).
        public var error: String?
        /// How long the check took, in milliseconds.
        public var millis: Int
    }

    /// Runs `checks` concurrently, each bounded by `timeout`.
    public static func evaluate(_ checks: [HealthCheck], timeout: Duration = .seconds(3)) async -> HealthReport {
        let outcomes = await withTaskGroup(of: (String, Outcome).self) { group in
            for check in checks {
                group.addTask {
                    let start = ContinuousClock.now
                    let error: String? = await Self.run(check.probe, timeout: timeout)
                    let millis = Int((ContinuousClock.now - start) / .milliseconds(1))
                    return (check.name, Outcome(status: error == nil ? "ok" : "failing", error: error, millis: millis))
                }
            }
            var all: [String: Outcome] = [:]
            for await (name, outcome) in group { all[name] = outcome }
            return all
        }
        let ok = outcomes.values.allSatisfy { $0.status == "ok" }
        return HealthReport(status: ok ? "ok" : "failing", checks: outcomes)
    }

    private static func run(_ probe: @escaping @Sendable () async throws -> Void, timeout: Duration) async -> String? {
        await withTaskGroup(of: String?.self) { group in
            group.addTask {
                do { try await probe(); return nil } catch { return String(describing: error) }
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return "timed out after \(timeout)"
            }
            let first = await group.next()!
            group.cancelAll()
            return first
        }
    }
}
