import CCurl
import Dispatch
import Foundation

/// Sends HTTP requests through libcurl; safe to share between threads and tasks.
///
/// ``execute(_:)`` borrows an easy handle from a small pool (``Configuration/poolSize``) and
/// runs the blocking transfer on that handle's own Dispatch queue, off Swift's cooperative pool, so waiting on
/// the network never starves other tasks. Each handle keeps its connections alive, so repeated
/// requests to one host skip the TCP and TLS handshakes.
public final class HTTPClient: Sendable {
    /// How requests are sent.
    public let configuration: Configuration

    private let pool: ConnectionPool

    /// Creates a client; handles are created on first use, up to ``Configuration/poolSize``.
    public init(configuration: Configuration = .init()) {
        self.configuration = configuration
        self.pool = ConnectionPool(configuration: configuration)
    }

    /// Sends a request and returns its response, waiting for a free handle if all are busy.
    ///
    /// Cancelling the task stops the wait for a handle, or aborts the transfer, with
    /// `CancellationError`.
    /// - Throws: ``HTTPClientError`` when no response arrived; an HTTP error status is a response.
    public func execute(_ request: HTTPRequest) async throws -> HTTPResponse {
        let connection = try await pool.acquire()
        let cancellation = CancellationFlag()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<HTTPResponse, Error>) in
                connection.queue.async { [pool] in
                    let result = Result { try connection.connection.perform(request, cancellation: cancellation) }
                    pool.release(connection)
                    if case .failure(let error as HTTPClientError) = result,
                       error.curlCode == Int32(CURLE_ABORTED_BY_CALLBACK.rawValue), cancellation.isSet {
                        continuation.resume(throwing: CancellationError())
                    } else {
                        continuation.resume(with: result)
                    }
                }
            }
        } onCancel: {
            cancellation.set()
        }
    }

    /// Sends a request from a thread outside Swift concurrency, blocking it until the response
    /// arrives, with a handle from the same pool as ``execute(_:)``.
    /// - Throws: ``HTTPClientError`` when no response arrived.
    @available(*, noasync, message: "blocks the thread; use execute from async code")
    public func send(_ request: HTTPRequest) throws -> HTTPResponse {
        let connection = try pool.acquireBlocking()
        defer { pool.release(connection) }
        return try connection.connection.perform(request, cancellation: nil)
    }

    /// Creates a connection outside the pool, with this client's configuration, for a thread
    /// that sends many requests in a row and wants its own keep-alive connection.
    public func makeConnection() throws -> HTTPConnection {
        try HTTPConnection(configuration: configuration)
    }
}
