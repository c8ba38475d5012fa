import CRabbitMQ

/// What the broker said about messages published with confirms.
public struct AMQPConfirmResult: Sendable {
    /// For `waitForConfirms`: publish sequence numbers the broker nacked (it could not take them).
    /// For `publishConfirmed`: indexes into the published array.
    public var nacked: [Int]
    /// Mandatory messages that could not be routed (they are acked too, after the return).
    public var returned: [AMQPReturnedMessage]

    /// True when nothing was nacked or returned.
    public var allConfirmed: Bool { nacked.isEmpty && returned.isEmpty }
}

extension AMQPChannel {
    /// How many messages may be unconfirmed on a confirm channel before `publish` waits for
    /// confirms; 500 by default.
    public var maxUnconfirmed: Int {
        get { state.maxUnconfirmed }
        set { state.maxUnconfirmed = max(1, newValue) }
    }

    /// Messages published on this confirm channel and not yet acked or nacked.
    public var unconfirmedCount: Int { state.unconfirmedCount }

    /// Publishes one message. On a confirm channel, first waits (servicing confirms) while
    /// `maxUnconfirmed` messages are unconfirmed, and returns the message's publish sequence number
    /// (0 otherwise). Properties default to a persistent message.
    @discardableResult
    public func publish(_ body: [UInt8], exchange: String = "", routingKey: String,
                        properties: AMQPProperties = .persistent, mandatory: Bool = false) throws -> UInt64 {
        try ensureOpen("basic.publish")
        if state.confirmMode {
            while state.unconfirmedCount >= state.maxUnconfirmed {
                _ = try connection.readFrame(timeout: nil, operation: "basic.publish", waitingOn: id)
                // Drain what is already buffered without another syscall: acks come in bursts.
                while amqp_frames_enqueued(connection.state) != 0 || amqp_data_in_buffer(connection.state) != 0 {
                    guard try connection.readFrame(timeout: 0, operation: "basic.publish", waitingOn: id) else { break }
                }
            }
        }
        let arena = connection.arena
        defer { arena.reset() }
        var cProperties = properties.cProperties(in: arena)
        let status = body.withUnsafeBytes { raw in
            amqp_basic_publish(connection.state, id, arena.bytes(exchange), arena.bytes(routingKey),
                               mandatory ? 1 : 0, 0, &cProperties,
                               amqp_bytes_t(len: raw.count, bytes: UnsafeMutableRawPointer(mutating: raw.baseAddress)))
        }
        try connection.check(.status(status), "basic.publish", channel: id)
        guard state.confirmMode else { return 0 }
        defer { state.nextPublishTag += 1 }
        return state.nextPublishTag
    }

    /// Publishes a message value; see `publish(_:exchange:routingKey:properties:mandatory:)`.
    @discardableResult
    public func publish(_ message: AMQPOutgoingMessage) throws -> UInt64 {
        try publish(message.body, exchange: message.exchange, routingKey: message.routingKey,
                    properties: message.properties, mandatory: message.mandatory)
    }

    /// Waits until every message published on this confirm channel is acked or nacked, then
    /// reports (and forgets) the nacked sequence numbers and returned messages gathered so far.
    /// Throws `timeout` if confirms are still missing after `timeout` seconds (nil: no limit).
    public func waitForConfirms(timeout: Double? = nil) throws -> AMQPConfirmResult {
        try ensureOpen("wait for confirms")
        guard state.confirmMode else {
            throw AMQPError(.invalidArgument, operation: "wait for confirms", replyText: "channel not in confirm mode")
        }
        let deadline = timeout.map { monotonicSeconds() + $0 }
        while state.unconfirmedCount > 0 {
            var remaining: Double? = nil
            if let deadline {
                remaining = deadline - monotonicSeconds()
                if remaining! <= 0 {
                    throw AMQPError(.timeout, operation: "wait for confirms",
                                    replyText: "\(state.unconfirmedCount) messages unconfirmed")
                }
            }
            _ = try connection.readFrame(timeout: remaining, operation: "wait for confirms", waitingOn: id)
        }
        let result = AMQPConfirmResult(nacked: state.nackedTags.map { Int($0) }, returned: state.returned)
        state.nackedTags.removeAll()
        state.returned.removeAll()
        return result
    }

    /// Publishes many messages with confirms, keeping up to `maxUnconfirmed` in flight, then waits
    /// for the rest. `nacked` holds indexes into `messages`. Enables confirm mode if needed.
    public func publishConfirmed(_ messages: [AMQPOutgoingMessage], timeout: Double? = nil) throws -> AMQPConfirmResult {
        try enableConfirms()
        let first = state.nextPublishTag
        for message in messages { try publish(message) }
        var result = try waitForConfirms(timeout: timeout)
        result.nacked = result.nacked.compactMap { tag in
            let tag = UInt64(tag)
            return tag >= first && tag < first + UInt64(messages.count) ? Int(tag - first) : nil
        }
        return result
    }
}
