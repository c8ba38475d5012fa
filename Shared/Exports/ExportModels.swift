import EsteiraCore
import Foundation
import Postgres

/// The job kind of exports.
public enum ExportKinds {
    /// Carries an export for a while (a slice): batch after batch, then hands over to a new
    /// job of the same kind, so that no attempt runs for hours and retries count per slice.
    public static let run = "export.run"
}

/// Where exports go: a PostgREST-style REST API over a table `fichas`. The API key is kept
/// for the exporter and never encoded.
public struct ExportTarget: Sendable, Equatable, Encodable {
    public var id: UUID
    public var name: String
    public var baseURL: String
    public var active: Bool
    public var syncEnabled: Bool
    /// Requests per second and burst, when the target publishes a limit.
    public var rateLimit: Double?
    public var rateBurst: Int?
    /// Written on each sync event (`supabase_to_gestao_scouter` unless set).
    public var direction: String
    public var createdAt: Date
    public var updatedAt: Date
    var apiKey: String

    enum CodingKeys: String, CodingKey {
        case id, name, active, direction
        case baseURL = "base_url", syncEnabled = "sync_enabled", rateLimit = "rate_limit", rateBurst = "rate_burst"
        case createdAt = "created_at", updatedAt = "updated_at"
    }

    static let columns = "t.id, t.name, t.base_url, t.api_key, t.active, t.sync_enabled, t.rate_limit, t.rate_burst, t.direction, t.created_at, t.updated_at"

    init(row: PostgresRow) throws {
        id = try row.decode(UUID.self, named: "id")
        name = try row.decode(String.self, named: "name")
        baseURL = try row.decode(String.self, named: "base_url")
        apiKey = try row.decode(String.self, named: "api_key")
        active = try row.decode(Bool.self, named: "active")
        syncEnabled = try row.decode(Bool.self, named: "sync_enabled")
        rateLimit = try row.decode(Double?.self, named: "rate_limit")
        rateBurst = try row.decode(Int?.self, named: "rate_burst")
        direction = try row.decode(String.self, named: "direction")
        createdAt = try row.decode(Date.self, named: "created_at")
        updatedAt = try row.decode(Date.self, named: "updated_at")
    }

    /// The flow-control limiter every export to this target goes through (429 and 503
    /// answers pause it; a configured rate spaces requests).
    public var limiterName: String { "export-target:\(name)" }

    /// The configured rate, if any, as a limiter's limit.
    public var limit: KindCatalog.RateLimit? { rateLimit.map { KindCatalog.RateLimit(rate: $0, burst: rateBurst) } }
}

/// An export, with the team's field names.
public struct Export: Sendable, Equatable, Encodable {
    public enum Status: String, Sendable, Codable, CaseIterable {
        case pending, running, paused, completed, failed, cancelled
        /// Holds its target: a second export to it is refused.
        public var isActive: Bool { self == .pending || self == .running || self == .paused }
    }

    public var id: UUID
    public var target: String
    public var status: Status
    /// `YYYY-MM-DD`: the newest day, and the oldest (nil: all history).
    public var startDate: String
    public var endDate: String?
    public var batchSize: Int
    public var processingDate: String?
    public var lastCompletedDate: String?
    public var totalLeads: Int?
    public var exportedLeads: Int
    public var errorLeads: Int
    /// Leads sent (exported or not) over all leads, 0...100.
    public var percent: Double
    public var pauseReason: String?
    public var pausedAt: Date?
    public var startedAt: Date?
    public var completedAt: Date?
    public var cancelledAt: Date?
    public var error: String?
    public var createdBy: String
    public var ownerID: UUID?
    /// The job carrying it now (its progress events are the export's).
    public var jobID: UUID?
    public var createdAt: Date
    public var updatedAt: Date

    static let columns = """
        e.id, t.name AS target, e.status, e.start_date::text, e.end_date::text, e.batch_size, e.processing_date::text,
        e.last_completed_date::text, e.total_leads, e.exported_leads, e.error_leads, e.pause_reason, e.paused_at, e.started_at,
        e.completed_at, e.cancelled_at, e.error, e.created_by, e.owner_id, e.job_id, e.created_at, e.updated_at
        """

    init(row: PostgresRow) throws {
        id = try row.decode(UUID.self, named: "id")
        target = try row.decode(String.self, named: "target")
        status = Status(rawValue: try row.decode(String.self, named: "status")) ?? .pending
        startDate = try row.decode(String.self, named: "start_date")
        endDate = try row.decode(String?.self, named: "end_date")
        batchSize = try row.decode(Int.self, named: "batch_size")
        processingDate = try row.decode(String?.self, named: "processing_date")
        lastCompletedDate = try row.decode(String?.self, named: "last_completed_date")
        totalLeads = try row.decode(Int?.self, named: "total_leads")
        exportedLeads = try row.decode(Int.self, named: "exported_leads")
        errorLeads = try row.decode(Int.self, named: "error_leads")
        pauseReason = try row.decode(String?.self, named: "pause_reason")
        pausedAt = try row.decode(Date?.self, named: "paused_at")
        startedAt = try row.decode(Date?.self, named: "started_at")
        completedAt = try row.decode(Date?.self, named: "completed_at")
        cancelledAt = try row.decode(Date?.self, named: "cancelled_at")
        error = try row.decode(String?.self, named: "error")
        createdBy = try row.decode(String.self, named: "created_by")
        ownerID = try row.decode(UUID?.self, named: "owner_id")
        jobID = try row.decode(UUID?.self, named: "job_id")
        createdAt = try row.decode(Date.self, named: "created_at")
        updatedAt = try row.decode(Date.self, named: "updated_at")
        percent = Export.percent(done: exportedLeads + errorLeads, total: totalLeads, status: status)
    }

    /// Sent over all, one decimal, at most 100 (leads created in the range after the count
    /// are exported too); a completed export is at 100.
    static func percent(done: Int, total: Int?, status: Status) -> Double {
        if status == .completed { return 100 }
        guard let total, total > 0 else { return 0 }
        return min(100, (Double(done) / Double(total) * 1000).rounded(.down) / 10)
    }
}

/// Why an export request was refused; the api names the field at fault.
public enum ExportError: Error, Equatable, Sendable {
    /// No target is active (or the one named is unknown).
    case noActiveTarget
    case unknownTarget(String)
    /// Several targets are active: the request must name one.
    case severalActiveTargets([String])
    case targetInactive(String)
    case syncDisabled(String)
    /// The target has an active export already.
    case alreadyActive(target: String, export: UUID, status: Export.Status)
    case notFound(UUID)
    /// The transition is not possible from the export's status.
    case wrongStatus(Export.Status, action: String)
}

/// A lead without a successful sync event for a target.
public struct UnexportedLead: Sendable, Encodable {
    public var id: Int64
    public var name: String?
    public var email: String?
    public var createdAt: Date
    /// The last error a sync of it met, if it was tried.
    public var lastError: String?
}
