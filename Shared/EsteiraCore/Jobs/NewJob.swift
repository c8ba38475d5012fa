import Foundation

/// A job to enqueue.
public struct NewJob: Sendable, Equatable {
    /// Its kind: decides the queue, the handler and the policy.
    public var kind: String
    /// The payload, as JSON text (an object, array or any JSON value).
    public var payload: String
    /// Same `(kind, idempotencyKey)` → the same job, however often it is enqueued.
    public var idempotencyKey: String?
    /// 0 (lowest) to 9; nil: the kind's default.
    public var priority: Int?
    /// nil: the kind's policy.
    public var maxAttempts: Int?
    /// Not before this time (a delayed job); nil or past: now.
    public var runAfter: Date?
    /// The principal it belongs to (nil: the system).
    public var ownerID: UUID?
    /// The batch it belongs to, if any (``Batches``).
    public var batchID: UUID?

    public init(kind: String, payload: String = "{}", idempotencyKey: String? = nil, priority: Int? = nil,
                maxAttempts: Int? = nil, runAfter: Date? = nil, ownerID: UUID? = nil, batchID: UUID? = nil) {
        self.batchID = batchID
        self.kind = kind
        self.payload = payload
        self.idempotencyKey = idempotencyKey
        self.priority = priority
        self.maxAttempts = maxAttempts
        self.runAfter = runAfter
        self.ownerID = ownerID
    }
}

/// What enqueueing one ``NewJob`` did.
public struct EnqueueOutcome: Sendable, Equatable {
    /// The job's id (the existing job's when the idempotency key was known).
    public var id: UUID
    public var kind: String
    /// False when the idempotency key matched an existing job, which is returned instead.
    public var created: Bool
    /// The job's status now.
    public var status: JobStatus
    public var priority: Int
    /// True when the kind is unique while active and an equal job was active: that job is
    /// returned instead of a new one.
    public var duplicate: Bool = false
}

/// A job that cannot be enqueued; `field` names the input at fault.
public struct EnqueueError: Error, Sendable, Equatable, CustomStringConvertible {
    public var field: String
    public var message: String
    /// Index of the job in a batch.
    public var index: Int?

    public init(field: String, message: String, index: Int? = nil) {
        self.field = field
        self.message = message
        self.index = index
    }

    public var description: String {
        index.map { "jobs[\($0)].\(field): \(message)" } ?? "\(field): \(message)"
    }
}

/// An idempotency key the same owner already used, for the same kind, with a different
/// payload: the request is not the one the key stands for (the api answers 409).
public struct IdempotencyConflict: Error, Sendable, Equatable, CustomStringConvertible {
    /// The job the key stands for.
    public var jobID: UUID
    /// Index of the job in a batch.
    public var index: Int?

    public init(jobID: UUID, index: Int? = nil) {
        self.jobID = jobID
        self.index = index
    }

    public var description: String {
        "idempotency_key was used for job \(jobID.uuidString.lowercased()) with a different payload"
    }
}
