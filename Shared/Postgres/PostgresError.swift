import CLibPQ

/// An error from the PostgreSQL client: a connection that could not be made or was lost, a
/// statement the server rejected, or a value that could not be decoded.
///
/// `description` is short and safe to log: it never holds a password or a connection string.
/// The server's detail (which may quote row values), hint, and the statement go only into
/// `debugDescription`.
public struct PostgresError: Error, Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    /// What kind of failure this is. A struct over a private enum, so codes can be added
    /// without breaking callers that switch over them.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Hashable, Sendable {
            case invalidConfiguration
            case connectionFailed
            case connectionLost
            case queryFailed
            case decodingFailed
            case encodingFailed
            case transactionRolledBack
            case unexpectedResult
            case copyFailed
            case poolClosed
            case acquireTimeout
        }

        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// The configuration (usually the URL) could not be understood.
        public static let invalidConfiguration = Code(.invalidConfiguration)
        /// No connection could be opened (refused, unknown host, authentication, missing database).
        public static let connectionFailed = Code(.connectionFailed)
        /// The connection broke while in use; `reset()` or a new connection is needed.
        public static let connectionLost = Code(.connectionLost)
        /// The server rejected a statement; see `sqlState`.
        public static let queryFailed = Code(.queryFailed)
        /// A column value could not be turned into the requested Swift type.
        public static let decodingFailed = Code(.decodingFailed)
        /// A parameter could not be turned into PostgreSQL's text format.
        public static let encodingFailed = Code(.encodingFailed)
        /// COMMIT answered ROLLBACK: an earlier statement in the transaction had failed.
        public static let transactionRolledBack = Code(.transactionRolledBack)
        /// The server answered in a way this client does not handle here (e.g. COPY in `query`).
        public static let unexpectedResult = Code(.unexpectedResult)
        /// A COPY was aborted by the client or rejected by the server.
        public static let copyFailed = Code(.copyFailed)
        /// The pool was closed before or while waiting for a connection.
        public static let poolClosed = Code(.poolClosed)
        /// No pooled connection became free within the acquire timeout.
        public static let acquireTimeout = Code(.acquireTimeout)

        /// The code's name, e.g. `queryFailed`.
        public var description: String { base.rawValue }
    }

    /// What kind of failure this is.
    public var code: Code
    /// A one-line message: the server's primary message, or the client's own.
    public var message: String
    /// The five-character SQLSTATE from the server, e.g. "23505" (unique violation).
    public var sqlState: String?
    /// The server's severity, e.g. "ERROR" or "FATAL".
    public var severity: String?
    /// The server's detail line; may quote row values, so it stays out of `description`.
    public var detail: String?
    /// The server's hint line.
    public var hint: String?
    /// Schema of the object the error is about, when the server names one.
    public var schemaName: String?
    /// Table the error is about, when the server names one.
    public var tableName: String?
    /// Column the error is about, when the server names one.
    public var columnName: String?
    /// Constraint that was violated, when the server names one (e.g. "users_email_key").
    public var constraintName: String?
    /// For decoding errors: the Swift type that was asked for.
    public var expectedType: String?
    /// For decoding errors: the OID of the column's PostgreSQL type.
    public var actualOID: UInt32?
    /// The statement that failed, for `debugDescription` only (it may embed literal values).
    public var query: String?

    /// An error with a code and message; the other fields start empty.
    public init(_ code: Code, message: String) {
        self.code = code
        self.message = message
    }

    /// Short and safe to log: code, SQLSTATE and message.
    public var description: String {
        var text = "PostgresError.\(code)"
        if let sqlState { text += " [\(sqlState)]" }
        return text + ": " + message
    }

    /// Everything known about the error, for debugging.
    public var debugDescription: String {
        var parts = [description]
        if let severity { parts.append("severity: \(severity)") }
        if let detail { parts.append("detail: \(detail)") }
        if let hint { parts.append("hint: \(hint)") }
        if let schemaName { parts.append("schema: \(schemaName)") }
        if let tableName { parts.append("table: \(tableName)") }
        if let columnName { parts.append("column: \(columnName)") }
        if let constraintName { parts.append("constraint: \(constraintName)") }
        if let expectedType { parts.append("expected: \(expectedType)") }
        if let actualOID { parts.append("actual OID: \(actualOID)") }
        if let query { parts.append("query: \(query)") }
        return parts.joined(separator: "\n  ")
    }
}

extension PostgresError {
    /// Reads the diagnostic fields of an error result. Does not free the result.
    init(result: OpaquePointer, code: Code, query: String?) {
        func field(_ name: Int32) -> String? {
            guard let value = PQresultErrorField(result, name) else { return nil }
            return String(cString: value)
        }
        let primary = field(PG_DIAG_MESSAGE_PRIMARY)
            ?? String(cString: PQresultErrorMessage(result)).trimmingTrailingNewlines()
        self.init(code, message: primary.isEmpty ? "unknown server error" : primary)
        sqlState = field(PG_DIAG_SQLSTATE)
        severity = field(PG_DIAG_SEVERITY_NONLOCALIZED) ?? field(PG_DIAG_SEVERITY)
        detail = field(PG_DIAG_MESSAGE_DETAIL)
        hint = field(PG_DIAG_MESSAGE_HINT)
        schemaName = field(PG_DIAG_SCHEMA_NAME)
        tableName = field(PG_DIAG_TABLE_NAME)
        columnName = field(PG_DIAG_COLUMN_NAME)
        constraintName = field(PG_DIAG_CONSTRAINT_NAME)
        self.query = query
    }

    /// An error built from the connection's last error message (no result available).
    init(connection: OpaquePointer?, code: Code, fallback: String, query: String? = nil) {
        var text = connection.map { String(cString: PQerrorMessage($0)).trimmingTrailingNewlines() } ?? ""
        if text.isEmpty { text = fallback }
        self.init(code, message: text)
        self.query = query
    }

    static func decoding(_ message: String, column: String, expected: String, oid: UInt32) -> PostgresError {
        var error = PostgresError(.decodingFailed, message: "column \"\(column)\": \(message)")
        error.columnName = column
        error.expectedType = expected
        error.actualOID = oid
        return error
    }
}

// libpq defines the diagnostic field codes as character-literal macros ('C', 'M', ...),
// which Swift does not import; these are the same values from postgres_ext.h.
private let PG_DIAG_SEVERITY = Int32(UInt8(ascii: "S"))
private let PG_DIAG_SEVERITY_NONLOCALIZED = Int32(UInt8(ascii: "V"))
private let PG_DIAG_SQLSTATE = Int32(UInt8(ascii: "C"))
private let PG_DIAG_MESSAGE_PRIMARY = Int32(UInt8(ascii: "M"))
private let PG_DIAG_MESSAGE_DETAIL = Int32(UInt8(ascii: "D"))
private let PG_DIAG_MESSAGE_HINT = Int32(UInt8(ascii: "H"))
private let PG_DIAG_SCHEMA_NAME = Int32(UInt8(ascii: "s"))
private let PG_DIAG_TABLE_NAME = Int32(UInt8(ascii: "t"))
private let PG_DIAG_COLUMN_NAME = Int32(UInt8(ascii: "c"))
private let PG_DIAG_CONSTRAINT_NAME = Int32(UInt8(ascii: "n"))

extension String {
    func trimmingTrailingNewlines() -> String {
        var text = Substring(self)
        while let last = text.last, last == "\n" || last == "\r" || last == " " { text = text.dropLast() }
        return String(text)
    }
}
