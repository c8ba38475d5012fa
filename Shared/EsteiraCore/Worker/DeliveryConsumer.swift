import AMQP
import Foundation
import Logging
import Metrics

/// One consuming broker connection on a thread of its own (rabbitmq-c is blocking and not
/// thread-safe): it declares the topology, consumes the given queues with a prefetch, hands
/// deliveries to async code in batches, and performs the acks async code asks for, all on
/// its thread. When the connection is lost it reconnects with backoff; deliveries of the
/// lost connection can no longer be acked (the broker redelivers them), so their acks are
/// dropped.
public final class DeliveryConsumer: @unchecked Sendable {
    /// A delivery and the connection generation it came on (acks go to that one only).
    public struct Incoming: Sendable {
        public var delivery: AMQPDelivery
        public var generation: Int
    }

    public enum Settlement: Sendable {
        case ack
        /// Back to the queue (a drained in-flight job on shutdown).
        case requeue
    }

    private let configuration: AMQPConfiguration
    private let topology: Topology
    private let queues: [String]
    private let prefetch: UInt16
    private let logger: Logger
    private let name: String

    private let lock = NSLock()
    private var buffer: [Incoming] = []
    private var waiter: CheckedContinuation<[Incoming], Never>?
    private var settlements: [(Int, UInt64, Settlement)] = []
    private var stopConsumingRequested = false
    /// Queues not to consume now (their kinds are paused).
    private var pausedQueues: Set<String> = []
    private var stopRequested = false
    private var finished = false
    private var thread: Thread?
    private var connectedGeneration = 0
    private let stopped = DispatchSemaphore(value: 0)
    private let connectedGauge: Gauge

    /// A consumer of `queues`. Call ``start()`` to begin.
    public init(configuration: AMQPConfiguration, topology: Topology, queues: [String], prefetch: UInt16,
                name: String, logger: Logger) {
        var configuration = configuration
        configuration.connectionName = configuration.connectionName ?? name
        self.configuration = configuration
        self.topology = topology
        self.queues = queues
        self.prefetch = prefetch
        self.name = name
        self.logger = logger
        self.connectedGauge = Gauge(label: "esteira_consumer_connected", dimensions: [("consumer", name)])
    }

    /// Starts the consuming thread.
    public func start() {
        let t = Thread { [self] in runLoop() }
        t.name = name
        thread = t
        t.start()
    }

    /// The current connection generation (0 before the first connect).
    public var generation: Int { lock.withLock { connectedGeneration } }

    /// The next deliveries (all that are buffered, at least one), or [] once stopped.
    public func nextBatch() async -> [Incoming] {
        await withCheckedContinuation { (c: CheckedContinuation<[Incoming], Never>) in
            lock.lock()
            if !buffer.isEmpty || finished {
                let out = buffer
                buffer.removeAll(keepingCapacity: true)
                lock.unlock()
                c.resume(returning: out)
            } else {
                waiter = c
                lock.unlock()
            }
        }
    }

    /// Acks (or requeues) a delivery on its connection's thread, soon.
    public func settle(_ incoming: Incoming, _ settlement: Settlement = .ack) {
        lock.withLock { settlements.append((incoming.generation, incoming.delivery.deliveryTag, settlement)) }
    }

    /// Consumes only the queues not in `queues` from now on: the consumers of newly paused
    /// queues are cancelled (basic.cancel) and those of resumed ones started again, within a
    /// few milliseconds, on the consuming thread.
    public func pause(_ queues: Set<String>) {
        lock.withLock { pausedQueues = queues }
    }

    /// Stops taking new deliveries (basic.cancel); acks keep working.
    public func stopConsuming() {
        lock.withLock { stopConsumingRequested = true }
    }

    /// Performs outstanding acks, closes the connection (unacked deliveries return to their
    /// queues) and ends the thread; ``nextBatch()`` then returns [].
    public func stop() async {
        lock.withLock { stopRequested = true; stopConsumingRequested = true }
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            DispatchQueue.global().async { [stopped] in
                stopped.wait()
                c.resume()
            }
        }
    }

    private func runLoop() {
        var attempt = 0
        var gen = 0
        var tags: [String: String] = [:]
        outer: while !lock.withLock({ stopRequested }) {
            let connection: AMQPConnection
            let channel: AMQPChannel
            do {
                connection = try AMQPConnection.open(configuration)
                for notice in try topology.declare(on: connection) {
                    logger.warning("\(notice)", metadata: ["consumer": "\(name)"])
                }
                channel = try connection.openChannel()
                try channel.qos(prefetchCount: prefetch)
                tags = [:]
                let (stopping, paused) = lock.withLock { (stopConsumingRequested, pausedQueues) }
                if !stopping {
                    for queue in queues where !paused.contains(queue) { tags[queue] = try channel.consume(queue: queue) }
                }
            } catch {
                attempt += 1
                connectedGauge.record(0)
                let delay = Backoff.standard.delay(after: attempt)
                logger.warning("broker connection failed; retrying", metadata: [
                    "consumer": "\(name)", "error": "\(error)", "retry_in_s": "\(delay)"])
                sleepInterruptibly(delay)
                continue
            }
            gen += 1
            attempt = 0
            var acks = AckCoalescer()
            lock.withLock {
                connectedGeneration = gen
                // Settlements of an earlier connection cannot be performed any more.
                settlements.removeAll { $0.0 != gen }
            }
            connectedGauge.record(1)
            logger.info("consuming", metadata: ["consumer": "\(name)", "queues": "\(queues.joined(separator: ","))"])
            var cancelled = lock.withLock { stopConsumingRequested }
            do {
                while true {
                    let (pending, wantCancel, wantStop, paused) = lock.withLock { () -> ([(Int, UInt64, Settlement)], Bool, Bool, Set<String>) in
                        let p = settlements
                        settlements.removeAll(keepingCapacity: true)
                        return (p, stopConsumingRequested, stopRequested, pausedQueues)
                    }
                    if !pending.isEmpty || acks.heldCount > 0 {
                        try acks.settle(pending.lazy.filter { $0.0 == gen }.map { ($0.1, $0.2) }, on: channel)
                    }
                    if wantStop {
                        // The held acks first: their jobs are done.
                        try? acks.settle([], on: channel, now: .now + acks.holdLimit)
                        try? connection.close()
                        break outer
                    }
                    if wantCancel && !cancelled {
                        // Stop deliveries; closing the channel would also requeue in-flight work.
                        cancelled = true
                        try channel.qos(prefetchCount: 1)
                        for tag in tags.values { try channel.cancel(consumerTag: tag) }
                    }
                    if !cancelled {
                        for (queue, tag) in tags where paused.contains(queue) {
                            try channel.cancel(consumerTag: tag)
                            tags[queue] = nil
                            logger.info("paused: no longer consuming", metadata: ["consumer": "\(name)", "queue": "\(queue)"])
                        }
                        for queue in queues where tags[queue] == nil && !paused.contains(queue) {
                            tags[queue] = try channel.consume(queue: queue)
                            logger.info("resumed: consuming again", metadata: ["consumer": "\(name)", "queue": "\(queue)"])
                        }
                    }
                    if let delivery = try channel.nextDelivery(timeout: cancelled ? 0.01 : 0.02) {
                        if cancelled {
                            // Arrived before the cancel took effect: give it back.
                            try channel.nack(delivery.deliveryTag, requeue: true)
                            continue
                        }
                        // Hand over what has already arrived in one batch: the processor claims a
                        // batch with one statement.
                        var batch = [Incoming(delivery: delivery, generation: gen)]
                        while batch.count < 1000, let more = try channel.nextDelivery(timeout: 0) {
                            batch.append(Incoming(delivery: more, generation: gen))
                        }
                        for incoming in batch { acks.delivered(incoming.delivery.deliveryTag) }
                        push(batch)
                    } else if cancelled {
                        usleep(5_000)
                    }
                }
            } catch {
                connectedGauge.record(0)
                logger.warning("broker connection lost; reconnecting", metadata: ["consumer": "\(name)", "error": "\(error)"])
                try? connection.close()
                sleepInterruptibly(0.2)
            }
        }
        connectedGauge.record(0)
        lock.lock()
        finished = true
        let w = waiter
        waiter = nil
        let out = buffer
        buffer.removeAll()
        lock.unlock()
        w?.resume(returning: out)
        stopped.signal()
    }

    private func push(_ batch: [Incoming]) {
        lock.lock()
        if let w = waiter {
            waiter = nil
            lock.unlock()
            w.resume(returning: batch)
        } else {
            buffer.append(contentsOf: batch)
            lock.unlock()
        }
    }

    private func sleepInterruptibly(_ seconds: Double) {
        let end = Date().addingTimeInterval(seconds)
        while Date() < end, !lock.withLock({ stopRequested }) { usleep(20_000) }
    }
}

/// Turns a connection's acks into as few frames as possible: deliveries are acked by the
/// highest tag of the longest settled run from the oldest unsettled delivery, with one
/// `basic.ack` carrying `multiple`. An ack out of that run (an earlier job still running) is
/// held up to `holdLimit`, for the run to reach it (jobs that end out of order, as concurrent
/// sends do, would otherwise cost the broker a frame each), then goes alone, freeing its
/// prefetch slot; a requeue is a `basic.nack` of its own, sent before any multiple ack that
/// could cover it. A tag is never settled twice: a multiple ack only reaches up to the first
/// delivery not settled yet.
struct AckCoalescer {
    /// Delivery tags of this channel in delivery order (increasing), from `head` on unsettled
    /// or settled alone but not yet passed by the run.
    private var tags: [UInt64] = []
    private var head = 0
    /// Tags settled alone (a nack, or an ack out of the run).
    private var settledAlone: Set<UInt64> = []
    /// Acks out of the run not sent yet, and since when some have been held (the time is
    /// kept until none is left, so an ack never waits longer than `holdLimit`).
    private var held: Set<UInt64> = []
    private var heldSince: ContinuousClock.Instant?
    /// How long an ack out of the run waits for the run.
    let holdLimit: Duration

    init(holdLimit: Duration = .milliseconds(50)) { self.holdLimit = holdLimit }

    /// Records a delivery handed to the processor.
    mutating func delivered(_ tag: UInt64) { tags.append(tag) }

    /// How many acks are held.
    var heldCount: Int { held.count }

    /// Performs `settlements` (tag, what) on `channel`, and sends the held acks whose time is
    /// up (call it with none at least every few tens of milliseconds).
    mutating func settle<S: Sequence>(_ settlements: S, on channel: AMQPChannel, now: ContinuousClock.Instant = .now) throws
    where S.Element == (UInt64, DeliveryConsumer.Settlement) {
        for (tag, settlement) in settlements {
            switch settlement {
            case .ack: held.insert(tag)
            case .requeue:
                try channel.nack(tag, requeue: true)
                settledAlone.insert(tag)
            }
        }
        // The run from the oldest delivery: settled alone earlier, or acked (held).
        var last: UInt64?
        while head < tags.count {
            let tag = tags[head]
            if held.remove(tag) != nil {
                last = tag
            } else if settledAlone.remove(tag) == nil {
                break
            }
            head += 1
        }
        if let last { try channel.ack(last, multiple: true) }
        if held.isEmpty {
            heldSince = nil
        } else if let since = heldSince, now - since >= holdLimit {
            // Acks beyond the run go alone.
            for tag in held.sorted() {
                try channel.ack(tag)
                settledAlone.insert(tag)
            }
            held.removeAll(keepingCapacity: true)
            heldSince = nil
        } else if heldSince == nil {
            heldSince = now
        }
        if head > 4096 {
            tags.removeFirst(head)
            head = 0
        }
    }
}
