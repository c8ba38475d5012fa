import ArgumentParser
import EsteiraCore
import EsteiraService
import StoreSyncs

/// `syncer run` (the default): consumes the store-sync kind until SIGTERM or SIGINT, then drains.
struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run store syncs (the default command).",
        discussion: """
        Any number of syncers may run; at most three syncs run at once across all of them (the kind's \
        globalConcurrency in the kinds file changes it). A sync keeps each page as it arrives: after a failure \
        its next attempt resumes after the last page kept.

        \(Setting.helpText(EsteiraConfiguration.settings + WorkerOptions.settings("syncer") + StoreSyncs.settings))
        """
    )

    @OptionGroup var options: ServiceOptions
    @OptionGroup var workerOptions: WorkerOptions

    func run() async throws {
        try await Runtime(Syncer.identity, options: options).runWorker(workerOptions)
    }
}
