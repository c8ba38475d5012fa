/// How strongly concurrent transactions are isolated (PostgreSQL's `ISOLATION LEVEL`).
public enum PostgresIsolationLevel: String, Sendable {
    /// PostgreSQL's default.
    case readCommitted = "READ COMMITTED"
    /// One snapshot for the whole transaction.
    case repeatableRead = "REPEATABLE READ"
    /// As if transactions ran one after another; callers must retry on SQLSTATE 40001.
    case serializable = "SERIALIZABLE"
}

extension PostgresConnection {
    /// Runs `body` inside BEGIN/COMMIT; on a thrown error issues ROLLBACK and rethrows it.
    ///
    /// - Throws: the body's error, or `PostgresError` (`transactionRolledBack` when COMMIT
    ///   turned into ROLLBACK because a statement failed and the body swallowed the error).
    public func transaction<T>(isolation: PostgresIsolationLevel? = nil,
                               _ body: (PostgresConnection) throws -> T) throws -> T {
        try execute(isolation.map { "BEGIN ISOLATION LEVEL \($0.rawValue)" } ?? "BEGIN")
        let value: T
        do {
            value = try body(self)
        } catch {
            // A lost connection has rolled back by itself; the body's error is the one to report.
            if isConnected { _ = try? execute("ROLLBACK") }
            throw error
        }
        let commit = try query("COMMIT")
        if commit.commandTag == "ROLLBACK" {
            throw PostgresError(.transactionRolledBack,
                                message: "COMMIT rolled back: a statement in the transaction had failed")
        }
        return value
    }
}
