import Foundation
import Postgres

/// Global and per-key concurrency across every processor instance. A running attempt of a
/// limited kind holds a slot: its `job_leases` row names the kind and key. Claims of a kind
/// count those rows under a transaction-scoped advisory lock on the kind, so two processors
/// never both take the last slot. A delivery over the limit is parked: its job goes back to
/// `scheduled` with a relay-only outbox row that names the slot it waits for, and the message
/// is acked, so it holds no prefetch place and spends no attempt. A finishing attempt wakes
/// the oldest waiter of its slot (``wake(kind:key:limit:on:)``); the outbox row's due time is
/// the fallback when no wake comes (its holder was killed: the scheduler's rescue frees the
/// slot within the kind's heartbeat timeout).
public enum ConcurrencySlots {
    /// What a claim of a limited kind did.
    public struct Outcome: Sendable {
        /// The attempts that took a slot and may run.
        public var started: [StartedAttempt] = []
        /// The jobs parked until a slot frees.
        public var parked: Set<UUID> = []
        /// The key value each started job holds a slot of (per-key limits only).
        public var keys: [UUID: String] = [:]
    }

    /// The advisory lock key of `kind`'s slots.
    static func lockSQL(_ parameter: String) -> String {
        "SELECT pg_advisory_xact_lock(hashtextextended('esteira.slots.' || \(parameter), 0))"
    }

    /// Claims those of `claims` (jobs of `kind`) that fit `limit`, and parks the rest for up
    /// to `parkFor` seconds. One transaction. Claims that are refused (finished, cancelled,
    /// stale copies) are neither. A job's key is its payload's value at the limit's key path,
    /// as JSON text (`null` when missing).
    public static func claim(_ claims: [AttemptClaim], kind: String, limit: KindCatalog.ConcurrencyLimit,
                             parkFor: Double, worker: String, on connection: PostgresConnection) throws -> Outcome {
        try connection.transaction { c in
            _ = try c.query(lockSQL("$1::text"), [kind])
            var keys = [String?](repeating: nil, count: claims.count)
            if let path = limit.keyPath {
                var byID: [UUID: String] = [:]
                for row in try c.query("""
                    SELECT id, coalesce(payload #> $2::text[], 'null'::jsonb)::text FROM jobs WHERE id = ANY($1::uuid[])
                    """, [claims.map(\.id), path.split(separator: ".").map(String.init)]) {
                    byID[try row.decode(UUID.self, at: 0)] = try row.decode(String.self, at: 1)
                }
                keys = claims.map { byID[$0.id] }
            }
            var total = 0, byKey: [String: Int] = [:]
            for row in try c.query(slotsSQL, [kind]) {
                let n = try row.decode(Int.self, at: 1)
                total += n
                if let key = try row.decode(String?.self, at: 0) { byKey[key, default: 0] += n }
            }
            func fits(_ i: Int, _ total: Int, _ byKey: [String: Int]) -> Bool {
                if let g = limit.global, total >= g { return false }
                if let key = keys[i], byKey[key, default: 0] >= limit.perKey { return false }
                return true
            }
            var outcome = Outcome()
            var pending = Array(claims.indices)
            // Admit what fits; a claim the job refuses leaves its slot to the next round.
            while !pending.isEmpty {
                var admitted: [Int] = [], over: [Int] = []
                var t = total, k = byKey
                for i in pending {
                    guard fits(i, t, k) else { over.append(i); continue }
                    admitted.append(i)
                    t += 1
                    if let key = keys[i] { k[key, default: 0] += 1 }
                }
                guard !admitted.isEmpty else { break }
                let started = try AttemptStore.start(admitted.map { claims[$0] }, worker: worker, on: c)
                let ids = Set(started.map(\.id))
                let taken = admitted.filter { ids.contains(claims[$0].id) }
                try c.execute("""
                    UPDATE job_leases l SET slot_kind = $1, slot_key = t.key
                    FROM unnest($2::uuid[], $3::text[]) AS t(id, key) WHERE l.job_id = t.id
                    """, [kind, taken.map { claims[$0].id }, taken.map { keys[$0] }])
                for i in taken {
                    outcome.keys[claims[i].id] = keys[i]
                    total += 1
                    if let key = keys[i] { byKey[key, default: 0] += 1 }
                }
                outcome.started += started
                pending = over
                if taken.count == admitted.count { break }
            }
            if !pending.isEmpty {
                let rows = try c.query(parkSQL, [pending.map { claims[$0].id }, pending.map { claims[$0].attempt },
                                                 pending.map { keys[$0] }, kind, parkFor])
                outcome.parked = Set(try rows.map { try $0.decode(UUID.self, at: 0) })
            }
            return outcome
        }
    }

    /// The slots of kind `$1` taken now, by key.
    public static let slotsSQL = "SELECT slot_key, count(*)::int FROM job_leases WHERE slot_kind = $1 GROUP BY slot_key"

    /// Parks jobs: `$1` ids, `$2` the attempts their messages carry, `$3` keys, `$4` the kind,
    /// `$5` the fallback in seconds. Only a job that was waiting to run is parked.
    static let parkSQL = JobTransitions.statement(
        before: ["""
            d AS (
                SELECT DISTINCT ON (id) * FROM unnest($1::uuid[], $2::int[], $3::text[]) AS t(id, attempt, key)
                ORDER BY id, attempt DESC
            )
            """],
        change: """
            UPDATE jobs j SET status = 'scheduled', published_at = NULL, updated_at = now(),
                   run_after = now() + make_interval(secs => $5::float8)
            FROM d
            WHERE j.id = d.id AND j.status IN ('scheduled', 'queued', 'retrying') AND j.attempts < d.attempt
            RETURNING j.id, j.kind, j.owner_id, j.run_after, d.key,
                      'scheduled' AS event_status, j.attempts AS event_attempt,
                      jsonb_strip_nulls(jsonb_build_object('waiting_for', 'concurrency', 'key', d.key)) AS event_detail
            """,
        effects: ["""
            ob AS (
                INSERT INTO job_outbox (job_id, due_at, relay_only, waiting_kind, waiting_key)
                SELECT id, run_after, true, $4, key FROM changed
                ON CONFLICT (job_id) DO UPDATE SET due_at = EXCLUDED.due_at, relay_only = true,
                    waiting_kind = EXCLUDED.waiting_kind, waiting_key = EXCLUDED.waiting_key
            )
            """],
        select: "id")

    /// Makes the oldest job waiting for a slot of `kind` due now, and returns it (none: no
    /// waiter). With a per-key limit, a waiter of `key` first, then (with a global limit as
    /// well) any waiter of the kind. Under the kind's lock: a claim that is parking a job now
    /// either sees the slot free or has committed its waiter before this looks.
    public static func wake(kind: String, key: String?, limit: KindCatalog.ConcurrencyLimit,
                            on connection: PostgresConnection) throws -> [UUID] {
        try connection.transaction { c in
            _ = try c.query(lockSQL("$1::text"), [kind])
            guard limit.keyPath != nil else {
                return try c.query(wakeSQL(.noKey), [kind]).map { try $0.decode(UUID.self, at: 0) }
            }
            let woken = try c.query(wakeSQL(.key), [kind, key]).map { try $0.decode(UUID.self, at: 0) }
            if !woken.isEmpty || limit.global == nil { return woken }
            return try c.query(wakeSQL(.anyKey), [kind]).map { try $0.decode(UUID.self, at: 0) }
        }
    }

    /// Which waiters of kind `$1` a wake looks at.
    public enum Waiters: Sendable {
        /// Those of key `$2`.
        case key
        /// Those of a kind without a per-key limit.
        case noKey
        /// Any (a kind with both limits, when none of the freed key waits).
        case anyKey
    }

    /// Makes the oldest of `waiters` due now and returns it.
    public static func wakeSQL(_ waiters: Waiters) -> String {
        let condition = switch waiters {
        case .key: " AND waiting_key = $2"
        case .noKey: " AND waiting_key IS NULL"
        case .anyKey: ""
        }
        return """
            UPDATE job_outbox o SET due_at = now(), waiting_kind = NULL, waiting_key = NULL
            WHERE o.job_id = (SELECT job_id FROM job_outbox WHERE waiting_kind = $1\(condition)
                              ORDER BY due_at LIMIT 1 FOR UPDATE SKIP LOCKED)
            RETURNING o.job_id
            """
    }
}
