import ArgumentParser
import EsteiraCore
import Foundation

/// The flags of an executable that consumes work queues and runs handlers (the processor, the
/// exporter): each overrides the variable `ESTEIRA_<EXECUTABLE>_...` of the same meaning, as
/// ``settings(_:)`` lists them for its `--help`.
public struct WorkerOptions: ParsableArguments {
    @Option(help: "Consuming broker connections, 1-64 (default 2; env ESTEIRA_<EXECUTABLE>_CONSUMERS).")
    public var consumers: Int?
    @Option(help: "Unacknowledged deliveries per consumer, 1-65535 (default 200; env ESTEIRA_<EXECUTABLE>_PREFETCH).")
    public var prefetch: Int?
    @Option(help: "Comma-separated kinds to consume (default every kind it has a handler for; env ESTEIRA_<EXECUTABLE>_KINDS).")
    public var kinds: String?
    @Option(help: "Seconds running jobs may take to finish on shutdown, 0-86400 (default 30; env ESTEIRA_<EXECUTABLE>_DRAIN_TIMEOUT).")
    public var drainTimeout: Double?
    @Flag(help: "Do not send job state changes to the esteira.events exchange (env ESTEIRA_<EXECUTABLE>_EVENTS=false).")
    public var noEvents = false

    public init() {}

    /// The variables, named for `executable`.
    public static func settings(_ executable: String) -> [Setting] {
        let p = "ESTEIRA_\(executable.uppercased())_"
        return [
            Setting(p + "CONSUMERS", "Consuming broker connections, 1-64 (default 2).", flag: "--consumers"),
            Setting(p + "PREFETCH", "Unacknowledged deliveries per consumer, 1-65535 (default 200).", flag: "--prefetch"),
            Setting(p + "KINDS", "Comma-separated kinds to consume (default every kind with a handler here).", flag: "--kinds"),
            Setting(p + "DRAIN_TIMEOUT",
                    "Seconds running jobs may take to finish on shutdown before they go back to their queue, 0-86400 (default 30).",
                    flag: "--drain-timeout"),
            Setting(p + "EVENTS", "Send job state changes to esteira.events: true or false (default true; --no-events: false)."),
            Setting(p + "RETRY_WATCH",
                    "Seconds past a retry's due time after which, if its message has not come back from its retry tier, the relay publishes it again, 1-86400 (default 60)."),
        ]
    }

    /// The worker's configuration from these flags and `runtime`'s environment.
    public func configuration(_ runtime: Runtime) throws -> Worker.Configuration {
        let s = runtime.settings, names = Self.settings(runtime.name).map(\.name)
        var worker = Worker.Configuration()
        worker.consumers = try s.integer(names[0], flag: consumers, default: 2, range: 1...64)
        worker.prefetch = try s.integer(names[1], flag: prefetch, default: 200, range: 1...65535)
        worker.kinds = s.list(names[2], flag: kinds)
        worker.drainTimeout = try s.double(names[3], flag: drainTimeout, default: 30, range: 0...86400)
        worker.publishEvents = try s.bool(names[4], default: true) && !noEvents
        worker.retryWatch = try s.double(names[5], default: 60, range: 1...86400)
        worker.name = "\(runtime.name)-\(ProcessInfo.processInfo.processIdentifier)@\(ProcessInfo.processInfo.hostName)"
        return worker
    }
}

extension Runtime {
    /// Runs the worker engine on the kinds of the workloads this executable runs (the
    /// exporter's, the syncer's), with `options`, until SIGTERM or SIGINT.
    public func runWorker(_ options: WorkerOptions) async throws {
        add(try Worker(configuration: try options.configuration(self), catalog: catalog, registry: try handlers([:]), pool: pool,
                       amqp: amqp, logger: logger))
        try await run()
    }
}
