/// How the jobs of one kind run: attempts, backoff, timeout, priority and concurrency.
public struct KindPolicy: Sendable, Equatable, Codable {
    /// Attempts in all, the first included. Default 5.
    public var maxAttempts: Int = 5
    /// Delay before the first retry, in seconds. Default 1.
    public var backoffBase: Double = 1
    /// Each further retry waits this many times longer. Default 2.
    public var backoffFactor: Double = 2
    /// No retry waits longer than this, in seconds. Default 3600.
    public var backoffCap: Double = 3600
    /// An attempt running longer than this many seconds fails as a timeout. Default 300.
    public var timeout: Double = 300
    /// The kind's work queue honours message priorities (a classic queue with
    /// `x-max-priority` 9). Off by default: in RabbitMQ 3.10 a priority queue carries about a
    /// third fewer messages per second than a plain one (docs/topology.md), so only kinds that
    /// order their jobs by priority pay for it. Jobs of other kinds cannot ask for a priority.
    public var priorities: Bool = false
    /// Default priority of the kind's jobs, 0 (lowest) to 9; above 0 needs `priorities`.
    /// Default 0.
    public var priority: Int = 0
    /// Jobs of this kind one processor instance runs at once. Default 64.
    public var concurrency: Int = 64
    /// A running job whose processor has not reported it alive for this many seconds is put
    /// back for another attempt by the scheduler (stuck-job rescue). Default 600.
    public var heartbeatTimeout: Double = 600
    /// Finished, dead and cancelled jobs are deleted, with their events, this many seconds
    /// after they finished. Default 604800 (7 days).
    public var retention: Double = 604_800

    /// The defaults above.
    public init() {}

    /// The delay before attempt `attempt + 1`, after attempt `attempt` (1-based) failed:
    /// base × factor^(attempt−1), capped, and never earlier than `retryAfter`.
    public func delay(after attempt: Int, retryAfter: Double? = nil) -> Double {
        var d = backoffBase
        if attempt > 1 {
            for _ in 1..<attempt {
                d *= backoffFactor
                if d >= backoffCap { break }
            }
        }
        d = min(d, backoffCap)
        if let retryAfter, retryAfter > d { d = min(retryAfter, max(backoffCap, retryAfter)) }
        return d
    }

    /// Checks that every value makes sense; the message names the field.
    public func validate() throws(KindPolicyError) {
        guard (1...1000).contains(maxAttempts) else { throw KindPolicyError("maxAttempts must be 1...1000") }
        guard backoffBase > 0, backoffFactor >= 1, backoffCap >= backoffBase else {
            throw KindPolicyError("backoff needs base > 0, factor >= 1 and cap >= base")
        }
        guard timeout > 0 else { throw KindPolicyError("timeout must be > 0") }
        guard (0...9).contains(priority) else { throw KindPolicyError("priority must be 0...9") }
        guard priority == 0 || priorities else {
            throw KindPolicyError("priority \(priority) needs priorities: true (the kind's queue has no priorities)")
        }
        guard (1...10_000).contains(concurrency) else { throw KindPolicyError("concurrency must be 1...10000") }
        guard heartbeatTimeout >= 1 else { throw KindPolicyError("heartbeatTimeout must be >= 1 (seconds)") }
        guard retention >= 1 else { throw KindPolicyError("retention must be >= 1 (seconds)") }
    }
}

/// A kind policy that cannot be used.
public struct KindPolicyError: Error, Sendable, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}
