import AMQP
import Foundation
import Logging
import Metrics
import Postgres

/// Batches the outcomes of attempts: one statement records hundreds of them, then their
/// retry messages are published (confirmed) and their events sent, and only then are the
/// submitters resumed, so a message is acked only once its job's new state is committed and
/// any follow-up message is confirmed by the broker (docs/design.md, "At-least-once delivery").
public final class StateWriter: @unchecked Sendable {
    private let pool: PostgresPool
    private let link: BrokerLink
    private let events: EventPublisher
    private let logger: Logger
    private let maxBatch: Int
    private let metrics: KindMetrics.Cache
    /// Called with the batches whose last open jobs a write finished, after their
    /// submitters were resumed.
    private let batchesEnded: @Sendable ([UUID]) async -> Void
    private let retryWatch: Double

    private let lock = NSLock()
    private var pending: [(AttemptResult, CheckedContinuation<Bool, Never>)] = []
    private var flusher: CheckedContinuation<Void, Never>?
    private var stopping = false
    private var finished = false

    init(pool: PostgresPool, link: BrokerLink, events: EventPublisher, retryWatch: Double = 60, maxBatch: Int = 1000,
         metrics: KindMetrics.Cache = KindMetrics.Cache(), logger: Logger,
         batchesEnded: @escaping @Sendable ([UUID]) async -> Void = { _ in }) {
        self.retryWatch = retryWatch
        self.metrics = metrics
        self.batchesEnded = batchesEnded
        self.pool = pool
        self.link = link
        self.events = events
        self.maxBatch = maxBatch
        self.logger = logger
    }

    /// Hands over an outcome; returns true once it is recorded (ack the message then), false
    /// if the writer stopped before it could record it (leave the message unacked).
    public func submit(_ result: AttemptResult) async -> Bool {
        await withCheckedContinuation { (c: CheckedContinuation<Bool, Never>) in
            lock.lock()
            if finished {
                lock.unlock()
                c.resume(returning: false)
                return
            }
            pending.append((result, c))
            let f = flusher
            flusher = nil
            lock.unlock()
            f?.resume()
        }
    }

    /// Stops after writing what was submitted.
    public func stop() {
        lock.lock()
        stopping = true
        let f = flusher
        flusher = nil
        lock.unlock()
        f?.resume()
    }

    /// Writes batches until ``stop()``.
    public func run() async {
        while true {
            let (batch, stop) = lock.withLock { () -> ([(AttemptResult, CheckedContinuation<Bool, Never>)], Bool) in
                let n = min(maxBatch, pending.count)
                let out = Array(pending.prefix(n))
                pending.removeFirst(n)
                if n == 0 && stopping { finished = true }
                return (out, stopping)
            }
            if !batch.isEmpty {
                let (ok, ended) = await write(batch.map(\.0))
                for (_, c) in batch { c.resume(returning: ok) }
                if !ended.isEmpty { await batchesEnded(ended) }
                continue
            }
            if stop { return }
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                lock.lock()
                if pending.isEmpty && !stopping {
                    flusher = c
                    lock.unlock()
                } else {
                    lock.unlock()
                    c.resume()
                }
            }
        }
    }

    /// Records `results`; returns whether they were recorded and the batches they ended.
    private func write(_ results: [AttemptResult]) async -> (Bool, [UUID]) {
        var finished = AttemptStore.Finished()
        var failures = 0
        while true {
            do {
                finished = try await pool.withConnection { [retryWatch] in try AttemptStore.finish(results, retryWatch: retryWatch, on: $0) }
                break
            } catch {
                failures += 1
                logger.warning("recording job outcomes failed; retrying", metadata: ["error": "\(error)", "jobs": "\(results.count)"])
                if lock.withLock({ stopping }) && failures >= 3 { return (false, []) }
                await Backoff.standard.sleep(after: failures)
            }
        }
        let changed = finished.changed
        let retries = results.filter { changed.contains($0.id) }.compactMap { r -> AMQPOutgoingMessage? in
            guard case .retry(let delay) = r.next else { return nil }
            return JobMessage(id: r.id, kind: r.kind, attempt: r.attempt + 1)
                .outgoing(exchange: Topology.retryExchange(delay), priority: r.priority)
        }
        failures = 0
        while !retries.isEmpty {
            do {
                try await link.publishConfirmed(retries)
                break
            } catch {
                failures += 1
                logger.warning("publishing retries failed; retrying", metadata: ["error": "\(error)", "messages": "\(retries.count)"])
                // The state is committed: if this process dies now, the unacked original is
                // redelivered and runs again (AttemptStore.start accepts it).
                if lock.withLock({ stopping }) && failures >= 3 { return (false, []) }
                await Backoff.standard.sleep(after: failures)
            }
        }
        var notices: [EventPublisher.Event] = []
        for r in results where changed.contains(r.id) {
            let status: JobStatus
            switch r.next {
            case .completed: status = .completed
            case .retry: status = .retrying
            case .dead: status = .dead
            }
            let m = metrics[r.kind]
            (status == .completed ? m.completed : status == .retrying ? m.retried : m.dead).increment()
            if r.error != nil { m.failed.increment() }
            notices.append(.init(id: r.id, kind: r.kind, status: status, attempt: r.attempt))
        }
        await events.publish(notices)
        return (true, finished.endedBatches)
    }
}

/// Sends job state changes to the `esteira.events` topic exchange, best effort: PostgreSQL's
/// job_events table is the durable history. The changes recorded together (a claimed or a
/// finished batch) go as one message per kind and status, routed `job.<kind>.<status>`, whose
/// body is a JSON array of `{id, kind, status, attempt}` in the order they were recorded: one
/// publish per batch rather than per job keeps the events from costing the broker as much as
/// the jobs themselves.
public struct EventPublisher: Sendable {
    public struct Event: Sendable, Encodable {
        public var id: UUID
        public var kind: String
        public var status: JobStatus
        public var attempt: Int
    }

    let link: BrokerLink?
    let logger: Logger

    /// `link` nil turns events off.
    public init(link: BrokerLink?, logger: Logger) {
        self.link = link
        self.logger = logger
    }

    /// The messages for `events`: one per kind and status, in order of first appearance.
    public static func messages(_ events: [Event]) -> [AMQPOutgoingMessage] {
        var order: [String] = []
        var bodies: [String: String] = [:]
        for e in events {
            let key = "job.\(e.kind).\(e.status.rawValue)"
            // Kind names are [a-z0-9_.-] and statuses fixed words: nothing to escape.
            let item = #"{"id":"\#(e.id.lowercasedText)","kind":"\#(e.kind)","status":"\#(e.status.rawValue)","attempt":\#(e.attempt)}"#
            if bodies[key] == nil {
                order.append(key)
                bodies[key] = item
            } else {
                bodies[key]!.append(",")
                bodies[key]!.append(item)
            }
        }
        return order.map { key in
            var properties = AMQPProperties()
            properties.persistent = false
            properties.contentType = "application/json"
            return AMQPOutgoingMessage(exchange: Topology.eventsExchange, routingKey: key,
                                       body: Array("[\(bodies[key]!)]".utf8), properties: properties)
        }
    }

    /// Sends a circuit breaker's change of state as `breaker.<name>.<state>` (best effort).
    public func publishBreaker(_ name: String, _ state: CircuitBreakers.State) async {
        guard let link else { return }
        var properties = AMQPProperties()
        properties.persistent = false
        properties.contentType = "application/json"
        let body = #"{"breaker":"\#(name)","state":"\#(state.rawValue)"}"#
        let message = AMQPOutgoingMessage(exchange: Topology.eventsExchange, routingKey: "breaker.\(name).\(state.rawValue)",
                                          body: Array(body.utf8), properties: properties)
        do { try await link.publishUnconfirmed([message]) } catch {
            logger.debug("breaker event not sent to the broker", metadata: ["error": "\(error)"])
        }
    }

    public func publish(_ events: [Event]) async {
        guard let link, !events.isEmpty else { return }
        let messages = EventPublisher.messages(events)
        do {
            try await link.publishUnconfirmed(messages)
        } catch {
            logger.debug("job events not sent to the broker", metadata: ["error": "\(error)"])
        }
    }
}
