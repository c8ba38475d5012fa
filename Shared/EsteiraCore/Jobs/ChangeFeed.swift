import Foundation
import Logging
import Postgres

/// Wakes Server-Sent-Event streams when rows of an append-only log (`job_events`,
/// `messaging_changes`: a `bigserial` id, written in the changing transaction) are
/// committed, and tells them how far they may read.
///
/// One thread per feed looks every `pollInterval` (20 ms by default) for newly committed ids
/// while a stream is open, and every `idlePollInterval` (1 s) while none is: the mark stays
/// known without a read every 20 ms that nobody waits for. A new stream wakes the thread, and
/// one that starts "from now" takes ``freshMark(timeout:)``, not an idle mark a second old.
/// The log's writers do not NOTIFY: PostgreSQL serializes the commits of notifying
/// transactions, each holding a lock until its commit is flushed, and every claim and
/// outcome of every processor would queue on it; one indexed read per interval per api
/// costs less than that.
/// Ids come from a sequence, so a transaction may commit id 12 after another committed id
/// 13; a reader that skipped past 12 would never see it. The feed therefore keeps a
/// high-water mark: the largest id up to which every id is committed (or was missing for
/// longer than `gapTimeout`: a rolled-back insert leaves a hole forever). Readers read
/// `id > last AND id <= highWater`, so they see every row exactly once, in order.
public final class ChangeFeed: @unchecked Sendable {
    /// The log's table.
    public let table: String
    /// How long the thread waits between looks while a stream is open.
    public let pollInterval: Duration
    /// How long it waits between looks while no stream is open.
    public let idlePollInterval: Duration
    private let configuration: PostgresConfiguration
    private let logger: Logger
    private let gapTimeout: Double
    private let lock = NSLock()
    private var mark: Int64 = -1
    private var gap: (after: Int64, since: Date)?
    private var subscribers: [UUID: (continuation: AsyncStream<Int64>.Continuation, active: Bool)] = [:]
    /// Streams fed through a passive subscriber (``hold()``).
    private var holds = 0
    /// Callers of ``freshMark(timeout:)`` waiting for the next look.
    private var lookers: [MarkWaiter] = []
    private var stopped = false
    private var started = false
    private let ready = DispatchSemaphore(value: 0)
    /// Ends the thread's wait early: a stream opened (or the feed stops).
    private let wake = DispatchSemaphore(value: 0)
    /// Ids one look reads at most; a full page is followed by another look at once.
    private let pageSize = 10_000

    /// `gapTimeout` (default 10 s): how long a hole is waited for. A transaction that holds an
    /// event id that long and then commits is a lost event for open streams, so it is well
    /// above a commit's time on a loaded machine; a rolled-back insert delays streams that long.
    /// `pollInterval`: how fresh the mark is while a stream is open; `idlePollInterval`,
    /// while none is.
    public init(configuration: PostgresConfiguration, table: String = "job_events",
                pollInterval: Duration = .milliseconds(20), idlePollInterval: Duration = .seconds(1), gapTimeout: Double = 10,
                logger: Logger) {
        self.configuration = configuration
        self.table = table
        self.pollInterval = pollInterval
        self.idlePollInterval = idlePollInterval
        self.gapTimeout = gapTimeout
        self.logger = logger
    }

    /// Every event id up to this one is committed and visible; -1 before the first read.
    public var highWater: Int64 { lock.withLock { mark } }

    /// Starts the listening thread; returns once the first high-water mark is known (or
    /// after `timeout`, when PostgreSQL is not reachable yet; the thread keeps trying).
    public func start(timeout: Double = 10) {
        let first = lock.withLock { () -> Bool in defer { started = true }; return !started }
        guard first else { return }
        let thread = Thread { [self] in run() }
        thread.name = "esteira-feed-\(table)"
        thread.start()
        _ = ready.wait(timeout: .now() + timeout)
    }

    /// Ends every stream and the thread.
    public func stop() {
        let (all, looking) = lock.withLock { () -> ([AsyncStream<Int64>.Continuation], [MarkWaiter]) in
            stopped = true
            defer { subscribers.removeAll(); lookers.removeAll() }
            return (subscribers.values.map(\.continuation), lookers)
        }
        for c in all { c.finish() }
        let current = highWater
        for waiter in looking { waiter.resume(current) }
        wake.signal()
    }

    /// Whether a stream waits for the marks: the thread looks every `pollInterval` then.
    private var isActive: Bool {
        holds > 0 || subscribers.values.contains { $0.active }
    }

    /// Counts a stream that a passive subscriber feeds (a reader that hands rows to many
    /// streams): the feed is active until the matching ``release()``.
    public func hold() {
        lock.withLock { holds += 1 }
        wake.signal()
    }

    /// Ends a ``hold()``.
    public func release() {
        lock.withLock { holds = max(0, holds - 1) }
    }

    /// The mark as of a look that began after this call: where a stream that starts "from now"
    /// starts (an idle feed's mark may be a second old). After `timeout` without a look
    /// (PostgreSQL unreachable), the mark as it is.
    public func freshMark(timeout: Duration = .seconds(2)) async -> Int64 {
        let waiter = MarkWaiter()
        let waiting = lock.withLock { () -> Bool in
            guard started, !stopped else { return false }
            lookers.append(waiter)
            return true
        }
        guard waiting else { return highWater }
        wake.signal()
        return await withTaskGroup(of: Int64?.self) { group in
            group.addTask { await waiter.value() }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            waiter.resume(nil)
            return first ?? highWater
        }
    }

    /// A stream of high-water marks: one now, then one a look (every `pollInterval`, or
    /// `idlePollInterval` while no active stream is open). Ends when the feed stops or the task
    /// is cancelled. A passive subscriber (`active` false: one that reads for the streams it
    /// counts with ``hold()``) does not keep the feed looking often.
    public func subscribe(active: Bool = true) -> AsyncStream<Int64> {
        let id = UUID()
        let (stream, continuation) = AsyncStream<Int64>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let current = lock.withLock { () -> Int64? in
            if stopped { return nil }
            subscribers[id] = (continuation, active)
            return mark
        }
        guard let current else { continuation.finish(); return stream }
        continuation.onTermination = { [weak self] _ in
            _ = self?.lock.withLock { self?.subscribers.removeValue(forKey: id) }
        }
        if current >= 0 { continuation.yield(current) }
        // The mark may be up to an idle interval old: look now.
        if active { wake.signal() }
        return stream
    }

    private func run() {
        var signalled = false
        var failures = 0
        while !lock.withLock({ stopped }) {
            do {
                let connection = try PostgresConnection(configuration: configuration)
                defer { connection.close() }
                failures = 0
                while !lock.withLock({ stopped }) {
                    // Those who asked before this look began get its mark.
                    let looking = lock.withLock { () -> [MarkWaiter] in defer { lookers.removeAll() }; return lookers }
                    let full: Bool
                    do {
                        full = try advance(on: connection)
                    } catch {
                        lock.withLock { lookers += looking }
                        throw error
                    }
                    let current = highWater
                    for waiter in looking { waiter.resume(current) }
                    if !signalled { signalled = true; ready.signal() }
                    if full { continue }
                    let idle = lock.withLock { !isActive }
                    _ = wake.wait(timeout: .now() + (idle ? idlePollInterval : pollInterval) / .seconds(1))
                }
            } catch {
                logger.warning("change feed lost PostgreSQL; retrying", metadata: ["table": "\(table)", "error": "\(error)"])
                failures += 1
                Thread.sleep(forTimeInterval: Backoff.standard.delay(after: failures))
            }
        }
    }

    /// Moves the mark over every id committed without a hole before it, then wakes readers;
    /// returns whether it read a full page with no hole (more may be waiting).
    private func advance(on connection: PostgresConnection) throws -> Bool {
        var current = lock.withLock { mark }
        if current < 0 {
            current = try latestID(on: connection)
        }
        let ids = try connection.query("SELECT id FROM \(table) WHERE id > $1 ORDER BY id LIMIT \(pageSize)", [current])
        var newGap = lock.withLock { gap }
        for row in ids {
            let id = try row.decode(Int64.self, at: 0)
            if id == current + 1 {
                current = id
                newGap = nil
                continue
            }
            // A hole before `id`: wait for it to commit, but not forever.
            if let g = newGap, g.after == current {
                if Date().timeIntervalSince(g.since) < gapTimeout { break }
                current = id
                newGap = nil
            } else {
                newGap = (current, Date())
                break
            }
        }
        let all = lock.withLock { () -> [AsyncStream<Int64>.Continuation] in
            mark = current
            gap = newGap
            return subscribers.values.map(\.continuation)
        }
        for c in all { c.yield(current) }
        // A hole being waited for is not more to read.
        return ids.count == pageSize && newGap == nil
    }

    /// The newest id of the log (0 when it is empty).
    public func latestID(on connection: PostgresConnection) throws -> Int64 {
        try connection.query("SELECT coalesce(max(id), 0) FROM \(table)").first!.decode(Int64.self, at: 0)
    }

    /// Job events after `after` up to `upTo`, oldest first, at most `limit`, filtered.
    public static func jobEvents(after: Int64, upTo: Int64, jobID: UUID?, kind: String?, ownerID: UUID?, limit: Int = 500,
                              on connection: PostgresConnection) throws -> [JobEvent] {
        var conditions = ["id > $1", "id <= $2"], parameters: [PostgresEncodable?] = [after, upTo]
        if let jobID { parameters.append(jobID); conditions.append("job_id = $\(parameters.count)") }
        if let kind { parameters.append(kind); conditions.append("kind = $\(parameters.count)") }
        if let ownerID { parameters.append(ownerID); conditions.append("owner_id = $\(parameters.count)") }
        parameters.append(limit)
        return try connection.query("""
            SELECT \(JobEvent.columns) FROM job_events WHERE \(conditions.joined(separator: " AND "))
            ORDER BY id LIMIT $\(parameters.count)
            """, parameters).map(JobEvent.init(row:))
    }
}

/// One caller of ``ChangeFeed/freshMark(timeout:)``: resumed once, with a look's mark or nil
/// (its wait ended first).
private final class MarkWaiter: @unchecked Sendable {
    private let lock = NSLock()
    private var continuation: CheckedContinuation<Int64?, Never>?
    private var result: Int64??

    func value() async -> Int64? {
        await withCheckedContinuation { c in
            let ready = lock.withLock { () -> Int64?? in
                if let result { return result }
                continuation = c
                return nil
            }
            if let ready { c.resume(returning: ready) }
        }
    }

    /// The first call wins; later ones change nothing.
    func resume(_ mark: Int64?) {
        let c = lock.withLock { () -> CheckedContinuation<Int64?, Never>? in
            guard result == nil else { return nil }
            result = .some(mark)
            defer { continuation = nil }
            return continuation
        }
        c?.resume(returning: mark)
    }
}
