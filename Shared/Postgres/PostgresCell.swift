/// One column value of one row, in PostgreSQL's text format, handed to `PostgresDecodable`.
public struct PostgresCell: Sendable {
    /// The value as text, or nil for SQL NULL.
    public let text: String?
    /// OID of the column's type (for array elements: of the element type).
    public let oid: UInt32
    /// The column's name, for error messages.
    public let columnName: String

    /// A cell; public so custom `PostgresDecodable` types can be tested without a server.
    public init(text: String?, oid: UInt32, columnName: String) {
        self.text = text
        self.oid = oid
        self.columnName = columnName
    }

    /// The text, or a `decodingFailed` error naming the expected type when the value is NULL.
    public func requireText(as expected: String) throws -> String {
        guard let text else {
            throw PostgresError.decoding("unexpected NULL (decode an Optional to accept NULL)",
                                         column: columnName, expected: expected, oid: oid)
        }
        return text
    }

    /// Throws `decodingFailed` unless the column's type is one of `types`.
    public func expect(_ types: [PostgresDataType], as expected: String) throws {
        guard types.contains(where: { $0.oid == oid }) else {
            throw PostgresError.decoding("cannot decode PostgreSQL type OID \(oid) as \(expected)",
                                         column: columnName, expected: expected, oid: oid)
        }
    }

    /// A `decodingFailed` error for a value of the right type that could not be parsed.
    public func malformed(as expected: String) -> PostgresError {
        PostgresError.decoding("malformed \(expected) value", column: columnName, expected: expected, oid: oid)
    }
}
