import Foundation
import Postgres
import Testing

struct TestSetupError: Error, CustomStringConvertible {
    let description: String
}

/// A database created for one test and dropped after it, so migrations start from nothing.
struct TemporaryDatabase {
    let configuration: PostgresConfiguration

    static func serverURL() throws -> String {
        guard let url = ProcessInfo.processInfo.environment["ESTEIRA_TEST_DATABASE_URL"], !url.isEmpty else {
            throw TestSetupError(description: "ESTEIRA_TEST_DATABASE_URL is not set: the migration tests need a "
                + "PostgreSQL server, e.g. ESTEIRA_TEST_DATABASE_URL=postgres://esteira@127.0.0.1:5440/esteira")
        }
        return url
    }

    /// Creates `test_<uuid>`, runs `body` with its configuration, drops it (even on failure).
    static func with<T>(_ body: (TemporaryDatabase) throws -> T) throws -> T {
        let url = try serverURL()
        let name = "test_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        let admin = try PostgresConnection(url: url)
        try admin.execute("CREATE DATABASE \(name)")
        defer { _ = try? admin.execute("DROP DATABASE IF EXISTS \(name) WITH (FORCE)") }
        var components = try #require(URLComponents(string: url))
        components.path = "/" + name
        return try body(TemporaryDatabase(configuration: PostgresConfiguration(url: components.string!)))
    }

    func connect() throws -> PostgresConnection {
        try PostgresConnection(configuration: configuration)
    }
}

/// A directory of migration files, removed afterwards.
struct MigrationDirectory {
    let url: URL

    init(_ files: [String: String]) throws {
        url = FileManager.default.temporaryDirectory
            .appendingPathComponent("migrations-" + UUID().uuidString, isDirectory: true)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        for (name, sql) in files { try write(name, sql) }
    }

    func write(_ name: String, _ sql: String) throws {
        try Data(sql.utf8).write(to: url.appendingPathComponent(name))
    }

    func remove() { try? FileManager.default.removeItem(at: url) }
}
