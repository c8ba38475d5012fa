import EsteiraCore
import Foundation
import HTTPClient
import Logging
import Metrics
import Postgres

/// `export.run`: carries an export for one slice. Batch after batch it reads the next leads,
/// sends them to the target, and records the outcome (a sync event per lead, the counters,
/// the new position) in one transaction; then it hands the export to a new job, or stops when
/// the export is complete, paused or cancelled. The target's limiter (flow control) decides
/// when a batch may go: it waits only when the target said so (429, 503 with `Retry-After`)
/// or a rate is configured for it.
public struct ExportHandler: JobHandler {
    public struct Settings: Sendable {
        /// Seconds a job carries an export before handing it over. Default 30.
        public var slice: Double = 30
        /// Seconds one request to the target may take. Default 60.
        public var requestTimeout: Double = 60
        /// A wait for the target longer than this hands the export to a job that starts
        /// then, rather than holding a slot. Default 5.
        public var longestWait: Double = 5
        /// Seconds between progress reports on the job. Default 0.5.
        public var progressInterval: Double = 0.5

        public init() {}
    }

    let pool: PostgresPool
    let enqueuer: Enqueuer
    let client: FichasClient
    let settings: Settings
    let logger: Logger

    public init(pool: PostgresPool, enqueuer: Enqueuer, settings: Settings = .init(), logger: Logger) {
        self.pool = pool
        self.enqueuer = enqueuer
        self.settings = settings
        self.logger = logger
        client = FichasClient(http: HTTPClient(configuration: .init(timeout: .milliseconds(Int(settings.requestTimeout * 1000)))),
                              timeout: .milliseconds(Int(settings.requestTimeout * 1000)))
    }

    public func run(_ job: JobContext) async throws -> JSONValue? {
        guard let text = job.payload["export_id"]?.stringValue, let id = UUID(uuidString: text) else {
            throw JobError.permanent("payload needs export_id")
        }
        let claim = try await pool.withConnection { try ExportProgress.claim(id, jobID: job.id, on: $0) }
        guard case .work(var work) = claim else {
            if case .stop(let why) = claim { return .object(["stopped": .string(why)]) }
            return nil
        }
        return try await job.recordingFinalFailure({ try await carry(&work, job: job) }) { message in
            try? await pool.withConnection { try ExportProgress.fail(id, error: message, jobID: job.id, on: $0) }
        }
    }

    private func carry(_ work: inout ExportProgress.Work, job: JobContext) async throws -> JSONValue {
        let began = ContinuousClock.now
        var lastReport = ContinuousClock.now - .seconds(3600)
        let exportID = work.exportID, startedWith = work.exported + work.errors
        let sent = Counter(label: "esteira_export_leads_total", dimensions: [("target", work.target.name), ("outcome", "success")])
        let refused = Counter(label: "esteira_export_leads_total", dimensions: [("target", work.target.name), ("outcome", "error")])
        let throttles = Counter(label: "esteira_export_throttled_total", dimensions: [("target", work.target.name)])
        var why = ""
        // The next batch is read while this one is sent (a read only: it is sent once this
        // one is recorded, and dropped if the export stops).
        var ahead: Task<ExportProgress.Batch, any Error>?
        defer { ahead?.cancel() }
        let pool = self.pool
        func read(_ work: ExportProgress.Work) -> Task<ExportProgress.Batch, any Error> {
            Task { try await pool.withConnection { try ExportProgress.nextBatch(work, on: $0) } }
        }
        while true {
            try Task.checkCancellation()
            let batch = try await (ahead ?? read(work)).value
            ahead = nil
            if batch.next.day != nil {
                var next = work
                next.position = batch.next
                ahead = read(next)
            }
            var errors: [Int64: String] = [:]
            if !batch.ids.isEmpty {
                // Sent until the target takes it; a wait it asks for longer than the longest
                // wait here goes to a job that starts then.
                while true {
                    let wait = try await waitForTarget(work.target)
                    let sliceOver = ContinuousClock.now - began >= .milliseconds(Int(settings.slice * 1000))
                    if wait > settings.longestWait || (wait > 0 && sliceOver) {
                        let later = ExportProgress.job(for: exportID, ownerID: work.ownerID, runAfter: Date().addingTimeInterval(wait))
                        let w = work, store = enqueuer.store, jobID = job.id
                        let outcomes = try await pool.withConnection { try ExportProgress.handOver(w, to: later, store: store, jobID: jobID, on: $0) }
                        await enqueuer.publish(outcomes)
                        try await report(work, job: job, message: "waiting \(Int(wait.rounded(.up))) s for target \(work.target.name)")
                        return summary(work, since: startedWith, stopped: "the target asked to wait \(wait) s; carried on by a later job")
                    }
                    if wait > 0 { try await Task.sleep(for: .milliseconds(Int((wait * 1000).rounded(.up)))) }
                    do {
                        errors = try await client.upsert(batch.rows, ids: batch.ids, to: work.target)
                        break
                    } catch let throttled as FichasClient.Throttled {
                        throttles.increment()
                        logger.info("target asked to wait", metadata: ["target": "\(work.target.name)", "status": "\(throttled.status)",
                                                                       "seconds": "\(throttled.seconds)", "export": "\(exportID)"])
                        let name = work.target.limiterName
                        try await pool.withConnection { try RateLimiters.pause(name, for: throttled.seconds, on: $0) }
                    }
                }
            }
            let sliceOver = ContinuousClock.now - began >= .milliseconds(Int(settings.slice * 1000))
            let handOver = sliceOver ? ExportProgress.job(for: exportID, ownerID: work.ownerID) : nil
            let from = work.position, store = enqueuer.store, jobID = job.id, failed = errors
            var w = work
            let (next, outcomes) = try await pool.withConnection {
                try ExportProgress.record(&w, from: from, to: batch.next, leads: batch.ids, errors: failed, handOver: handOver,
                                          store: store, jobID: jobID, on: $0)
            }
            work = w
            await enqueuer.publish(outcomes)
            sent.increment(by: batch.ids.count - errors.count)
            refused.increment(by: errors.count)
            if case .stop(let reason) = next { why = reason; break }
            if ContinuousClock.now - lastReport >= .milliseconds(Int(settings.progressInterval * 1000)) {
                try await report(work, job: job, message: nil)
                lastReport = ContinuousClock.now
            }
        }
        try await report(work, job: job, message: why)
        return summary(work, since: startedWith, stopped: why)
    }

    /// Seconds until the target may be sent to: its configured rate (a token is reserved), or
    /// a pause its 429 or 503 answers put on it.
    private func waitForTarget(_ target: ExportTarget) async throws -> Double {
        let name = target.limiterName
        if let limit = target.limit {
            return try await pool.withConnection { try RateLimiters.reserve(name, limit: limit, on: $0) }
        }
        return try await pool.withConnection { try RateLimiters.pausedFor(name, on: $0) }
    }

    private func report(_ work: ExportProgress.Work, job: JobContext, message: String?) async throws {
        let done = work.exported + work.errors
        try await job.report(JobProgress(
            percent: Export.percent(done: done, total: work.total, status: work.position.day == nil ? .completed : .running),
            done: done, total: work.total,
            message: message ?? work.position.day.map { "exporting \($0)" },
            detail: ["export_id": .string(work.exportID.uuidString.lowercased()),
                     "processing_date": work.position.day.map { .string($0) } ?? .null,
                     "last_completed_date": work.position.lastCompleted.map { .string($0) } ?? .null,
                     "exported_leads": .number(Double(work.exported)), "error_leads": .number(Double(work.errors))]))
    }

    private func summary(_ work: ExportProgress.Work, since: Int, stopped: String) -> JSONValue {
        .object(["export_id": .string(work.exportID.uuidString.lowercased()),
                 "sent": .number(Double(work.exported + work.errors - since)),
                 "exported_leads": .number(Double(work.exported)), "error_leads": .number(Double(work.errors)),
                 "stopped": .string(stopped)])
    }
}
