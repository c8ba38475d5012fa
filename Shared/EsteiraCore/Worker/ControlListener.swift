import Foundation
import Logging
import Postgres

/// The processor's ear on ``ControlChannel``: a thread that LISTENs for cancelled running
/// jobs and changes of the paused kinds, and reads the paused kinds when it (re)connects, on
/// every change, and every `refresh` seconds besides (a notification sent while it was
/// reconnecting is not lost for long).
final class ControlListener: @unchecked Sendable {
    private let configuration: PostgresConfiguration
    private let logger: Logger
    private let refresh: Double
    private let onCancel: @Sendable (UUID) -> Void
    private let onPaused: @Sendable (Set<String>) -> Void
    private let lock = NSLock()
    private var stopped = false
    private let ended = DispatchSemaphore(value: 0)
    private let listening = OneShotSignal()

    init(configuration: PostgresConfiguration, refresh: Double = 5, logger: Logger,
         onCancel: @escaping @Sendable (UUID) -> Void, onPaused: @escaping @Sendable (Set<String>) -> Void) {
        self.configuration = configuration
        self.refresh = refresh
        self.logger = logger
        self.onCancel = onCancel
        self.onPaused = onPaused
    }

    func start() {
        let thread = Thread { [self] in
            run()
            ended.signal()
        }
        thread.name = "esteira-control"
        thread.start()
    }

    /// Returns once the first LISTEN is in place (a cancel sent from then on is heard), or
    /// after `timeout`: false then (PostgreSQL is slow or away; the thread keeps trying, and
    /// the heartbeat notices a cancelled job meanwhile).
    func waitUntilListening(timeout: Duration) async -> Bool {
        await withTaskGroup(of: Bool.self) { group in
            group.addTask { await self.listening.wait(); return true }
            group.addTask { try? await Task.sleep(for: timeout); return false }
            let first = await group.next() ?? false
            group.cancelAll()
            return first
        }
    }

    /// Stops the thread (within a second) and waits for it.
    func stop() async {
        lock.withLock { stopped = true }
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            DispatchQueue.global().async { [ended] in
                ended.wait()
                c.resume()
            }
        }
    }

    private var isStopped: Bool { lock.withLock { stopped } }

    private func run() {
        var failures = 0
        while !isStopped {
            do {
                let connection = try PostgresConnection(configuration: configuration)
                defer { connection.close() }
                try connection.listen(ControlChannel.name)
                listening.fire()
                failures = 0
                var lastRead = ContinuousClock.now
                try readPauses(on: connection)
                while !isStopped {
                    var pausesChanged = ContinuousClock.now - lastRead >= .seconds(refresh)
                    while let n = try connection.waitForNotification(timeout: pausesChanged ? .zero : .seconds(1)) {
                        switch ControlChannel.message(n.payload) {
                        case .cancelled(let id): onCancel(id)
                        case .pausesChanged: pausesChanged = true
                        case nil: break
                        }
                    }
                    if pausesChanged {
                        try readPauses(on: connection)
                        lastRead = ContinuousClock.now
                    }
                }
            } catch {
                failures += 1
                logger.warning("control channel lost PostgreSQL; retrying", metadata: ["error": "\(error)"])
                Thread.sleep(forTimeInterval: Backoff.standard.delay(after: failures))
            }
        }
    }

    private func readPauses(on connection: PostgresConnection) throws {
        onPaused(Set(try KindPauses.all(on: connection).map(\.kind)))
    }
}
