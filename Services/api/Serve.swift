import ArgumentParser
import Dashboard
import EsteiraCore
import EsteiraService

/// `api serve` (the default): runs the HTTP server until SIGTERM or SIGINT.
struct Serve: AsyncParsableCommand {
    static let adminTokenSetting = Setting("ESTEIRA_ADMIN_TOKEN", "When set, the built-in admin principal is given this bearer token at start.")
    static let maxPayloadSetting = Setting("ESTEIRA_API_MAX_PAYLOAD_BYTES", "Largest job payload, 1024-1073741824 bytes (default 1048576).")
    static let maxBodySetting = Setting("ESTEIRA_API_MAX_BODY_BYTES",
                                        "Largest request body (a batch of jobs), 1024-1073741824 bytes (default 4194304).")
    static let rateSetting = Setting("ESTEIRA_API_RATE", "Requests a second per principal in this api instance, 0 for no limit (default 200).")
    static let burstSetting = Setting("ESTEIRA_API_BURST", "Requests a principal may make at once after a quiet spell, 1-1000000 (default 400).")
    static let streamsSetting = Setting("ESTEIRA_API_MAX_STREAMS", "Event streams a principal may have open in this api instance, 0 for no limit (default 16).")
    static let keepAliveSetting = Setting("ESTEIRA_API_SSE_KEEPALIVE",
                                          "Seconds between keep-alive lines of a quiet event stream, 1-300 (default 15); a client gone is noticed (and its stream's place freed) within two.")
    static let managementSetting = Setting("ESTEIRA_RABBITMQ_MANAGEMENT_URL",
                                           "RabbitMQ's management API, for the dashboard's queue depths and consumers (default: the host of ESTEIRA_AMQP_URL on port 15672; without a user and password in it, those of ESTEIRA_AMQP_URL); without an answer the dashboard counts queued jobs in PostgreSQL.")
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve the HTTP API (the default command).",
        discussion: Setting.helpText(EsteiraConfiguration.settings + [adminTokenSetting, maxPayloadSetting, maxBodySetting,
                                                                                rateSetting, burstSetting, streamsSetting, keepAliveSetting,
                                                                                managementSetting] + API.identity.workloads.flatMap { $0.apiSettings })
    )

    @OptionGroup var options: ServiceOptions

    func run() async throws {
        let runtime = try Runtime(API.identity, options: options)
        let s = runtime.settings
        var settings = APISettings()
        settings.adminToken = s.string(Self.adminTokenSetting.name)
        settings.maxPayloadBytes = try s.integer(Self.maxPayloadSetting.name, default: settings.maxPayloadBytes, range: 1024...(1 << 30))
        settings.maxBodyBytes = try s.integer(Self.maxBodySetting.name, default: settings.maxBodyBytes, range: 1024...(1 << 30))
        settings.limits.rate = try s.double(Self.rateSetting.name, default: settings.limits.rate, range: 0...1_000_000)
        settings.limits.burst = try s.integer(Self.burstSetting.name, default: settings.limits.burst, range: 1...1_000_000)
        settings.limits.streams = try s.integer(Self.streamsSetting.name, default: settings.limits.streams, range: 0...100_000)
        settings.keepAlive = try s.integer(Self.keepAliveSetting.name, default: settings.keepAlive, range: 1...300)
        settings.dashboard = Dashboard.Settings(managementURL: s.string(Self.managementSetting.name), amqpURL: runtime.configuration.amqpURL)
        try await runtime.serve(try await buildRouter(runtime: runtime, settings: settings))
    }
}
