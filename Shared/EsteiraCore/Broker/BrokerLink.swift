import AMQP
import Dispatch
import Logging

/// One broker connection confined to its own serial queue (rabbitmq-c connections are not
/// thread-safe), used from async code to publish: jobs, retries, dead letters, events.
///
/// The connection opens on first use and after any failure; a publish that fails on a
/// connection that went away while idle is retried once on a new one. Heartbeats are off
/// on this link: it only speaks when it publishes, and a dead socket fails that publish.
public final class BrokerLink: @unchecked Sendable {
    private let configuration: AMQPConfiguration
    private let topology: Topology?
    private let queue: DispatchQueue
    private let logger: Logger
    // Touched only on `queue`.
    private var connection: AMQPConnection?
    private var confirmChannel: AMQPChannel?
    private var plainChannel: AMQPChannel?
    private var closed = false
    /// When a publish last failed; cleared by one that succeeds.
    private var lastFailure: ContinuousClock.Instant?

    /// How long after a failed publish a fail-fast publish fails at once (see
    /// ``publishConfirmed(_:timeout:failFast:)``).
    /// Long enough that requests do not each wait out a confirm timeout while the broker
    /// is without quorum (with 2 s the api took 10 jobs in 6 s there, with 10 s hundreds), and
    /// `make bench-cluster` showed no gain from a shorter one (docs/benchmarks.md).
    public static let holdOff: Duration = .seconds(10)

    /// A link to the broker at `configuration`; with `topology`, declared on every (re)connect.
    public init(configuration: AMQPConfiguration, topology: Topology? = nil, label: String, logger: Logger) {
        var configuration = configuration
        configuration.heartbeatSeconds = 0
        if configuration.connectionName == nil { configuration.connectionName = label }
        self.configuration = configuration
        self.topology = topology
        self.queue = DispatchQueue(label: "esteira.broker.\(label)")
        self.logger = logger
    }

    /// Publishes `messages` with publisher confirms (many in flight, confirmed together).
    /// `failFast`: within ``holdOff`` of a failed publish, fail at once without trying (a
    /// caller with somewhere else to leave the messages, the enqueuer's outbox, then does not
    /// wait on a broker that is down or has lost its quorum).
    /// - Throws: `AMQPError` when the broker nacks or returns any of them, or the link fails
    ///   twice in a row.
    public func publishConfirmed(_ messages: [AMQPOutgoingMessage], timeout: Double = 30, failFast: Bool = false) async throws {
        guard !messages.isEmpty else { return }
        try await perform(retryOnce: true, failFast: failFast) { _, confirm, _ in
            let result = try confirm.publishConfirmed(messages, timeout: timeout)
            guard result.allConfirmed else {
                throw PublishNotConfirmed(nacked: result.nacked.count, returned: result.returned.count)
            }
        }
    }

    /// Publishes `messages` without waiting for confirms (events: best effort; the database
    /// holds the durable record).
    public func publishUnconfirmed(_ messages: [AMQPOutgoingMessage]) async throws {
        guard !messages.isEmpty else { return }
        try await perform(retryOnce: false) { _, _, plain in
            for message in messages { try plain.publish(message) }
        }
    }

    /// Runs `body` with the link's connection (for declares and tests).
    public func withConnection<T: Sendable>(_ body: @escaping @Sendable (AMQPConnection) throws -> T) async throws -> T {
        try await perform(retryOnce: false) { connection, _, _ in try body(connection) }
    }

    /// Closes the connection; later calls fail.
    public func close() {
        queue.sync {
            closed = true
            dropConnection()
        }
    }

    /// Publishes with confirms from a thread that may block (e.g. inside a database
    /// transaction on a pool thread). Never call it from async code on the cooperative pool.
    public func publishConfirmedBlocking(_ messages: [AMQPOutgoingMessage], timeout: Double = 30) throws {
        guard !messages.isEmpty else { return }
        try queue.sync {
            try run(retryOnce: true) { _, confirm, _ in
                let result = try confirm.publishConfirmed(messages, timeout: timeout)
                guard result.allConfirmed else {
                    throw PublishNotConfirmed(nacked: result.nacked.count, returned: result.returned.count)
                }
            }
        }
    }

    private func perform<T>(retryOnce: Bool, failFast: Bool = false,
                            _ body: @escaping (AMQPConnection, AMQPChannel, AMQPChannel) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, Error>) in
            queue.async { [self] in
                continuation.resume(with: Result { try run(retryOnce: retryOnce, failFast: failFast, body) })
            }
        }
    }

    // On `queue` only.
    private func run<T>(retryOnce: Bool, failFast: Bool = false, _ body: (AMQPConnection, AMQPChannel, AMQPChannel) throws -> T) throws -> T {
        if failFast, let lastFailure, ContinuousClock.now - lastFailure < BrokerLink.holdOff {
            throw AMQPError(.connectionClosed, operation: "publish",
                            replyText: "not tried: a publish failed \(ContinuousClock.now - lastFailure) ago")
        }
        var tries = 0
        while true {
            tries += 1
            do {
                guard !closed else {
                    throw AMQPError(.connectionClosed, operation: "publish", replyText: "link closed")
                }
                let (connection, confirm, plain) = try open()
                let result = try body(connection, confirm, plain)
                lastFailure = nil
                return result
            } catch let error as PublishNotConfirmed {
                lastFailure = .now
                // No queue took a job message: its kind's queue is gone (deleted by hand, say).
                // The next publish connects anew, and declaring the topology makes the queue.
                if error.returned > 0 { dropConnection() }
                throw error
            } catch let error as AMQPError {
                dropConnection()
                lastFailure = .now
                // A confirm that did not come in time is not retried: the broker answered
                // nothing, and a second wait would double the caller's.
                if retryOnce, tries == 1, error.isTransient, error.code != .timeout {
                    logger.debug("broker link failed, retrying on a new connection", metadata: ["error": "\(error)"])
                    continue
                }
                throw error
            }
        }
    }

    private func open() throws -> (AMQPConnection, AMQPChannel, AMQPChannel) {
        if let connection, connection.isOpen, let confirmChannel, confirmChannel.isOpen,
           let plainChannel, plainChannel.isOpen {
            return (connection, confirmChannel, plainChannel)
        }
        dropConnection()
        let connection = try AMQPConnection.open(configuration)
        do {
            for notice in try topology?.declare(on: connection) ?? [] { logger.warning("\(notice)") }
            let confirm = try connection.openChannel()
            try confirm.enableConfirms()
            let plain = try connection.openChannel()
            self.connection = connection
            self.confirmChannel = confirm
            self.plainChannel = plain
            return (connection, confirm, plain)
        } catch {
            try? connection.close()
            throw error
        }
    }

    private func dropConnection() {
        if let connection { try? connection.close() }
        connection = nil
        confirmChannel = nil
        plainChannel = nil
    }
}

/// The broker refused some messages of a confirmed publish (nacked, or returned as unroutable).
public struct PublishNotConfirmed: Error, Sendable, CustomStringConvertible {
    /// Messages the broker nacked.
    public var nacked: Int
    /// Mandatory messages no queue took.
    public var returned: Int

    public var description: String { "publish not confirmed: \(nacked) nacked, \(returned) returned" }
}
