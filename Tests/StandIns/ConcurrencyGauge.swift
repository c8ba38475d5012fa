import Foundation

/// Counts the requests a set of stand-ins is answering at once, and the most there ever were:
/// a test reads from it whether a cap on concurrent work held.
public final class ConcurrencyGauge: Sendable {
    private let state = Locked<(now: Int, peak: Int, total: Int)>((0, 0, 0))

    public init() {}

    /// Runs `body` counted as one request in flight.
    public func measure<T>(_ body: () async throws -> T) async rethrows -> T {
        state.withLock { s in
            s.now += 1
            s.total += 1
            s.peak = max(s.peak, s.now)
        }
        defer { state.withLock { $0.now -= 1 } }
        return try await body()
    }

    /// Requests in flight now, the most at once so far, and how many there were.
    public var now: Int { state.withLock { $0.now } }
    public var peak: Int { state.withLock { $0.peak } }
    public var total: Int { state.withLock { $0.total } }
}
