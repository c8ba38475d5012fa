import EsteiraCore
import Foundation
import Postgres
import Testing

/// Rules the schema keeps itself, beside the code that writes it.
@Suite struct SchemaRuleTests {
    /// jobs.kind is checked without a regular expression (migration 0008); the rule must stay
    /// the one the kinds file enforces.
    @Test func theJobsTableTakesExactlyTheKindNamesTheCatalogTakes() async throws {
        let database = try await ScratchDatabase.migrated()
        let c = try database.connect()
        defer { c.close() }
        let names = ["noop", "a", "x9", "mail.send", "a-b_c.d", "z" + String(repeating: "9", count: 62),
                     "z" + String(repeating: "9", count: 63), "", "9a", "_a", ".a", "-a", "Noop", "aB", "a b",
                     "ação", "a/b", "a:b", "a\u{1}", "ñ", "a\n"]
        for name in names {
            let accepted: Bool
            do {
                try c.execute("INSERT INTO jobs (id, kind, status, payload, max_attempts) VALUES ($1, $2, 'queued', '{}', 1)",
                              [UUID(), name])
                accepted = true
            } catch let error as PostgresError {
                #expect(error.sqlState == "23514", "\(name.debugDescription): \(error)")
                accepted = false
            }
            #expect(accepted == KindCatalog.isValidName(name), "\(name.debugDescription): the table \(accepted ? "took" : "refused") it")
        }
        #expect(try c.query("SELECT count(*) FROM jobs").first!.decode(Int.self, at: 0) == names.filter(KindCatalog.isValidName).count)
    }
}
