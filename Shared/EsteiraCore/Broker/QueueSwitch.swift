import AMQP

/// Moves the work queues and hold tiers of a deployment to the queue type (and priority
/// setting) its topology wants, keeping every message: RabbitMQ cannot change a queue's type
/// or arguments, so each queue that differs is drained into a transit queue, made anew, and
/// filled back (docs/topology.md, "Switching queue types").
///
/// For a queue `Q` that differs (its declare with the wanted arguments is refused with 406):
/// 1. `Q.switching` is declared with the wanted arguments and bound like `Q`, then `Q` is
///    unbound: from then on new messages (jobs, retries) land in the transit queue.
/// 2. `Q`'s messages are taken one by one (`basic.get`) and published again through `Q`'s
///    exchange with their routing key, body and properties (mandatory, with confirms), so
///    they land in the transit queue; each is acked from `Q` only once the broker confirmed
///    its copy.
/// 3. `Q` is deleted (only if empty), declared with the wanted arguments and bound again, and
///    the transit queue unbound; its messages are moved into the new `Q` the same way, and
///    it is deleted.
///
/// A message is never only in a queue that is about to go: a failure at any step leaves it in
/// `Q` or in the transit queue (at worst in both, a duplicate the processors drop, as they do a
/// redelivery), and running the switch again resumes. Nothing may consume the queues while
/// they move: a queue with consumers is refused (stop the processors first). A retry moved
/// out of a hold tier waits its tier's delay again from the move.
public struct QueueSwitch {
    /// The topology to switch to.
    public let topology: Topology

    public init(topology: Topology) { self.topology = topology }

    /// One queue the switch looked at.
    public struct Moved: Sendable, Equatable {
        public var queue: String
        /// Whether it was made anew (false: it already had the wanted arguments).
        public var switched: Bool
        /// Messages moved out of it (into the transit queue) and back into it.
        public var messages: Int
    }

    /// A queue with consumers: the switch does not touch it.
    public struct QueueInUse: Error, CustomStringConvertible {
        public var queue: String
        public var consumers: UInt32
        public var description: String {
            "queue \(queue) has \(consumers) consumer(s): stop every processor before switching queue types"
        }
    }

    /// The queues it switches: the hold tiers, then the work queues.
    var queues: [Topology.Queue] {
        topology.tierQueues + topology.kinds.map { topology.workQueue($0, priorities: topology.prioritized.contains($0)) }
    }

    /// The transit queue of `queue`.
    public static func transit(_ queue: String) -> String { queue + ".switching" }

    /// Switches every queue that differs; `progress` hears a line per queue moved.
    @discardableResult
    public func run(on connection: AMQPConnection, progress: (String) -> Void = { _ in }) throws -> [Moved] {
        try topology.declare(shared: connection)
        // Refused before anything moves when a queue is consumed.
        for queue in queues {
            if let info = try connection.queueInfo(queue.name), info.consumerCount > 0 {
                throw QueueInUse(queue: queue.name, consumers: info.consumerCount)
            }
        }
        return try queues.map { try move($0, on: connection, progress: progress) }
    }

    private func move(_ role: Topology.Queue, on connection: AMQPConnection, progress: (String) -> Void) throws -> Moved {
        let transit = QueueSwitch.transit(role.name)
        // Is a transit queue left from an interrupted switch, and does Q differ?
        let transitLeft = try connection.queueInfo(transit) != nil
        var channel = try connection.openChannel()
        defer { try? channel.close() }
        var differs = false
        do {
            try channel.declareQueue(role.name, arguments: role.arguments)
        } catch let error as AMQPError where error.code == .channelClosed && error.replyCode == 406 {
            differs = true
            channel = try connection.openChannel()
        }
        guard differs || transitLeft else {
            try channel.bindQueue(role.name, exchange: role.exchange, routingKey: role.bindingKey)
            return Moved(queue: role.name, switched: false, messages: 0)
        }
        var moved = 0
        try channel.declareQueue(transit, arguments: role.arguments)
        try channel.bindQueue(transit, exchange: role.exchange, routingKey: role.bindingKey)
        if differs {
            try channel.unbindQueue(role.name, exchange: role.exchange, routingKey: role.bindingKey)
            moved += try drain(role.name, into: role, on: connection)
            try deleteDrained(role.name, on: channel)
            try channel.declareQueue(role.name, arguments: role.arguments)
            progress("\(role.name): \(moved) message(s) moved to \(transit), queue made anew")
        }
        try channel.bindQueue(role.name, exchange: role.exchange, routingKey: role.bindingKey)
        try channel.unbindQueue(transit, exchange: role.exchange, routingKey: role.bindingKey)
        let back = try drain(transit, into: role, on: connection)
        try deleteDrained(transit, on: channel)
        progress("\(role.name): \(back) message(s) moved back from \(transit)")
        return Moved(queue: role.name, switched: true, messages: moved + back)
    }

    /// Deletes an unbound queue found empty (quorum queues do not take `if-empty`; unbound,
    /// nothing can arrive in it between the look and the delete).
    private func deleteDrained(_ queue: String, on channel: AMQPChannel) throws {
        let info = try channel.declareQueuePassive(queue)
        guard info.messageCount == 0 else {
            throw AMQPError(.protocolError, operation: "switch \(queue)", replyText: "\(info.messageCount) messages arrived while it was moved; run the switch again")
        }
        try channel.deleteQueue(queue)
    }

    /// Takes every message of `queue` and publishes it again through the role's exchange, in
    /// blocks acked once confirmed. Returns how many it moved.
    private func drain(_ queue: String, into role: Topology.Queue, on connection: AMQPConnection) throws -> Int {
        let source = try connection.openChannel(), target = try connection.openChannel()
        defer { try? source.close(); try? target.close() }
        let info = try source.declareQueuePassive(queue)
        guard info.consumerCount == 0 else { throw QueueInUse(queue: queue, consumers: info.consumerCount) }
        var moved = 0
        while true {
            var block: [AMQPDelivery] = []
            while block.count < 200, let delivery = try source.get(queue: queue) { block.append(delivery) }
            guard let last = block.last else { return moved }
            let result = try target.publishConfirmed(block.map {
                AMQPOutgoingMessage(exchange: role.exchange, routingKey: $0.routingKey, body: $0.body,
                                    properties: $0.properties, mandatory: true)
            }, timeout: 30)
            guard result.nacked.isEmpty, result.returned.isEmpty else {
                // Back into the queue they came from; the switch stops here and can be run again.
                try source.nack(last.deliveryTag, multiple: true, requeue: true)
                throw AMQPError(.protocolError, operation: "switch \(queue)",
                                replyText: "\(result.nacked.count) nacked, \(result.returned.count) unroutable of \(block.count) messages moved")
            }
            try source.ack(last.deliveryTag, multiple: true)
            moved += block.count
        }
    }
}
