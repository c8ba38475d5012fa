import Foundation
import Postgres
import Testing

@Suite struct BulkWriteTests {
    static let rowCount = 50_000

    static func report(_ what: String, rows: Int, since start: ContinuousClock.Instant) {
        let elapsed = ContinuousClock.now - start
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        print("\(what): \(rows) rows in \(String(format: "%.3f", seconds)) s = \(Int(Double(rows) / seconds)) rows/s")
    }

    @Test func pipelineWritesFiftyThousandRows() throws {
        let connection = try TestDatabase.connect()
        try TestDatabase.withTable("id int PRIMARY KEY, name text, score float8", on: connection) { table in
            let start = ContinuousClock.now
            let results = try connection.pipeline { batch in
                for id in 0..<Self.rowCount {
                    try batch.append("INSERT INTO \(table) (id, name, score) VALUES ($1, $2, $3)",
                                     [Int32(id), "row \(id)", Double(id) / 2])
                }
            }
            Self.report("pipeline (unnamed statements)", rows: Self.rowCount, since: start)
            #expect(results.count == Self.rowCount)
            #expect(results.allSatisfy { $0.affectedRowCount == 1 })
            let summary = try #require(try connection.query("SELECT count(*), sum(id) FROM \(table)").first)
            #expect(try summary.decode(Int.self, at: 0) == Self.rowCount)
            #expect(try summary.decode(Int.self, at: 1) == (Self.rowCount - 1) * Self.rowCount / 2)
            let row = try #require(try connection.query("SELECT name, score FROM \(table) WHERE id = 31337").first)
            #expect(try row.decode(String.self, at: 0) == "row 31337")
            #expect(try row.decode(Double.self, at: 1) == 15668.5)
        }
    }

    @Test func pipelineWithPreparedStatementAndMixedResults() throws {
        let connection = try TestDatabase.connect()
        try TestDatabase.withTable("id int PRIMARY KEY, name text", on: connection) { table in
            try connection.prepare(name: "p_\(table)", sql: "INSERT INTO \(table) VALUES ($1, $2)")
            let start = ContinuousClock.now
            let results = try connection.pipeline { batch in
                for id in 0..<Self.rowCount { try batch.appendPrepared(name: "p_\(table)", [id, "n\(id)"]) }
                try batch.append("SELECT count(*) FROM \(table)")
            }
            Self.report("pipeline (prepared statement)", rows: Self.rowCount, since: start)
            #expect(results.count == Self.rowCount + 1)
            #expect(try results.last?.first?.decode(Int.self, at: 0) == Self.rowCount)
        }
    }

    @Test func failingPipelineStatementRollsBackTheBatch() throws {
        let connection = try TestDatabase.connect()
        try TestDatabase.withTable("id int PRIMARY KEY", on: connection) { table in
            let error = try #require(throws: PostgresError.self) {
                try connection.pipeline { batch in
                    try batch.append("INSERT INTO \(table) VALUES ($1)", [1])
                    try batch.append("INSERT INTO \(table) VALUES ($1)", [1])
                    try batch.append("INSERT INTO \(table) VALUES ($1)", [2])
                }
            }
            #expect(error.sqlState == "23505")
            #expect(error.message.contains("statement 1"))
            #expect(try connection.query("SELECT count(*) FROM \(table)").first!.decode(Int.self, at: 0) == 0)
            // The connection left pipeline mode and still works.
            #expect(try connection.execute("INSERT INTO \(table) VALUES (5)") == 1)
        }
    }

    @Test func copyInFiftyThousandRowsWithHostileStrings() throws {
        let connection = try TestDatabase.connect()
        let hostile = ["tab\there", "new\nline", "carriage\rreturn", "back\\slash", "\\N", "\\", "end\\", "ünï ✓ 🚀", "", "a\\tb"]
        try TestDatabase.withTable("id int PRIMARY KEY, name text, tags text[], at timestamptz, blob bytea",
                                   on: connection) { table in
            let when = Date(timeIntervalSince1970: 1_700_000_000.5)
            let rows: [[PostgresEncodable?]] = (0..<Self.rowCount).map { id in
                [id, id % 7 == 0 ? nil : id % 11 == 0 ? "\\N" : hostile[id % hostile.count] + "#\(id)",
                 ["x\ty", "{brace}", "q\"uote"], when, [UInt8(id % 256), 0, 9]]
            }
            let start = ContinuousClock.now
            let copied = try connection.copyIn(table: table, columns: ["id", "name", "tags", "at", "blob"], rows: rows)
            Self.report("COPY FROM STDIN", rows: copied, since: start)
            #expect(copied == Self.rowCount)
            #expect(try connection.query("SELECT count(*) FROM \(table)").first!.decode(Int.self, at: 0) == Self.rowCount)
            #expect(try connection.query("SELECT count(*) FROM \(table) WHERE name IS NULL").first!
                .decode(Int.self, at: 0) == (Self.rowCount + 6) / 7)
            // The two-character string \N is data, not NULL.
            #expect(try connection.query("SELECT name FROM \(table) WHERE id = 11").first!
                .decode(String?.self, at: 0) == "\\N")
            for id in [1, 2, 3, 4, 5, 6, 8, 9, 10, 49_999] {
                let row = try #require(try connection.query("SELECT name, tags, at, blob FROM \(table) WHERE id = $1", [id]).first)
                #expect(try row.decode(String?.self, at: 0) == hostile[id % hostile.count] + "#\(id)")
                #expect(try row.decode([String].self, at: 1) == ["x\ty", "{brace}", "q\"uote"])
                #expect(try row.decode(Date.self, at: 2) == when)
                #expect(try row.decode([UInt8].self, at: 3) == [UInt8(id % 256), 0, 9])
            }
        }
    }

    @Test func copyRejectsABadRowAndLeavesNothing() throws {
        let connection = try TestDatabase.connect()
        try TestDatabase.withTable("id int PRIMARY KEY, name text", on: connection) { table in
            let error = try #require(throws: PostgresError.self) {
                try connection.copyIn(table: table, columns: ["id", "name"], rows: [[1, "a"], [2]])
            }
            #expect(error.code == .copyFailed)
            let duplicate = try #require(throws: PostgresError.self) {
                try connection.copyIn(table: table, columns: ["id", "name"], rows: [[1, "a"], [1, "b"]])
            }
            #expect(duplicate.sqlState == "23505")
            #expect(try connection.query("SELECT count(*) FROM \(table)").first!.decode(Int.self, at: 0) == 0)
        }
    }
}

@Suite struct NotificationTests {
    @Test func notificationCrossesConnections() throws {
        let listener = try TestDatabase.connect()
        let sender = try TestDatabase.connect()
        let channel = TestDatabase.uniqueName("Jobs")   // mixed case: the name is quoted
        try listener.listen(channel)
        try sender.notify(channel, payload: "hello ✓ 'quoted'")
        try sender.notify(channel, payload: "second")
        let first = try #require(try listener.waitForNotification(timeout: .seconds(5)))
        #expect(first.channel == channel)
        #expect(first.payload == "hello ✓ 'quoted'")
        #expect(first.pid == sender.backendPID)
        #expect(try listener.waitForNotification(timeout: .seconds(5))?.payload == "second")
        #expect(try listener.waitForNotification(timeout: .milliseconds(100)) == nil)

        try listener.unlisten(channel)
        try sender.notify(channel, payload: "unheard")
        #expect(try listener.waitForNotification(timeout: .milliseconds(200)) == nil)
    }

    @Test func timeoutReturnsNilAfterAboutTheTimeout() throws {
        let listener = try TestDatabase.connect()
        try listener.listen(TestDatabase.uniqueName("quiet"))
        let start = ContinuousClock.now
        #expect(try listener.waitForNotification(timeout: .milliseconds(300)) == nil)
        let elapsed = ContinuousClock.now - start
        #expect(elapsed >= .milliseconds(290))
    }

    @Test func notificationSentInATransactionArrivesAtCommit() throws {
        let listener = try TestDatabase.connect()
        let sender = try TestDatabase.connect()
        let channel = TestDatabase.uniqueName("tx")
        try listener.listen(channel)
        try sender.transaction { connection in
            try connection.notify(channel, payload: "after commit")
            #expect(try listener.waitForNotification(timeout: .milliseconds(100)) == nil)
        }
        #expect(try listener.waitForNotification(timeout: .seconds(5))?.payload == "after commit")
    }
}
