@testable import EsteiraCore
import Foundation
import Testing

@Suite struct JobTransitionsTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// "Every state change is an event" holds by construction: only JobTransitions writes
    /// job_events.
    @Test func nothingElseWritesJobEvents() throws {
        var writers: [String] = []
        for folder in ["Shared", "Services"] {
            let base = Self.root.appendingPathComponent(folder)
            let files = FileManager.default.enumerator(at: base, includingPropertiesForKeys: nil)!
            for case let url as URL in files where url.pathExtension == "swift" {
                let text = try String(contentsOf: url, encoding: .utf8)
                if text.range(of: "INSERT INTO job_events", options: .caseInsensitive) != nil {
                    writers.append(url.path.replacingOccurrences(of: Self.root.path + "/", with: ""))
                }
            }
        }
        #expect(writers == ["Shared/EsteiraCore/Jobs/JobTransitions.swift"])
    }

    @Test func aStatementRecordsTheEventsOfWhatItChanged() {
        let sql = JobTransitions.statement(before: ["d AS (SELECT 1)"], change: "UPDATE jobs SET x = 1 RETURNING id",
                                           effects: ["e AS (DELETE FROM job_leases)"], batches: .unchanged, select: "id")
        #expect(sql.hasPrefix("WITH d AS (SELECT 1),\nchanged AS (\nUPDATE jobs SET x = 1 RETURNING id\n),\ne AS (DELETE FROM job_leases),"))
        #expect(sql.contains("SELECT id, kind, owner_id, event_status, event_attempt, event_detail FROM changed"))
        #expect(sql.hasSuffix("SELECT id FROM changed"))
        // No NOTIFY: PostgreSQL would serialize every job change's commit behind the others'.
        #expect(!sql.contains("pg_notify"))
        #expect(!sql.contains("batches"))
    }

    /// A change that opens or finishes jobs moves its batches' counts of open jobs, in the
    /// same statement: by one per opened job, by minus one per job it finished.
    @Test func aStatementCountsTheOpenJobsOfItsBatches() {
        let opens = JobTransitions.statement(change: "INSERT INTO jobs DEFAULT VALUES RETURNING id, batch_id", batches: .opens, select: "id")
        #expect(opens.contains("UPDATE batches b SET open_jobs = b.open_jobs + d.n") && opens.contains("sum(1)::int AS n FROM changed"))
        let ends = JobTransitions.statement(change: "UPDATE jobs SET status = 'dead' RETURNING id, batch_id, status", batches: .ends,
                                            select: "id, \(JobTransitions.endedBatches)")
        #expect(ends.contains("sum(CASE WHEN status IN ('completed', 'dead', 'cancelled') THEN -1 ELSE 0 END)::int"))
        #expect(ends.contains("FROM batch_open WHERE open_jobs = 0"))
        let a = UUID(), b = UUID()
        #expect(JobTransitions.endedBatchIDs("\(a.uuidString.lowercased()),\(b.uuidString.lowercased())") == [a, b])
        #expect(JobTransitions.endedBatchIDs(nil).isEmpty)
    }

    @Test func progressIsBoundedAndKeepsItsDetail() {
        let p = JobProgress(percent: 140, done: 3, total: 7, message: String(repeating: "x", count: 2000), detail: ["run": .number(9)])
        #expect(p.percent == 100)
        #expect(p.message?.count == 1000)
        #expect(p.json["run"]?.doubleValue == 9 && p.json["done"]?.doubleValue == 3 && p.json["total"]?.doubleValue == 7)
        #expect(JobProgress(percent: -5).json["percent"]?.doubleValue == 0)
        #expect(JobProgress().json == .object([:]))
    }
}
