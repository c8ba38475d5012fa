import EsteiraCore
import Foundation
import HTTPClient
import Postgres

/// Mail connections lent to one caller at a time, each blocking on a serial queue of its
/// own (Dispatch on Linux runs a concurrent queue's work only as wide as the core count), so
/// that async code waits for IMAP and SMTP without holding a cooperative thread.
final class MailConnections: @unchecked Sendable {
    private final class Lent: @unchecked Sendable {
        let connection: MailConnection
        let queue = DispatchQueue(label: "esteira.email.mail-connection")
        init(_ connection: MailConnection) { self.connection = connection }
    }

    let configuration: HTTPClient.Configuration
    private let lock = NSLock()
    private var idle: [Lent] = []
    private let keep: Int

    /// Connections with `configuration` (timeouts, outbound policy); `keep` idle ones are kept.
    init(configuration: HTTPClient.Configuration, keep: Int = 16) {
        self.configuration = configuration
        self.keep = keep
    }

    /// Runs `body` with a connection, on its queue.
    func with<T: Sendable>(_ body: @escaping @Sendable (MailConnection) throws -> T) async throws -> T {
        let lent = try lock.withLock { idle.popLast() } ?? Lent(MailConnection(configuration: configuration))
        defer { lock.withLock { if idle.count < keep { idle.append(lent) } } }
        return try await withCheckedThrowingContinuation { c in
            lent.queue.async { c.resume(with: Result { try body(lent.connection) }) }
        }
    }
}

/// Circuit breakers a handler or a round keeps itself, one per external service (`smtp:<host>`,
/// `shop:<domain>`, `imap:<host>`), shared by every instance through `circuit_breakers`.
struct ServiceBreakers: Sendable {
    let pool: PostgresPool
    let policy: KindCatalog.BreakerPolicy

    /// The service's breaker is open.
    struct Open: Error, CustomStringConvertible {
        var breaker: String
        var seconds: Double
        var description: String { "the \(breaker) breaker is open (the service failed repeatedly); a probe in \(Int(seconds.rounded(.up))) s" }
    }

    /// Runs `body` when breaker `name` lets `caller` through, and records how it went: a
    /// failure for which `counts` says so counts against the breaker, anything else closes a
    /// half-open one. Throws ``Open`` without running `body` when the breaker is open.
    func call<T>(_ name: String, caller: UUID, probeTimeout: Double, counts: (Error) -> Bool,
                 _ body: () async throws -> T) async throws -> T {
        if let wait = try await pool.withConnection({ try CircuitBreakers.admit(name, policy: policy, job: caller, probeTimeout: probeTimeout, on: $0) }) {
            throw Open(breaker: name, seconds: wait)
        }
        do {
            let value = try await body()
            try await record(name, failed: false, error: nil)
            return value
        } catch {
            try await record(name, failed: counts(error), error: "\(error)")
            throw error
        }
    }

    private func record(_ name: String, failed: Bool, error: String?) async throws {
        let policy = self.policy
        _ = try await pool.withConnection { try CircuitBreakers.record(name, policy: policy, failed: failed, error: error, on: $0) }
    }

    /// `failures/window/coolDown` (e.g. `5/60/30`) from a setting.
    static func policy(_ setting: Setting, _ value: String?) throws -> KindCatalog.BreakerPolicy {
        guard let value, !value.isEmpty else { return KindCatalog.BreakerPolicy() }
        let parts = value.split(separator: "/").map { Double($0) }
        guard parts.count == 3, let failures = parts[0], let window = parts[1], let coolDown = parts[2],
              failures >= 1, failures <= 1000, failures == failures.rounded(), window > 0, coolDown > 0 else {
            throw ConfigurationError(variable: setting.name, value: value, expected: "failures/window/cool-down, e.g. 5/60/30")
        }
        return KindCatalog.BreakerPolicy(failures: Int(failures), window: window, coolDown: coolDown)
    }
}
