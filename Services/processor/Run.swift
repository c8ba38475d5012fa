import ArgumentParser
import EsteiraCore
import EsteiraService
import HTTPClient

/// `processor run` (the default): consumes until SIGTERM or SIGINT, then drains.
struct Run: AsyncParsableCommand {
    static let settings = EsteiraConfiguration.settings + [
        Setting("ESTEIRA_PROCESSOR_CONSUMERS", "consuming broker connections, 1-64 (default 2; --consumers)."),
        Setting("ESTEIRA_PROCESSOR_PREFETCH", "unacknowledged deliveries per consumer, 1-65535 (default 200; --prefetch)."),
        Setting("ESTEIRA_PROCESSOR_KINDS", "comma-separated kinds to consume (default every kind with a handler; --kinds)."),
        Setting("ESTEIRA_PROCESSOR_DRAIN_TIMEOUT", "seconds running jobs may take to finish on shutdown, 0-86400 (default 30; --drain-timeout)."),
        Setting("ESTEIRA_PROCESSOR_RELAY", "run the outbox relay here, true or false (default true; --no-relay)."),
        Setting("ESTEIRA_PROCESSOR_EVENTS", "send job state changes to esteira.events, true or false (default true; --no-events)."),
    ]
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Consume and run jobs (the default command).",
        discussion: """
        On SIGTERM the processor stops taking deliveries, lets running jobs finish for up to the drain timeout, \
        records their outcomes, and hands anything still running back to its queue.

        \(Setting.helpText(settings))
        """
    )

    @OptionGroup var options: ServiceOptions
    @Option(help: "Consuming broker connections in this instance, 1-64 (env ESTEIRA_PROCESSOR_CONSUMERS, default 2).")
    var consumers: Int?
    @Option(help: "Unacknowledged deliveries per consumer, 1-65535 (env ESTEIRA_PROCESSOR_PREFETCH, default 200).")
    var prefetch: Int?
    @Option(help: "Comma-separated kinds to consume (env ESTEIRA_PROCESSOR_KINDS; default every kind with a handler).")
    var kinds: String?
    @Option(help: "Seconds running jobs may take to finish on shutdown before they go back to their queue (env ESTEIRA_PROCESSOR_DRAIN_TIMEOUT, default 30).")
    var drainTimeout: Double?
    @Flag(help: "Do not run the outbox relay in this instance (env ESTEIRA_PROCESSOR_RELAY=false).")
    var noRelay = false
    @Flag(help: "Do not send job state changes to the esteira.events exchange (env ESTEIRA_PROCESSOR_EVENTS=false).")
    var noEvents = false

    func run() async throws {
        let runtime = try Runtime(Processor.identity, options: options)
        let s = runtime.settings
        var worker = Worker.Configuration()
        worker.consumers = try s.integer("ESTEIRA_PROCESSOR_CONSUMERS", flag: consumers, default: 2, range: 1...64)
        worker.prefetch = try s.integer("ESTEIRA_PROCESSOR_PREFETCH", flag: prefetch, default: 200, range: 1...65535)
        worker.kinds = s.list("ESTEIRA_PROCESSOR_KINDS", flag: kinds)
        worker.drainTimeout = try s.double("ESTEIRA_PROCESSOR_DRAIN_TIMEOUT", flag: drainTimeout, default: 30, range: 0...86400)
        worker.publishEvents = try s.bool("ESTEIRA_PROCESSOR_EVENTS", default: true) && !noEvents
        let relay = try s.bool("ESTEIRA_PROCESSOR_RELAY", default: true) && !noRelay

        let handlers = runtime.handlers(["noop": NoopHandler(), "http": HTTPJobHandler(client: HTTPClient(), catalog: runtime.catalog)])
        if relay { runtime.add(OutboxRelay(pool: runtime.pool, link: runtime.link, logger: runtime.logger)) }
        runtime.add(try Worker(configuration: worker, catalog: runtime.catalog, registry: handlers, pool: runtime.pool,
                               amqp: runtime.amqp, logger: runtime.logger))
        try await runtime.run()
    }
}
