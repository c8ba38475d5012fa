import AMQP
import EsteiraCore
import EsteiraService
import Foundation
import LeadMigrations
import Logging
import Postgres
import Testing

/// The lead migrations module as a workload: its kinds, its migration, its OpenAPI part,
/// and its handlers' input checks, with no server.
@Suite struct LeadMigrationsWorkloadTests {
    @Test func itsMigrationIsByteForByteTheOneDatabasesAlreadyApplied() {
        // 0004_lead_migrations.sql as it was applied before lead migrations became a module:
        // the migrator refuses a changed checksum, so existing databases upgrade only if it is equal.
        let migration = LeadMigrations.workload.migrations[0]
        #expect(migration.version == 4 && migration.name == "lead_migrations")
        let digest = HMACSHA256.sha256(Array(migration.sql.utf8)).map { String(format: "%02x", $0) }.joined()
        #expect(digest == "23abe51f92a60c4c1b9c261655d853c7c500ec886b9efa32aaf7ef880c9918e8")
    }

    @Test func itsKindsAndPartOfTheDocument() throws {
        let catalog = try KindCatalog.load(path: nil, workloads: [LeadMigrations.workload])
        #expect(catalog[LeadMigrationKinds.plan]?.policy.concurrency == 4)
        #expect(catalog[LeadMigrationKinds.batch]?.policy.backoffBase == 0.5)
        let part = try #require(LeadMigrations.openAPI)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(part.json)) as? [String: Any])
        #expect(Set((object["paths"] as? [String: Any] ?? [:]).keys)
                == ["/v1/lead-migrations", "/v1/lead-migrations/{id}", "/v1/lead-migrations/{id}/cancel"])
    }

    static func context(_ payload: String, kind: String, attempt: Int = 1) -> JobContext {
        JobContext(id: UUID(), kind: kind, payloadText: payload, payload: JSONValue.parse(payload) ?? .null,
                   attempt: attempt, maxAttempts: 5, kindInfo: KindCatalog.Kind(name: kind, policy: KindPolicy()))
    }

    @Test(arguments: [#"{}"#, #"{"lead_migration_id": "nope"}"#, #"{"lead_migration_id": 7}"#])
    func aPlanWithoutAMigrationIdIsAPermanentFailure(payload: String) async throws {
        // Nothing connects: the payload is refused before the pool or the link is used.
        let pool = PostgresPool(configuration: try PostgresConfiguration(url: "postgres://nobody@127.0.0.1:1/none"))
        let link = BrokerLink(configuration: try AMQPConfiguration(url: "amqp://guest:guest@127.0.0.1:1/"), label: "unit",
                              logger: Logger(label: "unit"))
        let enqueuer = Enqueuer(store: JobStore(catalog: .builtIn), pool: pool, link: link, logger: Logger(label: "unit"))
        let error = await #expect(throws: JobError.self) {
            try await LeadMigrationPlanHandler(pool: pool, enqueuer: enqueuer).run(Self.context(payload, kind: LeadMigrationKinds.plan))
        }
        #expect(error?.errorClass == .permanent)
    }

    @Test(arguments: [#"{"lead_migration_id": "9b2f4c1e-0000-4000-8000-000000000001"}"#,
                      #"{"lead_migration_id": "9b2f4c1e-0000-4000-8000-000000000001", "batch": 1.5}"#])
    func aBatchWithoutItsNumberIsAPermanentFailure(payload: String) async throws {
        let pool = PostgresPool(configuration: try PostgresConfiguration(url: "postgres://nobody@127.0.0.1:1/none"))
        let error = await #expect(throws: JobError.self) {
            try await LeadMigrationBatchHandler(pool: pool).run(Self.context(payload, kind: LeadMigrationKinds.batch))
        }
        #expect(error?.errorClass == .permanent)
    }
}
