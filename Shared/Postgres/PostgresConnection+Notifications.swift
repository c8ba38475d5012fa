import CLibPQ

/// A message received on a channel this connection listens to.
public struct PostgresNotification: Sendable, Hashable {
    /// The channel it was sent on.
    public let channel: String
    /// The payload (empty if none was given).
    public let payload: String
    /// The server process that sent it.
    public let pid: Int32
}

extension PostgresConnection {
    /// Subscribes this connection to `channel` (`LISTEN`); the name is quoted, so it is
    /// case-sensitive.
    public func listen(_ channel: String) throws {
        try execute("LISTEN \(Self.quoteIdentifier(channel))")
    }

    /// Unsubscribes from `channel`.
    public func unlisten(_ channel: String) throws {
        try execute("UNLISTEN \(Self.quoteIdentifier(channel))")
    }

    /// Sends `payload` on `channel` (through `pg_notify`, so both are parameters). Inside a
    /// transaction it is delivered at COMMIT.
    public func notify(_ channel: String, payload: String = "") throws {
        _ = try query("SELECT pg_notify($1, $2)", [channel, payload])
    }

    /// Waits up to `timeout` for a notification on a listened channel; nil on timeout.
    /// Notifications that arrived during earlier queries are returned first.
    public func waitForNotification(timeout: Duration) throws -> PostgresNotification? {
        let connection = try liveHandle()
        let deadline = ContinuousClock.now + timeout
        while true {
            guard PQconsumeInput(connection) == 1 else {
                throw failure(query: nil, fallback: "connection lost while waiting for notifications")
            }
            if let notification = PQnotifies(connection) {
                defer { PQfreemem(notification) }
                return PostgresNotification(channel: String(cString: notification.pointee.relname),
                                            payload: String(cString: notification.pointee.extra),
                                            pid: notification.pointee.be_pid)
            }
            guard try waitForSocket(PQsocket(connection), events: Int16(POLLIN), until: deadline) else {
                return nil
            }
        }
    }
}
