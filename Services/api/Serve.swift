import AMQP
import ArgumentParser
import EsteiraCore
import EsteiraService
import Foundation
import Hummingbird
import Postgres
import ServiceLifecycle

/// `api serve` (the default): runs the HTTP server until SIGTERM or SIGINT.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve the HTTP API (the default command).",
        discussion: """
        Environment: ESTEIRA_DATABASE_URL, ESTEIRA_AMQP_URL, ESTEIRA_HTTP_HOST, ESTEIRA_HTTP_PORT (default 8080), \
        ESTEIRA_DATABASE_POOL_SIZE, ESTEIRA_LOG_LEVEL, ESTEIRA_LOG_FORMAT; ESTEIRA_ADMIN_TOKEN: when set, the \
        built-in `admin` principal is given this bearer token at start; ESTEIRA_KINDS_FILE: the kinds jobs may have \
        (the same file as the processors'); ESTEIRA_API_MAX_PAYLOAD_BYTES (default 1048576): largest job payload; \
        ESTEIRA_API_MAX_BODY_BYTES (default 67108864): largest request body (a batch of jobs).
        """
    )

    @OptionGroup var options: ServiceOptions

    func run() async throws {
        let configuration = try options.configuration(defaultHTTPPort: 8080)
        let logger = Observability.bootstrap(service: "api", configuration: configuration)
        let env = ProcessInfo.processInfo.environment
        func nonEmpty(_ name: String) -> String? { env[name].flatMap { $0.isEmpty ? nil : $0 } }
        func bytes(_ name: String, default value: Int) throws -> Int {
            guard let raw = nonEmpty(name) else { return value }
            guard let n = Int(raw), (1024...(1 << 30)).contains(n) else {
                throw ConfigurationError(variable: name, value: raw, expected: "a number of bytes in 1024...1073741824")
            }
            return n
        }
        var settings = APISettings()
        settings.adminToken = nonEmpty("ESTEIRA_ADMIN_TOKEN")
        settings.kindsFile = nonEmpty("ESTEIRA_KINDS_FILE")
        settings.signingSecret = nonEmpty("ESTEIRA_HTTP_SIGNING_SECRET")
        settings.maxPayloadBytes = try bytes("ESTEIRA_API_MAX_PAYLOAD_BYTES", default: settings.maxPayloadBytes)
        settings.maxBodyBytes = try bytes("ESTEIRA_API_MAX_BODY_BYTES", default: settings.maxBodyBytes)
        let app = try await buildApplication(configuration: configuration, settings: settings, logger: logger)
        try await reportingPortInUse(configuration, logger: logger) {
            try await app.runService(gracefulShutdownSignals: [.sigterm, .sigint])
        }
    }
}
