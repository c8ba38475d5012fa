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

extension PostgresConnection {
    /// How many statements ``queryPrepared(_:_:)`` keeps prepared per connection; later ones
    /// run unprepared.
    public static let preparedStatementLimit = 64

    /// Runs `sql` as ``query(_:_:)`` does, as a statement prepared on this connection the
    /// first time it runs here: later runs skip PostgreSQL's parsing and analysis, and
    /// PostgreSQL may keep a generic plan once it has seen a few. For statements a process
    /// runs many times with the same text and parameter types (the job path's claims,
    /// outcomes and inserts). A run whose parameter types differ from the first run's (a nil
    /// where a value was) goes unprepared, as do statements beyond
    /// ``preparedStatementLimit``. Statements live until the connection closes.
    @discardableResult
    public func queryPrepared(_ sql: String, _ parameters: [PostgresEncodable?] = []) throws -> PostgresRows {
        let connection = try liveHandle()
        let encoded = try PostgresParameters(parameters)
        let name: String
        if let known = preparedStatements[sql] {
            guard known.types == encoded.types else { return try query(sql, parameters) }
            name = known.name
        } else {
            guard preparedStatements.count < Self.preparedStatementLimit else { return try query(sql, parameters) }
            name = "esteira_q\(preparedStatements.count + 1)"
            _ = try check(encoded.withPointers { types, _ in PQprepare(connection, name, sql, Int32(encoded.count), types) }, query: sql)
            preparedStatements[sql] = (name, encoded.types)
        }
        let result = encoded.withPointers { _, values in
            PQexecPrepared(connection, name, Int32(encoded.count), values, nil, nil, 0)
        }
        return try check(result, query: sql)
    }
}
