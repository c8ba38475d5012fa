import ArgumentParser
import EsteiraCore
import EsteiraService
import HTTPClient

/// `processor run` (the default): consumes until SIGTERM or SIGINT, then drains.
struct Run: AsyncParsableCommand {
    static let consumersSetting = Setting("ESTEIRA_PROCESSOR_CONSUMERS", "Consuming broker connections, 1-64 (default 2).",
                                          flag: "--consumers")
    static let prefetchSetting = Setting("ESTEIRA_PROCESSOR_PREFETCH", "Unacknowledged deliveries per consumer, 1-65535 (default 200).",
                                         flag: "--prefetch")
    static let kindsSetting = Setting("ESTEIRA_PROCESSOR_KINDS", "Comma-separated kinds to consume (default every kind with a handler).",
                                      flag: "--kinds")
    static let drainSetting = Setting("ESTEIRA_PROCESSOR_DRAIN_TIMEOUT",
                                      "Seconds running jobs may take to finish on shutdown before they go back to their queue, 0-86400 (default 30).",
                                      flag: "--drain-timeout")
    static let allowSetting = Setting("ESTEIRA_HTTP_ALLOW",
                                      "Comma-separated address ranges (CIDR) and host names that URLs chosen by http jobs may reach although not public (default none: loopback, private, link-local, CGNAT, unique-local and multicast addresses are refused).")
    static let relaySetting = Setting("ESTEIRA_PROCESSOR_RELAY", "Run the outbox relay here: true or false (default true; --no-relay: false).")
    static let eventsSetting = Setting("ESTEIRA_PROCESSOR_EVENTS",
                                       "Send job state changes to esteira.events: true or false (default true; --no-events: false).")
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Consume and run jobs (the default command).",
        discussion: """
        On SIGTERM the processor stops taking deliveries, lets running jobs finish for up to the drain timeout, \
        records their outcomes, and hands anything still running back to its queue.

        \(Setting.helpText(EsteiraConfiguration.settings + [consumersSetting, prefetchSetting, kindsSetting, drainSetting,
                                                           allowSetting, relaySetting, eventsSetting]))
        """
    )

    @OptionGroup var options: ServiceOptions
    @Option(help: ArgumentHelp(consumersSetting.flagHelp)) var consumers: Int?
    @Option(help: ArgumentHelp(prefetchSetting.flagHelp)) var prefetch: Int?
    @Option(help: ArgumentHelp(kindsSetting.flagHelp)) var kinds: String?
    @Option(help: ArgumentHelp(drainSetting.flagHelp)) var drainTimeout: Double?
    @Flag(help: "Do not run the outbox relay in this instance (env ESTEIRA_PROCESSOR_RELAY=false).") var noRelay = false
    @Flag(help: "Do not send job state changes to the esteira.events exchange (env ESTEIRA_PROCESSOR_EVENTS=false).") var noEvents = false

    func run() async throws {
        let runtime = try Runtime(Processor.identity, options: options)
        let s = runtime.settings
        var worker = Worker.Configuration()
        worker.consumers = try s.integer(Self.consumersSetting.name, flag: consumers, default: 2, range: 1...64)
        worker.prefetch = try s.integer(Self.prefetchSetting.name, flag: prefetch, default: 200, range: 1...65535)
        worker.kinds = s.list(Self.kindsSetting.name, flag: kinds)
        worker.drainTimeout = try s.double(Self.drainSetting.name, flag: drainTimeout, default: 30, range: 0...86400)
        worker.publishEvents = try s.bool(Self.eventsSetting.name, default: true) && !noEvents
        let relay = try s.bool(Self.relaySetting.name, default: true) && !noRelay

        let http = try HTTPJobHandler(catalog: runtime.catalog, allow: s.list(Self.allowSetting.name),
                                      principals: PrincipalStore(pool: runtime.pool))
        let handlers = runtime.handlers(["noop": NoopHandler(), "http": http])
        if relay { runtime.add(OutboxRelay(pool: runtime.pool, link: runtime.link, logger: runtime.logger)) }
        runtime.add(DeadLetterArchiver(amqp: runtime.amqp, topology: runtime.catalog.topology, pool: runtime.pool,
                                       name: "\(worker.name)-dead-letters", logger: runtime.logger))
        runtime.add(try Worker(configuration: worker, catalog: runtime.catalog, registry: handlers, pool: runtime.pool,
                               amqp: runtime.amqp, logger: runtime.logger))
        try await runtime.run()
    }
}
