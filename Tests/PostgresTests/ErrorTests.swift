import Foundation
import Postgres
import Testing

@Suite struct ErrorTests {
    @Test func syntaxErrorCarriesSQLStateAndMessage() throws {
        let connection = try TestDatabase.connect()
        let error = try #require(throws: PostgresError.self) { try connection.query("SELEC 1") }
        #expect(error.code == .queryFailed)
        #expect(error.sqlState == "42601")
        #expect(error.message.contains("syntax error"))
        #expect(error.severity == "ERROR")
        #expect(String(describing: error).contains("42601"))
        // The connection is still usable after a statement error.
        #expect(try connection.query("SELECT 1").first?.decode(Int.self, at: 0) == 1)
    }

    @Test func undefinedTableIs42P01() throws {
        let connection = try TestDatabase.connect()
        let error = try #require(throws: PostgresError.self) {
            try connection.query("SELECT * FROM \(TestDatabase.uniqueName("missing"))")
        }
        #expect(error.sqlState == "42P01")
    }

    @Test func uniqueViolationNamesTheConstraintAndKeepsRowValuesOutOfDescription() throws {
        let connection = try TestDatabase.connect()
        try TestDatabase.withTable("email text CONSTRAINT email_unique UNIQUE", on: connection) { table in
            try connection.execute("INSERT INTO \(table) VALUES ($1)", ["secret@example.com"])
            let error = try #require(throws: PostgresError.self) {
                try connection.execute("INSERT INTO \(table) VALUES ($1)", ["secret@example.com"])
            }
            #expect(error.sqlState == "23505")
            #expect(error.constraintName == "email_unique")
            #expect(error.tableName == table)
            #expect(error.detail?.contains("secret@example.com") == true)
            #expect(!String(describing: error).contains("secret@example.com"))
            #expect(String(reflecting: error).contains("email_unique"))
        }
    }

    @Test func refusedPortIsConnectionFailedWithoutThePassword() throws {
        let password = "hunter2-\(UUID().uuidString)"
        let error = try #require(throws: PostgresError.self) {
            try PostgresConnection(url: "postgres://esteira:\(password)@127.0.0.1:1/esteira")
        }
        #expect(error.code == .connectionFailed)
        #expect(!String(describing: error).contains(password))
        #expect(!String(reflecting: error).contains(password))
        #expect(!String(describing: error).contains("postgres://"))
    }

    @Test func unknownHostDoesNotLeakThePassword() throws {
        let password = "p%40ss-\(UUID().uuidString)"
        let error = try #require(throws: PostgresError.self) {
            try PostgresConnection(url: "postgres://someone:\(password)@no-such-host.invalid:5432/db")
        }
        #expect(error.code == .connectionFailed)
        for text in [String(describing: error), String(reflecting: error), "\(error)"] {
            #expect(!text.contains(password))
            #expect(!text.contains(password.removingPercentEncoding!))
        }
    }

    @Test func configurationDescriptionRedactsThePassword() throws {
        let configuration = try PostgresConfiguration(url: "postgresql://app:s3cr%3At@db.example:6543/jobs?sslmode=disable")
        #expect(configuration.description == "postgres://app:***@db.example:6543/jobs")
        #expect(configuration.user == "app")
        #expect(configuration.port == 6543)
        #expect(configuration.database == "jobs")
        let error = try #require(throws: PostgresError.self) { try PostgresConfiguration(url: "mysql://x:pw@h/db") }
        #expect(error.code == .invalidConfiguration)
        #expect(!String(describing: error).contains("pw"))
    }

    @Test func unknownRoleAndDatabaseCarryTheirSQLState() throws {
        var components = try #require(URLComponents(string: try TestDatabase.url()))
        components.user = TestDatabase.uniqueName("nobody")
        components.password = "topsecret"
        let roleError = try #require(throws: PostgresError.self) { try PostgresConnection(url: components.string!) }
        #expect(roleError.code == .connectionFailed)
        #expect(roleError.sqlState == "28000")
        #expect(roleError.message.contains("does not exist"))
        #expect(!String(reflecting: roleError).contains("topsecret"))

        var database = try #require(URLComponents(string: try TestDatabase.url()))
        database.path = "/" + TestDatabase.uniqueName("nodb")
        let databaseError = try #require(throws: PostgresError.self) { try PostgresConnection(url: database.string!) }
        #expect(databaseError.code == .connectionFailed)
        #expect(databaseError.sqlState == "3D000")
    }

    @Test func terminatedBackendIsConnectionLostAndResetReconnects() throws {
        let connection = try TestDatabase.connect()
        let admin = try TestDatabase.connect()
        let pid = connection.backendPID
        _ = try admin.query("SELECT pg_terminate_backend($1)", [pid])
        let error = try #require(throws: PostgresError.self) {
            // The first statement may still be sent before libpq notices the close.
            for _ in 0..<3 { _ = try connection.query("SELECT 1") }
        }
        #expect(error.code == .connectionLost)
        #expect(!connection.isConnected)
        try connection.reset()
        #expect(connection.isConnected)
        #expect(connection.backendPID != pid)
        #expect(try connection.query("SELECT 2").first?.decode(Int.self, at: 0) == 2)
    }
}
