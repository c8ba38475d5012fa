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
        ESTEIRA_DATABASE_POOL_SIZE, ESTEIRA_LOG_LEVEL, ESTEIRA_LOG_FORMAT, and ESTEIRA_ADMIN_TOKEN: when set, the \
        built-in `admin` principal is given this bearer token at start.
        """
    )

    @OptionGroup var options: ServiceOptions

    func run() async throws {
        let configuration = try options.configuration(defaultHTTPPort: 8080)
        let logger = Observability.bootstrap(service: "api", configuration: configuration)
        let adminToken = ProcessInfo.processInfo.environment["ESTEIRA_ADMIN_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
        let app = try await buildApplication(configuration: configuration, adminToken: adminToken, logger: logger)
        try await app.runService(gracefulShutdownSignals: [.sigterm, .sigint])
    }
}
