import EsteiraCore
import Foundation

/// One job event as the api shows it.
public struct EventView: Encodable, Sendable {
    public var id: Int64
    public var jobId: UUID
    public var kind: String
    public var status: String
    public var attempt: Int
    public var at: Date
    public var detail: JSONValue?

    public init(_ e: JobEvent) {
        id = e.id; jobId = e.jobID; kind = e.kind; status = e.status; attempt = e.attempt; at = e.at; detail = e.detail
    }
}

/// One attempt, from the events: when it started, how and when it ended.
public struct AttemptView: Encodable, Sendable {
    public var attempt: Int
    public var startedAt: Date
    public var endedAt: Date?
    public var outcome: String?
    public var error: String?
    public var errorClass: String?

    /// The attempts `events` (one job's history, oldest first) tell of.
    public static func from(_ events: [JobEvent]) -> [AttemptView] {
        var attempts: [AttemptView] = []
        for e in events {
            if e.status == JobStatus.running.rawValue {
                // A redelivery after a crash restarts the same attempt.
                if let last = attempts.last, last.attempt == e.attempt, last.outcome == nil { continue }
                attempts.append(AttemptView(attempt: e.attempt, startedAt: e.at))
            } else if let i = attempts.indices.last, attempts[i].attempt == e.attempt, attempts[i].outcome == nil,
                      ["completed", "retrying", "dead", "cancelled"].contains(e.status) {
                attempts[i].endedAt = e.at
                attempts[i].outcome = e.status == "retrying" ? "failed, retrying" : e.status
                attempts[i].error = e.detail?["error"]?.stringValue
                attempts[i].errorClass = e.detail?["error_class"]?.stringValue
            }
        }
        return attempts
    }
}

