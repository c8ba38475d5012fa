import Dashboard
import EsteiraCore
import EsteiraService
import Foundation
import Hummingbird
import Logging
import Postgres
import ServiceLifecycle

/// What the api needs beyond the shared configuration.
struct APISettings {
    var adminToken: String?
    /// Largest job payload, bytes of JSON (ESTEIRA_API_MAX_PAYLOAD_BYTES).
    var maxPayloadBytes = 1 << 20
    /// Largest request body (ESTEIRA_API_MAX_BODY_BYTES): a batch of jobs.
    var maxBodyBytes = 4 << 20
    /// Per-principal request rate and event streams.
    var limits = PrincipalLimits.Configuration()
    /// Seconds between keep-alive lines of a quiet event stream (ESTEIRA_API_SSE_KEEPALIVE).
    var keepAlive = 15
    /// Where the dashboard reads queue depths (ESTEIRA_RABBITMQ_MANAGEMENT_URL).
    var dashboard = Dashboard.Settings()
}

/// The api's routes, with the services they need added to `runtime`: operations endpoints
/// open, everything under /v1 behind a bearer token, every workload's routes beside the
/// core ones. Throws when the routes and /openapi.json disagree.
func buildRouter(runtime: Runtime, settings: APISettings) async throws -> Router<APIRequestContext> {
    let pool = runtime.pool, logger = runtime.logger
    let principals = PrincipalStore(pool: pool)
    if let adminToken = settings.adminToken {
        if try await principals.bootstrapAdmin(token: adminToken).revoked {
            logger.warning("the admin principal was revoked and ESTEIRA_ADMIN_TOKEN still holds its token: it stays revoked; set a new token to restore it")
        } else {
            logger.info("admin principal ready", metadata: ["name": "\(PrincipalStore.bootstrapAdminName)"])
        }
    } else {
        logger.warning("ESTEIRA_ADMIN_TOKEN is not set: no admin token was bootstrapped")
    }
    let enqueuer = Enqueuer(store: JobStore(catalog: runtime.catalog, maxPayloadBytes: settings.maxPayloadBytes),
                            pool: pool, link: runtime.link, logger: logger)
    let feed = ChangeFeed(configuration: try PostgresConfiguration(url: runtime.configuration.databaseURL), logger: logger)
    runtime.add(EventFeedService(feed: feed, link: runtime.link, logger: logger))

    let router = Router(context: APIRequestContext.self)
    router.add(middleware: ProblemMiddleware())
    router.add(middleware: LogRequestsMiddleware(.debug))
    router.add(middleware: MetricsMiddleware())
    let limits = PrincipalLimits(configuration: settings.limits)
    let routes = RouteRecorder(router: router, authentication: BearerAuthMiddleware(principals: principals), limits: limits)
    router.addOperationsRoutes(checks: runtime.healthChecks)
    routes.record(.get, "/healthz")
    routes.record(.get, "/metrics")
    let document = try OpenAPIDocument.assemble(
        base: OpenAPIPart(name: "api", json: PackageResources.api_openapi_json),
        parts: runtime.workloads.compactMap { $0.openAPI },
        kinds: runtime.catalog.names, enqueueable: runtime.catalog.enqueueableNames)
    routes.get("/openapi.json", open: true) { _, _ in
        Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: document.data)))
    }
    // Browsers get the dashboard; API clients the index of links.
    let index = Index(workloads: runtime.workloads)
    router.get("/") { request, _ -> Response in
        if DashboardRoutes.wantsHTML(request) { return .redirect(to: "/ui/", type: .found) }
        return try APIJSON.response(index)
    }
    PrincipalController(principals: principals).addRoutes(to: routes)
    let jobs = JobController(enqueuer: enqueuer, pool: pool, maxBodyBytes: settings.maxBodyBytes)
    jobs.addRoutes(to: routes)
    BatchController(jobs: jobs, batches: Batches(store: enqueuer.store), pool: pool).addRoutes(to: routes)
    DeadLetterController(enqueuer: enqueuer, pool: pool).addRoutes(to: routes)
    StatsController(pool: pool).addRoutes(to: routes)
    let stream = JobEventStream(pool: pool, feed: feed, limits: limits, keepAlive: settings.keepAlive)
    EventsController(stream: stream).addRoutes(to: routes)
    ScheduleController(store: ScheduleStore(catalog: runtime.catalog), pool: pool).addRoutes(to: routes)
    QueueMetricsController(pool: pool).addRoutes(to: routes)
    KindController(catalog: runtime.catalog, pool: pool).addRoutes(to: routes)
    LimiterController(catalog: runtime.catalog, pool: pool).addRoutes(to: routes)
    BreakerController(catalog: runtime.catalog, pool: pool).addRoutes(to: routes)
    for workload in runtime.workloads { try workload.addRoutes(to: routes, runtime: runtime) }
    Dashboard.addRoutes(to: router, runtime: runtime, enqueuer: enqueuer, principals: principals, stream: stream, limits: limits,
                        settings: settings.dashboard)
    try routes.checkDocumented(by: document)
    return router
}

/// Declares the topology and starts the job event feed with the api; stops the feed (ending
/// open event streams) at shutdown.
struct EventFeedService: Service {
    let feed: ChangeFeed
    let link: BrokerLink
    var logger = Logger(label: "esteira.api")

    func run() async throws {
        let feed = self.feed
        do {
            // Connecting declares the topology (idempotent), so the queues exist before the
            // first job is enqueued, and a broken broker shows in the log at once.
            try await link.withConnection { _ in }
        } catch {
            logger.warning("RabbitMQ not reachable at start; enqueued jobs stay in PostgreSQL and the outbox relay publishes them once it is",
                           metadata: ["error": "\(error)"])
        }
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            DispatchQueue.global().async { feed.start(); c.resume() }
        }
        try? await gracefulShutdown()
        feed.stop()
    }
}

/// `GET /`: where to go next: the core's routes and every workload's.
struct Index: Encodable, Sendable {
    var name = "esteira-api"
    var links = ["health": "/healthz", "metrics": "/metrics", "openapi": "/openapi.json", "jobs": "/v1/jobs",
                 "dead_letters": "/v1/dead-letters", "stats": "/v1/stats", "events": "/v1/events", "whoami": "/v1/whoami",
                 "schedules": "/v1/schedules", "queue_metrics": "/v1/metrics/queues"]
    var workloads: [String]

    init(workloads: [any WorkloadModule.Type]) {
        self.workloads = workloads.map { $0.workload.name }
        for workload in workloads { links.merge(workload.links) { core, _ in core } }
    }
}
