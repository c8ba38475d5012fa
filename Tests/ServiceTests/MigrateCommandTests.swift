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

    @Test func appliesEveryProjectMigrationOnceAndRerunIsANoOp() async throws {
        let db = try ScratchDatabase()
        let files = try FileManager.default.contentsOfDirectory(
            atPath: TestPaths.repositoryRoot.appendingPathComponent("migrations").path).filter { $0.hasSuffix(".sql") }
        let env = ["ESTEIRA_DATABASE_URL": db.url, "ESTEIRA_LOG_FORMAT": "text",
                   "ESTEIRA_MIGRATIONS_DIR": TestPaths.repositoryRoot.appendingPathComponent("migrations").path]
        let first = try await runToCompletion(api, ["migrate"], environment: env)
        #expect(first.status == 0, "\(first.output)")
        #expect(try count("SELECT count(*) FROM esteira_migrations", in: db) == files.count)
        let second = try await runToCompletion(api, ["migrate"], environment: env)
        #expect(second.status == 0, "\(second.output)")
        #expect(second.output.contains("up to date"), "\(second.output)")
        #expect(try count("SELECT count(*) FROM esteira_migrations", in: db) == files.count)
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
