import Foundation
import Postgres

/// A paused kind: no processor takes its deliveries until it is resumed; its jobs keep
/// queuing.
public struct KindPause: Sendable, Equatable, Encodable {
    public var kind: String
    public var pausedAt: Date
    public var pausedBy: String
    public var reason: String?

    enum CodingKeys: String, CodingKey {
        case kind, reason
        case pausedAt = "paused_at"
        case pausedBy = "paused_by"
    }

    init(row: PostgresRow) throws {
        kind = try row.decode(String.self, at: 0)
        pausedAt = try row.decode(Date.self, at: 1)
        pausedBy = try row.decode(String.self, at: 2)
        reason = try row.decode(String?.self, at: 3)
    }
}

/// Pausing and resuming kinds: rows of `paused_kinds`, so the state survives restarts and
/// every processor instance reads the same; each change is sent on ``ControlChannel`` so
/// processors act on it within moments rather than at their next periodic read.
public enum KindPauses {
    static let columns = "kind, paused_at, paused_by, reason"

    /// The paused kinds.
    public static func all(on connection: PostgresConnection) throws -> [KindPause] {
        try connection.query("SELECT \(columns) FROM paused_kinds ORDER BY kind").map(KindPause.init(row:))
    }

    /// Pauses `kind` (again: keeps the first pause's time and author, takes a new reason if given).
    public static func pause(_ kind: String, by principal: String, reason: String?, on connection: PostgresConnection) throws -> KindPause {
        try connection.transaction { c in
            let row = try c.query("""
                INSERT INTO paused_kinds (kind, paused_by, reason) VALUES ($1, $2, $3)
                ON CONFLICT (kind) DO UPDATE SET reason = coalesce(EXCLUDED.reason, paused_kinds.reason)
                RETURNING \(columns)
                """, [kind, principal, reason])
            try ControlChannel.send(.pausesChanged, on: c)
            return try KindPause(row: row[0])
        }
    }

    /// Resumes `kind`; false when it was not paused.
    @discardableResult
    public static func resume(_ kind: String, on connection: PostgresConnection) throws -> Bool {
        try connection.transaction { c in
            let rows = try c.query("DELETE FROM paused_kinds WHERE kind = $1 RETURNING kind", [kind])
            if !rows.isEmpty { try ControlChannel.send(.pausesChanged, on: c) }
            return !rows.isEmpty
        }
    }
}
