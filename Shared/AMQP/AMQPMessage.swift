import CRabbitMQ

/// The basic properties of a message (AMQP 0-9-1 `basic` content header).
///
/// The default is a persistent message (delivery mode 2) with no other property set; nil
/// fields are not sent, and an empty `headers` table costs nothing.
public struct AMQPProperties: Equatable, Sendable {
    /// MIME type of the body, e.g. `application/json`.
    public var contentType: String?
    /// Encoding of the body, e.g. `gzip`.
    public var contentEncoding: String?
    /// Application headers; dead-lettering adds `x-death` here.
    public var headers: AMQPTable
    /// True for delivery mode 2 (written to disk on durable queues), false for mode 1.
    public var persistent: Bool
    /// Priority 0-255, honoured by queues declared with `x-max-priority`.
    public var priority: UInt8?
    /// Correlates a reply with its request.
    public var correlationId: String?
    /// Queue name for replies.
    public var replyTo: String?
    /// Per-message TTL in milliseconds, as a decimal string (AMQP says so), e.g. `"60000"`.
    public var expiration: String?
    /// Application message identifier.
    public var messageId: String?
    /// Seconds since 1970.
    public var timestamp: UInt64?
    /// Application message type name.
    public var type: String?
    /// Must equal the connection's user when set (RabbitMQ validates it).
    public var userId: String?
    /// Name of the publishing application.
    public var appId: String?

    /// Makes properties; everything optional, persistent by default.
    public init(contentType: String? = nil, contentEncoding: String? = nil, headers: AMQPTable = [:],
                persistent: Bool = true, priority: UInt8? = nil, correlationId: String? = nil,
                replyTo: String? = nil, expiration: String? = nil, messageId: String? = nil,
                timestamp: UInt64? = nil, type: String? = nil, userId: String? = nil, appId: String? = nil) {
        self.contentType = contentType
        self.contentEncoding = contentEncoding
        self.headers = headers
        self.persistent = persistent
        self.priority = priority
        self.correlationId = correlationId
        self.replyTo = replyTo
        self.expiration = expiration
        self.messageId = messageId
        self.timestamp = timestamp
        self.type = type
        self.userId = userId
        self.appId = appId
    }

    /// A persistent message with no other property: what jobs are published as.
    public static let persistent = AMQPProperties()
}

/// A message to publish: where to, body and properties.
public struct AMQPOutgoingMessage: Sendable {
    /// Exchange to publish to; `""` is the default exchange (routing key = queue name).
    public var exchange: String
    /// Routing key.
    public var routingKey: String
    /// Body bytes.
    public var body: [UInt8]
    /// Properties; persistent by default.
    public var properties: AMQPProperties
    /// Ask the broker to return the message (basic.return) when no queue is bound for it.
    public var mandatory: Bool

    /// Makes a message.
    public init(exchange: String = "", routingKey: String, body: [UInt8], properties: AMQPProperties = .persistent,
                mandatory: Bool = false) {
        self.exchange = exchange
        self.routingKey = routingKey
        self.body = body
        self.properties = properties
        self.mandatory = mandatory
    }
}

/// A message delivered by basic.consume or basic.get.
public struct AMQPDelivery: Sendable {
    /// Channel it came on; ack it on that channel.
    public var channel: UInt16
    /// Tag to ack, nack or reject with.
    public var deliveryTag: UInt64
    /// True when the broker delivered it before (after a nack/requeue or a lost consumer).
    public var redelivered: Bool
    /// Exchange it was published to (`""` for the default exchange).
    public var exchange: String
    /// Routing key it was published (or dead-lettered) with.
    public var routingKey: String
    /// Consumer tag for basic.consume deliveries, empty for basic.get.
    public var consumerTag: String
    /// Body bytes.
    public var body: [UInt8]
    /// Properties, headers decoded into an `AMQPTable`.
    public var properties: AMQPProperties

    /// A delivery as the module makes them (public for code that handles deliveries, and its tests).
    public init(channel: UInt16 = 1, deliveryTag: UInt64, redelivered: Bool = false, exchange: String = "", routingKey: String,
                consumerTag: String = "", body: [UInt8], properties: AMQPProperties = AMQPProperties()) {
        self.channel = channel
        self.deliveryTag = deliveryTag
        self.redelivered = redelivered
        self.exchange = exchange
        self.routingKey = routingKey
        self.consumerTag = consumerTag
        self.body = body
        self.properties = properties
    }
}

/// A mandatory message the broker could not route, sent back with basic.return.
public struct AMQPReturnedMessage: Sendable {
    /// Reply code, usually 312 NO_ROUTE.
    public var replyCode: UInt16
    /// Reply text, e.g. `NO_ROUTE`.
    public var replyText: String
    /// Exchange it was published to.
    public var exchange: String
    /// Routing key it was published with.
    public var routingKey: String
    /// Body bytes.
    public var body: [UInt8]
    /// Properties as published (use `messageId` to tell which message it was).
    public var properties: AMQPProperties
}

// MARK: - To and from C

enum PropertyFlag {
    static let contentType: UInt32 = 1 << 15
    static let contentEncoding: UInt32 = 1 << 14
    static let headers: UInt32 = 1 << 13
    static let deliveryMode: UInt32 = 1 << 12
    static let priority: UInt32 = 1 << 11
    static let correlationId: UInt32 = 1 << 10
    static let replyTo: UInt32 = 1 << 9
    static let expiration: UInt32 = 1 << 8
    static let messageId: UInt32 = 1 << 7
    static let timestamp: UInt32 = 1 << 6
    static let type: UInt32 = 1 << 5
    static let userId: UInt32 = 1 << 4
    static let appId: UInt32 = 1 << 3
}

extension AMQPProperties {
    /// The C form; strings and headers copied into `arena`.
    func cProperties(in arena: CArena) -> amqp_basic_properties_t {
        var p = amqp_basic_properties_t()
        var flags: UInt32 = PropertyFlag.deliveryMode
        p.delivery_mode = persistent ? 2 : 1
        if let contentType { flags |= PropertyFlag.contentType; p.content_type = arena.bytes(contentType) }
        if let contentEncoding { flags |= PropertyFlag.contentEncoding; p.content_encoding = arena.bytes(contentEncoding) }
        if !headers.isEmpty { flags |= PropertyFlag.headers; p.headers = headers.cTable(in: arena) }
        if let priority { flags |= PropertyFlag.priority; p.priority = priority }
        if let correlationId { flags |= PropertyFlag.correlationId; p.correlation_id = arena.bytes(correlationId) }
        if let replyTo { flags |= PropertyFlag.replyTo; p.reply_to = arena.bytes(replyTo) }
        if let expiration { flags |= PropertyFlag.expiration; p.expiration = arena.bytes(expiration) }
        if let messageId { flags |= PropertyFlag.messageId; p.message_id = arena.bytes(messageId) }
        if let timestamp { flags |= PropertyFlag.timestamp; p.timestamp = timestamp }
        if let type { flags |= PropertyFlag.type; p.type = arena.bytes(type) }
        if let userId { flags |= PropertyFlag.userId; p.user_id = arena.bytes(userId) }
        if let appId { flags |= PropertyFlag.appId; p.app_id = arena.bytes(appId) }
        p._flags = flags
        return p
    }

    /// Copies C properties (memory owned by rabbitmq-c) into Swift values.
    init(_ p: amqp_basic_properties_t) {
        let flags = p._flags
        func string(_ flag: UInt32, _ bytes: amqp_bytes_t) -> String? {
            flags & flag != 0 ? String(amqpBytes: bytes) : nil
        }
        self.init(
            contentType: string(PropertyFlag.contentType, p.content_type),
            contentEncoding: string(PropertyFlag.contentEncoding, p.content_encoding),
            headers: flags & PropertyFlag.headers != 0 && p.headers.num_entries > 0 ? AMQPTable(p.headers) : [:],
            persistent: flags & PropertyFlag.deliveryMode != 0 && p.delivery_mode == 2,
            priority: flags & PropertyFlag.priority != 0 ? p.priority : nil,
            correlationId: string(PropertyFlag.correlationId, p.correlation_id),
            replyTo: string(PropertyFlag.replyTo, p.reply_to),
            expiration: string(PropertyFlag.expiration, p.expiration),
            messageId: string(PropertyFlag.messageId, p.message_id),
            timestamp: flags & PropertyFlag.timestamp != 0 ? p.timestamp : nil,
            type: string(PropertyFlag.type, p.type),
            userId: string(PropertyFlag.userId, p.user_id),
            appId: string(PropertyFlag.appId, p.app_id))
    }
}
