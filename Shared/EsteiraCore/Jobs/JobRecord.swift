import Foundation
import Postgres

/// A job as PostgreSQL records it.
public struct JobRecord: Sendable, Equatable, Codable {
    public var id: UUID
    public var kind: String
    public var status: JobStatus
    public var payload: JSONValue
    public var idempotencyKey: String?
    public var priority: Int
    public var attempts: Int
    public var maxAttempts: Int
    public var runAfter: Date?
    public var ownerID: UUID?
    public var createdAt: Date
    public var updatedAt: Date
    public var publishedAt: Date?
    public var startedAt: Date?
    public var finishedAt: Date?
    public var lastError: String?
    public var lastErrorClass: String?
    public var progress: JSONValue?
    public var result: JSONValue?
    /// The batch it belongs to, if any.
    public var batchID: UUID?

    /// The columns ``init(row:)`` reads, for `SELECT`.
    public static let columns = """
        id, kind, status, payload::text AS payload, idempotency_key, priority, attempts, max_attempts, run_after, \
        owner_id, created_at, updated_at, \
        CASE WHEN published_at IS NOT NULL THEN published_at \
             WHEN status IN ('scheduled', 'cancelled') THEN NULL \
             WHEN EXISTS (SELECT 1 FROM job_outbox o WHERE o.job_id = jobs.id) THEN NULL \
             ELSE created_at END AS published_at, \
        started_at, finished_at, last_error, last_error_class, \
        progress::text AS progress, result::text AS result, batch_id
        """

    /// Reads a row selected with ``columns``.
    public init(row: PostgresRow) throws {
        id = try row.decode(UUID.self, named: "id")
        kind = try row.decode(String.self, named: "kind")
        let s = try row.decode(String.self, named: "status")
        guard let status = JobStatus(rawValue: s) else {
            throw PostgresError(.decodingFailed, message: "unknown job status \(s)")
        }
        self.status = status
        // A payload stored before the api capped nesting, too deep to encode again, is shown as text.
        let payloadText = try row.decode(String.self, named: "payload")
        payload = JSONDepth.exceeds(payloadText.utf8, limit: JSONDepth.storedLimit).exceeded
            ? .string(payloadText) : (JSONValue.parse(payloadText) ?? .null)
        idempotencyKey = try row.decode(String?.self, named: "idempotency_key")
        priority = try row.decode(Int.self, named: "priority")
        attempts = try row.decode(Int.self, named: "attempts")
        maxAttempts = try row.decode(Int.self, named: "max_attempts")
        runAfter = try row.decode(Date?.self, named: "run_after")
        ownerID = try row.decode(UUID?.self, named: "owner_id")
        createdAt = try row.decode(Date.self, named: "created_at")
        updatedAt = try row.decode(Date.self, named: "updated_at")
        publishedAt = try row.decode(Date?.self, named: "published_at")
        startedAt = try row.decode(Date?.self, named: "started_at")
        finishedAt = try row.decode(Date?.self, named: "finished_at")
        lastError = try row.decode(String?.self, named: "last_error")
        lastErrorClass = try row.decode(String?.self, named: "last_error_class")
        progress = try row.decode(String?.self, named: "progress").flatMap(JSONValue.parse)
        result = try row.decode(String?.self, named: "result").flatMap(JSONValue.parse)
        batchID = try row.decode(UUID?.self, named: "batch_id")
    }
}
