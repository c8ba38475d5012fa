import AMQP

/// The broker objects Esteira uses, declared idempotently by every service at start
/// (docs/topology.md explains the queue types):
///
/// - `esteira.work` (direct): routes a job by its kind to `esteira.work.<kind>`, a classic
///   v2 queue with `x-max-priority` (priorities exist only on classic queues in 3.10) whose
///   rejected messages dead-letter to `esteira.dead`.
/// - one hold tier per delay: the fanout exchange and classic queue `esteira.retry.<n>s`
///   with `x-message-ttl`, dead-lettering back to `esteira.work` with the original routing
///   key (the kind), so a retry waits exactly its tier's delay without blocking other tiers.
/// - `esteira.dead` (fanout) into `esteira.dead-letters`, a quorum queue: dead letters are
///   kept replicated and delivered at least once to the archiver that records them.
/// - `esteira.events` (topic): every job state change as `job.<kind>.<status>`.
public struct Topology: Sendable {
    public static let workExchange = "esteira.work"
    public static let deadExchange = "esteira.dead"
    public static let deadLetterQueue = "esteira.dead-letters"
    public static let eventsExchange = "esteira.events"
    /// The highest message priority work queues honour.
    public static let maxPriority = 9

    /// Retry hold tiers, in seconds.
    public static let retryTiers: [Int] = [1, 2, 5, 10, 30, 60, 300, 900, 3600]

    /// The job kinds to declare a work queue for.
    public var kinds: [String]

    /// A topology for `kinds`.
    public init(kinds: [String]) {
        self.kinds = kinds
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

    /// Declares everything (idempotent: same names, same arguments). Throws `channelClosed`
    /// 406 PRECONDITION_FAILED when an object exists with other arguments.
    public func declare(on channel: AMQPChannel) throws {
        try channel.declareExchange(Topology.workExchange, type: "direct")
        try channel.declareExchange(Topology.deadExchange, type: "fanout")
        try channel.declareExchange(Topology.eventsExchange, type: "topic")
        _ = try channel.declareQueue(Topology.deadLetterQueue, arguments: ["x-queue-type": .string("quorum")])
        try channel.bindQueue(Topology.deadLetterQueue, exchange: Topology.deadExchange)
        for seconds in Topology.retryTiers {
            let name = Topology.retryExchange(seconds)
            try channel.declareExchange(name, type: "fanout")
            _ = try channel.declareQueue(name, arguments: [
                "x-queue-type": .string("classic"),
                "x-queue-version": .int64(2),
                "x-message-ttl": .int64(Int64(seconds) * 1000),
                "x-dead-letter-exchange": .string(Topology.workExchange),
            ])
            try channel.bindQueue(name, exchange: name)
        }
        for kind in kinds {
            try declareWorkQueue(kind, on: channel)
        }
    }

    /// Declares one kind's work queue and its binding.
    public func declareWorkQueue(_ kind: String, on channel: AMQPChannel) throws {
        let queue = Topology.workQueue(kind)
        _ = try channel.declareQueue(queue, arguments: [
            "x-queue-type": .string("classic"),
                "x-queue-version": .int64(2),
            "x-max-priority": .int64(Int64(Topology.maxPriority)),
            "x-dead-letter-exchange": .string(Topology.deadExchange),
        ])
        try channel.bindQueue(queue, exchange: Topology.workExchange, routingKey: kind)
    }
}
