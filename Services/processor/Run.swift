import ArgumentParser
import EsteiraCore
import EsteiraService
import HTTPClient

/// `processor run` (the default): consumes until SIGTERM or SIGINT, then drains.
struct Run: AsyncParsableCommand {
    static let relaySetting = Setting("ESTEIRA_PROCESSOR_RELAY", "Run the outbox relay here: true or false (default true; --no-relay: false).")
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Consume and run jobs (the default command).",
        discussion: """
        On SIGTERM the processor stops taking deliveries, lets running jobs finish for up to the drain timeout, \
        records their outcomes, and hands anything still running back to its queue.

        \(Setting.helpText(EsteiraConfiguration.settings + WorkerOptions.settings("processor") + [relaySetting, .httpAllow]
                             + Processor.identity.workloadSettings.filter { $0 != .httpAllow }))
        """
    )

    @OptionGroup var options: ServiceOptions
    @OptionGroup var workerOptions: WorkerOptions
    @Flag(help: "Do not run the outbox relay in this instance (env ESTEIRA_PROCESSOR_RELAY=false).") var noRelay = false

    func run() async throws {
        let runtime = try Runtime(Processor.identity, options: options)
        let s = runtime.settings
        let worker = try workerOptions.configuration(runtime)
        let relay = try s.bool(Self.relaySetting.name, default: true) && !noRelay

        let http = try HTTPJobHandler(catalog: runtime.catalog, allow: s.list(Setting.httpAllow.name),
                                      principals: PrincipalStore(pool: runtime.pool))
        let handlers = try runtime.handlers(["noop": NoopHandler(), "http": http])
        if relay { runtime.add(OutboxRelay(pool: runtime.pool, link: runtime.link, logger: runtime.logger)) }
        runtime.add(DeadLetterArchiver(amqp: runtime.amqp, topology: runtime.catalog.topology, pool: runtime.pool,
                                       name: "\(worker.name)-dead-letters", logger: runtime.logger))
        runtime.add(try Worker(configuration: worker, catalog: runtime.catalog, registry: handlers, pool: runtime.pool,
                               amqp: runtime.amqp, logger: runtime.logger))
        try await runtime.run()
    }
}
