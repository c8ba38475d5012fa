import AMQP
import Foundation
import Logging
import Metrics
import Postgres
import Synchronization

/// Enqueue, the one call the api and every service use (docs/design.md, "Enqueue is
/// transactional and idempotent"): the job rows are written in a transaction, with the
/// caller's own writes when it gives any (an outbox); after commit the due jobs are published
/// with publisher confirms and marked published. A crash between commit and publish leaves
/// rows unpublished, which ``OutboxRelay`` publishes.
public struct Enqueuer: Sendable {
    public let store: JobStore
    public let pool: PostgresPool
    public let link: BrokerLink
    public let logger: Logger

    public init(store: JobStore, pool: PostgresPool, link: BrokerLink, logger: Logger) {
        self.store = store
        self.pool = pool
        self.link = link
        self.logger = logger
    }

    /// Enqueues `jobs` in one transaction, running `alongside` in it first (the caller's
    /// own writes) and `afterward` last (a check of the outcomes that may still roll it all
    /// back by throwing), then publishes. Outcomes are in the order of `jobs`.
    @discardableResult
    public func enqueue(_ jobs: [NewJob],
                        alongside: (@Sendable (PostgresConnection) throws -> Void)? = nil,
                        afterward: (@Sendable (PostgresConnection, [EnqueueOutcome]) throws -> Void)? = nil) async throws -> [EnqueueOutcome] {
        try store.validate(jobs)
        let store = self.store
        let outcomes = try await pool.transaction { connection in
            try alongside?(connection)
            let outcomes = try store.insert(jobs, on: connection)
            try afterward?(connection, outcomes)
            return outcomes
        }
        Self.count(outcomes)
        await publish(outcomes)
        return outcomes
    }

    /// Enqueues more jobs than one call takes (a fan-out) in chunks of `size` (at most
    /// ``JobStore/maxBatch``), each in a transaction of its own: `before` first (the caller's
    /// own writes and checks; false stops the fan-out before that chunk), then the chunk's
    /// jobs (one insert statement), then `afterward` with the chunk's range in `jobs` and its
    /// outcomes, then the chunk's jobs are counted into their batches (last, so that the
    /// batch rows, which every outcome of their jobs updates, are held only through the
    /// commit). A chunk's jobs are published as soon as it commits, while the next one is
    /// written, so the first jobs are worked on while the last are written; `committed` is
    /// called after each commit with the jobs enqueued so far. A failure leaves the chunks
    /// before it enqueued and published (or to the relay). Returns the outcomes of the chunks
    /// written, in the order of `jobs`.
    @discardableResult
    public func enqueueInChunks(_ jobs: [NewJob], size: Int = JobStore.maxBatch,
                                before: @escaping @Sendable (PostgresConnection, Range<Int>) throws -> Bool,
                                afterward: @escaping @Sendable (PostgresConnection, Range<Int>, [EnqueueOutcome]) throws -> Void,
                                committed: (Int) async throws -> Void = { _ in }) async throws -> [EnqueueOutcome] {
        let size = max(1, min(size, JobStore.maxBatch))
        let chunks = stride(from: 0, to: jobs.count, by: size).map { $0..<min($0 + size, jobs.count) }
        for range in chunks { try store.validate(Array(jobs[range])) }
        let store = self.store
        var all: [EnqueueOutcome] = []
        all.reserveCapacity(jobs.count)
        /// The chunks' publishing, one after the other, while the next chunks are written.
        var publishing: Task<Void, Never>?
        /// The jobs of the chunks published so far: a chunk's outbox rows fall due after the
        /// jobs still to be published before it, not after every job of the fan-out before it.
        let published = PublishedCount()
        do {
            for range in chunks {
                let chunk = Array(jobs[range])
                guard let outcomes = try await pool.transaction({ connection -> [EnqueueOutcome]? in
                    guard try before(connection, range) else { return nil }
                    let position = range.lowerBound - published.count.withLock { $0 }
                    let outcomes = try store.insert(chunk, on: connection, position: position, countingBatches: false)
                    try afterward(connection, range, outcomes)
                    // Last: the batch rows are held only from here to the commit.
                    try store.countOpened(chunk, outcomes, on: connection)
                    return outcomes
                }) else { break }
                Self.count(outcomes)
                all += outcomes
                let previous = publishing
                publishing = Task {
                    await previous?.value
                    await self.publish(outcomes)
                    published.count.withLock { $0 += outcomes.count }
                }
                try await committed(all.count)
            }
        } catch {
            await publishing?.value
            throw error
        }
        await publishing?.value
        return all
    }

    private final class PublishedCount: Sendable {
        let count = Mutex(0)
    }

    /// Messages waiting in `kind`'s work queue (not delivered to a processor yet), or nil when
    /// the broker cannot be asked: what a fan-out paces its chunks by.
    public func backlog(of kind: String) async -> Int? {
        try? await link.withConnection { connection in
            let channel = try connection.openChannel()
            defer { try? channel.close() }
            return Int(try channel.declareQueuePassive(Topology.workQueue(kind)).messageCount)
        }
    }

    /// Counts the jobs made, and the requests a unique kind answered with an equal active job.
    private static func count(_ outcomes: [EnqueueOutcome]) {
        var created: [String: Int] = [:], duplicates: [String: Int] = [:]
        for outcome in outcomes {
            if outcome.created { created[outcome.kind, default: 0] += 1 }
            if outcome.duplicate { duplicates[outcome.kind, default: 0] += 1 }
        }
        for (kind, n) in created {
            Counter(label: "esteira_jobs_enqueued_total", dimensions: [("kind", kind)]).increment(by: n)
        }
        for (kind, n) in duplicates {
            Counter(label: "esteira_jobs_duplicates_total", dimensions: [("kind", kind)]).increment(by: n)
        }
    }

    /// Publishes the created, due jobs among `outcomes` and marks them published, 5,000 at a
    /// time (a fan-out of 100,000 leaves the outbox as it goes), each chunk marked while the
    /// next is published. Failures are logged, not thrown: the rows stay unpublished and the
    /// relay publishes them (a row is left to this enqueuer for ``JobStore/relayPace``).
    public func publish(_ outcomes: [EnqueueOutcome]) async {
        let due = outcomes.filter { $0.created && $0.status == .queued }
        let store = self.store, pool = self.pool, logger = self.logger
        /// The previous chunk's mark, awaited before the next starts (a failed mark leaves
        /// its rows to the relay, which publishes them a second time: harmless).
        var marking: Task<Void, Never>?
        for start in stride(from: 0, to: due.count, by: 5000) {
            let chunk = due[start..<min(start + 5000, due.count)]
            let messages = chunk.map { JobMessage(id: $0.id, kind: $0.kind, attempt: 1).outgoing(priority: $0.priority) }
            do {
                // Not waiting long, nor again right after a failure: the rows are committed,
                // and the relay publishes what is left (a broker node down, queues without quorum).
                try await link.publishConfirmed(messages, timeout: 2 + Double(messages.count) / 2000, failFast: true)
            } catch {
                logger.warning("enqueued jobs not published yet; the outbox relay will publish them",
                               metadata: ["count": "\(due.count - start)", "error": "\(error)"])
                await marking?.value
                return
            }
            await marking?.value
            let ids = chunk.map(\.id)
            marking = Task {
                do {
                    try await pool.withConnection { _ = try store.markPublished(ids, on: $0) }
                } catch {
                    logger.warning("published jobs not marked; the outbox relay will publish them again",
                                   metadata: ["count": "\(ids.count)", "error": "\(error)"])
                }
            }
        }
        await marking?.value
    }
}

extension Enqueuer {
    /// Cancels job `id` in `scope` (a running one is stopped on its processor) and settles
    /// its batch if it was the batch's last unfinished job (else the scheduler's sweep does).
    public func cancel(_ id: UUID, scope: AccessScope, by principal: String) async throws -> CancelOutcome {
        let outcome = try await pool.withConnection { try JobQueries.cancel(id, scope: scope, by: principal, on: $0) }
        if case .cancelled(let job) = outcome, let batch = job.batchID {
            await Batches(store: store).settleAndPublish(batch, pool: pool, enqueuer: self)
        }
        return outcome
    }

    /// Requeues the dead letters `selection` picks in `scope` (recorded as one requeue by
    /// `principal`), then publishes their jobs.
    public func requeue(_ selection: DeadLetterSelection, scope: AccessScope, by principal: UUID?) async throws -> RequeueResult {
        let result = try await pool.transaction { try DeadLetterStore.requeue(selection, scope: scope, by: principal, on: $0) }
        await publish(result.jobs)
        return result
    }
}
