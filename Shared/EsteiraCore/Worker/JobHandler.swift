import Foundation
import Postgres

/// What a handler gets for one attempt of a job.
public struct JobContext: Sendable {
    public var id: UUID
    public var kind: String
    /// The payload as JSON text, and parsed.
    public var payloadText: String
    public var payload: JSONValue
    /// This attempt's number, 1-based, and how many there may be.
    public var attempt: Int
    public var maxAttempts: Int
    /// The kind as the catalog knows it (policy, endpoint).
    public var kindInfo: KindCatalog.Kind
    /// The principal the job belongs to (nil: the system's).
    public var ownerID: UUID?
    /// Where ``report(_:)`` sends progress; the processor sets it (nil: progress is dropped).
    public var progressSink: (@Sendable (JobProgress) async throws -> Void)?
    /// The batch the job belongs to, if any.
    public var batchID: UUID?
    /// Where ``enqueue(_:)`` sends jobs; the processor sets it (nil: a handler cannot enqueue).
    public var enqueueSink: (@Sendable ([NewJob]) async throws -> [EnqueueOutcome])?

    /// Where ``takeToken(from:)`` and ``pauseLimiter(_:for:)`` go; the processor sets it.
    public var limiters: (any LimiterAccess)?
    /// Where ``writeWithOutcome(_:)`` keeps its writes; the processor sets it.
    var outcomeWrites: OutcomeWrites?

    /// Asks for `write` to be made in the transaction that records this attempt's outcome
    /// (see ``OutcomeWrite``).
    /// - Throws: `JobError.permanent` in a context with nowhere to keep it (one made by hand).
    public func writeWithOutcome(_ write: some OutcomeWrite) throws {
        guard let outcomeWrites else { throw JobError.permanent("this context records no outcome") }
        outcomeWrites.append(write)
    }

    /// Waits for a token of the named rate limiter (shared with every processor and every
    /// kind that uses it): for a handler that calls a limited service several times.
    public func takeToken(from limiter: String) async throws {
        guard let limiters else { throw JobError.permanent("no rate limiters here") }
        try await limiters.takeToken(from: limiter)
    }

    /// Pauses the named limiter for `seconds`, for every job that uses it (the service
    /// answered 429 or 503 with `Retry-After`).
    public func pauseLimiter(_ limiter: String, for seconds: Double) async throws {
        guard let limiters else { throw JobError.permanent("no rate limiters here") }
        try await limiters.pause(limiter, for: seconds)
    }

    /// Enqueues `jobs` as this job's owner; in this job's batch when it has one (a fan-out:
    /// the batch ends only when they have finished too). Throws ``BatchError/closed`` when the
    /// batch was cancelled.
    @discardableResult
    public func enqueue(_ jobs: [NewJob]) async throws -> [EnqueueOutcome] {
        guard let enqueueSink else { throw JobError.permanent("this handler cannot enqueue jobs here") }
        return try await enqueueSink(jobs.map { job in
            var job = job
            job.ownerID = ownerID
            job.batchID = batchID
            return job
        })
    }

    /// Reports how far this attempt has got: stored on the job and sent as a `progress`
    /// event. Ignored once the attempt is no longer the job's running one.
    public func report(_ progress: JobProgress) async throws {
        try await progressSink?(progress)
    }

    /// A context for attempt `attempt` of job `id` (handlers are tested with one made by hand).
    public init(id: UUID, kind: String, payloadText: String, payload: JSONValue, attempt: Int, maxAttempts: Int,
                kindInfo: KindCatalog.Kind, ownerID: UUID? = nil) {
        self.ownerID = ownerID
        self.id = id
        self.kind = kind
        self.payloadText = payloadText
        self.payload = payload
        self.attempt = attempt
        self.maxAttempts = maxAttempts
        self.kindInfo = kindInfo
    }
}

extension JobContext {
    /// Runs `body`; when it fails for good (a permanent error, or any error but a
    /// cancellation on the job's last attempt), `record` gets the error's message first, so
    /// that a workload can mark its own row failed; the error is then thrown on.
    public func recordingFinalFailure<T>(_ body: () async throws -> T, record: (String) async -> Void) async throws -> T {
        do {
            return try await body()
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            let failure = error as? JobError
            if failure?.errorClass == .permanent || attempt >= maxAttempts { await record(failure?.message ?? "\(error)") }
            throw error
        }
    }
}

/// The named rate limiters, as a handler reaches them.
public protocol LimiterAccess: Sendable {
    func takeToken(from limiter: String) async throws
    func pause(_ limiter: String, for seconds: Double) async throws
}

/// The processor's ``LimiterAccess``: the limiters of its kinds file, in PostgreSQL.
struct SharedLimiters: LimiterAccess {
    let catalog: KindCatalog
    let pool: PostgresPool

    func takeToken(from limiter: String) async throws {
        guard let limit = catalog.limiters[limiter] else { throw JobError.permanent("no rate limiter '\(limiter)' in the kinds file") }
        let wait = try await pool.withConnection { try RateLimiters.reserve(limiter, limit: limit, on: $0) }
        if wait > 0 { try await Task.sleep(for: .milliseconds(Int((wait * 1000).rounded(.up)))) }
    }

    func pause(_ limiter: String, for seconds: Double) async throws {
        guard catalog.limiters[limiter] != nil else { throw JobError.permanent("no rate limiter '\(limiter)' in the kinds file") }
        try await pool.withConnection { try RateLimiters.pause(limiter, for: seconds, on: $0) }
    }
}

/// Runs the jobs of one or more kinds. Throw ``JobError`` to say whether a failure is worth a
/// retry; anything else thrown counts as transient. The returned value is stored as the
/// job's result.
public protocol JobHandler: Sendable {
    func run(_ job: JobContext) async throws -> JSONValue?
}

/// Handlers by name; a kind names its handler in the ``KindCatalog``.
public struct HandlerRegistry: Sendable {
    private var handlers: [String: any JobHandler] = [:]

    public init() {}

    /// Registers `handler` under `name`.
    public mutating func register(_ name: String, _ handler: any JobHandler) {
        handlers[name] = handler
    }

    /// The handler for `kind`, if the kind's handler is registered.
    public func handler(for kind: KindCatalog.Kind) -> (any JobHandler)? {
        handlers[kind.handler]
    }

    /// Registered handler names.
    public var names: [String] { handlers.keys.sorted() }
}
