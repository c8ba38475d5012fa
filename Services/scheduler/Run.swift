import AMQP
import ArgumentParser
import EsteiraCore
import EsteiraService
import Foundation
import Hummingbird
import Logging
import Postgres
import ServiceLifecycle

/// `scheduler run` (the default): stands by or leads until SIGTERM or SIGINT.
struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Stand by, and act while leading (the default command).",
        discussion: """
        Any number of schedulers may run; one leads (a PostgreSQL advisory lock held on a connection of its own) \
        and only the leader acts: it publishes job rows left unpublished and delayed jobs when due, enqueues one job \
        per cron tick, rescues running jobs whose heartbeat stopped for longer than their kind's heartbeatTimeout, \
        deletes finished jobs older than their kind's retention, and rolls job events up into per-kind per-minute \
        metrics (GET /v1/metrics/queues on the api). When the leader stops or dies, a standby takes over within \
        --leader-interval seconds (plus the time the database takes to see the connection gone).
        Environment: ESTEIRA_DATABASE_URL, ESTEIRA_AMQP_URL, ESTEIRA_HTTP_HOST, ESTEIRA_HTTP_PORT (/healthz, \
        /metrics and /status, default 9105), ESTEIRA_DATABASE_POOL_SIZE, ESTEIRA_LOG_LEVEL, ESTEIRA_LOG_FORMAT, \
        ESTEIRA_KINDS_FILE (the kinds and their heartbeatTimeout and retention; the same file as the other services).
        """
    )

    @OptionGroup var options: ServiceOptions

    @Option(help: "Seconds between leadership checks, 0.1-10.")
    var leaderInterval: Double = 1

    @Option(help: "Seconds between cron and outbox relay passes, 0.05-10.")
    var tickInterval: Double = 0.25

    @Option(help: "Seconds between stuck-job rescue passes, 0.1-3600.")
    var rescueInterval: Double = 5

    @Option(help: "Seconds between retention passes, 1-86400.")
    var retentionInterval: Double = 300

    @Option(help: "Jobs deleted per retention batch (one short transaction each), 1-100000.")
    var retentionBatch: Int = 1000

    @Option(help: "Seconds between metrics roll-up passes, 0.1-3600.")
    var rollupInterval: Double = 10

    func validate() throws {
        func check(_ v: Double, _ name: String, _ range: ClosedRange<Double>) throws {
            guard range.contains(v) else { throw ValidationError("--\(name) must be \(range.lowerBound)...\(range.upperBound), not \(v)") }
        }
        try check(leaderInterval, "leader-interval", 0.1...10)
        try check(tickInterval, "tick-interval", 0.05...10)
        try check(rescueInterval, "rescue-interval", 0.1...3600)
        try check(retentionInterval, "retention-interval", 1...86400)
        try check(rollupInterval, "rollup-interval", 0.1...3600)
        guard (1...100_000).contains(retentionBatch) else { throw ValidationError("--retention-batch must be 1...100000") }
    }

    func run() async throws {
        let env = ProcessInfo.processInfo.environment
        let configuration = try options.configuration(defaultHTTPPort: 9105)
        let logger = Observability.bootstrap(service: "scheduler", configuration: configuration)
        let catalog = try KindCatalog.load(path: env["ESTEIRA_KINDS_FILE"].flatMap { $0.isEmpty ? nil : $0 },
                                           signingSecret: env["ESTEIRA_HTTP_SIGNING_SECRET"])
        var engineConfiguration = SchedulerEngine.Configuration()
        engineConfiguration.leaderInterval = leaderInterval
        engineConfiguration.tickInterval = tickInterval
        engineConfiguration.rescueInterval = rescueInterval
        engineConfiguration.retentionInterval = retentionInterval
        engineConfiguration.retentionBatch = retentionBatch
        engineConfiguration.rollupInterval = rollupInterval

        let pg = try PostgresConfiguration(url: configuration.databaseURL, applicationName: "esteira-scheduler")
        let pool = PostgresPool(configuration: pg, maxConnections: configuration.databasePoolSize)
        let leaderPool = PostgresPool(configuration: try PostgresConfiguration(url: configuration.databaseURL,
                                                                               applicationName: "esteira-scheduler-leadership"),
                                      maxConnections: 1)
        let amqp = try AMQPConfiguration(url: configuration.amqpURL, connectionName: "\(engineConfiguration.name)-publish")
        let link = BrokerLink(configuration: amqp, topology: catalog.topology, label: "scheduler-publish", logger: logger)
        let enqueuer = Enqueuer(store: JobStore(catalog: catalog), pool: pool, link: link, logger: logger)
        let engine = SchedulerEngine(configuration: engineConfiguration, catalog: catalog, pool: pool, leaderPool: leaderPool,
                                     enqueuer: enqueuer, logger: logger)

        let router = Router()
        router.add(middleware: ProblemMiddleware())
        router.addOperationsRoutes(checks: [.database(pool), .broker(try AMQPConfiguration(url: configuration.amqpURL))])
        let name = engineConfiguration.name
        router.get("status") { _, _ -> Response in
            let body = #"{"leader": \#(engine.leadership.isLeader), "name": "\#(name)"}"#
            return Response(status: .ok, headers: [.contentType: "application/json", .cacheControl: "no-store"],
                            body: .init(byteBuffer: ByteBuffer(string: body)))
        }
        let ops = Application(router: router,
                              configuration: .init(address: .hostname(configuration.httpHost, port: configuration.httpPort),
                                                   serverName: "esteira-scheduler"),
                              logger: logger)
        let group = ServiceGroup(configuration: .init(
            services: [
                .init(service: SchedulerService(engine: engine, pools: [pool, leaderPool], link: link)),
                .init(service: ops),
            ],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger))
        logger.info("scheduler starting", metadata: ["name": "\(engineConfiguration.name)"])
        try await reportingPortInUse(configuration, logger: logger) { try await group.run() }
    }
}

/// Runs the engine; on graceful shutdown, stops it (resigning leadership) and closes its
/// connections.
struct SchedulerService: Service {
    let engine: SchedulerEngine
    let pools: [PostgresPool]
    let link: BrokerLink

    func run() async throws {
        let task = Task { await engine.run() }
        await withGracefulShutdownHandler {
            await task.value
        } onGracefulShutdown: {
            task.cancel()
        }
        link.close()
        for pool in pools { pool.close() }
    }
}
