/// Where a job is in its lifecycle (docs/architecture.md, "Job lifecycle").
public enum JobStatus: String, Sendable, Codable, CaseIterable {
    /// Waiting for its `run_after` time; the relay publishes it when due.
    case scheduled
    /// Written, and published (or about to be) to its kind's queue.
    case queued
    /// A processor runs it now.
    case running
    /// An attempt failed with a transient error; it waits in a retry tier.
    case retrying
    /// Its handler succeeded.
    case completed
    /// It will not run again unless requeued: a permanent error, its last attempt spent, or poison.
    case dead
    /// Cancelled: before it ran, between attempts, or while running.
    case cancelled

    /// True for states a job does not leave by itself.
    public var isFinal: Bool { self == .completed || self == .dead || self == .cancelled }

    /// States a cancel request can stop.
    public static let cancellable: [JobStatus] = [.scheduled, .queued, .retrying, .running]
}

/// Why an attempt failed, which decides what happens next.
public enum ErrorClass: String, Sendable, Codable, CaseIterable {
    /// Worth retrying: timeouts, 408, 429, 5xx, refused or dropped connections.
    case transient
    /// Retrying cannot help: validation errors, other 4xx. Straight to the dead letters.
    case permanent
    /// The attempt ran past its kind's timeout (retried like a transient error).
    case timeout
    /// The message could not be decoded or names an unknown kind.
    case poison
    /// The job named a target its outbound policy does not allow (a private address for a
    /// URL the job chose). Straight to the dead letters.
    case forbidden
}
