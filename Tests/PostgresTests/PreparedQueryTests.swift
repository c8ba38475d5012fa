import Foundation
import Postgres
import Testing

/// `queryPrepared`: a statement prepared once per connection, then executed by name.
@Suite struct PreparedQueryTests {
    /// The statements this connection's session holds, prepared through the protocol.
    static func prepared(on connection: PostgresConnection) throws -> [String: String] {
        var all: [String: String] = [:]
        for row in try connection.query("SELECT name, statement FROM pg_prepared_statements WHERE NOT from_sql") {
            all[try row.decode(String.self, at: 0)] = try row.decode(String.self, at: 1)
        }
        return all
    }

    @Test func aStatementIsPreparedOnceAndRunsWithEachRunsParameters() throws {
        let connection = try TestDatabase.connect()
        let sql = "SELECT $1::int * 2, $2::text || '!'"
        for n in 1...5 {
            let row = try #require(try connection.queryPrepared(sql, [n, "run \(n)"]).first)
            #expect(try row.decode(Int.self, at: 0) == n * 2)
            #expect(try row.decode(String.self, at: 1) == "run \(n)!")
        }
        let statements = try Self.prepared(on: connection)
        #expect(statements.count == 1)
        #expect(statements.values.first == sql)
    }

    @Test func otherParameterTypesRunUnpreparedWithTheirOwnValues() throws {
        let connection = try TestDatabase.connect()
        let sql = "SELECT coalesce($1::text, 'none')"
        #expect(try connection.queryPrepared(sql, ["a"]).first?.decode(String.self, at: 0) == "a")
        // A nil is sent untyped: not the prepared types, so it runs as a plain query.
        #expect(try connection.queryPrepared(sql, [nil]).first?.decode(String.self, at: 0) == "none")
        #expect(try connection.queryPrepared(sql, ["b"]).first?.decode(String.self, at: 0) == "b")
        #expect(try Self.prepared(on: connection).count == 1)
    }

    @Test func aStatementPreparedInARolledBackTransactionStaysPrepared() throws {
        let connection = try TestDatabase.connect()
        try TestDatabase.withTable("id int PRIMARY KEY", on: connection) { table in
            let insert = "INSERT INTO \(table) VALUES ($1) RETURNING id"
            try connection.executeScript("BEGIN")
            try connection.queryPrepared(insert, [1])
            try connection.executeScript("ROLLBACK")
            // Prepared statements outlive a rollback: the name the cache holds still works.
            #expect(try connection.queryPrepared(insert, [2]).first?.decode(Int.self, at: 0) == 2)
            #expect(try connection.query("SELECT array_agg(id) FROM \(table)").first?.decode([Int].self, at: 0) == [2])
        }
    }

    @Test func aFailingStatementIsNotKeptAndTheConnectionGoesOn() throws {
        let connection = try TestDatabase.connect()
        let error = try #require(throws: PostgresError.self) { try connection.queryPrepared("SELECT * FROM no_such_table_here WHERE $1::int = 1", [1]) }
        #expect(error.sqlState == "42P01")
        #expect(try Self.prepared(on: connection).isEmpty)
        #expect(try connection.queryPrepared("SELECT $1::int + 1", [41]).first?.decode(Int.self, at: 0) == 42)
    }

    @Test func aResetConnectionPreparesAgain() throws {
        let connection = try TestDatabase.connect()
        let sql = "SELECT $1::int + 1"
        #expect(try connection.queryPrepared(sql, [1]).first?.decode(Int.self, at: 0) == 2)
        try connection.reset()
        // A new session has none of the old statements; running the old name would fail.
        #expect(try connection.queryPrepared(sql, [2]).first?.decode(Int.self, at: 0) == 3)
        #expect(try Self.prepared(on: connection).count == 1)
    }

    @Test func statementsBeyondTheLimitRunUnprepared() throws {
        let connection = try TestDatabase.connect()
        let limit = PostgresConnection.preparedStatementLimit
        for n in 0...limit {
            #expect(try connection.queryPrepared("SELECT $1::int + \(n)", [1]).first?.decode(Int.self, at: 0) == 1 + n)
        }
        let statements = try Self.prepared(on: connection)
        #expect(statements.count == limit)
        #expect(!statements.values.contains("SELECT $1::int + \(limit)"))
    }
}
