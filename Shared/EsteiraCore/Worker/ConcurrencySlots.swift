import Foundation
import Postgres

/// Global and per-key concurrency across every processor instance. A running attempt of a
/// limited kind holds a slot: its `job_leases` row names the kind and key. Claims of a kind
/// count those rows under a transaction-scoped advisory lock, so two processors never both
/// take the last slot: the kind's lock when it has a global limit, else (a per-key limit
/// alone) a lock per key (one of the kind's 64 stripes), so that claims of different keys
/// seldom wait for each other and never read each other's slots. A delivery over the limit is parked: its job goes back to
/// `scheduled` with a relay-only outbox row that names the slot it waits for, and the message
/// is acked, so it holds no prefetch place and spends no attempt. A finishing attempt wakes
/// the oldest waiter of its slot (``wakeIfFree(kind:limit:keys:on:)``); the outbox row's due time is
/// the fallback when no wake comes (its holder was killed: the scheduler's rescue frees the
/// slot within the kind's heartbeat timeout).
public enum ConcurrencySlots {
    /// The advisory lock key of `kind`'s slots.
    static func lockSQL(_ parameter: String) -> String {
        "SELECT pg_advisory_xact_lock(hashtextextended('esteira.slots.' || \(parameter), 0))"
    }

    /// The slots of `kind` taken now.
    struct Taken {
        var total = 0
        var byKey: [String: Int] = [:]

        /// Whether a job with `key` fits `limit` now.
        func fits(key: String?, limit: KindCatalog.ConcurrencyLimit) -> Bool {
            if let g = limit.global, total >= g { return false }
            if let key, byKey[key, default: 0] >= limit.perKey { return false }
            return true
        }

        /// From the counts by key of a JSON object (`""`: leases without a key).
        init(json: String) {
            guard case .object(let counts)? = JSONValue.parse(json) else { return }
            for (key, value) in counts {
                let n = Int(value.doubleValue ?? 0)
                total += n
                if !key.isEmpty { byKey[key, default: 0] += n }
            }
        }

        init() {}

        mutating func take(key: String?) {
            total += 1
            if let key { byKey[key, default: 0] += 1 }
        }
    }

    /// Whether `limit`'s slots are locked per key: a per-key limit with no global one.
    static func locksPerKey(_ limit: KindCatalog.ConcurrencyLimit) -> Bool {
        limit.global == nil && limit.keyPath != nil
    }

    /// Takes the locks of the slots of `kind` that jobs with `keys` need, then reads how many
    /// of those are taken (after the locks: the statement's snapshot sees every slot taken by
    /// a claim that held them before). With a global limit: the kind's lock and all its
    /// slots. With a per-key limit alone: its keys' locks, in one order for every taker (two
    /// never wait for each other crosswise), and those keys' slots.
    static func lockAndRead(kind: String, limit: KindCatalog.ConcurrencyLimit, keys: Set<String?>,
                            on connection: PostgresConnection) throws -> Taken {
        var taken = Taken()
        let rows: PostgresRows
        if locksPerKey(limit) {
            let named = keys.compactMap { $0 }
            guard !named.isEmpty else { return taken }
            _ = try connection.query(keyLocksSQL, [kind, named])
            rows = try connection.query(keySlotsSQL, [kind, named])
        } else {
            _ = try connection.query(lockSQL("$1::text"), [kind])
            rows = try connection.query(slotsSQL, [kind])
        }
        for row in rows {
            let n = try row.decode(Int.self, at: 1)
            taken.total += n
            if let key = try row.decode(String?.self, at: 0) { taken.byKey[key, default: 0] += n }
        }
        return taken
    }

    /// The locks of kind `$1`'s keys `$2`: a key's lock is one of the kind's 64 stripes (a
    /// batch of many keys takes at most 64 locks), taken in the stripes' order. The two-int
    /// advisory locks are apart from the one-bigint lock of ``lockSQL(_:)``.
    static let keyLocksSQL = """
        SELECT count(pg_advisory_xact_lock(hashtext('esteira.slots.' || $1::text), s))
        FROM (SELECT DISTINCT (hashtext(k) & 63) AS s FROM unnest($2::text[]) AS k ORDER BY s) t
        """

    /// The slots of kind `$1` taken now, by key.
    public static let slotsSQL = "SELECT slot_key, count(*)::int FROM job_leases WHERE slot_kind = $1 GROUP BY slot_key"

    /// The slots of kind `$1` and keys `$2` taken now, by key.
    static let keySlotsSQL = """
        SELECT slot_key, count(*)::int FROM job_leases WHERE slot_kind = $1 AND slot_key = ANY($2::text[]) GROUP BY slot_key
        """

    /// Whether a job waits for a slot of `kind`. Read without the lock, so that a kind whose
    /// limit does not bind costs ending attempts an index probe rather than turns at the
    /// kind's lock. A job parked just after this read is not lost: its claimer looks at the
    /// slots again once its park is committed (``wakeIfFree(kind:limit:keys:on:)``).
    public static func hasWaiters(kind: String, on connection: PostgresConnection) throws -> Bool {
        try connection.query("SELECT EXISTS (SELECT 1 FROM job_outbox WHERE waiting_kind = $1)", [kind])[0].decode(Bool.self, at: 0)
    }

    /// Slots that attempts of this processor freed, gathered while a wake is under way so that
    /// many ending attempts cost one look for waiters per kind, not one each. Whoever finds no
    /// wake under way runs them, in its own task, until none are left.
    final class Releases: @unchecked Sendable {
        private let lock = NSLock()
        private var pending: [String: Set<String?>] = [:]
        private var running = false

        /// Records a freed slot of `kind` (`key`); runs `wake` for what gathered unless a wake
        /// is under way, which then takes this one too.
        func freed(kind: String, key: String?, wake: ([String: Set<String?>]) async -> Void) async {
            let mine = lock.withLock { () -> Bool in
                pending[kind, default: []].insert(key)
                if running { return false }
                running = true
                return true
            }
            guard mine else { return }
            while true {
                let batch = lock.withLock { () -> [String: Set<String?>] in
                    defer { pending = [:] }
                    if pending.isEmpty { running = false }
                    return pending
                }
                if batch.isEmpty { return }
                await wake(batch)
            }
        }
    }

    /// Wakes as many waiters of `kind` as there are slots free now, under the slots' locks:
    /// waiters of `keys` first (the slots just freed, or the keys a claim just parked), then,
    /// for a kind with a global limit as well as per-key ones, the oldest waiters of any key
    /// that fits (a job parked by the global limit must not wait for its own key to end).
    /// After a claim parked jobs, an attempt that ended meanwhile (and found no waiter yet)
    /// has freed its slot by now.
    public static func wakeIfFree(kind: String, limit: KindCatalog.ConcurrencyLimit, keys: Set<String?>,
                                  on connection: PostgresConnection) throws -> [UUID] {
        try connection.transaction { c in
            var taken = try lockAndRead(kind: kind, limit: limit, keys: keys, on: c)
            var woken: [UUID] = []
            for key in keys {
                while taken.fits(key: key, limit: limit) {
                    let sql = wakeSQL(key == nil ? .noKey : .key)
                    guard let id = try c.query(sql, key == nil ? [kind] : [kind, key]).first?.decode(UUID.self, at: 0) else { break }
                    woken.append(id)
                    taken.take(key: key)
                }
            }
            if limit.global != nil, limit.keyPath != nil, taken.fits(key: nil, limit: limit) {
                for row in try c.query(oldestWaitersSQL, [kind]) {
                    let id = try row.decode(UUID.self, at: 0), key = try row.decode(String?.self, at: 1)
                    guard taken.fits(key: nil, limit: limit) else { break }
                    guard taken.fits(key: key, limit: limit) else { continue }
                    try c.execute("UPDATE job_outbox SET due_at = now(), waiting_kind = NULL, waiting_key = NULL WHERE job_id = $1", [id])
                    woken.append(id)
                    taken.take(key: key)
                }
            }
            return woken
        }
    }

    /// The 100 oldest waiters of kind `$1`, any key, locked.
    static let oldestWaitersSQL = """
        SELECT job_id, waiting_key FROM job_outbox WHERE waiting_kind = $1 ORDER BY due_at LIMIT 100 FOR UPDATE SKIP LOCKED
        """

    /// Which waiters of kind `$1` a wake looks at.
    public enum Waiters: Sendable {
        /// Those of key `$2`.
        case key
        /// Those of a kind without a per-key limit.
        case noKey
    }

    /// Makes the oldest of `waiters` due now and returns it.
    public static func wakeSQL(_ waiters: Waiters) -> String {
        let condition = switch waiters {
        case .key: " AND waiting_key = $2"
        case .noKey: " AND waiting_key IS NULL"
        }
        return """
            UPDATE job_outbox o SET due_at = now(), waiting_kind = NULL, waiting_key = NULL
            WHERE o.job_id = (SELECT job_id FROM job_outbox WHERE waiting_kind = $1\(condition)
                              ORDER BY due_at LIMIT 1 FOR UPDATE SKIP LOCKED)
            RETURNING o.job_id
            """
    }
}
