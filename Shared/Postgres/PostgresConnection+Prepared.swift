import CLibPQ

/// A statement prepared on one connection with `PostgresConnection.prepare(name:sql:)`.
public struct PostgresPreparedStatement: Sendable, Hashable {
    /// The server-side name.
    public let name: String
    /// The SQL it was prepared from.
    public let sql: String
}

extension PostgresConnection {
    /// Parses and plans `sql` once on the server under `name`, for repeated execution with
    /// different parameters. Parameter types are inferred by the server from the statement.
    /// The statement lives until the connection closes (or `DEALLOCATE`).
    @discardableResult
    public func prepare(name: String, sql: String) throws -> PostgresPreparedStatement {
        let connection = try liveHandle()
        _ = try check(PQprepare(connection, name, sql, 0, nil), query: sql)
        return PostgresPreparedStatement(name: name, sql: sql)
    }

    /// Runs the statement prepared under `name` with `parameters`; returns its rows (and
    /// `affectedRowCount`).
    @discardableResult
    public func executePrepared(name: String, parameters: [PostgresEncodable?] = []) throws -> PostgresRows {
        let connection = try liveHandle()
        let encoded = try PostgresParameters(parameters)
        let result = encoded.withPointers { _, values in
            PQexecPrepared(connection, name, Int32(encoded.count), values, nil, nil, 0)
        }
        return try check(result, query: "EXECUTE \(name)")
    }

    /// Runs a prepared statement with `parameters`; returns its rows.
    @discardableResult
    public func execute(_ statement: PostgresPreparedStatement,
                        _ parameters: [PostgresEncodable?] = []) throws -> PostgresRows {
        try executePrepared(name: statement.name, parameters: parameters)
    }
}
