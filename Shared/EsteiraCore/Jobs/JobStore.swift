import Foundation
import Postgres

/// Job rows in PostgreSQL: the writes of enqueue and publish, and reads by id. Every call
/// takes the connection to run on, so a caller can put it in its own transaction.
public struct JobStore: Sendable {
    /// The kinds jobs may have, with their policies.
    public let catalog: KindCatalog
    /// Largest payload accepted, in bytes of JSON text.
    public let maxPayloadBytes: Int
    /// Largest batch accepted in one call.
    public static let maxBatch = 10_000

    /// How many jobs a second the outbox relay expects an enqueuer to publish after its
    /// commit. An insert's outbox rows are due n / `relayPace` seconds after the enqueue, n
    /// the jobs of the enqueue to be published up to the insert's last (a fan-out's chunk
    /// written while earlier ones are published falls due after those), then the relay's
    /// grace: the relay takes over only the jobs of an enqueuer that fell behind or stopped,
    /// not the tail of a fan-out of 100,000 its enqueuer is still publishing (which it would
    /// publish a second time).
    public static let relayPace = 1000

    /// The batch insert: new rows (an existing idempotency key keeps its job), their events and
    /// outbox rows. `$12`: the jobs of its enqueue to be published up to its last (a fan-out's chunks).
    static let insertSQL = insertStatement(batches: .opens)
    /// The same, the batches' counts left to ``countOpened(_:_:on:)``.
    static let insertCountedLaterSQL = insertStatement(batches: .opensLater)

    private static func insertStatement(batches: JobTransitions.BatchCount) -> String { JobTransitions.statement(
        before: ["""
            input AS (
                SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::int[], $6::int[],
                                     $7::timestamptz[], $8::uuid[], $9::text[], $10::text[], $11::uuid[])
                    AS t(id, kind, payload, idempotency_key, priority, max_attempts, run_after, owner_id, status, unique_key, batch_id)
            )
            """],
        change: """
            INSERT INTO jobs (id, kind, status, payload, idempotency_key, priority, max_attempts, run_after, owner_id, unique_key, batch_id)
            SELECT id, kind, status, payload::jsonb, idempotency_key, priority, max_attempts, run_after, owner_id, unique_key, batch_id
            FROM input
            ON CONFLICT (kind, idempotency_key, owner_id) WHERE idempotency_key IS NOT NULL DO NOTHING
            RETURNING id, kind, owner_id, run_after, batch_id, status AS event_status, 0 AS event_attempt, NULL::jsonb AS event_detail
            """,
        effects: ["""
            ob AS (
                INSERT INTO job_outbox (job_id, due_at, relay_only)
                SELECT id, coalesce(run_after, now() + make_interval(secs => $12::int / \(Double(relayPace)))), run_after IS NOT NULL
                FROM changed
            )
            """],
        batches: batches, select: "id") }

    /// The jobs of known keys: `$1` positions in the batch, `$2` kinds, `$3` keys, `$4`
    /// owners, `$5` payloads; with whether each was made from the same payload.
    public static let existingSQL = """
        SELECT k.n, j.id, j.status, j.priority, j.payload = k.payload::jsonb FROM jobs j
        JOIN unnest($1::int[], $2::text[], $3::text[], $4::uuid[], $5::text[]) AS k(n, kind, key, owner, payload)
          ON j.kind = k.kind AND j.idempotency_key = k.key AND j.owner_id IS NOT DISTINCT FROM k.owner
        """

    public init(catalog: KindCatalog, maxPayloadBytes: Int = 1 << 20) {
        self.catalog = catalog
        self.maxPayloadBytes = maxPayloadBytes
    }

    /// Checks a batch before anything is written. Throws the first problem, naming the field.
    public func validate(_ jobs: [NewJob]) throws {
        guard !jobs.isEmpty else { throw EnqueueError(field: "jobs", message: "at least one job is needed") }
        guard jobs.count <= JobStore.maxBatch else {
            throw EnqueueError(field: "jobs", message: "at most \(JobStore.maxBatch) jobs per call, got \(jobs.count)")
        }
        let batch = jobs.count > 1
        for (i, job) in jobs.enumerated() {
            let index = batch ? i : nil
            guard catalog[job.kind] != nil else {
                throw EnqueueError(field: "kind", message: "unknown kind '\(job.kind)'; known kinds: \(catalog.names.joined(separator: ", "))", index: index)
            }
            guard job.payload.utf8.count <= maxPayloadBytes else {
                throw EnqueueError(field: "payload", message: "payload is \(job.payload.utf8.count) bytes; the limit is \(maxPayloadBytes)", index: index)
            }
            if catalog[job.kind]!.handler == "http", job.payload.contains("\"headers\""),
               let name = HTTPJobPayload.reservedHeader(in: JSONValue.parse(job.payload)) {
                throw EnqueueError(field: "payload.headers.\(name)",
                                   message: "\(name) frames the request or the connection; it may not be set", index: index)
            }
            if let key = job.idempotencyKey, !(1...200).contains(key.count) {
                throw EnqueueError(field: "idempotency_key", message: "must be 1 to 200 characters", index: index)
            }
            if let p = job.priority {
                guard (0...9).contains(p) else { throw EnqueueError(field: "priority", message: "must be 0...9", index: index) }
                guard p == 0 || catalog[job.kind]!.policy.priorities else {
                    throw EnqueueError(field: "priority", message: "kind '\(job.kind)' has no priorities (its queue is a plain queue); "
                                       + "set priorities: true for it in the kinds file to use them", index: index)
                }
            }
            if let m = job.maxAttempts, !(1...1000).contains(m) {
                throw EnqueueError(field: "max_attempts", message: "must be 1...1000", index: index)
            }
        }
    }

    /// Writes `jobs` (one statement for the whole batch) and their first event. A job whose
    /// `(owner, kind, idempotency key)` exists is not written; its outcome is the existing
    /// job's, when the payload is the same (as JSON), else ``IdempotencyConflict``.
    /// Outcomes are in the order of `jobs`. Call inside the caller's transaction; publish the
    /// created, due jobs after commit (``Enqueuer/publish(_:)``).
    ///
    /// A job of a kind that is unique while active, equal (same owner, same values at the
    /// kind's `unique.keys`) to one in the kind's `unique.states`, is not written either: its
    /// outcome is that job's, marked `duplicate`. Exact under concurrency: the equal jobs'
    /// key is locked (a transaction-scoped advisory lock) before the look-up, so of two
    /// transactions enqueueing the same key one waits and then finds the other's job.
    ///
    /// `position`: how many jobs of a larger enqueue (``Enqueuer/enqueueInChunks``'s chunks)
    /// are still to be published before these, for the due times of their outbox rows (``relayPace``).
    /// `countingBatches` false: the jobs are not counted into their batches' open jobs; the
    /// caller does it with ``countOpened(_:_:on:)`` later in the transaction.
    public func insert(_ jobs: [NewJob], on connection: PostgresConnection, now: Date = Date(), position: Int = 0,
                       countingBatches: Bool = true) throws -> [EnqueueOutcome] {
        try validate(jobs)
        let uniqueKeys = jobs.map { job -> String? in
            catalog[job.kind]!.unique.map { $0.key(kind: job.kind, owner: job.ownerID, payload: JSONValue.parse(job.payload)) }
        }
        guard uniqueKeys.contains(where: { $0 != nil }) else {
            return try write(jobs, uniqueKeys: uniqueKeys, on: connection, now: now, position: position, countingBatches: countingBatches)
        }
        let distinct = Array(Set(uniqueKeys.compactMap { $0 })).sorted()
        _ = try connection.query("SELECT pg_advisory_xact_lock(hashtextextended(k, 0)) FROM unnest($1::text[]) AS k ORDER BY k", [distinct])
        var active: [String: EnqueueOutcome] = [:]
        for row in try connection.query(Self.activeUniqueSQL, [distinct]) {
            let key = try row.decode(String.self, at: 0), kind = try row.decode(String.self, at: 4)
            guard active[key] == nil, let status = JobStatus(rawValue: try row.decode(String.self, at: 2)),
                  catalog[kind]?.unique?.states.contains(status) == true else { continue }
            active[key] = EnqueueOutcome(id: try row.decode(UUID.self, at: 1), kind: kind, created: false, status: status,
                                         priority: try row.decode(Int.self, at: 3), duplicate: true)
        }
        var outcomes = [EnqueueOutcome?](repeating: nil, count: jobs.count)
        var toWrite: [Int] = [], firstOfKey: [String: Int] = [:], sameAsEarlier: [(Int, Int)] = []
        for i in jobs.indices {
            guard let key = uniqueKeys[i] else { toWrite.append(i); continue }
            if let existing = active[key] {
                outcomes[i] = existing
            } else if let first = firstOfKey[key] {
                sameAsEarlier.append((i, first))
            } else {
                firstOfKey[key] = i
                toWrite.append(i)
            }
        }
        if !toWrite.isEmpty {
            let written = try write(toWrite.map { jobs[$0] }, uniqueKeys: toWrite.map { uniqueKeys[$0] }, on: connection, now: now,
                                    position: position, countingBatches: countingBatches)
            for (n, i) in toWrite.enumerated() { outcomes[i] = written[n] }
        }
        for (i, first) in sameAsEarlier {
            var outcome = outcomes[first]!
            outcome.created = false
            outcome.duplicate = true
            outcomes[i] = outcome
        }
        // Each joined request is on the history of the job it joined.
        let joined = outcomes.compactMap { $0 }.filter(\.duplicate).map(\.id)
        if !joined.isEmpty { _ = try connection.queryPrepared(Self.joinedSQL, [joined]) }
        return outcomes.map { $0! }
    }

    /// A `duplicate` event on each of the jobs `$1` (once per element): an equal request
    /// joined it instead of making a job.
    static let joinedSQL = JobTransitions.statement(
        before: ["d AS (SELECT id, count(*)::int AS n FROM unnest($1::uuid[]) AS t(id) GROUP BY id)"],
        change: """
            UPDATE jobs j SET updated_at = now() FROM d WHERE j.id = d.id
            RETURNING j.id, j.kind, j.owner_id, 'duplicate' AS event_status, j.attempts AS event_attempt,
                      jsonb_build_object('joined', d.n) AS event_detail
            """,
        batches: .unchanged, select: "id")

    /// Active jobs with the keys `$1`, newest first.
    public static let activeUniqueSQL = """
        SELECT unique_key, id, status, priority, kind FROM jobs
        WHERE unique_key = ANY($1::text[]) AND status IN ('scheduled', 'queued', 'running', 'retrying')
        ORDER BY created_at DESC
        """

    /// The jobs created among `outcomes` (those of `jobs`, in order), added to their batches'
    /// counts of open jobs: for an ``insert(_:on:now:position:countingBatches:)`` that left them.
    public func countOpened(_ jobs: [NewJob], _ outcomes: [EnqueueOutcome], on connection: PostgresConnection) throws {
        var counts: [UUID: Int] = [:]
        for (job, outcome) in zip(jobs, outcomes) where outcome.created {
            if let batch = job.batchID { counts[batch, default: 0] += 1 }
        }
        guard !counts.isEmpty else { return }
        let batches = counts.keys.sorted { $0.uuidString < $1.uuidString }
        _ = try connection.execute(JobTransitions.openLaterSQL, [batches, batches.map { counts[$0]! }])
    }

    /// Writes validated jobs; see ``insert(_:on:now:position:countingBatches:)``.
    private func write(_ jobs: [NewJob], uniqueKeys: [String?], on connection: PostgresConnection, now: Date,
                       position: Int, countingBatches: Bool) throws -> [EnqueueOutcome] {
        var ids: [UUID] = [], kinds: [String] = [], payloads: [String] = [], keys: [String?] = []
        var priorities: [Int] = [], maxAttempts: [Int] = [], runAfter: [Date?] = [], owners: [UUID?] = []
        var statuses: [String] = []
        for job in jobs {
            let policy = catalog[job.kind]!.policy
            ids.append(UUID.timeOrdered())
            kinds.append(job.kind)
            payloads.append(job.payload)
            keys.append(job.idempotencyKey)
            priorities.append(job.priority ?? policy.priority)
            maxAttempts.append(job.maxAttempts ?? policy.maxAttempts)
            let delayed = job.runAfter.map { $0 > now } ?? false
            runAfter.append(delayed ? job.runAfter : nil)
            owners.append(job.ownerID)
            statuses.append(delayed ? JobStatus.scheduled.rawValue : JobStatus.queued.rawValue)
        }
        let inserted = try connection.queryPrepared(countingBatches ? Self.insertSQL : Self.insertCountedLaterSQL,
                                                    [ids, kinds, payloads, keys, priorities, maxAttempts, runAfter, owners, statuses,
                                                     uniqueKeys, jobs.map(\.batchID), position + jobs.count])
        var created = Set<UUID>()
        for row in inserted { created.insert(try row.decode(UUID.self, at: 0)) }

        var outcomes: [EnqueueOutcome] = []
        outcomes.reserveCapacity(jobs.count)
        var missing: [(Int, String, String, UUID?)] = []
        for (i, id) in ids.enumerated() {
            if created.contains(id) {
                outcomes.append(EnqueueOutcome(id: id, kind: kinds[i], created: true,
                                               status: JobStatus(rawValue: statuses[i])!, priority: priorities[i]))
            } else {
                // Only a known idempotency key skips an insert.
                outcomes.append(EnqueueOutcome(id: id, kind: kinds[i], created: false, status: .queued, priority: priorities[i]))
                missing.append((i, kinds[i], keys[i] ?? "", owners[i]))
            }
        }
        if !missing.isEmpty {
            // The owner's own job with that key (never another owner's), and whether it was
            // made from the same payload.
            let rows = try connection.query(Self.existingSQL, [missing.map { $0.0 }, missing.map { $0.1 }, missing.map { $0.2 }, missing.map { $0.3 },
                      missing.map { payloads[$0.0] }])
            var found = Set<Int>()
            for row in rows {
                let i = try row.decode(Int.self, at: 0), id = try row.decode(UUID.self, at: 1)
                guard try row.decode(Bool.self, at: 4) else {
                    throw IdempotencyConflict(jobID: id, index: jobs.count > 1 ? i : nil)
                }
                outcomes[i] = EnqueueOutcome(id: id, kind: kinds[i], created: false,
                                             status: JobStatus(rawValue: try row.decode(String.self, at: 2)) ?? .queued,
                                             priority: try row.decode(Int.self, at: 3))
                found.insert(i)
            }
            for (i, kind, key, _) in missing where !found.contains(i) {
                throw PostgresError(.unexpectedResult, message: "job \(kind)/\(key) neither inserted nor found")
            }
        }
        return outcomes
    }

    /// Records that the broker confirmed these jobs' messages: their outbox rows go. The job
    /// rows are not touched (no row lock, so no waiting for or deadlock with a processor
    /// claiming them, and no row version): a job without an outbox row counts as published
    /// (``JobRecord`` reports its enqueue time as `published_at` until a claim or the relay
    /// records one). Only the relay locks outbox rows, and it never waits for ours (it skips
    /// locked rows), so this delete cannot deadlock. A relay-only row is not the enqueuer's to
    /// delete: a processor may have parked the job meanwhile (waiting for a concurrency
    /// slot), and that row is what publishes it again. Returns how many rows went.
    @discardableResult
    public func markPublished(_ ids: [UUID], on connection: PostgresConnection) throws -> Int {
        guard !ids.isEmpty else { return 0 }
        return try connection.execute("DELETE FROM job_outbox WHERE job_id = ANY($1::uuid[]) AND NOT relay_only", [ids])
    }

    /// The job `id`, or nil.
    public func job(_ id: UUID, on connection: PostgresConnection) throws -> JobRecord? {
        let rows = try connection.query("SELECT \(JobRecord.columns) FROM jobs WHERE id = $1", [id])
        return try rows.first.map(JobRecord.init(row:))
    }
}
