import Foundation
import Postgres

/// Applies numbered SQL files to a database, each exactly once, in order.
///
/// Every file runs in its own transaction together with its row in `esteira_migrations`,
/// so a file is either fully applied and recorded or not at all. All of it happens under a
/// session advisory lock, so several processes starting at once (every executable runs
/// `migrate`) apply each file once: the others wait, then find nothing left to do.
///
/// A file must not contain its own BEGIN/COMMIT, nor statements that cannot run inside a
/// transaction (e.g. `CREATE INDEX CONCURRENTLY`).
public struct Migrator: Sendable {
    /// The `pg_advisory_lock` key every Esteira migrator takes ("Esteira" in ASCII).
    public static let advisoryLockKey: Int64 = 0x45_73_74_65_69_72_61

    /// The table recording applied migrations.
    public static let table = "esteira_migrations"

    /// The migrations this migrator applies, in version order.
    public let migrations: [Migration]

    /// A migrator over the files in `directory` (read and validated now).
    ///
    /// - Throws: `MigrationError` for an unreadable directory, a badly named file, or a
    ///   duplicate version.
    public init(directory: URL) throws {
        self.migrations = try Migration.load(from: directory)
    }

    /// A migrator over the files in `directory` and the migrations of `workloads`, all in one
    /// version order.
    ///
    /// - Throws: `MigrationError` as ``init(directory:)`` does, and `duplicateVersion` when a
    ///   workload's migration takes a version already used.
    public init(directory: URL, workloads: [Workload]) throws {
        var all = try Migration.load(from: directory)
        var byVersion = Dictionary(all.map { ($0.version, $0.fileName) }, uniquingKeysWith: { a, _ in a })
        for workload in workloads {
            for migration in workload.migrations {
                if let other = byVersion[migration.version] {
                    throw MigrationError(.duplicateVersion, file: migration.fileName,
                                         message: "version \(migration.version) is used by both \(other) and \(migration.fileName) of \(workload.name)")
                }
                byVersion[migration.version] = migration.fileName
                all.append(migration)
            }
        }
        self.init(migrations: all)
    }

    /// A migrator over migrations already in memory; they are sorted by version.
    public init(migrations: [Migration]) {
        self.migrations = migrations.sorted { $0.version < $1.version }
    }

    /// Applies the migrations not yet recorded; returns those it applied (empty when the
    /// database was up to date).
    ///
    /// First checks that no applied file changed since, then applies the rest in order.
    ///
    /// - Throws: `MigrationError` (`checksumChanged`, or `migrationFailed` naming the file,
    ///   with the SQLSTATE), or `PostgresError` if the connection fails.
    @discardableResult
    public func migrate(on connection: PostgresConnection) throws -> [Migration] {
        _ = try connection.query("SELECT pg_advisory_lock($1)", [Self.advisoryLockKey])
        defer { _ = try? connection.query("SELECT pg_advisory_unlock($1)", [Self.advisoryLockKey]) }

        // Created under the lock: two concurrent CREATE TABLE IF NOT EXISTS can still collide.
        try connection.execute("""
            CREATE TABLE IF NOT EXISTS \(Self.table) (
                version int PRIMARY KEY,
                name text NOT NULL,
                checksum text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )
            """)
        var recorded: [Int: String] = [:]
        for row in try connection.query("SELECT version, checksum FROM \(Self.table)") {
            recorded[try row.decode(Int.self, at: 0)] = try row.decode(String.self, at: 1)
        }

        var pending: [(Migration, String)] = []
        for migration in migrations {
            let checksum = try Self.checksum(of: migration, on: connection)
            if let applied = recorded[migration.version] {
                guard applied == checksum else {
                    throw MigrationError(.checksumChanged, file: migration.fileName, message:
                        "version \(migration.version) was applied with checksum \(applied), the file now has \(checksum); "
                        + "add a new migration instead of editing an applied one")
                }
            } else {
                pending.append((migration, checksum))
            }
        }

        var applied: [Migration] = []
        for (migration, checksum) in pending {
            do {
                try connection.transaction { connection in
                    try connection.executeScript(migration.sql)
                    try connection.execute(
                        "INSERT INTO \(Self.table) (version, name, checksum) VALUES ($1, $2, $3)",
                        [migration.version, migration.name, checksum])
                }
            } catch let error as PostgresError {
                throw MigrationError(.migrationFailed, file: migration.fileName,
                                     message: error.message, underlying: error)
            }
            applied.append(migration)
        }
        return applied
    }

    /// Applies pending migrations on a pooled connection (see `migrate(on:)`).
    @discardableResult
    public func migrate(on pool: PostgresPool) async throws -> [Migration] {
        try await pool.withConnection { try self.migrate(on: $0) }
    }

    /// SHA-256 of the file's UTF-8 text, in hex, computed by the server (PostgreSQL 11+), which
    /// spares a hash implementation here.
    static func checksum(of migration: Migration, on connection: PostgresConnection) throws -> String {
        try connection.query("SELECT encode(sha256(convert_to($1, 'UTF8')), 'hex')", [migration.sql])
            .first!.decode(String.self, at: 0)
    }
}
