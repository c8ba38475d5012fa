import Foundation
import Postgres

/// The claim of a kind with flow control: a concurrency limit (``ConcurrencySlots``), a
/// named rate limiter (``RateLimiters``), a circuit breaker (``CircuitBreakers``), or several. One transaction per kind and batch: it reads which
/// deliveries may start (locking their jobs), counts the slots they need under their locks,
/// reserves limiter tokens, then starts what may run, parks what waits for a slot, and holds
/// back what waits for a token until the time it reserved. Held and parked jobs go back to
/// `scheduled` with a relay-only outbox row and an event saying what they wait for; neither
/// spends an attempt.
public enum FlowGate {
    /// What the gate did with a batch of one kind.
    public struct Outcome: Sendable {
        /// The attempts that may run now.
        public var started: [StartedAttempt] = []
        /// Jobs parked until a concurrency slot frees, and their keys.
        public var parked: Set<UUID> = []
        public var parkedKeys: Set<String?> = []
        /// Jobs held back by the rate limiter, until the time each reserved.
        public var heldBack: Set<UUID> = []
        /// The slot key each started job of a per-key limited kind holds.
        public var keys: [UUID: String] = [:]
        /// The kind's breaker and its state after this claim, and its change of state, if any.
        public var breaker: (name: String, state: CircuitBreakers.State)?
        public var transition: CircuitBreakers.Transition?
    }

    /// A delivery the gate may start: its job's key and limiter ticket, read under lock.
    private struct Candidate {
        var claim: AttemptClaim
        var key: String?
        var ticket: Double?
        /// A redelivered running attempt (its consumer died): it holds its slot already.
        var rerun: Bool
    }

    /// Gates `claims` of jobs of `kind`. `parkFor`: the fallback of a parked job, in seconds.
    public static func claim(_ claims: [AttemptClaim], kind: KindCatalog.Kind, catalog: KindCatalog,
                             parkFor: Double, worker: String, on connection: PostgresConnection) throws -> Outcome {
        try connection.transaction { c in
            // The kind's slots: locked and read here when the kind has a global limit; a
            // per-key limit alone locks and reads its candidates' keys once they are known.
            let kindWide = kind.limit.map { !ConcurrencySlots.locksPerKey($0) } ?? false
            if kindWide { _ = try c.query(ConcurrencySlots.lockSQL("$1::text"), [kind.name]) }
            let path = kind.limit?.keyPath?.split(separator: ".").map(String.init)
            // The delivery of each job with the newest attempt: the one the SQL below checks.
            var newest: [UUID: AttemptClaim] = [:]
            for claim in claims where (newest[claim.id]?.attempt ?? Int.min) < claim.attempt { newest[claim.id] = claim }
            var candidates: [UUID: Candidate] = [:]
            var slots: ConcurrencySlots.Taken?
            for row in try c.queryPrepared(candidatesSQL, [claims.map(\.id), claims.map(\.attempt), claims.map(\.redelivered), path,
                                                   kindWide ? kind.name : nil, claims.map(\.heartbeatTimeout), worker]) {
                if kindWide, slots == nil { slots = ConcurrencySlots.Taken(json: try row.decode(String.self, at: 4)) }
                let id = try row.decode(UUID.self, at: 0)
                guard let claim = newest[id] else { continue }
                candidates[id] = Candidate(claim: claim, key: path == nil ? nil : try row.decode(String?.self, at: 1),
                                           ticket: try row.decode(Double?.self, at: 2), rerun: try row.decode(Bool.self, at: 3))
            }
            if let limit = kind.limit, !kindWide, !candidates.isEmpty {
                slots = try ConcurrencySlots.lockAndRead(kind: kind.name, limit: limit, keys: Set(candidates.values.map(\.key)), on: c)
            }
            var bucket = try kind.limiter.flatMap { name in
                try catalog.limiters[name].map { try RateLimiters.Bucket.read(name, limit: $0, on: c) }
            }
            var breaker = try kind.breaker.flatMap { name in
                try catalog.breakers[name].map { try CircuitBreakers.Gate.read(name, policy: $0, on: c) }
            }
            var admitted: [Candidate] = [], waits: [Wait] = []
            var parked: Set<UUID> = [], held: Set<UUID> = []
            // In delivery order, each job once.
            var seen = Set<UUID>()
            for delivery in claims {
                guard seen.insert(delivery.id).inserted, let candidate = candidates[delivery.id] else { continue }
                let claim = candidate.claim
                if candidate.rerun {
                    // Its consumer died while it ran, and no other processor reported holding
                    // it within its heartbeat timeout. With a concurrency limit it is not run
                    // again now: its lease holds its slot (a lock per key must hold), and the
                    // scheduler's rescue gives it another attempt, freeing the slot.
                    if kind.limit == nil { admitted.append(candidate) }
                    continue
                }
                if let limit = kind.limit, let s = slots, !s.fits(key: candidate.key, limit: limit) {
                    parked.insert(claim.id)
                    waits.append(Wait(candidate: candidate, delay: parkFor, waitingKind: kind.name, ticket: false,
                                      detail: ["waiting_for": .string("concurrency")].merging(candidate.key.map { ["key": .string($0)] } ?? [:]) { a, _ in a }))
                    continue
                }
                if breaker != nil, let wait = breaker!.admit(claim.id, probeTimeout: kind.policy.timeout + 5) {
                    held.insert(claim.id)
                    waits.append(Wait(candidate: candidate, delay: wait, waitingKind: nil, ticket: false,
                                      detail: ["waiting_for": .string("breaker"), "breaker": .string(breaker!.name),
                                               "state": .string(breaker!.state.rawValue)]))
                    continue
                }
                if bucket != nil {
                    let wait = bucket!.take(ticket: candidate.ticket)
                    if wait > 0 {
                        held.insert(claim.id)
                        waits.append(Wait(candidate: candidate, delay: wait, waitingKind: nil, ticket: true,
                                          detail: ["waiting_for": .string("limiter"), "limiter": .string(bucket!.name),
                                                   "wait_seconds": .number((wait * 1000).rounded() / 1000)]))
                        continue
                    }
                }
                slots?.take(key: candidate.key)
                admitted.append(candidate)
            }
            var outcome = Outcome()
            if !admitted.isEmpty {
                // With a concurrency limit every admitted job is a fresh start (no rerun): it takes its slot.
                outcome.started = try AttemptStore.start(admitted.map(\.claim), worker: worker,
                                                         slots: kind.limit == nil ? nil : (kind.name, admitted.map(\.key)), on: c)
                if kind.limit != nil { for a in admitted { outcome.keys[a.claim.id] = a.key } }
                if kind.limiter != nil, admitted.contains(where: { $0.ticket != nil }) {
                    try c.execute("UPDATE jobs SET limiter_ticket = NULL WHERE id = ANY($1::uuid[]) AND limiter_ticket IS NOT NULL",
                                  [admitted.filter { $0.ticket != nil }.map(\.claim.id)])
                }
            }
            if let bucket { try bucket.save(on: c) }
            if let breaker {
                outcome.transition = try breaker.save(on: c)
                outcome.breaker = (breaker.name, breaker.state)
            }
            let waiting = try hold(waits, on: c)
            outcome.parked = waiting.intersection(parked)
            outcome.parkedKeys = Set(waits.filter { outcome.parked.contains($0.candidate.claim.id) }.map(\.candidate.key))
            outcome.heldBack = waiting.intersection(held)
            return outcome
        }
    }

    /// The jobs of deliveries `$1` (attempts `$2`, redelivered `$3`, heartbeat timeouts `$6`)
    /// that processor `$7` may start, locked: id, key at path `$4` (JSON text), limiter ticket
    /// (epoch seconds), whether a rerun, and the slots of kind `$5` taken now (a JSON object
    /// of counts by key, `""` for none; read after the kind's lock was taken, as this
    /// statement's snapshot is; `$5` is nil for a per-key limit alone, whose slots are read
    /// under their keys' locks afterwards).
    static let candidatesSQL = """
        WITH \(AttemptStore.deliveries(timeouts: "$6"))
        SELECT j.id, CASE WHEN $4::text[] IS NULL THEN NULL ELSE coalesce(j.payload #> $4::text[], 'null'::jsonb)::text END,
               extract(epoch FROM j.limiter_ticket)::float8, j.status IN ('running', 'retrying') AND j.attempts = d.attempt,
               (SELECT coalesce(jsonb_object_agg(coalesce(s.slot_key, ''), s.n), '{}'::jsonb)::text
                FROM (SELECT slot_key, count(*) AS n FROM job_leases WHERE slot_kind = $5 GROUP BY slot_key) s)
        FROM jobs j JOIN d ON j.id = d.id
        WHERE \(AttemptStore.claimable(worker: "$7"))
        FOR UPDATE OF j
        """

    /// A job that does not start now: for how long, and what it waits for.
    private struct Wait {
        var candidate: Candidate
        var delay: Double
        /// The kind whose slot it waits for (a finishing attempt wakes it); nil: its time.
        var waitingKind: String?
        /// Whether its due time is a limiter reservation it holds.
        var ticket: Bool
        var detail: [String: JSONValue]
    }

    private static func hold(_ waits: [Wait], on connection: PostgresConnection) throws -> Set<UUID> {
        guard !waits.isEmpty else { return [] }
        let rows = try connection.queryPrepared(holdSQL, [
            waits.map(\.candidate.claim.id), waits.map(\.candidate.claim.attempt), waits.map(\.candidate.key),
            waits.map(\.waitingKind), waits.map(\.delay), waits.map(\.ticket), waits.map { JSONValue.object($0.detail).jsonText },
        ])
        return Set(try rows.map { try $0.decode(UUID.self, at: 0) })
    }

    /// Puts jobs back to wait: `$1` ids, `$2` their deliveries' attempts, `$3` slot keys, `$4`
    /// the kind whose slot each waits for (NULL: it waits for its time), `$5` seconds to wait,
    /// `$6` whether that time is a limiter ticket (else a ticket it holds is kept), `$7` the
    /// event detail. Only a job still
    /// waiting to run is changed.
    static let holdSQL = JobTransitions.statement(
        before: ["""
            d AS (
                SELECT DISTINCT ON (id) * FROM unnest($1::uuid[], $2::int[], $3::text[], $4::text[], $5::float8[], $6::bool[], $7::text[])
                    AS t(id, attempt, key, waiting, delay, ticket, detail)
                ORDER BY id, attempt DESC
            )
            """],
        change: """
            UPDATE jobs j SET status = 'scheduled', published_at = NULL, updated_at = now(),
                   run_after = now() + make_interval(secs => d.delay),
                   limiter_ticket = CASE WHEN d.ticket THEN now() + make_interval(secs => d.delay) ELSE j.limiter_ticket END
            FROM d
            WHERE j.id = d.id AND j.status IN ('scheduled', 'queued', 'retrying') AND j.attempts < d.attempt
            RETURNING j.id, j.kind, j.owner_id, j.run_after, d.key, d.waiting,
                      'scheduled' AS event_status, j.attempts AS event_attempt, d.detail::jsonb AS event_detail
            """,
        effects: ["""
            ob AS (
                INSERT INTO job_outbox (job_id, due_at, relay_only, waiting_kind, waiting_key)
                SELECT id, run_after, true, waiting, CASE WHEN waiting IS NULL THEN NULL ELSE key END FROM changed
                ON CONFLICT (job_id) DO UPDATE SET due_at = EXCLUDED.due_at, relay_only = true,
                    waiting_kind = EXCLUDED.waiting_kind, waiting_key = EXCLUDED.waiting_key
            )
            """],
        batches: .unchanged, select: "id")
}
