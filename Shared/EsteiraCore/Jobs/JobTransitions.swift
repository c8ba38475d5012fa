import Foundation
import Postgres

/// The one place job state changes are written. Every statement that changes jobs (enqueue,
/// claim, finish, dead message, relay, requeue, cancel, rescue, progress) is built by
/// ``statement(before:change:effects:select:)``: its `change` returns one row per job it
/// changed, and the builder adds that change's event to `job_events` in the same statement
/// (``ChangeFeed`` reads them for the event streams). So no change can leave its event out, and
/// nothing else in the code writes `job_events` (a test reads the sources for it).
///
/// Everything is set-based: one statement for a whole batch, as the job path needs.
public enum JobTransitions {

    /// A statement that applies `change` and records its events.
    ///
    /// - Parameters:
    ///   - before: common table expressions `change` reads (`name AS (...)`).
    ///   - change: an `INSERT` or `UPDATE` of `jobs` whose `RETURNING` gives `id`, `kind`,
    ///     `owner_id`, and the event of each changed job as `event_status`, `event_attempt`
    ///     and `event_detail` (jsonb or NULL), with whatever else `effects` and `select` read.
    ///   - effects: more expressions that read the changed rows as `changed` (outbox, leases,
    ///     dead letters).
    ///   - select: the columns of `changed` the statement returns.
    ///   - batches: how the change moves its jobs in or out of their batches' count of open
    ///     jobs (``BatchCount``).
    static func statement(before: [String] = [], change: String, effects: [String] = [], batches: BatchCount,
                          select: String) -> String {
        var parts = before
        parts.append("changed AS (\n\(change)\n)")
        parts += effects
        if let delta = batches.delta {
            parts.append("""
                batch_open AS (
                    UPDATE batches b SET open_jobs = b.open_jobs + d.n
                    FROM (SELECT batch_id, sum(\(delta))::int AS n FROM changed WHERE batch_id IS NOT NULL
                          GROUP BY batch_id ORDER BY batch_id) d
                    WHERE b.id = d.batch_id AND d.n <> 0
                    RETURNING b.id, b.open_jobs
                )
                """)
        }
        parts.append("""
            job_event AS (
                INSERT INTO job_events (job_id, kind, owner_id, status, attempt, detail)
                SELECT id, kind, owner_id, event_status, event_attempt, event_detail FROM changed
            )
            """)
        return "WITH " + parts.joined(separator: ",\n")
            + "\nSELECT \(select) FROM changed"
    }

    /// How a change moves its jobs in or out of their batches' count of open (not finished)
    /// jobs, `batches.open_jobs`: a batch ends when its count comes to 0, found by the change
    /// that brings it there (``endedBatches``), without counting the batch's jobs. Every
    /// change says which it is, so none can forget the count.
    enum BatchCount {
        /// Open jobs stay open and finished ones finished (`changed` needs no `batch_id`).
        case unchanged
        /// Every changed job is open now and was not before (an insert, a dead job requeued).
        case opens
        /// Changed jobs whose new `status` is finished (completed, dead, cancelled) were
        /// open before (`changed` returns `batch_id` and `status`).
        case ends
        /// As `opens`, counted by ``openLaterSQL`` last in the same transaction: a fan-out's
        /// chunk (``Enqueuer/enqueueInChunks``) writes its caller's rows after its jobs, and
        /// the batch row, which every outcome of the batch's jobs updates, is then held only
        /// from that count to the commit.
        case opensLater

        var delta: String? {
            switch self {
            case .unchanged, .opensLater: return nil
            case .opens: return "1"
            case .ends: return "CASE WHEN status IN ('completed', 'dead', 'cancelled') THEN -1 ELSE 0 END"
            }
        }
    }

    /// Adds `$2` open jobs to each batch `$1` (ids in order, so that writers lock batch rows
    /// in one order): the count of an insert made with ``BatchCount/opensLater``.
    static let openLaterSQL = """
        UPDATE batches b SET open_jobs = b.open_jobs + t.n FROM unnest($1::uuid[], $2::int[]) AS t(id, n) WHERE b.id = t.id
        """

    /// A column for a statement's `select`: the batches whose last open job the change
    /// finished, as comma-separated ids (NULL: none); see ``endedBatchIDs(_:)``.
    static let endedBatches = "(SELECT string_agg(id::text, ',') FROM batch_open WHERE open_jobs = 0) AS ended_batches"

    /// The ids of an ``endedBatches`` column.
    static func endedBatchIDs(_ text: String?) -> [UUID] {
        (text ?? "").split(separator: ",").compactMap { UUID(uuidString: String($0)) }
    }

    /// Puts `progress` on job `id` and publishes it as a `progress` event. With `attempt` (a
    /// handler reporting on its own attempt), only while that attempt runs, so a rescued or
    /// timed-out attempt cannot overwrite its successor's; without it (a workload reporting
    /// on a job it owns, such as a lead migration's planning job), whatever the job's status.
    /// Returns whether the job took it.
    @discardableResult
    public static func report(_ progress: JobProgress, job id: UUID, attempt: Int? = nil,
                              on connection: PostgresConnection) throws -> Bool {
        let rows = try connection.query(statement(
            change: """
                UPDATE jobs SET progress = $2::jsonb, updated_at = now()
                WHERE id = $1 AND ($3::int IS NULL OR (status = 'running' AND attempts = $3))
                RETURNING id, kind, owner_id, 'progress' AS event_status, attempts AS event_attempt, progress AS event_detail
                """,
            batches: .unchanged, select: "id"), [id, progress.json.jsonText, attempt])
        return !rows.isEmpty
    }
}

/// How far a job has got, as a handler reports it: shown on the job (`progress`) and sent
/// as a `progress` event to event-stream subscribers.
public struct JobProgress: Sendable, Equatable {
    /// 0...100, when known.
    public var percent: Double?
    /// Units done and in all (rows, batches, messages), when counted.
    public var done: Int?
    public var total: Int?
    /// A line for a person.
    public var message: String?
    /// More, kind-specific fields, kept beside the ones above.
    public var detail: [String: JSONValue]

    public init(percent: Double? = nil, done: Int? = nil, total: Int? = nil, message: String? = nil,
                detail: [String: JSONValue] = [:]) {
        self.percent = percent.map { min(100, max(0, $0)) }
        self.done = done
        self.total = total
        self.message = message.map { String($0.prefix(1000)) }
        self.detail = detail
    }

    /// The stored form: `detail`'s fields, then percent, done, total and message.
    public var json: JSONValue {
        var object = detail
        if let percent { object["percent"] = .number(percent) }
        if let done { object["done"] = .number(Double(done)) }
        if let total { object["total"] = .number(Double(total)) }
        if let message { object["message"] = .string(message) }
        return .object(object)
    }
}
