import CCurl

/// A transfer that did not produce a response: the server could not be reached, the connection
/// broke, TLS failed, or the request itself was unusable.
///
/// An HTTP status such as 500 is not an `HTTPClientError`; it is an ``HTTPResponse``.
/// `description` holds curl's own words about the failure and never the request's headers,
/// which may carry credentials.
public struct HTTPClientError: Error, Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    /// What kind of failure this is; a struct over a private enum so that kinds can be added
    /// later without breaking callers' `switch` statements.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Hashable, Sendable {
            case timeout, connectionRefused, hostNotFound, tls, connectionLost, invalidURL, invalidRequest, forbiddenAddress, other
        }

        private let base: Base

        private init(_ base: Base) {
            self.base = base
        }

        /// The transfer or the connect took longer than its timeout.
        public static let timeout = Code(.timeout)
        /// Nothing accepted the TCP connection (nothing listens, or a firewall rejects it).
        public static let connectionRefused = Code(.connectionRefused)
        /// The host name did not resolve.
        public static let hostNotFound = Code(.hostNotFound)
        /// The TLS handshake failed or the peer's certificate did not verify.
        public static let tls = Code(.tls)
        /// The connection broke while sending or receiving, or closed without a response.
        public static let connectionLost = Code(.connectionLost)
        /// The URL is malformed or its scheme is not `http`/`https`.
        public static let invalidURL = Code(.invalidURL)
        /// The request could not be sent as given, e.g. a header with a line break in it.
        public static let invalidRequest = Code(.invalidRequest)
        /// The request's ``OutboundPolicy`` does not allow the address the host resolved to.
        /// The message says no more (not the address, not whether anything listens there).
        public static let forbiddenAddress = Code(.forbiddenAddress)
        /// Any other failure; ``HTTPClientError/curlCode`` says which.
        public static let other = Code(.other)

        /// The name of the kind, e.g. `"timeout"`.
        public var description: String { base.rawValue }
    }

    /// What kind of failure this is.
    public var code: Code
    /// curl's `CURLcode` for the failure (see `curl/curl.h`), 0 when curl did not fail.
    public var curlCode: Int32
    /// curl's message for the failure: its error buffer, or its generic text for the code.
    public var message: String

    /// Creates an error; the client does this, tests may too.
    public init(code: Code, curlCode: Int32 = 0, message: String) {
        self.code = code
        self.curlCode = curlCode
        self.message = message
    }

    /// Whether trying again later may succeed: the network or the server may recover from a
    /// timeout, a refusal, a lost connection or a DNS failure, but not from a bad certificate
    /// or a malformed URL.
    public var isTransient: Bool {
        switch code {
        case .timeout, .connectionRefused, .connectionLost, .hostNotFound: return true
        default: return false
        }
    }

    /// The kind and curl's message, e.g. `HTTPClientError.timeout: Operation timed out ...`.
    public var description: String {
        "HTTPClientError.\(code): \(message)"
    }

    /// The description plus curl's numeric code.
    public var debugDescription: String {
        "HTTPClientError(code: \(code), curlCode: \(curlCode), message: \(message))"
    }
}

extension HTTPClientError.Code {
    /// Sorts a failed `CURLcode` into a kind.
    init(curlCode: CURLcode) {
        switch curlCode {
        case CURLE_OPERATION_TIMEDOUT:
            self = .timeout
        case CURLE_COULDNT_CONNECT:
            self = .connectionRefused
        case CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY:
            self = .hostNotFound
        case CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CONNECT_ERROR, CURLE_SSL_CACERT_BADFILE,
             CURLE_SSL_CERTPROBLEM, CURLE_SSL_CIPHER, CURLE_SSL_ISSUER_ERROR, CURLE_SSL_CRL_BADFILE,
             CURLE_SSL_PINNEDPUBKEYNOTMATCH, CURLE_SSL_INVALIDCERTSTATUS, CURLE_SSL_ENGINE_NOTFOUND,
             CURLE_SSL_ENGINE_SETFAILED, CURLE_SSL_ENGINE_INITFAILED, CURLE_SSL_SHUTDOWN_FAILED,
             CURLE_SSL_CLIENTCERT, CURLE_USE_SSL_FAILED:
            self = .tls
        case CURLE_RECV_ERROR, CURLE_SEND_ERROR, CURLE_GOT_NOTHING, CURLE_PARTIAL_FILE, CURLE_HTTP2,
             CURLE_HTTP2_STREAM, CURLE_HTTP3:
            self = .connectionLost
        case CURLE_URL_MALFORMAT, CURLE_UNSUPPORTED_PROTOCOL:
            self = .invalidURL
        default:
            self = .other
        }
    }
}
