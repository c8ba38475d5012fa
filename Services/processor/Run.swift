import AMQP
import ArgumentParser
import EsteiraCore
import EsteiraService
import Foundation
import HTTPClient
import Hummingbird
import Logging
import Postgres
import ServiceLifecycle

/// `processor run` (the default): consumes until SIGTERM or SIGINT, then drains.
struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Consume and run jobs (the default command).",
        discussion: """
        Environment: ESTEIRA_DATABASE_URL, ESTEIRA_AMQP_URL, ESTEIRA_HTTP_HOST, ESTEIRA_HTTP_PORT (/healthz and \
        /metrics, default 9101), ESTEIRA_DATABASE_POOL_SIZE, ESTEIRA_LOG_LEVEL, ESTEIRA_LOG_FORMAT, \
        ESTEIRA_KINDS_FILE (kinds, policies and named endpoints, YAML), ESTEIRA_HTTP_SIGNING_SECRET (signs http \
        jobs that give their own url, and endpoints without a secret of their own), and ESTEIRA_PROCESSOR_CONSUMERS, ESTEIRA_PROCESSOR_PREFETCH, \
        ESTEIRA_PROCESSOR_KINDS for the flags below.
        On SIGTERM the processor stops taking deliveries, lets running jobs finish for up to --drain-timeout \
        seconds, records their outcomes, and hands anything still running back to its queue.
        """
    )

    @OptionGroup var options: ServiceOptions

    @Option(help: "Consuming broker connections in this instance, 1-64 (env ESTEIRA_PROCESSOR_CONSUMERS, default 2).")
    var consumers: Int?

    @Option(help: "Unacknowledged deliveries per consumer, 1-65535 (env ESTEIRA_PROCESSOR_PREFETCH, default 200).")
    var prefetch: Int?

    @Option(help: "Comma-separated kinds to consume (env ESTEIRA_PROCESSOR_KINDS; default every kind with a handler).")
    var kinds: String?

    @Option(help: "Seconds running jobs may take to finish on shutdown before they go back to their queue.")
    var drainTimeout: Double = 30

    @Flag(help: "Do not run the outbox relay in this instance.")
    var noRelay = false

    @Flag(help: "Do not send job state changes to the esteira.events exchange.")
    var noEvents = false

    func run() async throws {
        let env = ProcessInfo.processInfo.environment
        let configuration = try options.configuration(defaultHTTPPort: 9101)
        let logger = Observability.bootstrap(service: "processor", configuration: configuration)
        let catalog = try KindCatalog.load(path: env["ESTEIRA_KINDS_FILE"].flatMap { $0.isEmpty ? nil : $0 },
                                           signingSecret: env["ESTEIRA_HTTP_SIGNING_SECRET"])
        var worker = Worker.Configuration()
        worker.consumers = try Self.integer(consumers, env: "ESTEIRA_PROCESSOR_CONSUMERS", default: 2, range: 1...64)
        worker.prefetch = try Self.integer(prefetch, env: "ESTEIRA_PROCESSOR_PREFETCH", default: 200, range: 1...65535)
        let kindList = kinds ?? env["ESTEIRA_PROCESSOR_KINDS"] ?? ""
        worker.kinds = kindList.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        guard drainTimeout >= 0 else {
            throw ConfigurationError(variable: "--drain-timeout", value: "\(drainTimeout)", expected: "seconds >= 0")
        }
        worker.drainTimeout = drainTimeout
        worker.relay = !noRelay
        worker.publishEvents = !noEvents

        var registry = HandlerRegistry()
        registry.register("noop", NoopHandler())
        registry.register("http", HTTPJobHandler(client: HTTPClient(), catalog: catalog))

        let pool = PostgresPool(configuration: try PostgresConfiguration(url: configuration.databaseURL, applicationName: "esteira-processor"),
                                maxConnections: configuration.databasePoolSize)
        // No connection name here: each connection then takes its role's name
        // (processor-<pid>@<host>-consumer-<n>, -dead-letters, -publish), so the management UI
        // tells instances and roles apart.
        let amqp = try AMQPConfiguration(url: configuration.amqpURL)
        // Handlers that enqueue follow-up jobs (a lead migration's batches) publish on a link of their own.
        let link = BrokerLink(configuration: try AMQPConfiguration(url: configuration.amqpURL, connectionName: "esteira-processor-enqueue"),
                              topology: catalog.topology, label: "processor-enqueue", logger: logger)
        let enqueuer = Enqueuer(store: JobStore(catalog: catalog), pool: pool, link: link, logger: logger)
        registry.register(LeadMigrationKinds.plan, LeadMigrationPlanHandler(pool: pool, enqueuer: enqueuer))
        registry.register(LeadMigrationKinds.batch, LeadMigrationBatchHandler(pool: pool))
        let engine = try Worker(configuration: worker, catalog: catalog, registry: registry, pool: pool, amqp: amqp, logger: logger)

        let router = Router()
        router.add(middleware: ProblemMiddleware())
        router.addOperationsRoutes(checks: [.database(pool), .broker(amqp)])
        let ops = Application(router: router,
                              configuration: .init(address: .hostname(configuration.httpHost, port: configuration.httpPort),
                                                   serverName: "esteira-processor"),
                              logger: logger)
        let group = ServiceGroup(configuration: .init(
            services: [
                .init(service: PoolService(pool: pool)),
                .init(service: WorkerService(worker: engine)),
                .init(service: ops),
            ],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger))
        try await reportingPortInUse(configuration, logger: logger) { try await group.run() }
    }

    static func integer(_ flag: Int?, env name: String, default fallback: Int, range: ClosedRange<Int>) throws -> Int {
        if let flag {
            guard range.contains(flag) else { throw ConfigurationError(variable: name, value: "\(flag)", expected: "\(range)") }
            return flag
        }
        guard let raw = ProcessInfo.processInfo.environment[name], !raw.isEmpty else { return fallback }
        guard let v = Int(raw), range.contains(v) else {
            throw ConfigurationError(variable: name, value: raw, expected: "an integer in \(range.lowerBound)...\(range.upperBound)")
        }
        return v
    }
}

/// Runs the worker; on graceful shutdown, drains it.
struct WorkerService: Service {
    let worker: Worker

    func run() async throws {
        try await withGracefulShutdownHandler {
            await worker.run()
        } onGracefulShutdown: {
            Task { await worker.shutdown() }
        }
    }
}
