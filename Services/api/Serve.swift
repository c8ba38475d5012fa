import ArgumentParser
import EsteiraCore
import EsteiraService

/// `api serve` (the default): runs the HTTP server until SIGTERM or SIGINT.
struct Serve: AsyncParsableCommand {
    static let adminTokenSetting = Setting("ESTEIRA_ADMIN_TOKEN", "When set, the built-in admin principal is given this bearer token at start.")
    static let maxPayloadSetting = Setting("ESTEIRA_API_MAX_PAYLOAD_BYTES", "Largest job payload, 1024-1073741824 bytes (default 1048576).")
    static let maxBodySetting = Setting("ESTEIRA_API_MAX_BODY_BYTES",
                                        "Largest request body (a batch of jobs), 1024-1073741824 bytes (default 4194304).")
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve the HTTP API (the default command).",
        discussion: Setting.helpText(EsteiraConfiguration.settings + [adminTokenSetting, maxPayloadSetting, maxBodySetting])
    )

    @OptionGroup var options: ServiceOptions

    func run() async throws {
        let runtime = try Runtime(API.identity, options: options)
        let s = runtime.settings
        var settings = APISettings()
        settings.adminToken = s.string(Self.adminTokenSetting.name)
        settings.maxPayloadBytes = try s.integer(Self.maxPayloadSetting.name, default: settings.maxPayloadBytes, range: 1024...(1 << 30))
        settings.maxBodyBytes = try s.integer(Self.maxBodySetting.name, default: settings.maxBodyBytes, range: 1024...(1 << 30))
        try await runtime.serve(try await buildRouter(runtime: runtime, settings: settings))
    }
}
