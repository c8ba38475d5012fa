import ArgumentParser
import EsteiraCore
import EsteiraService

/// `ingestor run` (the default): serves the workloads' intake routes beside /healthz and
/// /metrics until SIGTERM or SIGINT.
struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Serve the intake routes (the default command).",
        discussion: """
        Routes: POST /v1/webhooks/messaging/{instance_id} (a messaging provider's receipts and incoming messages, \
        signed with the instance's webhook secret: X-Esteira-Signature: sha256=<hex HMAC-SHA256 of the body>). \
        Each event is stored once (by its event_id) and its processamento_webhook job enqueued in the same \
        transaction; the answer is 202 as soon as both are committed. Any number of ingestors may run behind a \
        load balancer.

        \(Setting.helpText(EsteiraConfiguration.settings))
        """
    )

    @OptionGroup var options: ServiceOptions

    func run() async throws {
        let runtime = try Runtime(Ingestor.identity, options: options)
        try await runtime.run { router in
            for workload in runtime.workloads { workload.addIntakeRoutes(to: router, runtime: runtime) }
        }
    }
}
