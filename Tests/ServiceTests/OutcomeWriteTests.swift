@testable import EsteiraCore
import Foundation
import Postgres
import Testing

/// A handler's writes made with its attempt's outcome: one call per type for a group of
/// outcomes, in the outcome's transaction (a failing write leaves the jobs running).
@Suite struct OutcomeWriteTests {
    /// Each call of `write` adds one row: its type and the values it got.
    struct Note: OutcomeWrite {
        var text: String
        static func write(_ all: [Note], on connection: PostgresConnection) throws {
            try connection.execute("INSERT INTO outcome_write_calls (kind, texts) VALUES ('note', $1)", [all.map(\.text)])
        }
    }

    struct Tally: OutcomeWrite {
        var n: Int
        static func write(_ all: [Tally], on connection: PostgresConnection) throws {
            try connection.execute("INSERT INTO outcome_write_calls (kind, texts) VALUES ('tally', $1)", [all.map { String($0.n) }])
        }
    }

    struct Refused: OutcomeWrite {
        static func write(_ all: [Refused], on connection: PostgresConnection) throws {
            try connection.execute("INSERT INTO outcome_write_calls (kind, texts) VALUES (NULL, NULL)")
        }
    }

    /// A scratch database with the calls' table and `count` noop jobs running their first
    /// attempt: the database (kept alive), a connection and the jobs with an outcome each.
    static func running(_ count: Int) async throws -> (ScratchDatabase, PostgresConnection, [UUID], [AttemptResult]) {
        let database = try await ScratchDatabase.migrated()
        let c = try database.connect()
        try c.execute("CREATE TABLE outcome_write_calls (n serial, kind text NOT NULL, texts text[] NOT NULL)")
        let ids = try JobStore(catalog: .builtIn).insert((0..<count).map { _ in NewJob(kind: "noop") }, on: c).map(\.id)
        let started = try AttemptStore.start(ids.map { AttemptClaim(id: $0, attempt: 1, redelivered: false) }, worker: "test", on: c)
        #expect(started.count == count)
        return (database, c, ids, ids.map { AttemptResult(id: $0, kind: "noop", attempt: 1, priority: 0, next: .completed) })
    }

    static func statuses(_ ids: [UUID], on c: PostgresConnection) throws -> [String] {
        try c.query("SELECT status FROM jobs WHERE id = ANY($1::uuid[])", [ids]).map { try $0.decode(String.self, at: 0) }
    }

    @Test func writesOfAGroupAreMadeOncePerTypeWithTheOutcomes() async throws {
        let (database, c, ids, started) = try await Self.running(3)
        var results = started
        defer { c.close(); _ = database }
        results[0].writes = [Note(text: "a"), Tally(n: 1)]
        results[1].next = .retry(delay: 1)
        results[1].writes = [Note(text: "b")]
        results[2].writes = [Tally(n: 2), Note(text: "c")]
        let finished = try AttemptStore.finish(results, on: c)
        #expect(finished.changed == Set(ids))
        let calls = try c.query("SELECT kind, texts FROM outcome_write_calls ORDER BY n").map {
            "\(try $0.decode(String.self, at: 0)): \(try $0.decode([String].self, at: 1).joined(separator: ","))"
        }
        #expect(calls == ["note: a,b,c", "tally: 1,2"])
        #expect(try Self.statuses(ids, on: c).sorted() == ["completed", "completed", "retrying"])
    }

    @Test func aFailingWriteLeavesTheOutcomesUnrecorded() async throws {
        let (database, c, ids, started) = try await Self.running(2)
        var results = started
        defer { c.close(); _ = database }
        results[0].writes = [Note(text: "a")]
        results[1].writes = [Refused()]
        let error = try #require(throws: PostgresError.self) { try AttemptStore.finish(results, on: c) }
        #expect(error.sqlState == "23502")
        #expect(try Self.statuses(ids, on: c) == ["running", "running"])
        #expect(try c.query("SELECT count(*) FROM outcome_write_calls")[0].decode(Int.self, at: 0) == 0)
        // Without the failing write, the same outcomes are recorded.
        results[1].writes = []
        try AttemptStore.finish(results, on: c)
        #expect(try Self.statuses(ids, on: c) == ["completed", "completed"])
    }
}
