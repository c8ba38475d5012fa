import EsteiraCore
import Foundation
import Logging

/// Runs a service's HTTP server; a port another process holds becomes a clear configuration
/// error naming the variable that moves it, instead of a bare `bind` errno.
public func reportingPortInUse(_ configuration: EsteiraConfiguration, logger: Logger,
                               _ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch where "\(error)".contains("errno: \(EADDRINUSE))") {
        let address = "\(configuration.httpHost):\(configuration.httpPort)"
        logger.error("cannot listen: the address is in use", metadata: ["address": "\(address)"])
        throw ConfigurationError(variable: "ESTEIRA_HTTP_PORT", value: "\(configuration.httpPort)",
                                 expected: "a port nothing else listens on (\(address) is in use)")
    }
}
