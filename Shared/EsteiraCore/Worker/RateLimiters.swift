import Foundation
import Metrics
import Postgres

/// Named rate limiters shared by every processor instance: a row of `rate_limiters` each,
/// kept as a GCRA token bucket (the theoretical arrival time `tat`: every token taken moves
/// it 1/rate seconds on; a token is there while `tat` is at most the burst ahead of now).
/// A job that finds no token reserves the next one and waits until its time, holding that
/// reservation (its ticket), so it does not compete again when it comes back. When the
/// service behind a limiter answers 429 or 503 with Retry-After, the limiter pauses: no job
/// that uses it starts before then.
public enum RateLimiters {
    /// A job may start this much before its reservation (relay and clock granularity).
    public static let slack = 0.005

    /// One limiter's bucket, read and locked in the claiming transaction.
    struct Bucket {
        let name: String
        let limit: KindCatalog.RateLimit
        /// The database's clock at the read, and the bucket, in epoch seconds.
        let now: Double
        var tat: Double
        let pausedUntil: Double?
        private var changed = false

        static func read(_ name: String, limit: KindCatalog.RateLimit, on connection: PostgresConnection) throws -> Bucket {
            let row = try connection.query("""
                INSERT INTO rate_limiters (name) VALUES ($1) ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name
                RETURNING extract(epoch FROM tat)::float8, extract(epoch FROM paused_until)::float8, extract(epoch FROM now())::float8
                """, [name])[0]
            return Bucket(name: name, limit: limit, now: try row.decode(Double.self, at: 2), tat: try row.decode(Double.self, at: 0),
                          pausedUntil: try row.decode(Double?.self, at: 1))
        }

        /// Takes a token for a job holding `ticket` (its reservation, if any): 0 when it may
        /// start now, else the seconds until the time it reserved.
        mutating func take(ticket: Double?) -> Double {
            let paused = pausedUntil.map { $0 > now } ?? false
            if let ticket, !paused {
                return ticket <= now + RateLimiters.slack ? 0 : ticket - now
            }
            let interval = 1 / limit.rate
            let tolerance = Double(limit.burst - 1) * interval
            let base = paused ? pausedUntil! : now
            let arrival = max(tat, base)
            let start = max(base, arrival - tolerance)
            tat = arrival + interval
            changed = true
            return start <= now + RateLimiters.slack ? 0 : start - now
        }

        func save(on connection: PostgresConnection) throws {
            guard changed else { return }
            try connection.execute("UPDATE rate_limiters SET tat = to_timestamp($2) WHERE name = $1", [name, tat])
        }
    }

    /// Reserves a token of limiter `name` for a handler that calls its service several times
    /// within one job: returns the seconds until the reserved token is there (0: now).
    public static func reserve(_ name: String, limit: KindCatalog.RateLimit, on connection: PostgresConnection) throws -> Double {
        try reserve(name, limit: limit, count: 1, on: connection)[0]
    }

    /// Reserves `count` tokens of limiter `name` at once: the seconds from now until each is
    /// there, in order (each as if taken one after the other).
    public static func reserve(_ name: String, limit: KindCatalog.RateLimit, count: Int, on connection: PostgresConnection) throws -> [Double] {
        try connection.transaction { c in
            // The row is locked until the commit: without waiting for the commit's flush, the
            // next taker waits microseconds, not a disk write. A crash may forget the last
            // reservations (a few tokens handed out again), never a job's state.
            try c.execute("SET LOCAL synchronous_commit = off")
            var bucket = try Bucket.read(name, limit: limit, on: c)
            let waits = (0..<max(1, count)).map { _ in bucket.take(ticket: nil) }
            try bucket.save(on: c)
            return waits
        }
    }

    /// Pauses limiter `name` for `seconds` (a Retry-After): no job using it starts before
    /// then, and the tokens after the pause are reserved from its end.
    public static func pause(_ name: String, for seconds: Double, on connection: PostgresConnection) throws {
        try connection.execute("""
            INSERT INTO rate_limiters AS r (name, tat, paused_until, pauses)
            VALUES ($1, now() + make_interval(secs => $2), now() + make_interval(secs => $2), 1)
            ON CONFLICT (name) DO UPDATE SET
                paused_until = greatest(coalesce(r.paused_until, now()), EXCLUDED.paused_until),
                tat = greatest(r.tat, EXCLUDED.paused_until), pauses = r.pauses + 1
            """, [name, max(0, min(seconds, 86_400))])
        Counter(label: "esteira_limiter_pauses_total", dimensions: [("limiter", name)]).increment()
    }

    /// Seconds limiter `name` stays paused (0: not paused), for a caller that has no rate of
    /// its own to keep and heeds only the pauses its service asked for.
    public static func pausedFor(_ name: String, on connection: PostgresConnection) throws -> Double {
        try connection.query("""
            SELECT greatest(0, extract(epoch FROM paused_until - now()))::float8 FROM rate_limiters WHERE name = $1
            """, [name]).first?.decode(Double?.self, at: 0) ?? 0
    }

    /// A limiter's state, as the api shows it.
    public struct State: Sendable, Encodable {
        public var name: String
        public var rate: Double
        public var burst: Int
        /// Tokens there now (0 while paused).
        public var available: Double
        public var pausedUntil: Date?
        public var pauses: Int

        enum CodingKeys: String, CodingKey {
            case name, rate, burst, available, pauses
            case pausedUntil = "paused_until"
        }
    }

    /// Every limiter of `catalog`, with its state (a limiter no job has used yet is full).
    public static func states(catalog: KindCatalog, on connection: PostgresConnection) throws -> [State] {
        var rows: [String: (tat: Double, paused: Double?, now: Double, pauses: Int)] = [:]
        for row in try connection.query("""
            SELECT name, extract(epoch FROM tat)::float8, extract(epoch FROM paused_until)::float8,
                   extract(epoch FROM now())::float8, pauses::int FROM rate_limiters
            """) {
            rows[try row.decode(String.self, at: 0)] = (try row.decode(Double.self, at: 1), try row.decode(Double?.self, at: 2),
                                                        try row.decode(Double.self, at: 3), try row.decode(Int.self, at: 4))
        }
        return catalog.limiters.keys.sorted().map { name in
            let limit = catalog.limiters[name]!
            guard let r = rows[name] else {
                return State(name: name, rate: limit.rate, burst: limit.burst, available: Double(limit.burst), pausedUntil: nil, pauses: 0)
            }
            let paused = r.paused.map { $0 > r.now } ?? false
            // Tokens: how far tat is behind now + the burst window, in intervals.
            let available = paused ? 0 : min(Double(limit.burst), max(0, (r.now + Double(limit.burst) / limit.rate - max(r.tat, r.now)) * limit.rate))
            return State(name: name, rate: limit.rate, burst: limit.burst, available: (available * 100).rounded(.down) / 100,
                         pausedUntil: paused ? Date(timeIntervalSince1970: r.paused!) : nil, pauses: r.pauses)
        }
    }
}

/// A process's share of shared limiters, reserved in blocks: a handler that takes a token
/// per call (a send) at hundreds or thousands a second would otherwise update the limiter's
/// row once per call, every taker in line for its lock. A block holds a tenth of a second of
/// the limiter's rate (at most its burst), reserved in one transaction, each token with the
/// time it is due; tokens left over for more than a second are dropped (using them would
/// exceed the rate the other processes see), and a pause drops the block.
public final class TokenBlocks: @unchecked Sendable {
    private struct Block {
        var due: [ContinuousClock.Instant]
        var next = 0
    }
    private let lock = NSLock()
    private var blocks: [String: Block] = [:]
    /// One reservation at a time: the takers that find no token wait for it, not reserve too.
    private let refill = AsyncLimiter(limit: 1)
    /// How much of the rate one reservation takes.
    let share: Double

    public init(share: Double = 0.1) {
        self.share = share
    }

    /// Waits for a token of limiter `name` (`limit`), reserving a block when this process has none left.
    public func take(_ name: String, limit: KindCatalog.RateLimit, pool: PostgresPool) async throws {
        while true {
            if let due = next(name) {
                if due > .now { try await Task.sleep(until: due, clock: .continuous) }
                return
            }
            await refill.acquire()
            defer { refill.release() }
            // Another taker's reservation may have come while this one waited.
            guard lock.withLock({ blocks[name] == nil }) else { continue }
            let count = max(1, min(limit.burst, Int((limit.rate * share).rounded(.down))))
            let waits = try await pool.withConnection { try RateLimiters.reserve(name, limit: limit, count: count, on: $0) }
            let start = ContinuousClock.now
            lock.withLock { blocks[name] = Block(due: waits.map { start + .milliseconds(Int(($0 * 1000).rounded(.up))) }) }
        }
    }

    /// The due time of this process's next token of `name`, taken; nil when it has none.
    private func next(_ name: String) -> ContinuousClock.Instant? {
        let now = ContinuousClock.now
        return lock.withLock {
            guard var block = blocks[name] else { return nil }
            while block.next < block.due.count, now - block.due[block.next] > .seconds(1) { block.next += 1 }
            guard block.next < block.due.count else { blocks[name] = nil; return nil }
            defer { block.next += 1; blocks[name] = block }
            return block.due[block.next]
        }
    }

    /// Forgets this process's tokens of `name` (its service asked to slow down).
    public func drop(_ name: String) {
        lock.withLock { blocks[name] = nil }
    }
}
