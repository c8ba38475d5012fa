import EsteiraCore
import Foundation
import Testing

@Suite struct WorkloadTests {
    static let workload = Workload(
        name: "demo",
        kinds: [KindCatalog.Kind(name: "demo.run", policy: KindPolicy())],
        migrations: [Migration(version: 1000, name: "demo", fileName: "1000_demo.sql", sql: "CREATE TABLE demo (id int);")])

    @Test func theCoreCatalogNamesNoWorkloadAndAWorkloadAddsItsKinds() throws {
        #expect(KindCatalog.builtIn.names == ["http", "noop"])
        let catalog = try KindCatalog.load(path: nil, workloads: [Self.workload])
        #expect(catalog.names == ["demo.run", "http", "noop"])
        #expect(catalog["demo.run"]?.handler == "demo.run")
        #expect(catalog.topology.kinds.contains("demo.run"))
    }

    @Test func aKindNameTakenTwiceIsRefused() {
        let clash = Workload(name: "clash", kinds: [KindCatalog.Kind(name: "noop", policy: KindPolicy())])
        let error = #expect(throws: ConfigurationError.self) { try KindCatalog.load(path: nil, workloads: [clash]) }
        #expect(error?.variable == "workload clash")
        #expect(throws: ConfigurationError.self) { try KindCatalog.load(path: nil, workloads: [Self.workload, Self.workload]) }
    }

    @Test func theKindsFileStillOverridesAWorkloadsPolicy() throws {
        var catalog = try KindCatalog.load(path: nil, workloads: [Self.workload])
        try catalog.overlay(yaml: "kinds:\n  demo.run: { maxAttempts: 2 }\n")
        #expect(catalog["demo.run"]?.policy.maxAttempts == 2)
    }

    @Test func migrationsOfFolderAndWorkloadsApplyInOneVersionOrder() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("esteira-workload-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try "SELECT 1;".write(to: dir.appendingPathComponent("0001_core.sql"), atomically: true, encoding: .utf8)
        try "SELECT 2;".write(to: dir.appendingPathComponent("1001_later.sql"), atomically: true, encoding: .utf8)
        let migrator = try Migrator(directory: dir, workloads: [Self.workload])
        #expect(migrator.migrations.map(\.version) == [1, 1000, 1001])

        try "SELECT 3;".write(to: dir.appendingPathComponent("1000_taken.sql"), atomically: true, encoding: .utf8)
        let error = #expect(throws: MigrationError.self) { try Migrator(directory: dir, workloads: [Self.workload]) }
        #expect(error.map { "\($0)" }?.contains("1000_demo.sql of demo") == true)
    }

    @Test func anEmbeddedMigrationIsNamedLikeAFile() throws {
        let m = try Migration(fileName: "0042_things.sql", bytes: Array("CREATE TABLE t ();".utf8))
        #expect(m.version == 42 && m.name == "things" && m.sql == "CREATE TABLE t ();")
        #expect(throws: MigrationError.self) { try Migration(fileName: "things.sql", bytes: []) }
    }
}
