import Postgres

/// Why migrations could not be applied. Names the file involved; for a failed file also
/// carries the server's SQLSTATE and the underlying `PostgresError`.
public struct MigrationError: Error, Sendable, CustomStringConvertible {
    /// What went wrong. A struct over a private enum so codes can be added later.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Hashable, Sendable {
            case unreadableDirectory, badFileName, duplicateVersion, checksumChanged, migrationFailed
        }
        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// The migrations directory or a file in it could not be read.
        public static let unreadableDirectory = Code(.unreadableDirectory)
        /// A file is not named `<number>_<name>.sql`.
        public static let badFileName = Code(.badFileName)
        /// Two files share a version number.
        public static let duplicateVersion = Code(.duplicateVersion)
        /// An applied file was edited afterwards (its checksum differs from the recorded one).
        public static let checksumChanged = Code(.checksumChanged)
        /// A file's SQL failed; its transaction was rolled back and it was not recorded.
        public static let migrationFailed = Code(.migrationFailed)

        /// The code's name.
        public var description: String { base.rawValue }
    }

    /// What went wrong.
    public let code: Code
    /// The file involved, when there is one (e.g. "0002_jobs.sql").
    public let file: String?
    /// What happened, in a sentence.
    public let message: String
    /// The server error behind `migrationFailed`.
    public let underlying: PostgresError?

    /// The SQLSTATE of the server error behind `migrationFailed`, e.g. "42601".
    public var sqlState: String? { underlying?.sqlState }

    init(_ code: Code, file: String?, message: String, underlying: PostgresError? = nil) {
        self.code = code
        self.file = file
        self.message = message
        self.underlying = underlying
    }

    /// "migration 0002_jobs.sql: ..." with the SQLSTATE when there is one.
    public var description: String {
        var text = "MigrationError.\(code)"
        if let file { text += " (\(file))" }
        if let sqlState { text += " [\(sqlState)]" }
        return text + ": " + message
    }
}
