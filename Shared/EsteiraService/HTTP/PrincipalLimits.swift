import Foundation
import Hummingbird
import Synchronization

/// Limits per principal, in this api instance: a request rate (a token bucket: `rate` a
/// second, up to `burst` at once) and how many event streams may be open at once. A request
/// over the rate is a 429 with `Retry-After`; a stream over the cap is a 429 too.
public final class PrincipalLimits: Sendable {
    /// The limits; 0 means none.
    public struct Configuration: Sendable, Equatable {
        /// Requests a second per principal (`ESTEIRA_API_RATE`, default 200).
        public var rate: Double = 200
        /// Requests a principal may make at once after a quiet spell (`ESTEIRA_API_BURST`, default 400).
        public var burst: Int = 400
        /// Event streams a principal may have open (`ESTEIRA_API_MAX_STREAMS`, default 16).
        public var streams: Int = 16

        public init() {}
    }

    private struct Bucket {
        var tokens: Double
        var at: ContinuousClock.Instant
        var streams = 0
    }

    public let configuration: Configuration
    private let buckets = Mutex<[UUID: Bucket]>([:])

    public init(configuration: Configuration) {
        self.configuration = configuration
    }

    /// Takes one request from `principal`'s bucket: nil when admitted, else the seconds until
    /// the next one would be.
    public func admit(_ principal: UUID, now: ContinuousClock.Instant = .now) -> Double? {
        let c = configuration
        guard c.rate > 0 else { return nil }
        return buckets.withLock { all -> Double? in
            var b = all[principal] ?? Bucket(tokens: Double(c.burst), at: now)
            let elapsed = Double((now - b.at).components.seconds) + Double((now - b.at).components.attoseconds) / 1e18
            b.tokens = min(Double(c.burst), b.tokens + elapsed * c.rate)
            b.at = now
            defer { all[principal] = b }
            if b.tokens >= 1 {
                b.tokens -= 1
                return nil
            }
            return (1 - b.tokens) / c.rate
        }
    }

    /// Counts a stream `principal` opens; false when it has as many as allowed.
    public func openStream(_ principal: UUID) -> Bool {
        let cap = configuration.streams
        return buckets.withLock { all in
            var b = all[principal] ?? Bucket(tokens: Double(configuration.burst), at: .now)
            guard cap == 0 || b.streams < cap else { return false }
            b.streams += 1
            all[principal] = b
            return true
        }
    }

    /// Opens a stream of `principal`'s, or refuses with a 429 problem when it has its cap open.
    public func openStreamOrRefuse(_ principal: UUID) throws {
        guard openStream(principal) else {
            throw Problem(.tooManyRequests, detail: "this token has \(configuration.streams) event streams open; close one first",
                          headers: [.retryAfter: "5"])
        }
    }

    /// A stream of `principal`'s ended.
    public func closeStream(_ principal: UUID) {
        buckets.withLock { all in all[principal]?.streams -= 1 }
    }
}

/// Answers 429 with `Retry-After` to a principal over its request rate. Runs after
/// ``BearerAuthMiddleware``.
public struct PrincipalRateLimitMiddleware: RouterMiddleware {
    public typealias Context = APIRequestContext
    let limits: PrincipalLimits

    public init(limits: PrincipalLimits) {
        self.limits = limits
    }

    public func handle(_ request: Request, context: Context,
                       next: (Request, Context) async throws -> Response) async throws -> Response {
        if let principal = context.principal, let wait = limits.admit(principal.id) {
            let seconds = max(1, Int(wait.rounded(.up)))
            throw Problem(.tooManyRequests, detail: "over \(limits.configuration.rate) requests a second for this token; retry after \(seconds) s",
                          headers: [.retryAfter: "\(seconds)"])
        }
        return try await next(request, context)
    }
}
