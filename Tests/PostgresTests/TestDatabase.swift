import Foundation
import Postgres
import Testing

/// Why a test could not start: its server is not configured.
struct TestSetupError: Error, CustomStringConvertible {
    let description: String
}

/// The server under test, from ESTEIRA_TEST_DATABASE_URL. Tests fail (not skip) without it,
/// so a CI run without a server cannot pass silently.
enum TestDatabase {
    static func url() throws -> String {
        guard let url = ProcessInfo.processInfo.environment["ESTEIRA_TEST_DATABASE_URL"], !url.isEmpty else {
            throw TestSetupError(description: "ESTEIRA_TEST_DATABASE_URL is not set: the Postgres tests need a "
                + "PostgreSQL server, e.g. ESTEIRA_TEST_DATABASE_URL=postgres://esteira@127.0.0.1:5440/esteira")
        }
        return url
    }

    static func configuration(applicationName: String? = nil) throws -> PostgresConfiguration {
        try PostgresConfiguration(url: url(), applicationName: applicationName)
    }

    static func connect(applicationName: String? = nil) throws -> PostgresConnection {
        try PostgresConnection(configuration: configuration(applicationName: applicationName))
    }

    /// A name no other test uses, safe as an unquoted identifier.
    static func uniqueName(_ prefix: String) -> String {
        prefix + "_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
    }

    /// Creates a table (`columns` is the SQL column list), runs `body`, drops the table.
    static func withTable<T>(_ columns: String, on connection: PostgresConnection,
                             _ body: (String) throws -> T) throws -> T {
        let table = uniqueName("t")
        try connection.execute("CREATE TABLE \(table) (\(columns))")
        defer { _ = try? connection.execute("DROP TABLE IF EXISTS \(table)") }
        return try body(table)
    }
}
