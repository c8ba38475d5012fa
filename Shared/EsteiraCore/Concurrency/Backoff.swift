import Foundation

/// How long to wait before trying again work whose server went away (a lost broker
/// connection, a failed claim or write): `initial` seconds after the first failure, doubling
/// with each further one, never more than `maximum`. Job retries are a kind's policy
/// (``KindPolicy/delay(after:retryAfter:)``), not this.
public struct Backoff: Sendable, Equatable {
    /// The wait after the first failure, in seconds.
    public var initial: Double
    /// The longest wait, in seconds.
    public var maximum: Double

    public init(initial: Double, maximum: Double) {
        self.initial = initial
        self.maximum = maximum
    }

    /// What the services use: 0.1 s doubling up to 5 s.
    public static let standard = Backoff(initial: 0.1, maximum: 5)

    /// The wait after failure number `failures` (1-based), in seconds.
    public func delay(after failures: Int) -> Double {
        min(maximum, initial * pow(2, Double(min(max(0, failures - 1), 30))))
    }

    /// Sleeps the wait after failure number `failures`; returns early when the task is cancelled.
    public func sleep(after failures: Int) async {
        try? await Task.sleep(for: .milliseconds(Int(delay(after: failures) * 1000)))
    }
}
