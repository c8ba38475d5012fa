import Foundation
import Metrics

extension Timer {
    /// Records `duration` (a span of `ContinuousClock`), in nanoseconds.
    public func record(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        recordNanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }

    /// The timer `label{step}`, in seconds: one step of a handler (a provider's answer, an
    /// SMTP send).
    public static func step(_ label: String, _ step: String) -> Timer {
        Timer(label: label, dimensions: [("step", step)], preferredDisplayUnit: .seconds)
    }

    /// Runs `body` and records how long it took in the timer `label{step}` (``step(_:_:)``).
    public static func timing<T>(_ label: String, step: String, _ body: () async throws -> T) async rethrows -> T {
        try await Timer.step(label, step).timing(body)
    }

    /// Runs `body` and records how long it took in this timer: a step timed often enough
    /// that making its timer each time would cost more than the recording.
    public func timing<T>(_ body: () async throws -> T) async rethrows -> T {
        let start = ContinuousClock.now
        defer { record(ContinuousClock.now - start) }
        return try await body()
    }

    /// As the async one, for a step that blocks its thread (a transfer on a queue of its own).
    public static func timing<T>(_ label: String, step: String, blocking body: () throws -> T) rethrows -> T {
        let start = ContinuousClock.now
        defer { Timer.step(label, step).record(ContinuousClock.now - start) }
        return try body()
    }
}

/// The per-kind metric handles of the job path, made once per kind: making a `Counter` or
/// `Timer` looks it up in the metrics registry (name checks, hashing, a lock) and cost more
/// than the increment itself when it was done for every job.
struct KindMetrics: Sendable {
    let started: Counter
    let completed: Counter
    let retried: Counter
    let dead: Counter
    let failed: Counter
    let skipped: Counter
    let abandoned: Counter
    /// Deliveries parked because their kind's (or key's) concurrency slots were all taken.
    let waitedForSlot: Counter
    /// Deliveries held back until their rate limiter's next token.
    let heldByLimiter: Counter
    /// Running attempts stopped because their job was cancelled.
    let cancelledRunning: Counter
    let wait: Timer
    let run: Timer

    init(kind: String) {
        let d = [("kind", kind)]
        started = Counter(label: "esteira_jobs_started_total", dimensions: d)
        completed = Counter(label: "esteira_jobs_completed_total", dimensions: d)
        retried = Counter(label: "esteira_jobs_retried_total", dimensions: d)
        dead = Counter(label: "esteira_jobs_dead_total", dimensions: d)
        failed = Counter(label: "esteira_jobs_failed_total", dimensions: d)
        skipped = Counter(label: "esteira_deliveries_skipped_total", dimensions: d)
        abandoned = Counter(label: "esteira_attempts_abandoned_total", dimensions: d)
        waitedForSlot = Counter(label: "esteira_jobs_deferred_total", dimensions: d + [("reason", "concurrency")])
        heldByLimiter = Counter(label: "esteira_jobs_deferred_total", dimensions: d + [("reason", "limiter")])
        cancelledRunning = Counter(label: "esteira_attempts_cancelled_total", dimensions: d)
        wait = Timer(label: "esteira_job_wait_seconds", dimensions: d, preferredDisplayUnit: .seconds)
        run = Timer(label: "esteira_job_run_seconds", dimensions: d, preferredDisplayUnit: .seconds)
    }

    /// The handles by kind, made on first use.
    final class Cache: @unchecked Sendable {
        private let lock = NSLock()
        private var byKind: [String: KindMetrics] = [:]

        init() {}

        subscript(kind: String) -> KindMetrics {
            lock.withLock {
                if let m = byKind[kind] { return m }
                let m = KindMetrics(kind: kind)
                byKind[kind] = m
                return m
            }
        }
    }
}
