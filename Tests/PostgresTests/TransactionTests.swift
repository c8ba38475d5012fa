import Foundation
import Postgres
import Testing

@Suite struct TransactionTests {
    struct Boom: Error {}

    @Test func commitKeepsRowsAndRollbackOnThrowLeavesNothing() throws {
        let connection = try TestDatabase.connect()
        try TestDatabase.withTable("id int PRIMARY KEY", on: connection) { table in
            let inserted = try connection.transaction { conn in
                try conn.execute("INSERT INTO \(table) VALUES (1), (2)")
            }
            #expect(inserted == 2)
            #expect(throws: Boom.self) {
                try connection.transaction(isolation: .serializable) { conn in
                    try conn.execute("INSERT INTO \(table) VALUES (3)")
                    throw Boom()
                }
            }
            let count = try connection.query("SELECT count(*) FROM \(table)").first!.decode(Int.self, at: 0)
            #expect(count == 2)
            // Not left inside the serializable transaction.
            #expect(try connection.query("SHOW transaction_isolation").first!.decode(String.self, at: 0)
                == "read committed")
        }
    }

    @Test func swallowedStatementErrorMakesCommitFail() throws {
        let connection = try TestDatabase.connect()
        try TestDatabase.withTable("id int PRIMARY KEY", on: connection) { table in
            let error = try #require(throws: PostgresError.self) {
                try connection.transaction { conn in
                    try conn.execute("INSERT INTO \(table) VALUES (1)")
                    _ = try? conn.execute("INSERT INTO \(table) VALUES (1)")   // 23505, ignored
                }
            }
            #expect(error.code == .transactionRolledBack)
            #expect(try connection.query("SELECT count(*) FROM \(table)").first!.decode(Int.self, at: 0) == 0)
        }
    }

    @Test func isolationLevelIsApplied() throws {
        let connection = try TestDatabase.connect()
        let level = try connection.transaction(isolation: .repeatableRead) { conn in
            try conn.query("SHOW transaction_isolation").first!.decode(String.self, at: 0)
        }
        #expect(level == "repeatable read")
    }
}

@Suite struct PreparedStatementTests {
    @Test func preparedStatementRunsManyTimes() throws {
        let connection = try TestDatabase.connect()
        try TestDatabase.withTable("id int PRIMARY KEY, name text", on: connection) { table in
            let insert = try connection.prepare(name: "insert_\(table)", sql: "INSERT INTO \(table) VALUES ($1, $2)")
            for id in 1...100 {
                #expect(try connection.execute(insert, [id, "n\(id)"]).affectedRowCount == 1)
            }
            try connection.prepare(name: "find_\(table)", sql: "SELECT name FROM \(table) WHERE id = $1")
            let rows = try connection.executePrepared(name: "find_\(table)", parameters: [42])
            #expect(try rows.first?.decode(String.self, at: 0) == "n42")
            let error = try #require(throws: PostgresError.self) {
                try connection.executePrepared(name: "insert_\(table)", parameters: [1, "dup"])
            }
            #expect(error.sqlState == "23505")
            let missing = try #require(throws: PostgresError.self) {
                try connection.executePrepared(name: "never_prepared", parameters: [])
            }
            #expect(missing.sqlState == "26000")
        }
    }

    @Test func scriptRunsSeveralStatements() throws {
        let connection = try TestDatabase.connect()
        let table = TestDatabase.uniqueName("script")
        let rows = try connection.executeScript("""
            CREATE TABLE \(table) (id int);
            INSERT INTO \(table) VALUES (1), (2), (3);
            SELECT sum(id) FROM \(table);
            """)
        #expect(try rows.first?.decode(Int.self, at: 0) == 6)
        try connection.execute("DROP TABLE \(table)")
    }
}
