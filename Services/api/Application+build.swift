import AMQP
import EsteiraCore
import EsteiraService
import Hummingbird
import Logging
import Postgres

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

/// Builds the api: its database pool, the admin bootstrap, and the router.
func buildApplication(configuration: EsteiraConfiguration, adminToken: String?,
                      logger: Logger) async throws -> some ApplicationProtocol {
    let pool = PostgresPool(configuration: try PostgresConfiguration(url: configuration.databaseURL),
                            maxConnections: configuration.databasePoolSize)
    let principals = PrincipalStore(pool: pool)
    if let adminToken {
        try await principals.bootstrapAdmin(token: adminToken)
        logger.info("admin principal ready", metadata: ["name": "\(PrincipalStore.bootstrapAdminName)"])
    } else {
        logger.warning("ESTEIRA_ADMIN_TOKEN is not set: no admin token was bootstrapped")
    }
    let router = buildRouter(pool: pool, principals: principals,
                             broker: try AMQPConfiguration(url: configuration.amqpURL))
    return Application(
        router: router,
        configuration: .init(address: .hostname(configuration.httpHost, port: configuration.httpPort),
                             serverName: "esteira-api"),
        services: [PoolService(pool: pool)],
        logger: logger
    )
}

/// The api's routes: operations endpoints open, everything under /v1 behind a bearer token.
func buildRouter(pool: PostgresPool, principals: PrincipalStore,
                 broker: AMQPConfiguration) -> Router<APIRequestContext> {
    let router = Router(context: APIRequestContext.self)
    router.add(middleware: ProblemMiddleware())
    router.add(middleware: LogRequestsMiddleware(.debug))
    router.add(middleware: MetricsMiddleware())
    router.addOperationsRoutes(checks: [.database(pool), .broker(broker)])
    router.get("/") { _, _ in Index() }
    let v1 = router.group("v1").add(middleware: BearerAuthMiddleware(principals: principals))
    PrincipalController().addRoutes(to: v1)
    return router
}

/// `GET /`: where to go next.
struct Index: ResponseCodable {
    var name = "esteira-api"
    var links = ["health": "/healthz", "metrics": "/metrics", "whoami": "/v1/whoami"]
}
