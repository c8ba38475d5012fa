import Foundation
import Postgres

/// What the api tells every processor at once, as PostgreSQL notifications on one channel:
/// a running job was cancelled (the processor running it stops it), or the paused kinds
/// changed (each processor reads them again). Sent inside the writing transaction, so a
/// notification arrives only once its change is committed.
public enum ControlChannel {
    /// The channel processors listen on.
    public static let name = "esteira_control"

    /// One notification.
    public enum Message: Sendable, Equatable {
        case cancelled(UUID)
        case pausesChanged
    }

    static func payload(_ message: Message) -> String {
        switch message {
        case .cancelled(let id): return "cancel:" + id.uuidString.lowercased()
        case .pausesChanged: return "pauses"
        }
    }

    /// The message a notification's payload carries; nil for one this version does not know.
    public static func message(_ payload: String) -> Message? {
        if payload == "pauses" { return .pausesChanged }
        if payload.hasPrefix("cancel:"), let id = UUID(uuidString: String(payload.dropFirst(7))) { return .cancelled(id) }
        return nil
    }

    /// Sends `message` (at the commit of the connection's transaction, if one is open).
    static func send(_ message: Message, on connection: PostgresConnection) throws {
        _ = try connection.query("SELECT pg_notify($1, $2)", [name, payload(message)])
    }
}
