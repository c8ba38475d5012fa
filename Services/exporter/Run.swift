import ArgumentParser
import EsteiraCore
import EsteiraService
import Exports

/// `exporter run` (the default): consumes the export kinds until SIGTERM or SIGINT, then drains.
struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run exports (the default command).",
        discussion: """
        Any number of exporters may run; each export is carried by one job at a time, which hands it to a new \
        job every slice. On SIGTERM the exporter stops taking deliveries and lets running slices finish for up \
        to the drain timeout; a slice cut short resumes from the last batch recorded, counting no lead twice.

        \(Setting.helpText(EsteiraConfiguration.settings + WorkerOptions.settings("exporter") + Exports.settings))
        """
    )

    @OptionGroup var options: ServiceOptions
    @OptionGroup var workerOptions: WorkerOptions

    func run() async throws {
        try await Runtime(Exporter.identity, options: options).runWorker(workerOptions)
    }
}
