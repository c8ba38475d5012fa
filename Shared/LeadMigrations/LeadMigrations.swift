import EsteiraCore
import EsteiraService

/// Lead migrations: every lead of an import run moved into a funnel column, in batches.
/// `POST /v1/lead-migrations` writes a migration and its planning job; the planning job
/// (`lead-migration.plan`) cuts the run into batches and enqueues one `lead-migration.batch`
/// job each; a batch moves its leads in one short transaction and counts them on the
/// migration, whose progress shows on the planning job.
public enum LeadMigrations: WorkloadModule {
    public static let workload: Workload = {
        // Planning is quick; a batch is one short transaction, retried a few times before it
        // counts as failed.
        var plan = KindPolicy()
        plan.timeout = 600
        plan.concurrency = 4
        var batch = KindPolicy()
        batch.timeout = 120
        batch.backoffBase = 0.5
        batch.concurrency = 32
        return Workload(
            name: "lead-migrations",
            // Enqueued by POST /v1/lead-migrations and the plan handler only: their payloads name
            // a migration, whose owner the api checks.
            kinds: [KindCatalog.Kind(name: LeadMigrationKinds.plan, policy: plan, isInternal: true),
                    KindCatalog.Kind(name: LeadMigrationKinds.batch, policy: batch, isInternal: true)],
            // Version 4 from before lead migrations were a module of their own (databases
            // that have it keep it); this workload's next migrations take 0100-0199. SwiftPM names the
            // embedded file by its name with the first digit and each dot made "_".
            migrations: [try! Migration(fileName: "0004_lead_migrations.sql", bytes: PackageResources._004_lead_migrations_sql),
                         try! Migration(fileName: "0100_lead_owners.sql", bytes: PackageResources._100_lead_owners_sql)])
    }()

    public static var openAPI: OpenAPIPart? {
        OpenAPIPart(name: workload.name, json: PackageResources.lead_migrations_openapi_json)
    }

    public static var links: [String: String] { ["lead_migrations": "/v1/lead-migrations"] }

    public static func addRoutes(to routes: RouteRecorder, runtime: Runtime) {
        LeadMigrationController(enqueuer: runtime.enqueuer, pool: runtime.pool).addRoutes(to: routes)
    }

    public static func addPages(to dashboard: DashboardRoutes, runtime: Runtime) {
        LeadMigrationPage(pool: runtime.pool).addPages(to: dashboard)
    }

    public static func handlers(runtime: Runtime) throws -> [String: any JobHandler] {
        [LeadMigrationKinds.plan: LeadMigrationPlanHandler(pool: runtime.pool, enqueuer: runtime.enqueuer),
         LeadMigrationKinds.batch: LeadMigrationBatchHandler(pool: runtime.pool)]
    }
}
