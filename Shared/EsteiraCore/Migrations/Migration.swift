import Foundation

/// One SQL file from the migrations directory, named `<number>_<name>.sql`.
public struct Migration: Sendable, Equatable {
    /// The number prefix; files apply in increasing order of it.
    public let version: Int
    /// The part after the number, without `.sql` (e.g. "core").
    public let name: String
    /// The file name (e.g. "0001_core.sql").
    public let fileName: String
    /// The file's SQL; may hold several statements.
    public let sql: String

    /// A migration from its parts (for tests and embedded migrations).
    public init(version: Int, name: String, fileName: String, sql: String) {
        self.version = version
        self.name = name
        self.fileName = fileName
        self.sql = sql
    }

    /// Parses `<digits>_<name>.sql` where name is letters, digits, `_` or `-`; nil otherwise.
    /// A migration compiled into a module (a workload's), named like a file of the
    /// migrations folder: `0004_lead_migrations.sql`.
    public init(fileName: String, bytes: [UInt8]) throws {
        guard let (version, name) = Migration.parse(fileName: fileName) else {
            throw MigrationError(.badFileName, file: fileName,
                                 message: "migration files must be named <number>_<name>.sql, e.g. 0001_core.sql")
        }
        self.init(version: version, name: name, fileName: fileName, sql: String(decoding: bytes, as: UTF8.self))
    }

    static func parse(fileName: String) -> (version: Int, name: String)? {
        guard fileName.hasSuffix(".sql") else { return nil }
        let stem = fileName.dropLast(4)
        guard let underscore = stem.firstIndex(of: "_") else { return nil }
        let digits = stem[..<underscore]
        let name = stem[stem.index(after: underscore)...]
        guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }),
              let version = Int(digits),
              !name.isEmpty,
              name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == "-") })
        else { return nil }
        return (version, String(name))
    }

    /// Reads every migration in `directory`, ordered by version.
    ///
    /// Hidden files (starting with ".") are ignored; any other file must be a well-named
    /// migration, so a typo cannot silently skip one.
    ///
    /// - Throws: `MigrationError` (`unreadableDirectory`, `badFileName`, `duplicateVersion`).
    public static func load(from directory: URL) throws -> [Migration] {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory.path)
        } catch {
            throw MigrationError(.unreadableDirectory, file: nil,
                                 message: "cannot list \(directory.path): \(error.localizedDescription)")
        }
        var migrations: [Migration] = []
        var byVersion: [Int: String] = [:]
        for fileName in names.sorted() where !fileName.hasPrefix(".") {
            guard let (version, name) = parse(fileName: fileName) else {
                throw MigrationError(.badFileName, file: fileName,
                                     message: "migration files must be named <number>_<name>.sql, e.g. 0001_core.sql")
            }
            if let other = byVersion[version] {
                throw MigrationError(.duplicateVersion, file: fileName,
                                     message: "version \(version) is used by both \(other) and \(fileName)")
            }
            byVersion[version] = fileName
            let url = directory.appendingPathComponent(fileName)
            guard let data = FileManager.default.contents(atPath: url.path) else {
                throw MigrationError(.unreadableDirectory, file: fileName, message: "cannot read \(url.path)")
            }
            migrations.append(Migration(version: version, name: name, fileName: fileName,
                                        sql: String(decoding: data, as: UTF8.self)))
        }
        return migrations.sorted { $0.version < $1.version }
    }
}
