import Dispatch
import Foundation
import HTTPClient
#if canImport(Glibc)
import Glibc
#endif

/// Runs blocking work (``HTTPConnection/send(_:)``) on a Dispatch thread, as production code
/// would, so tests never block Swift's cooperative pool. A serial queue of its own: the global
/// queues are only as wide as the core count on Linux, and blocked work would wait in line.
func blocking<T: Sendable>(_ body: @escaping () throws -> T) async throws -> T {
    nonisolated(unsafe) let body = body
    return try await withCheckedThrowingContinuation { continuation in
        DispatchQueue(label: "esteira.http-client-tests.blocking").async {
            continuation.resume(with: Result { try body() })
        }
    }
}

/// Expects `body` to throw an ``HTTPClientError`` and returns it.
func expectHTTPClientError(_ body: () async throws -> Void) async -> HTTPClientError? {
    do {
        try await body()
        return nil
    } catch let error as HTTPClientError {
        return error
    } catch {
        return nil
    }
}

/// A TCP socket bound to a loopback port but not listening: connecting to it is refused, and
/// no other process can take the port while the socket is open.
final class ClosedPort {
    let port: Int
    private let descriptor: Int32

    init() throws {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw POSIXError(.EIO) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(descriptor, pointer, length) == 0 && getsockname(descriptor, pointer, &length) == 0
            }
        }
        guard bound else {
            close(descriptor)
            throw POSIXError(.EADDRINUSE)
        }
        self.descriptor = descriptor
        self.port = Int(UInt16(bigEndian: address.sin_port))
    }

    deinit {
        close(descriptor)
    }
}

/// A port that was free a moment ago, for a server in another process to bind.
func freePort() throws -> Int {
    try ClosedPort().port
}
