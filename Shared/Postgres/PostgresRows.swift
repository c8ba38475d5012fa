import CLibPQ
import Foundation

/// Owns one `PGresult` and frees it when the last row referring to it goes away.
///
/// `@unchecked Sendable`: a finished PGresult is never modified, and libpq's accessors on it
/// only read, so rows may be read from any thread.
final class PostgresResult: @unchecked Sendable {
    let handle: OpaquePointer
    let columns: [String]
    let columnOIDs: [UInt32]
    let rowCount: Int

    init(_ handle: OpaquePointer) {
        self.handle = handle
        let count = Int(PQnfields(handle))
        columns = (0..<count).map { String(cString: PQfname(handle, Int32($0))) }
        columnOIDs = (0..<count).map { UInt32(PQftype(handle, Int32($0))) }
        rowCount = Int(PQntuples(handle))
    }

    deinit { PQclear(handle) }

    func cell(row: Int, column: Int) -> PostgresCell {
        let text: String?
        if PQgetisnull(handle, Int32(row), Int32(column)) == 1 {
            text = nil
        } else {
            let length = Int(PQgetlength(handle, Int32(row), Int32(column)))
            let pointer = PQgetvalue(handle, Int32(row), Int32(column))!
            text = pointer.withMemoryRebound(to: UInt8.self, capacity: length) {
                String(decoding: UnsafeBufferPointer(start: $0, count: length), as: UTF8.self)
            }
        }
        return PostgresCell(text: text, oid: columnOIDs[column], columnName: columns[column])
    }

    /// The number from the command tag ("INSERT 0 5" → 5); 0 for commands without one.
    var affectedRowCount: Int { Int(String(cString: PQcmdTuples(handle))) ?? 0 }
    /// The command tag, e.g. "INSERT 0 5" or "COMMIT".
    var commandTag: String { String(cString: PQcmdStatus(handle)) }
}

/// The rows a statement returned, plus its command tag and affected row count.
public struct PostgresRows: RandomAccessCollection, Sendable {
    let result: PostgresResult

    init(result: PostgresResult) { self.result = result }

    /// Column names, in order.
    public var columns: [String] { result.columns }
    /// Type OIDs of the columns, in order.
    public var columnTypes: [PostgresDataType] { result.columnOIDs.map { PostgresDataType(oid: $0) } }
    /// Rows inserted, updated, deleted, copied or selected, as the server reports it.
    public var affectedRowCount: Int { result.affectedRowCount }
    /// The command tag, e.g. "INSERT 0 1".
    public var commandTag: String { result.commandTag }

    /// The first row index (0).
    public var startIndex: Int { 0 }
    /// One past the last row index.
    public var endIndex: Int { result.rowCount }
    /// The row at `position`.
    public subscript(position: Int) -> PostgresRow { PostgresRow(result: result, index: position) }
}

/// One row of a result; decode its columns by position or by name.
public struct PostgresRow: Sendable {
    let result: PostgresResult
    /// The row's position in its result.
    public let index: Int

    /// Column names, in order.
    public var columns: [String] { result.columns }

    /// The raw cell at `column` (text, type OID and name).
    public func cell(at column: Int) throws -> PostgresCell {
        guard column >= 0, column < result.columns.count else {
            throw PostgresError(.decodingFailed,
                                message: "column index \(column) out of range (\(result.columns.count) columns)")
        }
        return result.cell(row: index, column: column)
    }

    /// The index of the first column called `name` (exact, case-sensitive match).
    public func columnIndex(named name: String) throws -> Int {
        guard let column = result.columns.firstIndex(of: name) else {
            var error = PostgresError(.decodingFailed, message: "no column named \"\(name)\"")
            error.columnName = name
            throw error
        }
        return column
    }

    /// Decodes the column at `column` as `type` (use an Optional type to accept NULL).
    public func decode<T: PostgresDecodable>(_ type: T.Type = T.self, at column: Int) throws -> T {
        try T.decode(from: cell(at: column))
    }

    /// Decodes the column called `name` as `type` (use an Optional type to accept NULL).
    public func decode<T: PostgresDecodable>(_ type: T.Type = T.self, named name: String) throws -> T {
        try decode(type, at: columnIndex(named: name))
    }

    /// Decodes a json/jsonb column at `column` into a `Decodable` type with `JSONDecoder`.
    public func decodeJSON<T: Decodable>(_ type: T.Type = T.self, at column: Int) throws -> T {
        try decode(PostgresJSON<T>.self, at: column).value
    }

    /// Decodes the json/jsonb column called `name` into a `Decodable` type with `JSONDecoder`.
    public func decodeJSON<T: Decodable>(_ type: T.Type = T.self, named name: String) throws -> T {
        try decodeJSON(type, at: columnIndex(named: name))
    }

    /// Whether the column at `column` is NULL.
    public func isNull(at column: Int) throws -> Bool { try cell(at: column).text == nil }
}
