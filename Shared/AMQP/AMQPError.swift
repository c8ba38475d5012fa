/// An error from the AMQP module: what went wrong (`code`), and the broker's reply code and text
/// when the broker said so itself (a channel.close or connection.close).
///
/// A struct wrapping a code, so that codes can be added without breaking callers' `switch`es.
/// `description` is short and never contains credentials; details go to `debugDescription`.
public struct AMQPError: Error, CustomStringConvertible, CustomDebugStringConvertible, Sendable {
    /// What kind of failure this is.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        fileprivate enum Base: String, Hashable, Sendable {
            case invalidURL, invalidArgument
            case connectionRefused, hostNotFound, authenticationFailed
            case channelClosed, connectionClosed, connectionLost
            case consumerCancelled, timeout, protocolError, library
        }
        fileprivate let base: Base
        private init(_ base: Base) { self.base = base }

        /// The AMQP URL could not be parsed.
        public static let invalidURL = Code(.invalidURL)
        /// An argument could not be sent (e.g. a table too big for a frame, a closed channel used).
        public static let invalidArgument = Code(.invalidArgument)
        /// Nothing listens on the broker's host and port (or the connect timed out).
        public static let connectionRefused = Code(.connectionRefused)
        /// The broker's host name does not resolve.
        public static let hostNotFound = Code(.hostNotFound)
        /// The broker refused the user name, password or vhost.
        public static let authenticationFailed = Code(.authenticationFailed)
        /// The broker closed the channel (e.g. 404 NOT_FOUND, 406 PRECONDITION_FAILED);
        /// the channel is unusable, open a new one.
        public static let channelClosed = Code(.channelClosed)
        /// The broker closed the connection (e.g. 320 CONNECTION_FORCED); reconnect.
        public static let connectionClosed = Code(.connectionClosed)
        /// The socket failed or the broker stopped answering heartbeats; reconnect.
        public static let connectionLost = Code(.connectionLost)
        /// The broker cancelled the consumer (e.g. its queue was deleted).
        public static let consumerCancelled = Code(.consumerCancelled)
        /// A wait with a deadline ran out (the connection may still be usable).
        public static let timeout = Code(.timeout)
        /// The broker sent something this module did not expect at that point.
        public static let protocolError = Code(.protocolError)
        /// Any other rabbitmq-c failure; `libraryStatus` holds its status code.
        public static let library = Code(.library)

        /// The code's name, e.g. `channelClosed`.
        public var description: String { base.rawValue }
    }

    /// What kind of failure this is.
    public let code: Code
    /// The broker's reply code (e.g. 404, 406, 320, 403) when the broker closed something.
    public let replyCode: UInt16?
    /// The broker's reply text, e.g. `NOT_FOUND - no queue 'x' in vhost '/'`.
    public let replyText: String?
    /// The rabbitmq-c status (`amqp_status_enum`) when the library reported the failure.
    public let libraryStatus: Int32?
    /// The operation that failed, e.g. `queue.declare`.
    public let operation: String

    /// Makes an error; the module builds these, callers usually only match on `code`.
    public init(_ code: Code, operation: String, replyCode: UInt16? = nil, replyText: String? = nil,
                libraryStatus: Int32? = nil) {
        self.code = code
        self.operation = operation
        self.replyCode = replyCode
        self.replyText = replyText
        self.libraryStatus = libraryStatus
    }

    /// Short and free of credentials: `channelClosed in queue.declare: 406 PRECONDITION_FAILED - ...`.
    public var description: String {
        var text = "AMQP \(code) in \(operation)"
        if let replyCode { text += ": \(replyCode)" }
        if let replyText { text += replyCode == nil ? ": \(replyText)" : " \(replyText)" }
        return text
    }

    /// The description plus the rabbitmq-c status, for logs.
    public var debugDescription: String {
        var text = description
        if let libraryStatus { text += " (rabbitmq-c status \(libraryStatus))" }
        return text
    }
}

extension AMQPError {
    /// Whether a fresh connection may succeed where this one failed (used by reconnection).
    public var isTransient: Bool {
        switch code {
        case .connectionRefused, .connectionClosed, .connectionLost, .timeout, .hostNotFound:
            return true
        default:
            return false
        }
    }
}
