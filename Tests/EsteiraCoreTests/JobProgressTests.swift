import EsteiraCore
import Foundation
import LeadMigrations
import Postgres
import Testing

/// JobTransitions.report against a real database migrated with the project's migrations.
@Suite struct JobProgressTests {
    static let migrations = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("migrations")

    @Test func aHandlerReportsOnlyOnItsRunningAttemptAndAnOwnerOnAnyStatus() throws {
        try TemporaryDatabase.with { database in
            let c = try database.connect()
            defer { c.close() }
            try Migrator(directory: Self.migrations, workloads: [LeadMigrations.workload]).migrate(on: c)
            let id = UUID()
            try c.execute("INSERT INTO jobs (id, kind, status, payload, attempts, max_attempts) VALUES ($1, 'noop', 'running', '{}', 2, 5)", [id])
            let half = JobProgress(percent: 50, done: 1, total: 2, message: "half")

            #expect(try JobTransitions.report(half, job: id, attempt: 2, on: c))
            #expect(try !JobTransitions.report(JobProgress(percent: 10), job: id, attempt: 1, on: c), "a stale attempt")
            let stored = try #require(try c.query("SELECT progress::text FROM jobs WHERE id = $1", [id]).first).decode(String.self, at: 0)
            #expect(JSONValue.parse(stored) == half.json)

            try c.execute("UPDATE jobs SET status = 'completed' WHERE id = $1", [id])
            #expect(try !JobTransitions.report(JobProgress(percent: 60), job: id, attempt: 2, on: c), "a finished attempt")
            #expect(try JobTransitions.report(JobProgress(percent: 100), job: id, on: c), "the job's owner, any status")

            let events = try c.query("SELECT status, attempt, detail::text FROM job_events WHERE job_id = $1 ORDER BY id", [id])
            #expect(try events.map { try $0.decode(String.self, at: 0) } == ["progress", "progress"])
            #expect(try events.map { try $0.decode(Int.self, at: 1) } == [2, 2])
            #expect(try JSONValue.parse(events[1].decode(String.self, at: 2))?["percent"]?.doubleValue == 100)
            #expect(try !JobTransitions.report(half, job: UUID(), on: c), "no such job")
        }
    }
}
