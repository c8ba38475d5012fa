extension HTTPClient {
    /// Esteira's version, as sent in the default `User-Agent`.
    public static let esteiraVersion = "0.1.0"

    /// How an ``HTTPClient`` or an ``HTTPConnection`` sends requests.
    public struct Configuration: Sendable {
        /// Whether the server's certificate must chain to a trusted CA. Default: `true`.
        /// Turning it off lets anyone on the path read and change the traffic.
        public var verifiesTLSPeer: Bool
        /// Whether the server's certificate must name the host in the URL. Default: `true`.
        public var verifiesTLSHost: Bool
        /// A PEM file of CA certificates to trust instead of the system's. Default: `nil`
        /// (the system bundle, `/etc/ssl/certs/ca-certificates.crt` on Debian).
        public var caBundlePath: String?
        /// The `User-Agent` sent unless a request sets its own. Default: `"esteira/<version>"`.
        public var userAgent: String
        /// The limit on a whole transfer, unless a request sets its own. Default: 30 s.
        public var timeout: Duration
        /// The limit on connecting (DNS, TCP, TLS), unless a request sets its own. Default: 10 s.
        public var connectTimeout: Duration
        /// How many redirects to follow; 0 returns a 3xx as the response. Default: 0, so that
        /// a request and its credentials go only where the caller sent them.
        public var maxRedirects: Int
        /// How many easy handles ``HTTPClient/execute(_:)`` keeps, and so how many of its
        /// transfers run at once; more callers wait for a free handle. Default: 4.
        public var poolSize: Int
        /// Which addresses requests may connect to. Default: ``OutboundPolicy/unrestricted``
        /// (for targets an operator configured).
        public var policy: OutboundPolicy = .unrestricted
        /// The most body bytes read; past it the transfer stops and the response has the
        /// first `maxResponseBytes` with ``HTTPResponse/bodyTruncated`` set. Default: nil (no cap).
        public var maxResponseBytes: Int?
        /// A transfer slower than `bytesPerSecond` for `seconds` is abandoned as a timeout
        /// (a target that trickles cannot hold a connection until the whole timeout). Default: nil.
        public var lowSpeedLimit: (bytesPerSecond: Int, seconds: Int)?

        /// Creates a configuration; every parameter has the documented default.
        public init(
            verifiesTLSPeer: Bool = true,
            verifiesTLSHost: Bool = true,
            caBundlePath: String? = nil,
            userAgent: String = "esteira/\(HTTPClient.esteiraVersion)",
            timeout: Duration = .seconds(30),
            connectTimeout: Duration = .seconds(10),
            maxRedirects: Int = 0,
            poolSize: Int = 4
        ) {
            self.verifiesTLSPeer = verifiesTLSPeer
            self.verifiesTLSHost = verifiesTLSHost
            self.caBundlePath = caBundlePath
            self.userAgent = userAgent
            self.timeout = timeout
            self.connectTimeout = connectTimeout
            self.maxRedirects = maxRedirects
            self.poolSize = poolSize
        }
    }
}
