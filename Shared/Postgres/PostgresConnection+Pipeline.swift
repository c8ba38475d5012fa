import CLibPQ

/// Statements collected for one `PostgresConnection.pipeline` call.
public struct PostgresPipelineBatch {
    enum Statement {
        case sql(String, PostgresParameters)
        case prepared(String, PostgresParameters)
    }

    var statements: [Statement] = []

    /// Queues `sql` with `parameters` (encoded now, so an encoding error surfaces here).
    public mutating func append(_ sql: String, _ parameters: [PostgresEncodable?] = []) throws {
        statements.append(.sql(sql, try PostgresParameters(parameters)))
    }

    /// Queues the statement prepared under `name` with `parameters`.
    public mutating func appendPrepared(name: String, _ parameters: [PostgresEncodable?] = []) throws {
        statements.append(.prepared(name, try PostgresParameters(parameters)))
    }

    /// How many statements are queued.
    public var count: Int { statements.count }
}

extension PostgresConnection {
    /// Sends every statement `build` queues without waiting for answers in between (libpq
    /// pipeline mode), then one sync, and returns each statement's rows in order.
    ///
    /// The statements run in one implicit transaction ending at the sync: if one fails, the
    /// ones after it are skipped, everything is rolled back, and its error is thrown with
    /// the statement's position in the message. Inside an explicit transaction they join it.
    public func pipeline(_ build: (inout PostgresPipelineBatch) throws -> Void) throws -> [PostgresRows] {
        var batch = PostgresPipelineBatch()
        try build(&batch)
        if batch.statements.isEmpty { return [] }
        let connection = try liveHandle()

        guard PQenterPipelineMode(connection) == 1 else {
            throw failure(query: nil, fallback: "could not enter pipeline mode")
        }
        defer { PQexitPipelineMode(connection) }

        // In blocking mode libpq reads incoming results while a full socket stops it writing,
        // so queueing many statements cannot deadlock; the results wait in its buffer.
        for statement in batch.statements {
            let sent: Int32
            switch statement {
            case let .sql(sql, parameters):
                sent = parameters.withPointers { types, values in
                    PQsendQueryParams(connection, sql, Int32(parameters.count), types, values, nil, nil, 0)
                }
            case let .prepared(name, parameters):
                sent = parameters.withPointers { _, values in
                    PQsendQueryPrepared(connection, name, Int32(parameters.count), values, nil, nil, 0)
                }
            }
            guard sent == 1 else { throw failure(query: nil, fallback: "could not send a pipelined statement") }
        }
        guard PQpipelineSync(connection) == 1 else {
            throw failure(query: nil, fallback: "could not send the pipeline sync")
        }

        var rows: [PostgresRows] = []
        rows.reserveCapacity(batch.statements.count)
        var firstError: PostgresError?
        for (position, _) in batch.statements.enumerated() {
            // Each statement yields its result(s), then nil.
            var sawResult = false
            while let result = PQgetResult(connection) {
                sawResult = true
                switch PQresultStatus(result) {
                case PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_EMPTY_QUERY:
                    rows.append(PostgresRows(result: PostgresResult(result)))
                case PGRES_PIPELINE_ABORTED:
                    PQclear(result)
                default:
                    var error = PostgresError(result: result, code: .queryFailed, query: nil)
                    error.message = "pipelined statement \(position): " + error.message
                    firstError = firstError ?? error
                    PQclear(result)
                }
            }
            if !sawResult, PQstatus(connection) == CONNECTION_BAD {
                throw failure(query: nil, fallback: "connection lost during pipeline")
            }
        }
        guard let sync = PQgetResult(connection) else {
            throw failure(query: nil, fallback: "pipeline ended without its sync")
        }
        let syncStatus = PQresultStatus(sync)
        PQclear(sync)
        if let firstError { throw firstError }
        guard syncStatus == PGRES_PIPELINE_SYNC else {
            throw PostgresError(.unexpectedResult, message: "pipeline ended with an unexpected result")
        }
        return rows
    }
}
