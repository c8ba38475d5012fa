import AMQP
import Foundation
import Logging
import Metrics
import Postgres
import ServiceLifecycle

/// The processor's engine: consumers per instance, a handler per kind, retries through the
/// tier queues, dead letters, cancel, per-job timeouts, batched state writes, graceful drain.
/// A swift-service-lifecycle `Service`: it runs until the group shuts down gracefully, then
/// drains (``shutdown()``).
public final class Worker: Service, @unchecked Sendable {
    /// How one processor instance runs.
    public struct Configuration: Sendable {
        /// Consuming connections (each on its own thread). Default 2.
        public var consumers: Int = 2
        /// Unacked deliveries per consumer. Default 200.
        public var prefetch: Int = 200
        /// Kinds to consume; empty: every kind in the catalog with a registered handler.
        public var kinds: [String] = []
        /// On shutdown, how long in-flight jobs may take to finish before they go back to
        /// their queue, in seconds. Default 30.
        public var drainTimeout: Double = 30
        /// Send state changes to `esteira.events`. Default true.
        public var publishEvents: Bool = true
        /// Seconds past a retry's due time after which the outbox relay publishes it again if
        /// its message has not come back from its tier (``AttemptStore/finish(_:retryWatch:on:)``).
        /// Default 60.
        public var retryWatch: Double = 60
        /// This instance's name, recorded on the jobs it runs.
        public var name: String = "processor-\(ProcessInfo.processInfo.processIdentifier)@\(ProcessInfo.processInfo.hostName)"

        public init() {}
    }

    public let configuration: Configuration
    public let catalog: KindCatalog
    public let registry: HandlerRegistry
    public let pool: PostgresPool
    public let amqp: AMQPConfiguration
    public let logger: Logger
    public let link: BrokerLink
    private let writer: StateWriter
    /// Enqueues what handlers fan out and batches' callbacks.
    private let enqueuer: Enqueuer
    private let batches: Batches
    private let releases = ConcurrencySlots.Releases()
    private let metrics = KindMetrics.Cache()
    private let events: EventPublisher
    private let limiters: [String: AsyncLimiter]
    private let kinds: [String]
    private let consumers: [DeliveryConsumer]

    private let lock = NSLock()
    private var inFlight = 0
    /// Attempts this instance holds, by job: reported alive by the heartbeat, stopped when
    /// the scheduler rescued them elsewhere.
    private var holding: [UUID: Held] = [:]
    /// Cancels heard for jobs not held here, and when (see ``cancelRunning(_:)``).
    private var cancelledEarly: [UUID: ContinuousClock.Instant] = [:]
    private var lastHeartbeat = ContinuousClock.now
    /// Consumed kinds an admin paused (``KindPauses``): their deliveries are not taken.
    private var paused: Set<String> = []
    private var control: ControlListener!

    private final class Held: @unchecked Sendable {
        let attempt: Int
        let kind: String
        let timeout: Double
        let since = ContinuousClock.now
        private let lock = NSLock()
        /// The task running the handler, while it runs it: cancelled, under `lock`, when the
        /// attempt is lost or times out. Set and cleared by ``running(timeout:_:)`` inside
        /// `withUnsafeCurrentTask`, under `lock`, so it is never used after the handler returned.
        private var task: UnsafeCurrentTask?
        private var lostReason: String?
        /// When the handler must be done by (set when it starts), and whether it was stopped for that.
        private var deadline: ContinuousClock.Instant?
        private var expired = false

        init(attempt: Int, kind: String, timeout: Double) {
            self.attempt = attempt
            self.kind = kind
            self.timeout = timeout
        }

        var lost: String? { lock.withLock { lostReason } }

        /// Runs `body` (the handler) in the calling task, which is cancelled when the attempt
        /// is lost or runs past `timeout` seconds from now. Throws `CancellationError` without
        /// running it when the attempt is already lost.
        func running(timeout: Double, _ body: () async throws -> JSONValue?) async throws -> JSONValue? {
            try await withUnsafeCurrentTask { current in
                let started = lock.withLock { () -> Bool in
                    guard lostReason == nil else { return false }
                    task = current
                    deadline = ContinuousClock.now.advanced(by: .seconds(timeout))
                    return true
                }
                guard started else { throw CancellationError() }
                defer { lock.withLock { task = nil } }
                return try await body()
            }
        }

        /// Whether the handler was stopped for running past its timeout.
        var timedOut: Bool { lock.withLock { expired } }

        /// Stops the handler if its deadline passed.
        func expireIfDue(_ now: ContinuousClock.Instant) {
            lock.withLock {
                guard !expired, lostReason == nil, let deadline, now >= deadline else { return }
                expired = true
                task?.cancel()
            }
        }

        /// Whether the job was cancelled while this attempt ran.
        var cancelled: Bool { lock.withLock { lostReason == Held.cancelledReason } }
        static let cancelledReason = "the job was cancelled"

        func lose(_ reason: String) {
            lock.withLock {
                // A cancel says more than the lease the heartbeat found gone (which it deleted).
                if lostReason == nil || reason == Held.cancelledReason { lostReason = reason }
                task?.cancel()
            }
        }
    }
    private var shuttingDown = false
    /// Fired when the drain begins, and when nothing is in flight once it has.
    private let draining = OneShotSignal()
    private let idle = OneShotSignal()
    private let inFlightGauge = Gauge(label: "esteira_jobs_in_flight")

    public init(configuration: Configuration, catalog: KindCatalog, registry: HandlerRegistry, pool: PostgresPool,
                amqp: AMQPConfiguration, logger: Logger) throws {
        self.configuration = configuration
        self.catalog = catalog
        self.registry = registry
        self.pool = pool
        self.amqp = amqp
        self.logger = logger
        let kinds = configuration.kinds.isEmpty
            ? catalog.names.filter { catalog[$0].flatMap(registry.handler(for:)) != nil }
            : configuration.kinds
        for kind in kinds {
            guard let k = catalog[kind] else {
                throw ConfigurationError(variable: "--kinds", value: kind, expected: "a known kind (\(catalog.names.joined(separator: ", ")))")
            }
            guard registry.handler(for: k) != nil else {
                throw ConfigurationError(variable: "--kinds", value: kind, expected: "a kind with a handler (\(registry.names.joined(separator: ", ")))")
            }
        }
        self.kinds = kinds
        let topology = catalog.topology
        link = BrokerLink(configuration: amqp, topology: topology, label: "\(configuration.name)-publish", logger: logger)
        events = EventPublisher(link: configuration.publishEvents ? link : nil, logger: logger)
        let enqueuer = Enqueuer(store: JobStore(catalog: catalog), pool: pool, link: link, logger: logger)
        let batches = Batches(store: enqueuer.store)
        self.enqueuer = enqueuer
        self.batches = batches
        writer = StateWriter(pool: pool, link: link, events: events, retryWatch: configuration.retryWatch, metrics: metrics, logger: logger) { [pool, logger] ended in
            for batch in ended {
                if await batches.settleAndPublish(batch, pool: pool, enqueuer: enqueuer) {
                    logger.info("batch finished; callbacks enqueued", metadata: ["batch": "\(batch)"])
                }
            }
        }
        var limiters: [String: AsyncLimiter] = [:]
        for kind in kinds { limiters[kind] = AsyncLimiter(limit: catalog[kind]!.policy.concurrency) }
        self.limiters = limiters
        let prefetch = UInt16(clamping: configuration.prefetch)
        consumers = (0..<max(1, configuration.consumers)).map { i in
            DeliveryConsumer(configuration: amqp, topology: topology, queues: kinds.map(Topology.workQueue),
                             prefetch: prefetch, name: "\(configuration.name)-consumer-\(i)", logger: logger)
        }
        control = ControlListener(configuration: pool.configuration, logger: logger,
                                  onCancel: { [weak self] in self?.cancelRunning($0) },
                                  onPaused: { [weak self] in self?.setPaused($0) })
    }

    /// Stops the attempt of job `id` if this instance runs it: its handler's task is
    /// cancelled, and its outcome is not recorded (the job is cancelled already).
    /// A cancel for a job this instance does not hold (yet) is remembered for a few seconds:
    /// its attempt may be claimed here but not yet started (a loaded machine), and starts
    /// cancelled then.
    private func cancelRunning(_ id: UUID) {
        let held = lock.withLock { () -> Held? in
            if let held = holding[id] { return held }
            let now = ContinuousClock.now
            cancelledEarly = cancelledEarly.filter { now - $0.value < .seconds(30) }
            cancelledEarly[id] = now
            return nil
        }
        if let held { cancel(held, id) }
    }

    /// Tells attempt `held` of job `id` that the job was cancelled.
    private func cancel(_ held: Held, _ id: UUID) {
        held.lose(Held.cancelledReason)
        metrics[held.kind].cancelledRunning.increment()
        logger.info("running job cancelled: its handler is told", metadata: ["job": "\(id)", "kind": "\(held.kind)"])
    }

    /// The paused kinds changed: consumers stop (or start again) taking their deliveries.
    private func setPaused(_ all: Set<String>) {
        let mine = all.intersection(kinds)
        let changed = lock.withLock { () -> Bool in
            defer { paused = mine }
            return paused != mine
        }
        for kind in kinds { Gauge(label: "esteira_kind_paused", dimensions: [("kind", kind)]).record(mine.contains(kind) ? 1 : 0) }
        guard changed else { return }
        logger.info("paused kinds", metadata: ["paused": "\(mine.sorted().joined(separator: ","))"])
        let queues = Set(mine.map(Topology.workQueue))
        for consumer in consumers { consumer.pause(queues) }
    }

    /// The kinds this instance consumes.
    public var consumedKinds: [String] { kinds }

    /// Jobs being claimed or running now.
    public var runningCount: Int { lock.withLock { inFlight } }

    /// Runs until the service group shuts down gracefully (or this task is cancelled), then
    /// drains through ``shutdown()``.
    public func run() async {
        logger.info("processor starting", metadata: ["kinds": "\(kinds.joined(separator: ","))",
                                                     "consumers": "\(consumers.count)", "prefetch": "\(configuration.prefetch)"])
        // Paused kinds are known before the first delivery is taken.
        if let pauses = await retrying("reading the paused kinds", count: 0, { try KindPauses.all(on: $0) }) {
            setPaused(Set(pauses.map(\.kind)))
        }
        // Cancels are heard before the first job runs.
        control.start()
        if await !control.waitUntilListening(timeout: .seconds(5)) {
            logger.warning("the control channel is not listening yet; a cancelled running job is noticed at the next heartbeat until it is")
        }
        for consumer in consumers { consumer.start() }
        await withDiscardingTaskGroup { group in
            group.addTask {
                try? await gracefulShutdown()
                await self.shutdown()
            }
            group.addTask { await self.writer.run() }
            // Heartbeats and the timeout sweep run until the drain begins.
            group.addTask {
                await withDiscardingTaskGroup { loops in
                    loops.addTask { await self.heartbeat() }
                    loops.addTask { await self.enforceTimeouts() }
                    await self.draining.wait()
                    loops.cancelAll()
                }
            }
            // Consumers end when the drain stops them; then the writer.
            for consumer in consumers {
                group.addTask { await self.dispatch(from: consumer) }
            }
        }
        await control.stop()
        link.close()
        logger.info("processor stopped")
    }

    /// Graceful drain: stop taking deliveries, let in-flight jobs finish for up to
    /// `drainTimeout` seconds, record their outcomes, then close (what is still unacked goes
    /// back to its queue for another processor).
    public func shutdown() async {
        let first = lock.withLock { () -> Bool in
            defer { shuttingDown = true }
            return !shuttingDown
        }
        guard first else { return }
        draining.fire()
        logger.info("draining", metadata: ["in_flight": "\(runningCount)"])
        for consumer in consumers { consumer.stopConsuming() }
        if runningCount == 0 { idle.fire() }
        let drainTimeout = configuration.drainTimeout
        await withTaskGroup(of: Void.self) { group in
            group.addTask { [idle] in await idle.wait() }
            group.addTask { try? await Task.sleep(for: .milliseconds(Int(drainTimeout * 1000))) }
            _ = await group.next()
            group.cancelAll()
        }
        let left = runningCount
        if left > 0 {
            logger.warning("drain timeout: in-flight jobs go back to their queue", metadata: ["count": "\(left)"])
            await handBack()
        }
        // Let the acks of finished jobs go out before the connections close.
        try? await Task.sleep(for: .milliseconds(100))
        for consumer in consumers { await consumer.stop() }
        writer.stop()
    }

    /// At the drain timeout: the leases of the attempts still held end now, so that the
    /// copies the broker gives another processor once the consumers close run at once
    /// instead of waiting for the heartbeat timeout (a kind with a concurrency limit waits
    /// for the rescue, which finds the ended lease at its next pass).
    private func handBack() async {
        let held = lock.withLock { holding }.map { (id: $0.key, attempt: $0.value.attempt, timeout: $0.value.timeout) }
        let name = configuration.name
        do {
            try await pool.withConnection { try AttemptStore.handBack(held, worker: name, on: $0) }
        } catch {
            logger.warning("could not end the leases of the attempts handed back; they wait for their heartbeat timeout",
                           metadata: ["error": "\(error)"])
        }
    }

    /// `count` jobs left flight; during a drain, the last one wakes it.
    private func landed(_ count: Int) {
        let nowIdle = lock.withLock { () -> Bool in
            inFlight -= count
            return shuttingDown && inFlight == 0
        }
        if nowIdle { idle.fire() }
    }

    // MARK: - Running jobs

    private struct Ready {
        var incoming: DeliveryConsumer.Incoming
        var message: JobMessage
        var kind: KindCatalog.Kind
        var handler: any JobHandler

        var claim: AttemptClaim {
            AttemptClaim(id: message.id, attempt: message.attempt, redelivered: incoming.delivery.redelivered,
                         heartbeatTimeout: kind.policy.heartbeatTimeout)
        }
    }

    private func dispatch(from consumer: DeliveryConsumer) async {
        await withDiscardingTaskGroup { group in
            while true {
                let batch = await consumer.nextBatch()
                if batch.isEmpty { return }
                var ready: [Ready] = []
                for incoming in batch {
                    do {
                        let message = try JobMessage.decode(incoming.delivery)
                        guard let kind = catalog[message.kind], let handler = registry.handler(for: kind) else {
                            throw JobMessage.DecodingFailure(description: "unknown kind '\(message.kind)'")
                        }
                        ready.append(Ready(incoming: incoming, message: message, kind: kind, handler: handler))
                    } catch {
                        group.addTask { await self.rejectPoison(incoming, reason: "\(error)", consumer: consumer) }
                    }
                }
                // Deliveries of a kind paused since they were sent go back to their queue, whose
                // consumer is being cancelled.
                let pausedNow = lock.withLock { paused }
                if !pausedNow.isEmpty {
                    for item in ready where pausedNow.contains(item.kind.name) { consumer.settle(item.incoming, .requeue) }
                    ready.removeAll { pausedNow.contains($0.kind.name) }
                }
                // A redelivered copy of an attempt this processor is running (its consumer's
                // connection was lost and came back): the run goes on here, the copy is acked.
                let holdingNow = ready.contains { $0.incoming.delivery.redelivered } ? lock.withLock { holding } : [:]
                ready.removeAll { item in
                    guard item.incoming.delivery.redelivered, let held = holdingNow[item.message.id],
                          held.attempt == item.message.attempt, held.lost == nil else { return false }
                    metrics[item.message.kind].skipped.increment()
                    logger.debug("delivery skipped: a copy of an attempt running here", metadata: ["job": "\(item.message.id)"])
                    consumer.settle(item.incoming)
                    return true
                }
                guard !ready.isEmpty else { continue }
                // A batch counts as in flight from before its claim: a drain that starts while
                // the claim is under way waits for it (the claim marks the jobs running), and
                // once the drain has begun no batch is claimed (its deliveries stay unacked and
                // go back to the queue when the connection closes). One lock for both, so
                // either the drain sees the batch or the batch sees the drain.
                let admitted = lock.withLock { () -> Bool in
                    if shuttingDown { return false }
                    inFlight += ready.count
                    return true
                }
                guard admitted else { return }
                logger.debug("claiming", metadata: ["deliveries": "\(ready.count)"])
                guard let claimed = await claim(ready) else {
                    landed(ready.count)
                    continue
                }
                for item in ready {
                    guard let attempt = claimed.started[item.message.id], attempt.attempt == item.message.attempt else {
                        if claimed.parked.contains(item.message.id) {
                            // Waits (for a slot or a token) as a scheduled job: nothing to hold.
                            consumer.settle(item.incoming)
                            landed(1)
                            continue
                        }
                        // Finished, cancelled, a stale duplicate, or no such job: nothing to run.
                        metrics[item.message.kind].skipped.increment()
                        logger.debug("delivery skipped: job finished, cancelled, unknown or a stale copy",
                                     metadata: ["job": "\(item.message.id)", "attempt": "\(item.message.attempt)",
                                                "redelivered": "\(item.incoming.delivery.redelivered)"])
                        consumer.settle(item.incoming)
                        landed(1)
                        continue
                    }
                    inFlightGauge.record(runningCount)
                    let key = claimed.keys[attempt.id]
                    group.addTask {
                        await self.execute(item, attempt)
                        consumer.settle(item.incoming)
                        if item.kind.limit != nil { await self.wakeWaiter(of: item.kind, key: key) }
                        self.landed(1)
                        self.inFlightGauge.record(self.runningCount)
                    }
                }
            }
        }
    }

    /// What a batch's claim did.
    private struct Claimed {
        var started: [UUID: StartedAttempt] = [:]
        /// Jobs that wait (for a concurrency slot or a limiter's token), put back by the gate.
        var parked: Set<UUID> = []
        /// The slot key each started job of a per-key limited kind holds.
        var keys: [UUID: String] = [:]
    }

    /// Claims a batch: kinds without concurrency limits in one statement, each limited kind
    /// in a transaction of its own (``ConcurrencySlots``). Each is retried while PostgreSQL is
    /// away; nil when shutting down first (the deliveries not claimed yet stay unacked and
    /// return to the queue).
    private func claim(_ ready: [Ready]) async -> Claimed? {
        var claimed = Claimed()
        let name = configuration.name
        let plain = ready.filter { !$0.kind.isGated }.map(\.claim)
        if !plain.isEmpty {
            guard let started = await retrying("claiming jobs", count: plain.count, {
                try AttemptStore.start(plain, worker: name, on: $0)
            }) else { return nil }
            for s in started { claimed.started[s.id] = s }
        }
        for (_, items) in Dictionary(grouping: ready.filter(\.kind.isGated), by: \.kind.name) {
            let kind = items[0].kind, claims = items.map(\.claim)
            let parkFor = min(60, kind.policy.heartbeatTimeout), catalog = self.catalog
            guard let outcome = await retrying("claiming jobs of a kind with flow control", count: claims.count, {
                try FlowGate.claim(claims, kind: kind, catalog: catalog, parkFor: parkFor, worker: name, on: $0)
            }) else { return nil }
            if let (breaker, state) = outcome.breaker { await breakerChanged(breaker, state, transition: outcome.transition) }
            for s in outcome.started { claimed.started[s.id] = s }
            claimed.parked.formUnion(outcome.parked)
            claimed.parked.formUnion(outcome.heldBack)
            claimed.keys.merge(outcome.keys) { a, _ in a }
            if !outcome.parked.isEmpty {
                metrics[kind.name].waitedForSlot.increment(by: outcome.parked.count)
                // Slots freed while this claim was parking: their attempts found no waiter yet.
                if let limit = kind.limit { await wake(kind.name, limit: limit, keys: outcome.parkedKeys, ifAny: false) }
            }
            if !outcome.heldBack.isEmpty { metrics[kind.name].heldByLimiter.increment(by: outcome.heldBack.count) }
            if !outcome.parked.isEmpty || !outcome.heldBack.isEmpty {
                logger.debug("held back by flow control", metadata: ["kind": "\(kind.name)", "parked": "\(outcome.parked.count)",
                                                                     "held_by_limiter": "\(outcome.heldBack.count)"])
            }
        }
        let started = Array(claimed.started.values)
        let now = Date()
        for s in started {
            let m = metrics[s.kind]
            m.started.increment()
            if s.attempt == 1 { m.wait.recordSeconds(max(0, now.timeIntervalSince(s.createdAt))) }
        }
        logger.debug("claimed", metadata: ["deliveries": "\(ready.count)", "started": "\(started.count)"])
        await events.publish(started.map { .init(id: $0.id, kind: $0.kind, status: .running, attempt: $0.attempt) })
        return claimed
    }

    /// Runs `body` on a pooled connection until it succeeds, backing off while PostgreSQL is
    /// away; nil when a drain begins meanwhile.
    private func retrying<T>(_ what: String, count: Int, _ body: @escaping @Sendable (PostgresConnection) throws -> T) async -> T? {
        var failures = 0
        while true {
            do {
                return try await pool.withConnection(body)
            } catch {
                failures += 1
                logger.warning("\(what) failed; retrying", metadata: ["error": "\(error)", "jobs": "\(count)"])
                if lock.withLock({ shuttingDown }) { return nil }
                await Backoff.standard.sleep(after: failures)
            }
        }
    }

    /// Counts an attempt's outcome on its kind's circuit breaker, if it has one.
    private func recordForBreaker(_ kind: KindCatalog.Kind, failed: Bool, error: String?) async {
        guard let name = kind.breaker, let policy = catalog.breakers[name] else { return }
        do {
            let transition = try await pool.withConnection {
                try CircuitBreakers.record(name, policy: policy, failed: failed, error: error, on: $0)
            }
            if let transition { await breakerChanged(name, transition.state, transition: transition) }
        } catch {
            logger.warning("could not record an outcome on a circuit breaker", metadata: ["breaker": "\(name)", "error": "\(error)"])
        }
    }

    /// Breaker `name` is in `state`: the gauge says so, and a change is logged and sent to
    /// `esteira.events` as `breaker.<name>.<state>`.
    private func breakerChanged(_ name: String, _ state: CircuitBreakers.State, transition: CircuitBreakers.Transition?) async {
        Gauge(label: "esteira_breaker_state", dimensions: [("breaker", name)]).record(state.gaugeValue)
        guard transition != nil else { return }
        Counter(label: "esteira_breaker_transitions_total", dimensions: [("breaker", name), ("state", state.rawValue)]).increment()
        logger.notice("circuit breaker \(state.rawValue)", metadata: ["breaker": "\(name)"])
        await events.publishBreaker(name, state)
    }

    /// The service behind `limiter` asked to slow down: no job using it starts for `seconds`.
    private func pauseLimiter(_ limiter: String, for seconds: Double) async {
        do {
            try await pool.withConnection { try RateLimiters.pause(limiter, for: seconds, on: $0) }
            logger.info("rate limiter paused: the service asked to slow down", metadata: ["limiter": "\(limiter)", "seconds": "\(seconds)"])
        } catch {
            logger.warning("could not pause a rate limiter", metadata: ["limiter": "\(limiter)", "error": "\(error)"])
        }
    }

    /// Publishes the jobs waiting for slots of `kind` that are free now (waiters of `keys`
    /// first); with `ifAny`, only after an unlocked look found some. On failure the waiters'
    /// fallback time wakes them.
    private func wake(_ kind: String, limit: KindCatalog.ConcurrencyLimit, keys: Set<String?>, ifAny: Bool) async {
        do {
            let woken = try await pool.withConnection { c -> [UUID] in
                if ifAny, try !ConcurrencySlots.hasWaiters(kind: kind, on: c) { return [] }
                return try ConcurrencySlots.wakeIfFree(kind: kind, limit: limit, keys: keys, on: c)
            }
            try await OutboxRelay.publish(woken, pool: pool, link: link)
        } catch {
            logger.warning("could not wake jobs waiting for a concurrency slot; their fallback time will",
                           metadata: ["kind": "\(kind)", "error": "\(error)"])
        }
    }

    /// After an attempt of a limited kind ended (its slot is free): wakes the jobs waiting for
    /// the slots free now. Ending attempts share one look for waiters per kind
    /// (``ConcurrencySlots/Releases``).
    private func wakeWaiter(of kind: KindCatalog.Kind, key: String?) async {
        await releases.freed(kind: kind.name, key: key) { batch in
            for (name, keys) in batch {
                guard let limit = catalog[name]?.limit else { continue }
                await wake(name, limit: limit, keys: keys, ifAny: true)
            }
        }
    }

    private func execute(_ item: Ready, _ attempt: StartedAttempt) async {
        let policy = item.kind.policy
        // Held (and reported alive) from the claim on, also while waiting for a slot.
        let held = Held(attempt: attempt.attempt, kind: attempt.kind, timeout: policy.heartbeatTimeout)
        // An older attempt of the same job still held here was taken away (rescued, then claimed
        // again by this very processor): stop it now, since the heartbeat only sees the newest.
        let (replaced, cancelled) = lock.withLock { () -> (Held?, Bool) in
            let old = holding[attempt.id]
            holding[attempt.id] = held
            return (old, cancelledEarly.removeValue(forKey: attempt.id) != nil)
        }
        replaced?.lose("the job was rescued and given another attempt")
        if cancelled { cancel(held, attempt.id) }
        defer { lock.withLock { if holding[attempt.id] === held { holding[attempt.id] = nil } } }
        let limiter = limiters[item.kind.name]
        await limiter?.acquire()
        defer { limiter?.release() }
        var context = JobContext(id: attempt.id, kind: attempt.kind, payloadText: attempt.payload,
                                 payload: JSONValue.parse(attempt.payload) ?? .null, attempt: attempt.attempt,
                                 maxAttempts: attempt.maxAttempts, kindInfo: item.kind, ownerID: attempt.ownerID)
        context.progressSink = { [pool] progress in
            _ = try await pool.withConnection { try JobTransitions.report(progress, job: attempt.id, attempt: attempt.attempt, on: $0) }
        }
        context.batchID = attempt.batchID
        context.limiters = SharedLimiters(catalog: catalog, pool: pool)
        let writes = OutcomeWrites()
        context.outcomeWrites = writes
        context.enqueueSink = { [enqueuer, batches] jobs in
            guard let batch = attempt.batchID else { return try await enqueuer.enqueue(jobs) }
            do {
                return try await enqueuer.enqueue(jobs) { try batches.admit(batch, owner: nil, jobs: jobs.count, on: $0) }
            } catch let error as BatchError {
                // Retrying cannot reopen the batch.
                throw JobError.permanent(error == .closed ? "its batch was cancelled or has finished" : "its batch is gone")
            }
        }
        let begin = ContinuousClock.now
        var result = AttemptResult(id: attempt.id, kind: attempt.kind, attempt: attempt.attempt,
                                   priority: attempt.priority, next: .completed)
        do {
            let handler = item.handler
            result.result = try await held.running(timeout: policy.timeout) { try await handler.run(context) }
            // A handler that does not stop when cancelled still ran past its time.
            if held.timedOut { throw AttemptTimedOut() }
        } catch where held.cancelled {
            logger.info("attempt stopped: the job was cancelled", metadata: ["job": "\(attempt.id)", "attempt": "\(attempt.attempt)"])
            if item.kind.limit != nil {
                // Its slot is free now that the handler has stopped.
                let name = configuration.name
                do {
                    try await pool.withConnection { try AttemptStore.release(attempt.id, attempt: attempt.attempt, worker: name, on: $0) }
                } catch {
                    logger.warning("could not free a cancelled job's slot; the rescue will", metadata: ["job": "\(attempt.id)", "error": "\(error)"])
                }
            }
            return
        } catch where held.lost != nil {
            // Rescued elsewhere, or no longer provably ours: this attempt's outcome is not ours to record.
            metrics[attempt.kind].abandoned.increment()
            logger.warning("attempt stopped: the job is no longer held by this processor",
                           metadata: ["job": "\(attempt.id)", "attempt": "\(attempt.attempt)", "reason": "\(held.lost ?? "")"])
            return
        } catch {
            let failure: JobError
            switch error {
            // Whatever the handler threw once it was cancelled for its timeout.
            case _ where held.timedOut: failure = JobError(errorClass: .timeout, message: "attempt ran past the kind's \(policy.timeout) s timeout")
            case let e as JobError: failure = e
            default: failure = .transient("\(error)")
            }
            result.error = failure.message
            result.errorClass = failure.errorClass
            if failure.throttled, let limiter = item.kind.limiter, let seconds = failure.retryAfter {
                await pauseLimiter(limiter, for: seconds)
            }
            await recordForBreaker(item.kind, failed: CircuitBreakers.counts(failure.errorClass), error: failure.message)
            if [.permanent, .poison, .forbidden].contains(failure.errorClass) || attempt.attempt >= attempt.maxAttempts {
                result.next = .dead
            } else {
                let delay = policy.delay(after: attempt.attempt, retryAfter: failure.retryAfter)
                result.next = .retry(delay: Topology.tier(for: delay))
            }
            logger.info("attempt failed", metadata: ["job": "\(attempt.id)", "kind": "\(attempt.kind)",
                                                     "attempt": "\(attempt.attempt)", "class": "\(failure.errorClass.rawValue)",
                                                     "next": "\(result.next)", "error": "\(failure.message)"])
        }
        if result.error == nil { await recordForBreaker(item.kind, failed: false, error: nil) }
        let elapsed = ContinuousClock.now - begin
        metrics[attempt.kind].run.record(elapsed)
        result.writes = writes.all
        _ = await writer.submit(result)
    }

    /// Seconds between heartbeats: a quarter of the shortest heartbeat timeout of the kinds
    /// consumed, at most 30.
    var heartbeatInterval: Double {
        let shortest = kinds.compactMap { catalog[$0]?.policy.heartbeatTimeout }.min() ?? 600
        return max(0.2, min(30, shortest / 4))
    }

    /// Writes the heartbeat of the leases `$1` (attempts `$2`) of worker `$3`; for each job:
    /// its id, whether it was cancelled, and whether the lease is still this worker's. A lease
    /// row locked by this worker's own outcome writer (about to go with its finished job) is
    /// skipped, not waited for: a heartbeat never waits for, or deadlocks with, the recording
    /// of outcomes (both touch many leases at once, in no common order). A skipped lease
    /// counts as still ours.
    static let heartbeatSQL = """
        WITH t AS (SELECT * FROM unnest($1::uuid[], $2::int[]) AS t(id, attempt)),
        l AS (
            SELECT l.job_id FROM job_leases l JOIN t ON l.job_id = t.id AND l.attempt = t.attempt
            WHERE l.worker = $3 FOR UPDATE OF l SKIP LOCKED
        ), u AS (
            UPDATE job_leases x SET heartbeat_at = now() FROM l WHERE x.job_id = l.job_id RETURNING x.job_id
        )
        SELECT t.id, j.status = 'cancelled',
               u.job_id IS NOT NULL OR EXISTS (SELECT 1 FROM job_leases z WHERE z.job_id = t.id AND z.attempt = t.attempt AND z.worker = $3)
        FROM t JOIN jobs j ON j.id = t.id LEFT JOIN u ON u.job_id = t.id
        """

    /// Reports the held attempts alive (their `job_leases` row's `heartbeat_at`), and stops
    /// those the database no longer gives to this processor (the scheduler rescued them). When the reports fail
    /// for half a kind's heartbeat timeout, its attempts stop too: the scheduler is about
    /// to give them to another processor, and a job never runs twice at once.
    private func heartbeat() async {
        let interval = heartbeatInterval
        while !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(Int(interval * 1000)))
            if Task.isCancelled { return }
            let snapshot = lock.withLock { holding }
            let now = ContinuousClock.now
            let last = lock.withLock { lastHeartbeat }
            // The fence first: a process that was frozen checks this before anything else.
            for held in snapshot.values where held.lost == nil {
                let silent = now - max(last, held.since)
                if silent > .milliseconds(Int(held.timeout * 500)) {
                    held.lose("no heartbeat written for \(silent); the scheduler may rescue the job")
                }
            }
            guard !snapshot.isEmpty else { lock.withLock { lastHeartbeat = now }; continue }
            let ids = Array(snapshot.keys), attempts = ids.map { snapshot[$0]!.attempt }, name = configuration.name
            do {
                // Each lease still ours, and whether its job was cancelled meanwhile (the
                // control channel's notice was missed, e.g. while it reconnected).
                let alive = try await pool.withConnection { c in
                    Dictionary(uniqueKeysWithValues: try c.queryPrepared(Self.heartbeatSQL, [ids, attempts, name]).compactMap { row -> (UUID, Bool)? in
                        guard try row.decode(Bool.self, at: 2) else { return nil }
                        return (try row.decode(UUID.self, at: 0), try row.decode(Bool.self, at: 1))
                    })
                }
                lock.withLock { lastHeartbeat = now }
                let current = lock.withLock { holding }
                for id in ids {
                    // Still held (not finished meanwhile): cancelled, or not ours in the database (rescued).
                    guard let held = current[id], held === snapshot[id] else { continue }
                    switch alive[id] {
                    case true?: if !held.cancelled { cancelRunning(id) }
                    case nil: held.lose("the job was rescued and given another attempt")
                    case false?: break
                    }
                }
            } catch {
                logger.warning("heartbeat failed", metadata: ["error": "\(error)", "jobs": "\(ids.count)"])
            }
        }
    }

    struct AttemptTimedOut: Error {}

    /// How often running attempts are checked against their kind's timeout: a timeout takes
    /// effect within this much after it passed.
    static let timeoutCheckInterval: Duration = .milliseconds(50)

    /// Cancels the handlers that ran past their kind's timeout (the attempt then fails with
    /// class `timeout`). One sweep for all attempts, rather than a timer task per attempt,
    /// which cost every job two more tasks and a timer.
    private func enforceTimeouts() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: Worker.timeoutCheckInterval)
            let now = ContinuousClock.now
            let snapshot = lock.withLock { Array(holding.values) }
            for held in snapshot { held.expireIfDue(now) }
        }
    }

    // MARK: - Poison

    /// A message that is not a runnable job goes to the dead-letter exchange with the reason,
    /// then is acked: never redelivered forever.
    private func rejectPoison(_ incoming: DeliveryConsumer.Incoming, reason: String, consumer: DeliveryConsumer) async {
        let d = incoming.delivery
        var properties = d.properties
        properties.headers[JobMessage.reasonHeader] = .string(reason)
        properties.headers[JobMessage.errorClassHeader] = .string(ErrorClass.poison.rawValue)
        let message = AMQPOutgoingMessage(exchange: Topology.deadExchange, routingKey: d.routingKey, body: d.body, properties: properties)
        do {
            try await link.publishConfirmed([message])
            Counter(label: "esteira_messages_poison_total", dimensions: [("kind", d.routingKey)]).increment()
            logger.warning("poison message dead-lettered", metadata: ["routing_key": "\(d.routingKey)", "reason": "\(reason)"])
            consumer.settle(incoming)
        } catch {
            logger.warning("could not dead-letter a poison message; it stays unacked", metadata: ["error": "\(error)"])
        }
    }
}
