import CLibPQ

extension PostgresConnection {
    /// Loads rows with `COPY table (columns) FROM STDIN` in text format; returns the number
    /// of rows copied. The fastest way to insert many rows; runs in one statement (all or none).
    ///
    /// - Parameters:
    ///   - table: a table name, optionally `schema.table`; each part is quoted.
    ///   - columns: column names, quoted; each row has one value per column (nil is NULL).
    public func copyIn<Rows: Sequence>(table: String, columns: [String], rows: Rows) throws -> Int
    where Rows.Element == [PostgresEncodable?] {
        let connection = try liveHandle()
        let target = table.split(separator: ".").map { Self.quoteIdentifier(String($0)) }.joined(separator: ".")
        let columnList = columns.map(Self.quoteIdentifier).joined(separator: ", ")
        let sql = "COPY \(target) (\(columnList)) FROM STDIN"

        guard let start = PQexec(connection, sql) else {
            throw failure(query: sql, fallback: "no result for COPY")
        }
        guard PQresultStatus(start) == PGRES_COPY_IN else {
            _ = try check(start, query: sql)   // throws the server's error
            throw PostgresError(.unexpectedResult, message: "COPY did not start")
        }
        PQclear(start)

        var buffer = [UInt8]()
        buffer.reserveCapacity(1 << 16)
        func flush() throws {
            let sent = buffer.withUnsafeBufferPointer { bytes in
                bytes.baseAddress!.withMemoryRebound(to: CChar.self, capacity: bytes.count) {
                    PQputCopyData(connection, $0, Int32(bytes.count))
                }
            }
            guard sent == 1 else { throw failure(query: sql, fallback: "could not send COPY data") }
            buffer.removeAll(keepingCapacity: true)
        }

        do {
            for (number, row) in rows.enumerated() {
                guard row.count == columns.count else {
                    throw PostgresError(.copyFailed, message:
                        "row \(number) has \(row.count) values for \(columns.count) columns")
                }
                for (index, value) in row.enumerated() {
                    if index > 0 { buffer.append(UInt8(ascii: "\t")) }
                    if let text = try value?.postgresText() {
                        Self.appendCopyEscaped(text, to: &buffer)
                    } else {
                        buffer.append(UInt8(ascii: "\\"))
                        buffer.append(UInt8(ascii: "N"))
                    }
                }
                buffer.append(UInt8(ascii: "\n"))
                if buffer.count >= 1 << 16 { try flush() }
            }
            if !buffer.isEmpty { try flush() }
        } catch {
            // Abort the COPY so the server rolls it back and the connection stays usable.
            _ = PQputCopyEnd(connection, "aborted by client")
            while let result = PQgetResult(connection) { PQclear(result) }
            throw error
        }

        guard PQputCopyEnd(connection, nil) == 1 else {
            throw failure(query: sql, fallback: "could not end COPY")
        }
        var copied = 0
        var firstError: Error?
        while let result = PQgetResult(connection) {
            do {
                copied = try check(result, query: sql).affectedRowCount
            } catch {
                firstError = firstError ?? error
            }
        }
        if let firstError { throw firstError }
        return copied
    }

    /// COPY text format: backslash, tab, newline and carriage return are escaped, so only
    /// the separators we write are read as separators; `\N` stays free for NULL.
    static func appendCopyEscaped(_ text: String, to buffer: inout [UInt8]) {
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\\"): buffer.append(UInt8(ascii: "\\")); buffer.append(UInt8(ascii: "\\"))
            case UInt8(ascii: "\t"): buffer.append(UInt8(ascii: "\\")); buffer.append(UInt8(ascii: "t"))
            case UInt8(ascii: "\n"): buffer.append(UInt8(ascii: "\\")); buffer.append(UInt8(ascii: "n"))
            case UInt8(ascii: "\r"): buffer.append(UInt8(ascii: "\\")); buffer.append(UInt8(ascii: "r"))
            default: buffer.append(byte)
            }
        }
    }
}
