import AMQP

/// The broker objects Esteira uses, declared idempotently by every service at start
/// (docs/topology.md explains the queue types):
///
/// - `esteira.work` (direct): routes a job by its kind to `esteira.work.<kind>`, a classic
///   v2 queue whose rejected messages dead-letter to `esteira.dead`; for the kinds whose
///   policy sets `priorities`, with `x-max-priority` (priorities exist only on classic queues
///   in 3.10, and cost a third of the queue's throughput, so only those kinds pay for them).
/// - one hold tier per delay: the fanout exchange and classic queue `esteira.retry.<n>s`
///   with `x-message-ttl`, dead-lettering back to `esteira.work` with the original routing
///   key (the kind), so a retry waits exactly its tier's delay without blocking other tiers.
/// - `esteira.dead` (fanout) into `esteira.dead-letters`, a quorum queue: dead letters are
///   kept replicated and delivered at least once to the archiver that records them.
/// - `esteira.events` (topic): every job state change as `job.<kind>.<status>`.
///
/// With ``QueueType/quorum`` (`ESTEIRA_QUEUE_TYPE=quorum`, for a RabbitMQ cluster) the work
/// queues and the hold tiers are quorum queues instead, replicated across the cluster's nodes,
/// dead-lettering at least once; they have no priorities.
public struct Topology: Sendable {
    /// The type of the work queues and hold tiers.
    public enum QueueType: String, Sendable, CaseIterable {
        /// Classic version 2 queues on the node that declared them: priorities where a kind
        /// asks for them, no replication. The default.
        case classic
        /// Quorum queues (Raft, replicated to the cluster's nodes), with `x-overflow:
        /// reject-publish` and `x-dead-letter-strategy: at-least-once`, so a message is
        /// dead-lettered (a hold tier's expiry back to its work queue) at least once, never
        /// dropped; FIFO whatever a job's priority.
        case quorum
    }

    public static let workExchange = "esteira.work"
    public static let deadExchange = "esteira.dead"
    public static let deadLetterQueue = "esteira.dead-letters"
    public static let eventsExchange = "esteira.events"
    /// The highest message priority work queues honour.
    public static let maxPriority = 9

    /// Retry hold tiers, in seconds: powers of two up to 32 s and from 2 to 32 minutes (the
    /// usual doubling backoffs wait exactly their delay), and round values between.
    public static let retryTiers: [Int] = [1, 2, 4, 5, 8, 10, 16, 30, 32, 60, 120, 240, 300, 480, 900, 960, 1920, 3600]

    /// The job kinds to declare a work queue for.
    public var kinds: [String]
    /// The kinds among them whose work queue honours message priorities (classic queues only).
    public var prioritized: Set<String>
    /// The type of the work queues and hold tiers.
    public var queueType: QueueType

    /// A topology for `kinds`, with priority queues for the `prioritized` ones.
    public init(kinds: [String], prioritized: Set<String> = [], queueType: QueueType = .classic) {
        self.kinds = kinds
        self.prioritized = prioritized
        self.queueType = queueType
    }

    /// The arguments of a work queue or hold tier of this topology's type.
    private func queueArguments(_ extra: AMQPTable) -> AMQPTable {
        var arguments: AMQPTable
        switch queueType {
        case .classic:
            arguments = ["x-queue-type": .string("classic"), "x-queue-version": .int64(2)]
        case .quorum:
            arguments = ["x-queue-type": .string("quorum"), "x-overflow": .string("reject-publish"),
                         "x-dead-letter-strategy": .string("at-least-once")]
        }
        for (key, value) in extra { arguments[key] = value }
        return arguments
    }

    /// The work queue of `kind`.
    public static func workQueue(_ kind: String) -> String { "esteira.work.\(kind)" }

    /// The exchange (and queue) of the tier holding `seconds`.
    public static func retryExchange(_ seconds: Int) -> String { "esteira.retry.\(seconds)s" }

    /// The tier a retry after `delay` seconds waits in: the shortest tier at least as long,
    /// or the longest tier.
    public static func tier(for delay: Double) -> Int {
        retryTiers.first { Double($0) >= delay } ?? retryTiers.last!
    }

    /// Declares everything on a channel of its own (idempotent: same names, same arguments),
    /// and returns notices for the log. A kind's work queue that exists with the other
    /// priority setting (its policy's `priorities` changed since it was made) is used as it
    /// is, with a notice: RabbitMQ cannot change a queue's arguments, and deleting a queue
    /// that holds jobs would lose them (docs/topology.md says how to switch). Any other
    /// object that exists with other arguments throws `channelClosed` 406 PRECONDITION_FAILED.
    @discardableResult
    public func declare(on connection: AMQPConnection) throws -> [String] {
        var channel = try connection.openChannel()
        defer { try? channel.close() }
        try declareShared(on: channel)
        var notices: [String] = []
        for kind in kinds {
            let wanted = queueType == .classic && prioritized.contains(kind)
            do {
                try declareWorkQueue(kind, priorities: wanted, on: channel)
            } catch let error as AMQPError where error.code == .channelClosed && error.replyCode == 406 && queueType == .classic {
                channel = try connection.openChannel()
                try declareWorkQueue(kind, priorities: !wanted, on: channel)
                notices.append("queue \(Topology.workQueue(kind)) exists \(wanted ? "without" : "with") priorities, "
                               + "but kind \(kind)'s policy has priorities: \(wanted); using the queue as it is "
                               + "(to switch, see \"Changing a kind's priorities\" in docs/topology.md)")
            }
        }
        return notices
    }

    /// Declares everything but the work queues on `channel`.
    private func declareShared(on channel: AMQPChannel) throws {
        try declareExchanges(on: channel)
        for tier in tierQueues { try tier.declare(on: channel) }
    }

    /// Declares the exchanges and the dead-letter queue (not the work queues and hold tiers,
    /// whose arguments depend on the queue type) on a channel of its own.
    public func declare(shared connection: AMQPConnection) throws {
        let channel = try connection.openChannel()
        defer { try? channel.close() }
        try declareExchanges(on: channel)
    }

    private func declareExchanges(on channel: AMQPChannel) throws {
        try channel.declareExchange(Topology.workExchange, type: "direct")
        try channel.declareExchange(Topology.deadExchange, type: "fanout")
        try channel.declareExchange(Topology.eventsExchange, type: "topic")
        _ = try channel.declareQueue(Topology.deadLetterQueue, arguments: ["x-queue-type": .string("quorum")])
        try channel.bindQueue(Topology.deadLetterQueue, exchange: Topology.deadExchange)
        for seconds in Topology.retryTiers {
            try channel.declareExchange(Topology.retryExchange(seconds), type: "fanout")
        }
    }

    /// A work queue or hold tier: its name and arguments, and where it is bound.
    public struct Queue: Sendable {
        public var name: String
        public var arguments: AMQPTable
        /// The exchange it is bound to, and with which key; messages moved between queues
        /// are published again through it.
        public var exchange: String
        public var bindingKey: String

        /// Declares it (406 when it exists with other arguments) and binds it.
        func declare(on channel: AMQPChannel) throws {
            _ = try channel.declareQueue(name, arguments: arguments)
            try channel.bindQueue(name, exchange: exchange, routingKey: bindingKey)
        }
    }

    /// The hold tiers, shortest first.
    public var tierQueues: [Queue] {
        Topology.retryTiers.map { seconds in
            Queue(name: Topology.retryExchange(seconds),
                  arguments: queueArguments(["x-message-ttl": .int64(Int64(seconds) * 1000),
                                             "x-dead-letter-exchange": .string(Topology.workExchange)]),
                  exchange: Topology.retryExchange(seconds), bindingKey: "")
        }
    }

    /// `kind`'s work queue, with priorities or without (classic only).
    public func workQueue(_ kind: String, priorities: Bool) -> Queue {
        var arguments = queueArguments(["x-dead-letter-exchange": .string(Topology.deadExchange)])
        if priorities, queueType == .classic { arguments["x-max-priority"] = .int64(Int64(Topology.maxPriority)) }
        return Queue(name: Topology.workQueue(kind), arguments: arguments, exchange: Topology.workExchange, bindingKey: kind)
    }

    /// Declares one kind's work queue, with priorities or without (classic only), and its binding.
    public func declareWorkQueue(_ kind: String, priorities: Bool, on channel: AMQPChannel) throws {
        try workQueue(kind, priorities: priorities).declare(on: channel)
    }
}
