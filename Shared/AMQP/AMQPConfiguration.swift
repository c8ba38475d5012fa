/// Where and how to connect to a broker.
///
/// Built from an `amqp://user:pass@host:port/vhost` URL (percent-encoded parts are decoded; the
/// port defaults to 5672 and an empty path to the vhost `/`), or a comma-separated list of such
/// URLs naming the nodes of one cluster, then adjusted field by field.
/// `description` never shows the password.
public struct AMQPConfiguration: Sendable, CustomStringConvertible {
    /// A broker node's address.
    public struct Endpoint: Sendable, Equatable, CustomStringConvertible {
        public var host: String
        public var port: Int

        public init(host: String, port: Int) {
            self.host = host
            self.port = port
        }

        public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
    }

    /// Broker host name or address.
    public var host: String
    /// Broker port; 5672 unless the URL says otherwise.
    public var port: Int
    /// The other nodes of the broker's cluster, tried in order when ``host`` does not answer
    /// (``AMQPConnection/open(_:)``).
    public var alternates: [Endpoint] = []
    /// User name for PLAIN authentication.
    public var user: String
    /// Password for PLAIN authentication; never printed.
    public var password: String
    /// Virtual host; `/` by default.
    public var vhost: String
    /// Heartbeat interval in seconds, 0 to disable. Default 30. rabbitmq-c services heartbeats only
    /// inside library calls, so a connection idle in caller code for two intervals is dropped.
    public var heartbeatSeconds: Int = 30
    /// Limit on TCP connect and on the login handshake, in seconds. Default 10.
    public var connectTimeout: Double = 10
    /// Largest frame the client accepts; 131072 (rabbitmq-c's recommended size) by default.
    public var frameMax: Int = 131_072
    /// Most channels the client will open; 0 lets the broker decide. Default 2047.
    public var channelMax: Int = 2047
    /// Sent as the client property `connection_name`, so the connection is recognisable in the
    /// management UI and API (`user_provided_name`). Nil sends none.
    public var connectionName: String?

    /// Makes a configuration from its parts.
    public init(host: String = "localhost", port: Int = 5672, user: String = "guest", password: String = "guest",
                vhost: String = "/", connectionName: String? = nil) {
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.vhost = vhost
        self.connectionName = connectionName
    }

    /// Every node to try, ``host`` first.
    public var endpoints: [Endpoint] { [Endpoint(host: host, port: port)] + alternates }

    /// This configuration aimed at one of its nodes only.
    public func aimed(at endpoint: Endpoint) -> AMQPConfiguration {
        var single = self
        single.host = endpoint.host
        single.port = endpoint.port
        single.alternates = []
        return single
    }

    /// Parses `amqp://user:pass@host:port/vhost`, or several such URLs separated by commas (the
    /// nodes of one cluster: each must name the same user, password and vhost); throws
    /// `invalidURL` (without echoing the URL, which may hold a password) when it cannot.
    public init(url: String, connectionName: String? = nil) throws {
        let urls = url.split(separator: ",").map { part -> String in
            var part = part[...]
            while part.first == " " { part = part.dropFirst() }
            while part.last == " " { part = part.dropLast() }
            return String(part)
        }
        guard urls.count > 1 else {
            try self.init(single: url, connectionName: connectionName)
            return
        }
        let nodes = try urls.map { try AMQPConfiguration(single: $0, connectionName: connectionName) }
        self = nodes[0]
        for node in nodes.dropFirst() {
            guard node.user == user, node.password == password, node.vhost == vhost else {
                throw AMQPError(.invalidURL, operation: "parse URL",
                                replyText: "the URLs of a list are one cluster's nodes: each needs the same user, password and vhost")
            }
            alternates.append(Endpoint(host: node.host, port: node.port))
        }
    }

    private init(single url: String, connectionName: String?) throws {
        let fail = { (why: String) in AMQPError(.invalidURL, operation: "parse URL", replyText: why) }
        guard url.hasPrefix("amqp://") else {
            throw url.hasPrefix("amqps://") ? fail("amqps is not supported") : fail("scheme must be amqp://")
        }
        var rest = Substring(url.dropFirst("amqp://".count))
        var path: Substring? = nil
        if let slash = rest.firstIndex(of: "/") {
            path = rest[rest.index(after: slash)...]
            rest = rest[..<slash]
        }
        var user = "guest", password = "guest"
        if let at = rest.lastIndex(of: "@") {
            let credentials = rest[..<at]
            rest = rest[rest.index(after: at)...]
            if let colon = credentials.firstIndex(of: ":") {
                user = try Self.percentDecoded(credentials[..<colon])
                password = try Self.percentDecoded(credentials[credentials.index(after: colon)...])
            } else {
                user = try Self.percentDecoded(credentials)
                password = ""
            }
        }
        var host = rest, portText: Substring? = nil
        if rest.hasPrefix("[") {  // IPv6 literal: [::1]:5672
            guard let close = rest.firstIndex(of: "]") else { throw fail("unclosed [ in host") }
            host = rest[rest.index(after: rest.startIndex)..<close]
            let after = rest[rest.index(after: close)...]
            if after.hasPrefix(":") { portText = after.dropFirst() } else if !after.isEmpty { throw fail("bad host") }
        } else if let colon = rest.lastIndex(of: ":") {
            host = rest[..<colon]
            portText = rest[rest.index(after: colon)...]
        }
        var port = 5672
        if let portText {
            guard let value = Int(portText), (1...65535).contains(value) else { throw fail("bad port") }
            port = value
        }
        let decodedHost = try Self.percentDecoded(host)
        guard !decodedHost.isEmpty else { throw fail("missing host") }
        var vhost = "/"
        if let path, !path.isEmpty { vhost = try Self.percentDecoded(path) }
        self.init(host: decodedHost, port: port, user: user, password: password, vhost: vhost,
                  connectionName: connectionName)
    }

    /// `amqp://user@host:port/vhost (name)`, without the password.
    public var description: String {
        var text = "amqp://\(user)@\(endpoints.map(\.description).joined(separator: ","))/\(vhost == "/" ? "" : vhost)"
        if let connectionName { text += " (\(connectionName))" }
        return text
    }

    static func percentDecoded(_ text: Substring) throws -> String {
        guard text.contains("%") else { return String(text) }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count)
        var iterator = text.utf8.makeIterator()
        while let byte = iterator.next() {
            if byte == UInt8(ascii: "%") {
                guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else {
                    throw AMQPError(.invalidURL, operation: "parse URL", replyText: "bad percent escape")
                }
                bytes.append(high << 4 | low)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}
