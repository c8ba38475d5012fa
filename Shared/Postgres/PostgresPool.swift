import Dispatch
import Foundation

/// A pool of connections for async code.
///
/// libpq calls block, so they never run on Swift's cooperative threads: each pooled
/// connection has its own serial `DispatchQueue`, and `withConnection` suspends the task
/// until the body has run there. At most `maxConnections` connections are open; further
/// callers wait in FIFO order, up to `acquireTimeout`.
public final class PostgresPool: @unchecked Sendable {
    // @unchecked: all mutable state is guarded by `lock`; a slot's connection is only touched
    // on the slot's queue.

    /// A place for one connection, opened lazily and reopened when found broken.
    private final class Slot: @unchecked Sendable {
        let queue: DispatchQueue
        var connection: PostgresConnection?   // only touched on `queue`
        init(number: Int) { queue = DispatchQueue(label: "esteira.postgres.pool.\(number)") }
    }

    private struct Waiter {
        let id: UInt64
        let continuation: CheckedContinuation<Slot, Error>
    }

    /// The configuration every pooled connection is opened with.
    public let configuration: PostgresConfiguration
    /// The most connections open at once.
    public let maxConnections: Int
    /// How long `withConnection` waits for a free connection before `acquireTimeout`.
    public let acquireTimeout: Duration

    private let lock = NSLock()
    private var idle: [Slot] = []
    private var slotCount = 0
    private var waiters: [Waiter] = []
    private var nextWaiterID: UInt64 = 0
    private var isClosed = false

    /// A pool; opens no connection until one is needed.
    ///
    /// - Parameters:
    ///   - maxConnections: at least 1. Default 4.
    ///   - acquireTimeout: default 30 seconds.
    public init(configuration: PostgresConfiguration, maxConnections: Int = 4,
                acquireTimeout: Duration = .seconds(30)) {
        precondition(maxConnections >= 1, "a pool needs at least one connection")
        self.configuration = configuration
        self.maxConnections = maxConnections
        self.acquireTimeout = acquireTimeout
    }

    /// Runs `body` with a connection, on that connection's own thread, and returns its result.
    ///
    /// The connection is checked first: one the server closed while idle is replaced. If the
    /// body leaves it broken it is closed, and reopened on next use.
    ///
    /// - Throws: the body's error; `PostgresError` with `acquireTimeout`, `poolClosed`, or
    ///   `connectionFailed`; `CancellationError` if the task is cancelled while waiting.
    @discardableResult
    public func withConnection<T>(_ body: @escaping (PostgresConnection) throws -> T) async throws -> T {
        let slot = try await acquire()
        do {
            let value = try await run(body, on: slot)
            release(slot)
            return value
        } catch {
            release(slot)
            throw error
        }
    }

    /// Runs `body` in a transaction (BEGIN/COMMIT, ROLLBACK on throw) on a pooled connection.
    @discardableResult
    public func transaction<T>(isolation: PostgresIsolationLevel? = nil,
                               _ body: @escaping (PostgresConnection) throws -> T) async throws -> T {
        try await withConnection { connection in
            try connection.transaction(isolation: isolation, body)
        }
    }

    /// Closes idle connections, fails waiting callers with `poolClosed`, and makes busy
    /// connections close when they come back. Later calls fail with `poolClosed`.
    public func close() {
        lock.lock()
        isClosed = true
        let failed = waiters
        waiters.removeAll()
        let closing = idle
        idle.removeAll()
        slotCount -= closing.count
        lock.unlock()

        for waiter in failed {
            waiter.continuation.resume(throwing: PostgresError(.poolClosed, message: "the pool was closed"))
        }
        // Idle slots run nothing, so this waits only for the close itself.
        for slot in closing {
            slot.queue.sync {
                slot.connection?.close()
                slot.connection = nil
            }
        }
    }

    /// How many connections are open or being opened, and how many callers wait (for tests
    /// and metrics).
    public var statistics: (open: Int, idle: Int, waiting: Int) {
        lock.lock()
        defer { lock.unlock() }
        return (slotCount, idle.count, waiters.count)
    }

    // MARK: - Internals

    private func acquire() async throws -> Slot {
        let id = lock.withLock {
            nextWaiterID += 1
            return nextWaiterID
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Slot, Error>) in
                lock.lock()
                if isClosed {
                    lock.unlock()
                    continuation.resume(throwing: PostgresError(.poolClosed, message: "the pool is closed"))
                } else if let slot = idle.popLast() {
                    lock.unlock()
                    continuation.resume(returning: slot)
                } else if slotCount < maxConnections {
                    slotCount += 1
                    let slot = Slot(number: slotCount)
                    lock.unlock()
                    continuation.resume(returning: slot)
                } else if Task.isCancelled {
                    lock.unlock()
                    continuation.resume(throwing: CancellationError())
                } else {
                    waiters.append(Waiter(id: id, continuation: continuation))
                    lock.unlock()
                    let timeout = acquireTimeout
                    let (seconds, attoseconds) = timeout.components
                    let delay = Double(seconds) + Double(attoseconds) / 1e18
                    DispatchQueue.global().asyncAfter(deadline: .now() + delay) { [weak self] in
                        self?.failWaiter(id, with: PostgresError(.acquireTimeout, message:
                            "no connection became free within \(timeout)"))
                    }
                }
            }
        } onCancel: {
            failWaiter(id, with: CancellationError())
        }
    }

    /// Fails the waiter `id` if it is still waiting (timeout or cancellation).
    private func failWaiter(_ id: UInt64, with error: Error) {
        lock.lock()
        guard let index = waiters.firstIndex(where: { $0.id == id }) else {
            lock.unlock()
            return
        }
        let waiter = waiters.remove(at: index)
        lock.unlock()
        waiter.continuation.resume(throwing: error)
    }

    private func release(_ slot: Slot) {
        lock.lock()
        if isClosed {
            slotCount -= 1
            lock.unlock()
            slot.queue.async {
                slot.connection?.close()
                slot.connection = nil
            }
            return
        }
        if !waiters.isEmpty {
            let waiter = waiters.removeFirst()
            lock.unlock()
            waiter.continuation.resume(returning: slot)
            return
        }
        idle.append(slot)
        lock.unlock()
    }

    private func run<T>(_ body: @escaping (PostgresConnection) throws -> T, on slot: Slot) async throws -> T {
        let configuration = configuration
        return try await withCheckedThrowingContinuation { continuation in
            slot.queue.async {
                do {
                    let connection = try Self.liveConnection(in: slot, configuration: configuration)
                    let value = try body(connection)
                    if !connection.isConnected { Self.discard(slot) }
                    continuation.resume(returning: value)
                } catch {
                    if slot.connection?.isConnected == false { Self.discard(slot) }
                    continuation.resume(throwing: error)
                }
            }
        }
    }

    /// The slot's connection if still good, else a new one (runs on the slot's queue).
    private static func liveConnection(in slot: Slot, configuration: PostgresConfiguration) throws -> PostgresConnection {
        if let connection = slot.connection {
            if connection.refreshStatus() { return connection }
            discard(slot)
        }
        let connection = try PostgresConnection(configuration: configuration)
        slot.connection = connection
        return connection
    }

    private static func discard(_ slot: Slot) {
        slot.connection?.close()
        slot.connection = nil
    }
}
