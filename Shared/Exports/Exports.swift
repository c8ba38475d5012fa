import EsteiraCore
import EsteiraService

/// Exports: a CRM's leads sent to another system's table (`fichas`) over its REST API,
/// day by day from the newest day to the oldest, in batches, each lead's outcome kept as a
/// sync event. `POST /v1/exports` writes the export and its first `export.run` job; the
/// `exporter` executable runs it, handing the export from job to job until it is done.
public enum Exports: WorkloadModule {
    public static let workload: Workload = {
        // A job carries an export for a slice (30 s by default) plus the batch it is sending;
        // a killed exporter's slice is rescued within the heartbeat timeout.
        var run = KindPolicy()
        run.timeout = 900
        run.heartbeatTimeout = 60
        run.backoffBase = 2
        run.backoffCap = 300
        run.maxAttempts = 8
        run.concurrency = 16
        return Workload(
            name: "exports",
            // Enqueued by the api and by the exporter only: the payload names an export, whose
            // owner the api checked.
            kinds: [KindCatalog.Kind(name: ExportKinds.run, policy: run, isInternal: true)],
            // This workload's migrations take 0200-0299.
            migrations: [try! Migration(fileName: "0200_exports.sql", bytes: PackageResources._200_exports_sql)])
    }()

    public static var openAPI: OpenAPIPart? {
        OpenAPIPart(name: workload.name, json: PackageResources.exports_openapi_json)
    }

    public static var links: [String: String] { ["exports": "/v1/exports", "export_targets": "/v1/export-targets"] }

    public static var executable: String { "exporter" }

    static let sliceSetting = Setting("ESTEIRA_EXPORTER_SLICE",
                                      "Seconds a job carries an export before handing it to the next job, 1-3600 (default 30).")
    static let timeoutSetting = Setting("ESTEIRA_EXPORTER_REQUEST_TIMEOUT",
                                        "Seconds one batch request to a target may take, 1-600 (default 60).")
    static let waitSetting = Setting("ESTEIRA_EXPORTER_LONGEST_WAIT",
                                     "A target's Retry-After longer than this many seconds hands the export to a job that starts then, 0-600 (default 5).")

    public static var settings: [Setting] { [sliceSetting, timeoutSetting, waitSetting] }

    public static func addRoutes(to routes: RouteRecorder, runtime: Runtime) {
        ExportController(enqueuer: runtime.enqueuer, pool: runtime.pool).addRoutes(to: routes)
    }

    public static func addPages(to dashboard: DashboardRoutes, runtime: Runtime) {
        ExportPage(enqueuer: runtime.enqueuer, pool: runtime.pool).addPages(to: dashboard)
    }

    public static func handlers(runtime: Runtime) throws -> [String: any JobHandler] {
        let s = runtime.settings
        var settings = ExportHandler.Settings()
        settings.slice = try s.double(sliceSetting.name, default: 30, range: 1...3600)
        settings.requestTimeout = try s.double(timeoutSetting.name, default: 60, range: 1...600)
        settings.longestWait = try s.double(waitSetting.name, default: 5, range: 0...600)
        return [ExportKinds.run: ExportHandler(pool: runtime.pool, enqueuer: runtime.enqueuer, settings: settings, logger: runtime.logger)]
    }
}
