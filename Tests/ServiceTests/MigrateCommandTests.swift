import EsteiraCore
import Foundation
import Postgres
import Testing

/// `api migrate` (every executable has the same command) against scratch databases.
@Suite struct MigrateCommandTests {
    let api = TestPaths.executable("api")

    func count(_ sql: String, in db: ScratchDatabase) throws -> Int {
        let conn = try db.connect()
        defer { conn.close() }
        return try #require(try conn.query(sql).first).decode(Int.self, at: 0)
    }

    static var migrationsFolder: URL { TestPaths.repositoryRoot.appendingPathComponent("migrations") }
    /// The lead migrations workload's migration, compiled into every executable.
    static var leadMigrationsFile: URL {
        TestPaths.repositoryRoot.appendingPathComponent("Shared/LeadMigrations/Migrations/0004_lead_migrations.sql")
    }

    func versions(in db: ScratchDatabase) throws -> [Int] {
        let conn = try db.connect()
        defer { conn.close() }
        return try conn.query("SELECT version FROM esteira_migrations ORDER BY version").map { try $0.decode(Int.self, at: 0) }
    }

    @Test func appliesEveryProjectMigrationOnceAndRerunIsANoOp() async throws {
        let db = try ScratchDatabase()
        let files = try FileManager.default.contentsOfDirectory(atPath: Self.migrationsFolder.path).filter { $0.hasSuffix(".sql") }
        // The folder's files and the workloads' migrations (lead migrations: 4 and 100; exports: 200; store syncs: 300; messaging: 400 to 403; email: 500), in one order.
        let expected = (files.map { Int($0.prefix(4))! } + [4, 100, 200, 300, 400, 401, 402, 403, 500]).sorted()
        let env = ["ESTEIRA_DATABASE_URL": db.url, "ESTEIRA_LOG_FORMAT": "text", "ESTEIRA_MIGRATIONS_DIR": Self.migrationsFolder.path]
        let first = try await runToCompletion(api, ["migrate"], environment: env)
        #expect(first.status == 0, "\(first.output)")
        #expect(try versions(in: db) == expected)
        #expect(try count("SELECT count(*) FROM information_schema.tables WHERE table_name = 'lead_migrations'", in: db) == 1)
        let second = try await runToCompletion(api, ["migrate"], environment: env)
        #expect(second.status == 0, "\(second.output)")
        #expect(second.output.contains("up to date"), "\(second.output)")
        #expect(try versions(in: db) == expected)
    }

    /// A database migrated when 0004_lead_migrations.sql was a file of the migrations folder
    /// upgrades: the workload's compiled-in copy has the same checksum, so only the later
    /// migrations apply.
    @Test func aDatabaseMigratedBeforeWorkloadModulesUpgrades() async throws {
        let db = try ScratchDatabase()
        let old = FileManager.default.temporaryDirectory.appendingPathComponent("mig-old-\(UUID().uuidString)")
        try FileManager.default.copyItem(at: Self.migrationsFolder, to: old)
        defer { try? FileManager.default.removeItem(at: old) }
        try FileManager.default.copyItem(at: Self.leadMigrationsFile, to: old.appendingPathComponent("0004_lead_migrations.sql"))
        let conn = try db.connect()
        _ = try Migrator(directory: old).migrate(on: conn)
        conn.close()
        let env = ["ESTEIRA_DATABASE_URL": db.url, "ESTEIRA_LOG_FORMAT": "text", "ESTEIRA_MIGRATIONS_DIR": Self.migrationsFolder.path]
        let before = try versions(in: db)
        let result = try await runToCompletion(api, ["migrate"], environment: env)
        #expect(result.status == 0, "\(result.output)")
        #expect(try versions(in: db) == before + [100, 200, 300, 400, 401, 402, 403, 500], "only the workloads' later migrations apply")
        #expect(!result.output.contains("version=4 "), "\(result.output)")
    }

    @Test func aFailingFileIsRolledBackAndNamed() async throws {
        let db = try ScratchDatabase()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mig-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try "CREATE TABLE first_table (id int);".write(to: dir.appendingPathComponent("0001_first.sql"), atomically: true, encoding: .utf8)
        try "CREATE TABLE half_done (id int);\nSELECT * FROM no_such_table;"
            .write(to: dir.appendingPathComponent("0002_broken.sql"), atomically: true, encoding: .utf8)
        let result = try await runToCompletion(api, ["migrate", "--migrations", dir.path],
                                               environment: ["ESTEIRA_DATABASE_URL": db.url, "ESTEIRA_LOG_FORMAT": "text"])
        #expect(result.status != 0)
        #expect(result.output.contains("0002_broken.sql"), "\(result.output)")
        #expect(result.output.contains("42P01"), "no SQLSTATE in: \(result.output)")
        #expect(try count("SELECT count(*) FROM pg_tables WHERE tablename = 'first_table'", in: db) == 1)
        #expect(try count("SELECT count(*) FROM pg_tables WHERE tablename = 'half_done'", in: db) == 0)
        #expect(try count("SELECT count(*) FROM esteira_migrations", in: db) == 1)
    }

    @Test func aMissingFolderIsAClearError() async throws {
        let db = try ScratchDatabase()
        let result = try await runToCompletion(api, ["migrate", "--migrations", "/nonexistent/migrations"],
                                               environment: ["ESTEIRA_DATABASE_URL": db.url])
        #expect(result.status != 0)
        #expect(result.output.contains("/nonexistent/migrations"), "\(result.output)")
    }
}
