import Foundation

/// A request to send with ``HTTPClient`` or ``HTTPConnection``.
public struct HTTPRequest: Sendable {
    /// The method; `HEAD` asks for no body and gets none.
    public var method: HTTPMethod
    /// The absolute URL, `http` or `https`, including any query string.
    public var url: String
    /// The header fields, sent in this order; a name may repeat.
    public var headers: HTTPHeaders
    /// The body, sent as is; empty for none.
    public var body: [UInt8]
    /// The limit on the whole transfer, or nil for the client's ``HTTPClient/Configuration/timeout``.
    public var timeout: Duration?
    /// The limit on connecting (DNS, TCP and TLS), or nil for the client's
    /// ``HTTPClient/Configuration/connectTimeout``.
    public var connectTimeout: Duration?

    /// Creates a request.
    public init(
        method: HTTPMethod = .get,
        url: String,
        headers: HTTPHeaders = [:],
        body: [UInt8] = [],
        timeout: Duration? = nil,
        connectTimeout: Duration? = nil
    ) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.timeout = timeout
        self.connectTimeout = connectTimeout
    }

    /// Creates a request whose body is the UTF-8 of a string.
    public init(
        method: HTTPMethod,
        url: String,
        headers: HTTPHeaders = [:],
        body: String,
        timeout: Duration? = nil,
        connectTimeout: Duration? = nil
    ) {
        self.init(method: method, url: url, headers: headers, body: Array(body.utf8),
                  timeout: timeout, connectTimeout: connectTimeout)
    }

    /// Creates a request whose body is the bytes of a `Data`.
    public init(
        method: HTTPMethod,
        url: String,
        headers: HTTPHeaders = [:],
        body: Data,
        timeout: Duration? = nil,
        connectTimeout: Duration? = nil
    ) {
        self.init(method: method, url: url, headers: headers, body: [UInt8](body),
                  timeout: timeout, connectTimeout: connectTimeout)
    }
}
