/// What a handler throws to say how its attempt failed. Any other error is treated as
/// transient: an unexpected failure is retried, never silently dropped.
public struct JobError: Error, Sendable, CustomStringConvertible {
    /// Transient errors retry; permanent ones dead-letter at once.
    public var errorClass: ErrorClass
    /// What went wrong, recorded on the job and shown by the api.
    public var message: String
    /// The earliest time to retry, in seconds from now (e.g. from `Retry-After`).
    public var retryAfter: Double?
    /// The service said it is overloaded (429 or 503 with `Retry-After`): the kind's rate
    /// limiter, if it has one, pauses for `retryAfter` for every job that uses it.
    public var throttled = false

    /// A failure worth retrying, optionally not before `retryAfter` seconds.
    public static func transient(_ message: String, retryAfter: Double? = nil) -> JobError {
        JobError(errorClass: .transient, message: message, retryAfter: retryAfter)
    }

    /// The service asked to slow down (429, or 503 with `Retry-After`): retried after
    /// `retryAfter`, and the kind's rate limiter pauses that long.
    public static func throttled(_ message: String, retryAfter: Double) -> JobError {
        JobError(errorClass: .transient, message: message, retryAfter: retryAfter, throttled: true)
    }

    /// A failure that retrying cannot fix.
    public static func permanent(_ message: String) -> JobError {
        JobError(errorClass: .permanent, message: message, retryAfter: nil)
    }

    /// A target the job may not reach (its outbound policy refused the address).
    public static func forbidden(_ message: String) -> JobError {
        JobError(errorClass: .forbidden, message: message, retryAfter: nil)
    }

    public var description: String { "\(errorClass.rawValue): \(message)" }
}
