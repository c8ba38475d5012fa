import ArgumentParser
import EsteiraCore
import EsteiraService
import Workloads

/// `ingestor run` (the default): serves the workloads' intake routes beside /healthz and
/// /metrics, and runs their intake services (mailbox rounds), until SIGTERM or SIGINT.
struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Serve the intake routes and read the stores' mailboxes (the default command).",
        discussion: """
        Routes: POST /v1/webhooks/messaging/{instance_id} (a messaging provider's receipts and incoming messages, \
        signed with the instance's webhook secret: X-Esteira-Signature: sha256=<hex HMAC-SHA256 of the body>). \
        Each event is stored once (by its event_id) and its processamento_webhook job enqueued in the same \
        transaction; the answer is 202 as soon as both are committed.

        Mailboxes: every round the ingestor leases the active email stores that are due (a store's mailbox is \
        read by one ingestor at a time), fetches their new messages over IMAP (by UID, from where the last round \
        stopped; a changed UIDVALIDITY starts the mailbox over, and each message is stored once by its \
        Message-ID), and stores each with its email.process job in one transaction. Any number of ingestors \
        may run.

        \(Setting.helpText(EsteiraConfiguration.settings + Workloads.all.flatMap { $0.intakeSettings }))
        """
    )

    @OptionGroup var options: ServiceOptions

    func run() async throws {
        let runtime = try Runtime(Ingestor.identity, options: options)
        for workload in runtime.workloads { try workload.addIntakeServices(to: runtime) }
        try await runtime.run { router in
            for workload in runtime.workloads { workload.addIntakeRoutes(to: router, runtime: runtime) }
        }
    }
}
