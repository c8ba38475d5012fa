import CRabbitMQ

/// An AMQP channel on an `AMQPConnection`: declarations, publishing, consuming.
///
/// Same threading rule as its connection: one thread at a time. After the broker closes the
/// channel (`AMQPError.Code.channelClosed`, e.g. 404 or 406) every call throws that error;
/// open a new channel with `AMQPConnection.openChannel()`.
public final class AMQPChannel {
    /// The connection the channel lives on; kept alive by the channel.
    public let connection: AMQPConnection
    let state: ChannelState

    init(connection: AMQPConnection, state: ChannelState) {
        self.connection = connection
        self.state = state
    }

    /// The channel number.
    public var id: UInt16 { state.id }

    /// Whether the channel can still be used.
    public var isOpen: Bool { state.closeError == nil && connection.isOpen }

    /// Closes the channel (channel.close). Safe to call on a channel the broker already closed.
    public func close() throws {
        guard isOpen else { return }
        let reply = amqp_channel_close(connection.state, id, 200)
        connection.channels.removeValue(forKey: id)
        state.closeError = AMQPError(.channelClosed, operation: "channel.close", replyText: "closed by client")
        try connection.check(.reply(reply), "channel.close", channel: id)
    }

    // MARK: - Calls

    func ensureOpen(_ operation: String) throws {
        try connection.ensureOpen(operation)
        if let closeError = state.closeError { throw closeError }
    }

    /// Runs a synchronous method (the `amqp_xxx` calls that return a pointer to the `-ok` reply, or
    /// NULL and leave the reason in `amqp_get_rpc_reply`), C arguments kept alive in the arena.
    func rpc<Reply, Result>(_ operation: String,
                            _ call: (amqp_connection_state_t, CArena) -> UnsafeMutablePointer<Reply>?,
                            _ read: (Reply) -> Result) throws -> Result {
        try ensureOpen(operation)
        defer { connection.arena.reset() }
        guard let reply = call(connection.state, connection.arena) else {
            try connection.check(.reply(amqp_get_rpc_reply(connection.state)), operation, channel: id)
            throw AMQPError(.protocolError, operation: operation, replyText: "no reply")
        }
        return read(reply.pointee)
    }

    // MARK: - Exchanges

    /// Declares an exchange (`type` is `direct`, `fanout`, `topic`, `headers` or a plugin's type).
    /// A redeclare with different settings closes the channel with 406 PRECONDITION_FAILED.
    public func declareExchange(_ name: String, type: String = "direct", durable: Bool = true,
                                autoDelete: Bool = false, internal: Bool = false,
                                arguments: AMQPTable = [:]) throws {
        try rpc("exchange.declare", { state, arena in
            amqp_exchange_declare(state, id, arena.bytes(name), arena.bytes(type), 0, durable ? 1 : 0,
                                  autoDelete ? 1 : 0, `internal` ? 1 : 0, arguments.cTable(in: arena))
        }, { _ in () })
    }

    /// Checks that an exchange exists without creating it; throws `channelClosed` 404 if not.
    public func declareExchangePassive(_ name: String) throws {
        try rpc("exchange.declare", { state, arena in
            amqp_exchange_declare(state, id, arena.bytes(name), arena.bytes("direct"), 1, 0, 0, 0, amqp_empty_table)
        }, { _ in () })
    }

    /// Deletes an exchange (only when no queue is bound to it if `ifUnused`).
    public func deleteExchange(_ name: String, ifUnused: Bool = false) throws {
        try rpc("exchange.delete", { state, arena in
            amqp_exchange_delete(state, id, arena.bytes(name), ifUnused ? 1 : 0)
        }, { _ in () })
    }

    /// Binds exchange `destination` to exchange `source` (exchange-to-exchange binding).
    public func bindExchange(destination: String, source: String, routingKey: String = "",
                             arguments: AMQPTable = [:]) throws {
        try rpc("exchange.bind", { state, arena in
            amqp_exchange_bind(state, id, arena.bytes(destination), arena.bytes(source), arena.bytes(routingKey),
                               arguments.cTable(in: arena))
        }, { _ in () })
    }

    // MARK: - Queues

    /// The broker's answer to queue.declare.
    public struct QueueInfo: Sendable, Equatable {
        /// The queue's name (the generated one when declared with `""`).
        public var name: String
        /// Messages ready in the queue.
        public var messageCount: UInt32
        /// Consumers on the queue.
        public var consumerCount: UInt32
    }

    /// Declares a queue; `""` lets the broker name it. Arguments carry `x-message-ttl`,
    /// `x-dead-letter-exchange`, `x-dead-letter-routing-key`, `x-max-priority`, `x-queue-type`,
    /// `x-delivery-limit`, ... A redeclare with different arguments closes the channel with 406.
    @discardableResult
    public func declareQueue(_ name: String, durable: Bool = true, exclusive: Bool = false, autoDelete: Bool = false,
                             arguments: AMQPTable = [:]) throws -> QueueInfo {
        try rpc("queue.declare", { state, arena in
            amqp_queue_declare(state, id, arena.bytes(name), 0, durable ? 1 : 0, exclusive ? 1 : 0,
                               autoDelete ? 1 : 0, arguments.cTable(in: arena))
        }, { QueueInfo(name: String(amqpBytes: $0.queue), messageCount: $0.message_count,
                       consumerCount: $0.consumer_count) })
    }

    /// Reads a queue's counts without creating it; throws `channelClosed` 404 if it does not exist.
    public func declareQueuePassive(_ name: String) throws -> QueueInfo {
        try rpc("queue.declare", { state, arena in
            amqp_queue_declare(state, id, arena.bytes(name), 1, 0, 0, 0, amqp_empty_table)
        }, { QueueInfo(name: String(amqpBytes: $0.queue), messageCount: $0.message_count,
                       consumerCount: $0.consumer_count) })
    }

    /// Deletes a queue; returns how many messages it held.
    @discardableResult
    public func deleteQueue(_ name: String, ifUnused: Bool = false, ifEmpty: Bool = false) throws -> UInt32 {
        try rpc("queue.delete", { state, arena in
            amqp_queue_delete(state, id, arena.bytes(name), ifUnused ? 1 : 0, ifEmpty ? 1 : 0)
        }, { $0.message_count })
    }

    /// Removes every ready message from a queue; returns how many.
    @discardableResult
    public func purgeQueue(_ name: String) throws -> UInt32 {
        try rpc("queue.purge", { state, arena in amqp_queue_purge(state, id, arena.bytes(name)) },
                { $0.message_count })
    }

    /// Binds a queue to an exchange with a routing key (and arguments for headers exchanges).
    public func bindQueue(_ queue: String, exchange: String, routingKey: String = "",
                          arguments: AMQPTable = [:]) throws {
        try rpc("queue.bind", { state, arena in
            amqp_queue_bind(state, id, arena.bytes(queue), arena.bytes(exchange), arena.bytes(routingKey),
                            arguments.cTable(in: arena))
        }, { _ in () })
    }

    /// Removes a queue binding.
    public func unbindQueue(_ queue: String, exchange: String, routingKey: String = "",
                            arguments: AMQPTable = [:]) throws {
        try rpc("queue.unbind", { state, arena in
            amqp_queue_unbind(state, id, arena.bytes(queue), arena.bytes(exchange), arena.bytes(routingKey),
                              arguments.cTable(in: arena))
        }, { _ in () })
    }

    // MARK: - Modes

    /// Limits unacknowledged deliveries per consumer on this channel (basic.qos prefetch-count);
    /// `global` applies it to the whole channel instead (RabbitMQ's reading of the flag).
    public func qos(prefetchCount: UInt16, global: Bool = false) throws {
        try rpc("basic.qos", { state, _ in amqp_basic_qos(state, id, 0, prefetchCount, global ? 1 : 0) },
                { _ in () })
    }

    /// Puts the channel in publisher-confirm mode (confirm.select): every publish is then
    /// numbered from 1 and acked or nacked by the broker.
    public func enableConfirms() throws {
        guard !state.confirmMode else { return }
        try rpc("confirm.select", { state, _ in amqp_confirm_select(state, id) }, { _ in () })
        state.confirmMode = true
    }
}

extension AMQPConnection {
    /// A queue's counts, read on a channel of its own (a missing queue closes the channel
    /// it is asked on); nil when there is no such queue.
    public func queueInfo(_ name: String) throws -> AMQPChannel.QueueInfo? {
        let channel = try openChannel()
        defer { try? channel.close() }
        do {
            return try channel.declareQueuePassive(name)
        } catch let error as AMQPError where error.code == .channelClosed && error.replyCode == 404 {
            return nil
        }
    }
}
