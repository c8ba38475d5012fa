import AMQP
import EsteiraCore
import Foundation
import Hummingbird
import Logging
import Postgres
import ServiceLifecycle
import Synchronization

/// What every executable runs on. Made from the executable's identity and its flags, it
/// reads the configuration (environment and flags, one style), sets up logging and
/// metrics, loads the kinds (built-in, every workload's, the kinds file), and opens the
/// database pool, the broker link and the enqueuer. The executable adds its services
/// (engines) and routes; ``run(routes:)`` serves `/healthz` and `/metrics` beside them and
/// runs everything in one `ServiceGroup` that shuts down gracefully on SIGTERM or SIGINT:
/// the HTTP server first, then the services in reverse order, then the pool and the link.
public final class Runtime: Sendable {
    /// The executable's name (`processor`).
    public let name: String
    /// The environment with the common flags laid over it: executables read their own
    /// settings through it.
    public let settings: SettingsReader
    /// The settings every executable shares.
    public let configuration: EsteiraConfiguration
    /// The executable's root logger.
    public let logger: Logger
    /// The deployment's workloads.
    public let workloads: [any WorkloadModule.Type]
    /// Every kind: built-in, the workloads', the kinds file's.
    public let catalog: KindCatalog
    /// The database pool (`ESTEIRA_DATABASE_POOL_SIZE` connections at most).
    public let pool: PostgresPool
    /// Where RabbitMQ is.
    public let amqp: AMQPConfiguration
    /// A publishing connection that declares the topology of ``catalog`` when it connects.
    public let link: BrokerLink
    /// Enqueues jobs (transaction, then confirmed publish on ``link``).
    public let enqueuer: Enqueuer

    private let services = Mutex<[any Service]>([])
    private let sharedObjects = Mutex<[String: any Sendable]>([:])
    private let closers = Mutex<[@Sendable () -> Void]>([])

    /// Reads the configuration and builds the shared resources of `identity`'s executable.
    /// Nothing connects yet: the pool and the link open their connections on first use.
    /// - Throws: ``ConfigurationError`` naming the variable at fault.
    public init(_ identity: ExecutableIdentity, options: ServiceOptions,
                environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        name = identity.name
        settings = options.reader(environment: environment)
        configuration = try EsteiraConfiguration(reader: settings, defaultHTTPPort: identity.defaultPort)
        logger = Observability.bootstrap(service: identity.name, configuration: configuration)
        workloads = identity.workloads
        var catalog = try KindCatalog.load(path: configuration.kindsFile, signingSecret: configuration.signingSecret,
                                           workloads: identity.workloads.map { $0.workload })
        catalog.queueType = configuration.queueType
        self.catalog = catalog
        pool = PostgresPool(configuration: try PostgresConfiguration(url: configuration.databaseURL,
                                                                     applicationName: "esteira-\(identity.name)"),
                            maxConnections: configuration.databasePoolSize)
        // No connection name: consumers and links name their connections by role.
        amqp = try AMQPConfiguration(url: configuration.amqpURL)
        link = BrokerLink(configuration: try AMQPConfiguration(url: configuration.amqpURL, connectionName: "esteira-\(identity.name)-publish"),
                          topology: catalog.topology, label: "\(identity.name)-publish", logger: logger)
        enqueuer = Enqueuer(store: JobStore(catalog: catalog), pool: pool, link: link, logger: logger)
        healthChecks = [.database(pool), .broker(amqp)]
        let pool = self.pool, link = self.link
        closers.withLock { $0 = [{ link.close() }, { pool.close() }] }
    }

    /// A pool of its own on the same database (`applicationName` tells it apart in
    /// `pg_stat_activity`), closed at shutdown.
    public func makePool(applicationName: String, maxConnections: Int) throws -> PostgresPool {
        let pool = PostgresPool(configuration: try PostgresConfiguration(url: configuration.databaseURL,
                                                                         applicationName: "esteira-\(applicationName)"),
                                maxConnections: maxConnections)
        closeAtShutdown { pool.close() }
        return pool
    }

    /// Runs `service` in the group, after the services added before it (and stops it before them).
    public func add(_ service: any Service) {
        services.withLock { $0.append(service) }
    }

    /// The one object of this executable named `key`, made by `make` on first use: what a
    /// workload's routes and pages share (a feed reader, say).
    public func shared<T: Sendable>(_ key: String, _ make: () throws -> T) rethrows -> T {
        try sharedObjects.withLock { objects in
            if let existing = objects[key] as? T { return existing }
            let made = try make()
            objects[key] = made
            return made
        }
    }

    /// Calls `close` at shutdown, once every service has stopped.
    public func closeAtShutdown(_ close: @escaping @Sendable () -> Void) {
        closers.withLock { $0.insert(close, at: 0) }
    }

    /// The built-in handlers given, and those of every workload this executable runs.
    public func handlers(_ builtIn: [String: any JobHandler]) throws -> HandlerRegistry {
        var registry = HandlerRegistry()
        for (name, handler) in builtIn { registry.register(name, handler) }
        for workload in workloads where workload.executable == name {
            for (name, handler) in try workload.handlers(runtime: self) { registry.register(name, handler) }
        }
        return registry
    }

    /// What `/healthz` checks: PostgreSQL answers, RabbitMQ takes a login (made once, so the
    /// broker check's cached outcome is shared by every route that serves it).
    public let healthChecks: [HealthCheck]

    /// Serves `/healthz`, `/metrics` and the `routes` added here, and runs the services
    /// until SIGTERM or SIGINT.
    public func run(routes: (Router<BasicRequestContext>) -> Void = { _ in }) async throws {
        let router = Router()
        router.add(middleware: ProblemMiddleware())
        router.addOperationsRoutes(checks: healthChecks)
        routes(router)
        try await serve(router)
    }

    /// Serves `router` (which carries its own operations routes) and runs the services
    /// until SIGTERM or SIGINT.
    public func serve<Context: RequestContext>(_ router: Router<Context>) async throws
    where Context.Source == ApplicationRequestContextSource {
        let app = Application(router: router,
                              configuration: .init(address: .hostname(configuration.httpHost, port: configuration.httpPort),
                                                   serverName: "esteira-\(name)"),
                              logger: logger)
        let closers = self.closers.withLock { $0 }
        let services: [any Service] = [ResourcesService { for close in closers { close() } }]
            + self.services.withLock { $0 } + [app]
        let group = ServiceGroup(configuration: .init(services: services.map { .init(service: $0) },
                                                      gracefulShutdownSignals: [.sigterm, .sigint],
                                                      logger: logger))
        logger.info("\(name) starting", metadata: ["port": "\(configuration.httpPort)", "kinds": "\(catalog.names.count)"])
        try await reportingPortInUse(configuration, logger: logger) { try await group.run() }
    }
}
