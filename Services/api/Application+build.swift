import AMQP
import EsteiraCore
import EsteiraService
import Foundation
import Hummingbird
import Logging
import Postgres
import ServiceLifecycle

/// The request context of the api: Hummingbird's, plus the authenticated caller.
struct APIRequestContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    /// Set by ``BearerAuthMiddleware`` on routes that require a token.
    var principal: Principal?

    init(source: Source) {
        self.coreContext = .init(source: source)
        self.principal = nil
    }
}

/// What the api needs beyond the shared configuration.
struct APISettings {
    var adminToken: String?
    var kindsFile: String?
    var signingSecret: String?
    /// Largest job payload, bytes of JSON (ESTEIRA_API_MAX_PAYLOAD_BYTES).
    var maxPayloadBytes = 1 << 20
    /// Largest request body (ESTEIRA_API_MAX_BODY_BYTES): a batch of jobs.
    var maxBodyBytes = 64 << 20
}

/// Builds the api: its database pool, broker link, event feed, admin bootstrap and routes.
func buildApplication(configuration: EsteiraConfiguration, settings: APISettings,
                      logger: Logger) async throws -> some ApplicationProtocol {
    let pool = PostgresPool(configuration: try PostgresConfiguration(url: configuration.databaseURL),
                            maxConnections: configuration.databasePoolSize)
    let principals = PrincipalStore(pool: pool)
    if let adminToken = settings.adminToken {
        try await principals.bootstrapAdmin(token: adminToken)
        logger.info("admin principal ready", metadata: ["name": "\(PrincipalStore.bootstrapAdminName)"])
    } else {
        logger.warning("ESTEIRA_ADMIN_TOKEN is not set: no admin token was bootstrapped")
    }
    let catalog = try KindCatalog.load(path: settings.kindsFile, signingSecret: settings.signingSecret)
    let amqp = try AMQPConfiguration(url: configuration.amqpURL)
    let link = BrokerLink(configuration: amqp, topology: catalog.topology, label: "api", logger: logger)
    let enqueuer = Enqueuer(store: JobStore(catalog: catalog, maxPayloadBytes: settings.maxPayloadBytes),
                            pool: pool, link: link, logger: logger)
    let feed = JobEventFeed(configuration: try PostgresConfiguration(url: configuration.databaseURL), logger: logger)
    let router = try buildRouter(pool: pool, principals: principals, enqueuer: enqueuer, feed: feed, broker: amqp,
                                 maxBodyBytes: settings.maxBodyBytes)
    return Application(
        router: router,
        configuration: .init(address: .hostname(configuration.httpHost, port: configuration.httpPort),
                             serverName: "esteira-api"),
        services: [PoolService(pool: pool), EventFeedService(feed: feed, link: link, logger: logger)],
        logger: logger
    )
}

/// The api's routes: operations endpoints open, everything under /v1 behind a bearer token.
/// Throws when the routes and /openapi.json disagree.
func buildRouter(pool: PostgresPool, principals: PrincipalStore, enqueuer: Enqueuer, feed: JobEventFeed,
                 broker: AMQPConfiguration, maxBodyBytes: Int) throws -> Router<APIRequestContext> {
    let router = Router(context: APIRequestContext.self)
    router.add(middleware: ProblemMiddleware())
    router.add(middleware: LogRequestsMiddleware(.debug))
    router.add(middleware: MetricsMiddleware())
    let routes = RouteRecorder(router: router, authentication: BearerAuthMiddleware(principals: principals))
    router.addOperationsRoutes(checks: [.database(pool), .broker(broker)])
    routes.record(.get, "/healthz")
    routes.record(.get, "/metrics")
    let document = OpenAPIDocument.shared.with(kinds: enqueuer.store.catalog.names)
    routes.get("/openapi.json", open: true) { _, _ in
        Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: document.data)))
    }
    router.get("/") { _, _ in Index() }
    PrincipalController(principals: principals).addRoutes(to: routes)
    JobController(enqueuer: enqueuer, pool: pool, maxBodyBytes: maxBodyBytes).addRoutes(to: routes)
    DeadLetterController(enqueuer: enqueuer, pool: pool).addRoutes(to: routes)
    StatsController(pool: pool).addRoutes(to: routes)
    EventsController(pool: pool, feed: feed).addRoutes(to: routes)
    LeadMigrationController(enqueuer: enqueuer, pool: pool).addRoutes(to: routes)
    ScheduleController(store: ScheduleStore(catalog: enqueuer.store.catalog), pool: pool).addRoutes(to: routes)
    QueueMetricsController(pool: pool).addRoutes(to: routes)
    let drift = routes.drift(from: document)
    guard drift.undocumented.isEmpty && drift.unserved.isEmpty else {
        throw OpenAPIDriftError(undocumented: drift.undocumented, unserved: drift.unserved)
    }
    return router
}

/// Declares the topology and starts the job event feed with the api; stops the feed (ending
/// open event streams) and closes the broker link at shutdown.
struct EventFeedService: Service {
    let feed: JobEventFeed
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
        link.close()
    }
}

/// `GET /`: where to go next.
struct Index: ResponseCodable {
    var name = "esteira-api"
    var links = ["health": "/healthz", "metrics": "/metrics", "openapi": "/openapi.json", "jobs": "/v1/jobs",
                 "dead_letters": "/v1/dead-letters", "stats": "/v1/stats", "events": "/v1/events", "whoami": "/v1/whoami",
                 "schedules": "/v1/schedules", "queue_metrics": "/v1/metrics/queues", "lead_migrations": "/v1/lead-migrations"]
}

/// The routes and /openapi.json disagree: a programming error caught at start.
struct OpenAPIDriftError: Error, CustomStringConvertible {
    var undocumented: [String]
    var unserved: [String]
    var description: String {
        "/openapi.json and the routes differ: served but not documented \(undocumented), documented but not served \(unserved)"
    }
}
