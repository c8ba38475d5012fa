import Dispatch
import EsteiraCore
import Foundation
import Postgres
import Testing

@Suite struct MigratorTests {
    static let files = [
        "0001_core.sql": """
            CREATE TABLE jobs (id bigserial PRIMARY KEY, kind text NOT NULL);
            CREATE INDEX jobs_kind ON jobs (kind);
            INSERT INTO jobs (kind) VALUES ('first');
            """,
        "0002_events.sql": """
            CREATE TABLE job_events (job_id bigint REFERENCES jobs (id), note text);
            INSERT INTO job_events SELECT id, 'created' FROM jobs;
            """,
        // Number 10 must come after 2 (numeric, not lexical, order).
        "10_more.sql": "ALTER TABLE jobs ADD COLUMN priority int NOT NULL DEFAULT 0;",
    ]

    @Test func appliesInNumericOrderAndRecordsEachFile() throws {
        let directory = try MigrationDirectory(Self.files)
        defer { directory.remove() }
        try TemporaryDatabase.with { database in
            let connection = try database.connect()
            let applied = try Migrator(directory: directory.url).migrate(on: connection)
            #expect(applied.map(\.version) == [1, 2, 10])
            #expect(applied.map(\.fileName) == ["0001_core.sql", "0002_events.sql", "10_more.sql"])
            let rows = try connection.query("SELECT version, name, checksum, applied_at FROM esteira_migrations ORDER BY version")
            #expect(try rows.map { try $0.decode(Int.self, at: 0) } == [1, 2, 10])
            #expect(try rows.map { try $0.decode(String.self, at: 1) } == ["core", "events", "more"])
            #expect(try rows.allSatisfy { try $0.decode(String.self, at: 2).count == 64 })
            _ = try rows.map { try $0.decode(Date.self, at: 3) }
            #expect(try connection.query("SELECT count(*) FROM job_events").first!.decode(Int.self, at: 0) == 1)
            #expect(try connection.query("SELECT priority FROM jobs").first!.decode(Int.self, at: 0) == 0)
        }
    }

    @Test func secondRunIsANoOp() throws {
        let directory = try MigrationDirectory(Self.files)
        defer { directory.remove() }
        try TemporaryDatabase.with { database in
            let connection = try database.connect()
            let migrator = try Migrator(directory: directory.url)
            #expect(try migrator.migrate(on: connection).count == 3)
            #expect(try migrator.migrate(on: connection).isEmpty)
            #expect(try connection.query("SELECT count(*) FROM jobs").first!.decode(Int.self, at: 0) == 1)
            // A new file added later is the only one applied.
            try directory.write("0011_later.sql", "CREATE TABLE later (id int);")
            #expect(try Migrator(directory: directory.url).migrate(on: connection).map(\.version) == [11])
        }
    }

    @Test func failingFileRollsBackAndIsNamedWithItsSQLState() throws {
        var files = Self.files
        files["0003_broken.sql"] = """
            CREATE TABLE half_done (id int);
            INSERT INTO half_done VALUES (1);
            SELEC oops;
            """
        let directory = try MigrationDirectory(files)
        defer { directory.remove() }
        try TemporaryDatabase.with { database in
            let connection = try database.connect()
            let error = try #require(throws: MigrationError.self) {
                try Migrator(directory: directory.url).migrate(on: connection)
            }
            #expect(error.code == .migrationFailed)
            #expect(error.file == "0003_broken.sql")
            #expect(error.sqlState == "42601")
            #expect(String(describing: error).contains("0003_broken.sql"))
            #expect(String(describing: error).contains("42601"))
            // Nothing of the failing file remains and it is not recorded; earlier files are kept.
            #expect(try connection.query("SELECT to_regclass('half_done') IS NULL").first!.decode(Bool.self, at: 0))
            let versions = try connection.query("SELECT version FROM esteira_migrations ORDER BY version")
                .map { try $0.decode(Int.self, at: 0) }
            #expect(versions == [1, 2])
            // The lock was released: another session can take it at once.
            let other = try database.connect()
            #expect(try other.query("SELECT pg_try_advisory_lock($1)", [Migrator.advisoryLockKey])
                .first!.decode(Bool.self, at: 0))
        }
    }

    @Test func concurrentMigratorsApplyEachFileOnce() throws {
        var files = Self.files
        // Slow and not idempotent: applied twice, the CREATE TABLE would fail.
        files["0004_slow.sql"] = "SELECT pg_sleep(0.3); CREATE TABLE slow_once (id int);"
        let directory = try MigrationDirectory(files)
        defer { directory.remove() }
        try TemporaryDatabase.with { database in
            let migrator = try Migrator(directory: directory.url)
            let connections = [try database.connect(), try database.connect(), try database.connect()]
            let results = ResultBox(count: connections.count)
            DispatchQueue.concurrentPerform(iterations: connections.count) { index in
                results.set(index, Result { try migrator.migrate(on: connections[index]).map(\.version) })
            }
            let applied = try results.values.map { try $0!.get() }
            #expect(applied.flatMap { $0 }.sorted() == [1, 2, 4, 10])
            #expect(applied.filter { !$0.isEmpty }.count == 1)
            #expect(try connections[0].query("SELECT count(*) FROM esteira_migrations").first!.decode(Int.self, at: 0) == 4)
        }
    }

    @Test func changedChecksumIsReported() throws {
        let directory = try MigrationDirectory(Self.files)
        defer { directory.remove() }
        try TemporaryDatabase.with { database in
            let connection = try database.connect()
            try Migrator(directory: directory.url).migrate(on: connection)
            try directory.write("0002_events.sql", "CREATE TABLE job_events (job_id bigint); -- edited")
            try directory.write("0012_new.sql", "CREATE TABLE must_not_apply (id int);")
            let error = try #require(throws: MigrationError.self) {
                try Migrator(directory: directory.url).migrate(on: connection)
            }
            #expect(error.code == .checksumChanged)
            #expect(error.file == "0002_events.sql")
            // Nothing new is applied while an applied file differs.
            #expect(try connection.query("SELECT to_regclass('must_not_apply') IS NULL").first!.decode(Bool.self, at: 0))
        }
    }

    @Test(arguments: ["0001-core.sql", "core.sql", "0001_.sql", "0001_core.SQL", "0001_co re.sql", "x001_core.sql", "notes.txt"])
    func badFileNamesAreRejected(fileName: String) throws {
        let directory = try MigrationDirectory(["0002_fine.sql": "SELECT 1;", fileName: "SELECT 1;"])
        defer { directory.remove() }
        let error = try #require(throws: MigrationError.self) { try Migrator(directory: directory.url) }
        #expect(error.code == .badFileName)
        #expect(error.file == fileName)
    }

    @Test func duplicateVersionsAreRejected() throws {
        let directory = try MigrationDirectory(["0001_a.sql": "SELECT 1;", "1_b.sql": "SELECT 2;", ".hidden": "x"])
        defer { directory.remove() }
        let error = try #require(throws: MigrationError.self) { try Migrator(directory: directory.url) }
        #expect(error.code == .duplicateVersion)
        #expect(String(describing: error).contains("0001_a.sql"))
        #expect(String(describing: error).contains("1_b.sql"))
    }
}

/// Results written from concurrentPerform's threads.
final class ResultBox: @unchecked Sendable {
    private let lock = NSLock()
    private var storage: [Result<[Int], Error>?]
    init(count: Int) { storage = Array(repeating: nil, count: count) }
    func set(_ index: Int, _ value: Result<[Int], Error>) { lock.withLock { storage[index] = value } }
    var values: [Result<[Int], Error>?] { lock.withLock { storage } }
}
