import CRabbitMQ
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A connection to a RabbitMQ broker over rabbitmq-c.
///
/// Not thread-safe: use from one thread at a time (rabbitmq-c connections are not thread-safe;
/// use one connection per thread). Heartbeats are serviced only inside library calls, so a
/// connection left idle in caller code for two heartbeat intervals is closed by the broker; a
/// consumer waiting in `nextDelivery(timeout:)` is inside a library call and stays alive.
///
/// A connection that both publishes with confirms and consumes works: confirm frames seen while
/// waiting for deliveries, and deliveries seen while waiting for confirms, are routed to the
/// channel they belong to.
public final class AMQPConnection {
    /// What this connection was opened with.
    public let configuration: AMQPConfiguration
    let state: amqp_connection_state_t
    /// Scratch memory for the C arguments of the call in progress.
    let arena = CArena()
    var channels: [UInt16: ChannelState] = [:]
    private var nextChannelId: UInt16 = 1
    private var loggedIn = false
    /// Set once the connection is unusable; every later call rethrows it.
    private(set) var closeError: AMQPError?

    /// Whether the connection is logged in and not closed or lost.
    public var isOpen: Bool { loggedIn && closeError == nil }

    /// Connects and logs in (PLAIN), sending `connectionName` as the `connection_name` client property.
    ///
    /// Throws `hostNotFound`, `connectionRefused`, `timeout` or `authenticationFailed`.
    public init(_ configuration: AMQPConfiguration) throws {
        self.configuration = configuration
        guard let state = amqp_new_connection() else {
            throw AMQPError(.library, operation: "connect", libraryStatus: AMQP_STATUS_NO_MEMORY.rawValue)
        }
        self.state = state
        // From here on deinit runs on a throw and destroys `state`.
        guard let socket = amqp_tcp_socket_new(state) else {
            throw AMQPError(.library, operation: "connect", libraryStatus: AMQP_STATUS_NO_MEMORY.rawValue)
        }
        var connectTimeout = timeval(seconds: configuration.connectTimeout)
        let opened = amqp_socket_open_noblock(socket, configuration.host, Int32(configuration.port), &connectTimeout)
        try check(.status(opened), "connect", phase: .connecting)
        try check(.status(amqp_set_handshake_timeout(state, &connectTimeout)), "connect", phase: .connecting)

        defer { arena.reset() }
        // consumer_cancel_notify: without it RabbitMQ does not tell a consumer that its queue was
        // deleted, and the consumer would wait forever on a queue that no longer exists.
        var properties: AMQPTable = [
            "product": .string("Esteira AMQP"),
            "capabilities": .table(["consumer_cancel_notify": .bool(true), "authentication_failure_close": .bool(true)]),
        ]
        if let name = configuration.connectionName { properties["connection_name"] = .string(name) }
        var cProperties = properties.cTable(in: arena)
        let reply = CRabbitMQ_login_plain_with_properties(
            state, configuration.vhost, Int32(configuration.channelMax), Int32(configuration.frameMax),
            Int32(configuration.heartbeatSeconds), &cProperties, configuration.user, configuration.password)
        try check(.reply(reply), "login", phase: .loggingIn)
        loggedIn = true
    }

    deinit {
        if isOpen {
            // Bounded, so a dead broker cannot hang deinit.
            var limit = timeval(tv_sec: 2, tv_usec: 0)
            amqp_set_rpc_timeout(state, &limit)
            _ = amqp_connection_close(state, 200)
        }
        amqp_destroy_connection(state)
    }

    /// Closes the connection cleanly (connection.close, waits for close-ok). Safe to call twice.
    public func close() throws {
        guard isOpen else { return }
        var limit = timeval(seconds: 5)
        amqp_set_rpc_timeout(state, &limit)
        let reply = amqp_connection_close(state, 200)
        markClosed(AMQPError(.connectionClosed, operation: "close", replyText: "closed by client"))
        try check(.reply(reply), "connection.close")
    }

    /// Opens a new channel.
    public func openChannel() throws -> AMQPChannel {
        try ensureOpen("channel.open")
        let limit = configuration.channelMax > 0 ? min(configuration.channelMax, 65535) : 65535
        var id = nextChannelId
        for _ in 0..<limit {
            if channels[id] == nil { break }
            id = id >= UInt16(limit) ? 1 : id + 1
        }
        guard channels[id] == nil else {
            throw AMQPError(.invalidArgument, operation: "channel.open", replyText: "all \(limit) channels in use")
        }
        nextChannelId = id >= UInt16(limit) ? 1 : id + 1
        if amqp_channel_open(state, id) == nil {
            try check(.reply(amqp_get_rpc_reply(state)), "channel.open", channel: id)
        }
        let channelState = ChannelState(id: id)
        channels[id] = channelState
        return AMQPChannel(connection: self, state: channelState)
    }

    // MARK: - The one place rabbitmq-c outcomes become Swift errors

    /// A rabbitmq-c result: an RPC reply or an `amqp_status_enum` status.
    enum Outcome {
        case reply(amqp_rpc_reply_t)
        case status(Int32)
    }

    enum Phase { case connecting, loggingIn, open }

    /// Throws the `AMQPError` for a rabbitmq-c outcome, like SwiftNIO's `syscall(where:)`.
    ///
    /// A broker channel.close or connection.close is answered with close-ok here, and the
    /// channel or connection marked unusable, so no caller has to remember to.
    func check(_ outcome: Outcome, _ operation: String, channel: UInt16 = 0, phase: Phase = .open) throws {
        let reply: amqp_rpc_reply_t
        switch outcome {
        case .status(let status):
            if status == AMQP_STATUS_OK.rawValue { return }
            reply = amqp_rpc_reply_t(reply_type: AMQP_RESPONSE_LIBRARY_EXCEPTION, reply: amqp_method_t(),
                                     library_error: status)
        case .reply(let value):
            if value.reply_type == AMQP_RESPONSE_NORMAL { return }
            reply = value
        }
        throw error(for: reply, operation, channel: channel, phase: phase)
    }

    private func error(for reply: amqp_rpc_reply_t, _ operation: String, channel: UInt16, phase: Phase) -> AMQPError {
        switch reply.reply_type {
        case AMQP_RESPONSE_SERVER_EXCEPTION:
            return serverClose(reply.reply, operation, channel: channel, phase: phase)
        case AMQP_RESPONSE_NONE:
            // EOF on the socket.
            let code: AMQPError.Code = phase == .loggingIn ? .authenticationFailed : .connectionLost
            let error = AMQPError(code, operation: operation, replyText: "connection closed by peer")
            markClosed(error)
            return error
        default:
            return libraryError(reply.library_error, operation, phase: phase)
        }
    }

    private func libraryError(_ status: Int32, _ operation: String, phase: Phase) -> AMQPError {
        let text = amqp_error_string2(status).map { String(cString: $0) }
        func make(_ code: AMQPError.Code) -> AMQPError {
            AMQPError(code, operation: operation, replyText: text, libraryStatus: status)
        }
        switch status {
        case AMQP_STATUS_HOSTNAME_RESOLUTION_FAILED.rawValue:
            return make(.hostNotFound)
        case AMQP_STATUS_TIMEOUT.rawValue:
            // Only connects, logins and RPCs (rabbitmq-c closes the socket on an RPC timeout) get
            // here: bounded waits handle their own timeouts and leave the connection usable.
            let error = make(.timeout)
            markClosed(error)
            return error
        case AMQP_STATUS_SOCKET_ERROR.rawValue, AMQP_STATUS_TCP_ERROR.rawValue:
            let error = make(phase == .connecting ? .connectionRefused : .connectionLost)
            markClosed(error)
            return error
        case AMQP_STATUS_CONNECTION_CLOSED.rawValue, AMQP_STATUS_SOCKET_CLOSED.rawValue:
            // At login RabbitMQ drops the socket on bad credentials when it cannot send a 403.
            let error = make(phase == .loggingIn ? .authenticationFailed : .connectionLost)
            markClosed(error)
            return error
        case AMQP_STATUS_HEARTBEAT_TIMEOUT.rawValue, AMQP_STATUS_SSL_ERROR.rawValue, AMQP_STATUS_BAD_AMQP_DATA.rawValue:
            let error = make(.connectionLost)
            markClosed(error)
            return error
        case AMQP_STATUS_TABLE_TOO_BIG.rawValue, AMQP_STATUS_INVALID_PARAMETER.rawValue:
            return make(.invalidArgument)
        case AMQP_STATUS_UNEXPECTED_STATE.rawValue, AMQP_STATUS_WRONG_METHOD.rawValue,
             AMQP_STATUS_UNKNOWN_CLASS.rawValue, AMQP_STATUS_UNKNOWN_METHOD.rawValue:
            return make(.protocolError)
        default:
            let error = make(.library)
            if phase != .open { markClosed(error) }
            return error
        }
    }

    /// Turns a channel.close / connection.close from the broker into an error, after answering it.
    func serverClose(_ method: amqp_method_t, _ operation: String, channel: UInt16, phase: Phase = .open) -> AMQPError {
        switch method.id {
        case Method.channelClose:
            let close = method.decoded.assumingMemoryBound(to: amqp_channel_close_t.self).pointee
            let error = AMQPError(.channelClosed, operation: operation, replyCode: close.reply_code,
                                  replyText: String(amqpBytes: close.reply_text))
            var ok = amqp_channel_close_ok_t(dummy: 0)
            _ = amqp_send_method(state, channel, Method.channelCloseOk, &ok)
            if let channelState = channels.removeValue(forKey: channel) { channelState.closeError = error }
            return error
        case Method.connectionClose:
            let close = method.decoded.assumingMemoryBound(to: amqp_connection_close_t.self).pointee
            let code: AMQPError.Code = phase == .loggingIn ? .authenticationFailed : .connectionClosed
            let error = AMQPError(code, operation: operation, replyCode: close.reply_code,
                                  replyText: String(amqpBytes: close.reply_text))
            var ok = amqp_connection_close_ok_t(dummy: 0)
            _ = amqp_send_method(state, 0, Method.connectionCloseOk, &ok)
            markClosed(error)
            return error
        default:
            return AMQPError(.protocolError, operation: operation, replyText: "unexpected method \(method.id)")
        }
    }

    func markClosed(_ error: AMQPError) {
        if closeError == nil { closeError = error }
        for channelState in channels.values where channelState.closeError == nil { channelState.closeError = error }
        channels.removeAll()
    }

    func ensureOpen(_ operation: String) throws {
        if let closeError { throw closeError }
        guard loggedIn else { throw AMQPError(.connectionLost, operation: operation, replyText: "not connected") }
    }

    // MARK: - Frames that arrive outside the call waiting for them

    /// Reads one frame (waiting at most `timeout` seconds, forever when nil) and routes it:
    /// confirms and returns to their channel's publisher state, deliveries to its queue, broker
    /// closes into errors. Returns false when the wait timed out.
    func readFrame(timeout: Double?, operation: String, waitingOn channel: UInt16) throws -> Bool {
        var frame = amqp_frame_t()
        var status: Int32
        if let timeout {
            var limit = timeval(seconds: timeout)
            status = amqp_simple_wait_frame_noblock(state, &frame, &limit)
            if status == AMQP_STATUS_TIMEOUT.rawValue { return false }
        } else {
            status = amqp_simple_wait_frame(state, &frame)
        }
        try check(.status(status), operation, channel: channel)
        try dispatch(frame, operation: operation, waitingOn: channel)
        return true
    }

    /// Routes a frame; throws when it closes the connection or the channel `waitingOn`.
    func dispatch(_ frame: amqp_frame_t, operation: String, waitingOn waiting: UInt16) throws {
        defer { amqp_maybe_release_buffers(state) }
        guard frame.frame_type == UInt8(AMQP_FRAME_METHOD) else { return }  // stray content: ignore
        let channel = frame.channel
        let method = frame.payload.method
        switch method.id {
        case Method.basicAck:
            let ack = method.decoded.assumingMemoryBound(to: amqp_basic_ack_t.self).pointee
            channels[channel]?.confirm(upTo: ack.delivery_tag, multiple: ack.multiple != 0, nacked: false)
        case Method.basicNack:
            let nack = method.decoded.assumingMemoryBound(to: amqp_basic_nack_t.self).pointee
            channels[channel]?.confirm(upTo: nack.delivery_tag, multiple: nack.multiple != 0, nacked: true)
        case Method.basicReturn:
            let basicReturn = method.decoded.assumingMemoryBound(to: amqp_basic_return_t.self).pointee
            let replyCode = basicReturn.reply_code
            let replyText = String(amqpBytes: basicReturn.reply_text)
            let exchange = String(amqpBytes: basicReturn.exchange)
            let routingKey = String(amqpBytes: basicReturn.routing_key)
            let (body, properties) = try readContent(channel: channel, operation: operation)
            channels[channel]?.returned.append(AMQPReturnedMessage(
                replyCode: replyCode, replyText: replyText, exchange: exchange, routingKey: routingKey,
                body: body, properties: properties))
        case Method.basicDeliver:
            let deliver = method.decoded.assumingMemoryBound(to: amqp_basic_deliver_t.self).pointee
            let tag = deliver.delivery_tag, redelivered = deliver.redelivered != 0
            let exchange = String(amqpBytes: deliver.exchange)
            let routingKey = String(amqpBytes: deliver.routing_key)
            let consumerTag = String(amqpBytes: deliver.consumer_tag)
            let (body, properties) = try readContent(channel: channel, operation: operation)
            channels[channel]?.pending.append(AMQPDelivery(
                channel: channel, deliveryTag: tag, redelivered: redelivered, exchange: exchange,
                routingKey: routingKey, consumerTag: consumerTag, body: body, properties: properties))
        case Method.basicCancel:
            // The broker cancelled a consumer (its queue was deleted): the consumer must not wait forever.
            let cancel = method.decoded.assumingMemoryBound(to: amqp_basic_cancel_t.self).pointee
            let tag = String(amqpBytes: cancel.consumer_tag)
            if let channelState = channels[channel] {
                channelState.consumerTags.remove(tag)
                channelState.cancelledByBroker = AMQPError(.consumerCancelled, operation: operation,
                                                           replyText: "consumer \(tag) cancelled by broker")
                if channel == waiting, let error = channelState.cancelledByBroker { throw error }
            }
        case Method.channelClose:
            let error = serverClose(method, operation, channel: channel)
            if channel == waiting { throw error }
        case Method.connectionClose:
            throw serverClose(method, operation, channel: channel)
        default:
            break
        }
    }

    /// Reads the header and body frames that follow a basic.deliver / basic.return / basic.get-ok.
    func readContent(channel: UInt16, operation: String) throws -> ([UInt8], AMQPProperties) {
        var message = amqp_message_t()
        let reply = amqp_read_message(state, channel, &message, 0)
        try check(.reply(reply), operation, channel: channel)
        defer { amqp_destroy_message(&message) }
        return ([UInt8](amqpBytes: message.body), AMQPProperties(message.properties))
    }
}

/// Method ids (class << 16 | method), spelled out because Swift does not import the C macros' casts.
enum Method {
    static let connectionClose: amqp_method_number_t = 0x000A_0032
    static let connectionCloseOk: amqp_method_number_t = 0x000A_0033
    static let channelClose: amqp_method_number_t = 0x0014_0028
    static let channelCloseOk: amqp_method_number_t = 0x0014_0029
    static let basicCancel: amqp_method_number_t = 0x003C_001E
    static let basicReturn: amqp_method_number_t = 0x003C_0032
    static let basicDeliver: amqp_method_number_t = 0x003C_003C
    static let basicGetOk: amqp_method_number_t = 0x003C_0047
    static let basicGetEmpty: amqp_method_number_t = 0x003C_0048
    static let basicAck: amqp_method_number_t = 0x003C_0050
    static let basicNack: amqp_method_number_t = 0x003C_0078
}

extension timeval {
    init(seconds: Double) {
        let clamped = max(seconds, 0)
        let whole = clamped.rounded(.down)
        self.init(tv_sec: Int(whole), tv_usec: Int((clamped - whole) * 1_000_000))
    }
}

/// Monotonic seconds, for deadlines.
func monotonicSeconds() -> Double {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
}
