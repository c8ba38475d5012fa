import Foundation

/// A connection that moves between threads, one at a time: the pool hands it to exactly one
/// borrower, which is what makes the unchecked `Sendable` sound.
struct PooledConnection: @unchecked Sendable {
    let connection: HTTPConnection
    /// Where this connection's transfers block. A serial queue of its own, because Dispatch on
    /// Linux runs a concurrent queue's work only as wide as the core count: blocked transfers
    /// would queue behind each other. Serial queues get a thread each when they have work.
    let queue: DispatchQueue
}

/// Up to `configuration.poolSize` easy handles, created on demand, lent to one borrower each.
final class ConnectionPool: @unchecked Sendable {
    /// Someone waiting for a handle: an async task or a blocked thread.
    private struct Waiter {
        let id: UInt64
        let resume: (Result<PooledConnection, Error>) -> Void
    }

    private enum WaitOutcome {
        case ready(PooledConnection), cancelled, waiting
    }

    private let configuration: HTTPClient.Configuration
    private let capacity: Int
    private let lock = NSLock()
    private var idle: [PooledConnection] = []
    private var created = 0
    private var waiters: [Waiter] = []
    private var nextWaiterID: UInt64 = 0

    init(configuration: HTTPClient.Configuration) {
        self.configuration = configuration
        self.capacity = max(1, configuration.poolSize)
    }

    /// An idle handle, a new one if the pool is not full, or nil if the caller must wait;
    /// called with the lock held.
    private func takeOrReserve() -> (PooledConnection?, mustCreate: Bool) {
        if let connection = idle.popLast() { return (connection, false) }
        if created < capacity {
            created += 1
            return (nil, true)
        }
        return (nil, false)
    }

    /// Creates a handle for a reserved slot, giving the slot back if creation fails.
    private func create() throws -> PooledConnection {
        do {
            return PooledConnection(connection: try HTTPConnection(configuration: configuration),
                                    queue: DispatchQueue(label: "esteira.http-client.transfer"))
        } catch {
            lock.withLock { created -= 1 }
            throw error
        }
    }

    func acquire() async throws -> PooledConnection {
        let (connection, mustCreate): (PooledConnection?, Bool) = lock.withLock { takeOrReserve() }
        if let connection { return connection }
        if mustCreate { return try create() }

        let id = lock.withLock { () -> UInt64 in nextWaiterID += 1; return nextWaiterID }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<PooledConnection, Error>) in
                let outcome: WaitOutcome = lock.withLock {
                    // Cancelled before the handler below could find this waiter; the flag is
                    // set before the handler runs, and the lock orders the two.
                    if Task.isCancelled { return .cancelled }
                    // A handle may have come back between the first look and now.
                    if let connection = idle.popLast() { return .ready(connection) }
                    waiters.append(Waiter(id: id, resume: { continuation.resume(with: $0) }))
                    return .waiting
                }
                switch outcome {
                case .ready(let connection): continuation.resume(returning: connection)
                case .cancelled: continuation.resume(throwing: CancellationError())
                case .waiting: break
                }
            }
        } onCancel: {
            let waiter: Waiter? = lock.withLock {
                guard let index = waiters.firstIndex(where: { $0.id == id }) else { return nil }
                return waiters.remove(at: index)
            }
            waiter?.resume(.failure(CancellationError()))
        }
    }

    func acquireBlocking() throws -> PooledConnection {
        let (connection, mustCreate): (PooledConnection?, Bool) = lock.withLock { takeOrReserve() }
        if let connection { return connection }
        if mustCreate { return try create() }

        let semaphore = DispatchSemaphore(value: 0)
        var result: Result<PooledConnection, Error>!
        let ready: PooledConnection? = lock.withLock {
            if let connection = idle.popLast() { return connection }
            nextWaiterID += 1
            waiters.append(Waiter(id: nextWaiterID, resume: { result = $0; semaphore.signal() }))
            return nil
        }
        if let ready { return ready }
        semaphore.wait()
        return try result.get()
    }

    /// Gives a handle back: straight to the longest waiter, else to the idle list.
    func release(_ connection: PooledConnection) {
        let waiter: Waiter? = lock.withLock {
            if waiters.isEmpty {
                idle.append(connection)
                return nil
            }
            return waiters.removeFirst()
        }
        waiter?.resume(.success(connection))
    }
}
