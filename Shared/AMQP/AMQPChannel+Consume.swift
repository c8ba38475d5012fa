import CRabbitMQ

extension AMQPChannel {
    /// Starts a consumer (basic.consume) and returns its tag. With `prefetch`, sets basic.qos first
    /// so the broker sends at most that many unacknowledged messages. Read deliveries with
    /// `nextDelivery(timeout:)`. Throws `channelClosed` 404 when the queue does not exist.
    @discardableResult
    public func consume(queue: String, prefetch: UInt16? = nil, consumerTag: String = "", noAck: Bool = false,
                        exclusive: Bool = false, arguments: AMQPTable = [:]) throws -> String {
        if let prefetch { try qos(prefetchCount: prefetch) }
        let tag = try rpc("basic.consume", { state, arena in
            amqp_basic_consume(state, id, arena.bytes(queue), arena.bytes(consumerTag), 0, noAck ? 1 : 0,
                               exclusive ? 1 : 0, arguments.cTable(in: arena))
        }, { String(amqpBytes: $0.consumer_tag) })
        state.consumerTags.insert(tag)
        state.cancelledByBroker = nil
        return tag
    }

    /// Stops a consumer (basic.cancel). Deliveries already sent stay unacked until acked or the
    /// channel closes.
    public func cancel(consumerTag: String) throws {
        try rpc("basic.cancel", { state, arena in amqp_basic_cancel(state, id, arena.bytes(consumerTag)) },
                { _ in () })
        state.consumerTags.remove(consumerTag)
    }

    /// Waits up to `timeout` seconds (nil: forever) for the next delivery to this channel's
    /// consumers; nil when none came in time. Heartbeats are serviced while waiting.
    ///
    /// Other frames met on the way are handled: confirms and returns go to the publisher state,
    /// deliveries for other channels to their queues; a broker channel.close or connection.close
    /// becomes `channelClosed` / `connectionClosed`, a cancelled consumer `consumerCancelled`.
    public func nextDelivery(timeout: Double? = nil) throws -> AMQPDelivery? {
        if let delivery = state.popPending() { return delivery }
        try ensureOpen("basic.consume")
        if let cancelled = state.cancelledByBroker, state.consumerTags.isEmpty { throw cancelled }
        let conn = connection.state
        let deadline = timeout.map { monotonicSeconds() + $0 }
        while true {
            var envelope = amqp_envelope_t()
            let reply: amqp_rpc_reply_t
            if let deadline {
                var limit = timeval(seconds: deadline - monotonicSeconds())
                reply = amqp_consume_message(conn, &envelope, &limit, 0)
            } else {
                reply = amqp_consume_message(conn, &envelope, nil, 0)
            }
            if reply.reply_type == AMQP_RESPONSE_NORMAL {
                let delivery = AMQPDelivery(envelope: envelope)
                amqp_destroy_envelope(&envelope)
                amqp_maybe_release_buffers(conn)
                if delivery.channel == id { return delivery }
                connection.channels[delivery.channel]?.pending.append(delivery)
            } else if reply.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION,
                      reply.library_error == AMQP_STATUS_UNEXPECTED_STATE.rawValue {
                // A frame other than basic.deliver was put back for us to read.
                _ = try connection.readFrame(timeout: nil, operation: "basic.consume", waitingOn: id)
                if let delivery = state.popPending() { return delivery }
            } else if reply.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION,
                      reply.library_error == AMQP_STATUS_TIMEOUT.rawValue {
                return nil
            } else {
                try connection.check(.reply(reply), "basic.consume", channel: id)
            }
            if let deadline, monotonicSeconds() >= deadline { return nil }
        }
    }

    /// Acknowledges a delivery; with `multiple`, every unacked delivery up to it on this channel.
    public func ack(_ deliveryTag: UInt64, multiple: Bool = false) throws {
        try ensureOpen("basic.ack")
        try connection.check(.status(amqp_basic_ack(connection.state, id, deliveryTag, multiple ? 1 : 0)),
                             "basic.ack", channel: id)
    }

    /// Negatively acknowledges; `requeue` puts it back (redelivered = true), else it is
    /// dead-lettered or dropped.
    public func nack(_ deliveryTag: UInt64, multiple: Bool = false, requeue: Bool = true) throws {
        try ensureOpen("basic.nack")
        try connection.check(.status(amqp_basic_nack(connection.state, id, deliveryTag, multiple ? 1 : 0,
                                                     requeue ? 1 : 0)), "basic.nack", channel: id)
    }

    /// Rejects one delivery; without `requeue` it goes to the queue's dead-letter exchange, if any.
    public func reject(_ deliveryTag: UInt64, requeue: Bool = false) throws {
        try ensureOpen("basic.reject")
        try connection.check(.status(amqp_basic_reject(connection.state, id, deliveryTag, requeue ? 1 : 0)),
                             "basic.reject", channel: id)
    }

    /// Fetches one message (basic.get); nil when the queue is empty.
    public func get(queue: String, noAck: Bool = false) throws -> AMQPDelivery? {
        try ensureOpen("basic.get")
        let conn = connection.state
        let reply: amqp_rpc_reply_t
        do {
            defer { connection.arena.reset() }
            reply = amqp_basic_get(conn, id, connection.arena.bytes(queue), noAck ? 1 : 0)
        }
        try connection.check(.reply(reply), "basic.get", channel: id)
        guard reply.reply.id == Method.basicGetOk else {
            amqp_maybe_release_buffers(conn)
            return nil
        }
        let ok = reply.reply.decoded.assumingMemoryBound(to: amqp_basic_get_ok_t.self).pointee
        let tag = ok.delivery_tag, redelivered = ok.redelivered != 0
        let exchange = String(amqpBytes: ok.exchange), routingKey = String(amqpBytes: ok.routing_key)
        let (body, properties) = try connection.readContent(channel: id, operation: "basic.get")
        amqp_maybe_release_buffers(conn)
        return AMQPDelivery(channel: id, deliveryTag: tag, redelivered: redelivered, exchange: exchange,
                            routingKey: routingKey, consumerTag: "", body: body, properties: properties)
    }
}

extension AMQPDelivery {
    init(envelope: amqp_envelope_t) {
        self.init(channel: envelope.channel, deliveryTag: envelope.delivery_tag,
                  redelivered: envelope.redelivered != 0, exchange: String(amqpBytes: envelope.exchange),
                  routingKey: String(amqpBytes: envelope.routing_key),
                  consumerTag: String(amqpBytes: envelope.consumer_tag),
                  body: [UInt8](amqpBytes: envelope.message.body),
                  properties: AMQPProperties(envelope.message.properties))
    }
}
