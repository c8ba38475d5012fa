import Foundation
import Logging
import Postgres

/// One leader among any number of schedulers: a session-level PostgreSQL advisory lock held
/// on a connection of its own. A leader that dies or stops closes that connection and the
/// server frees the lock; a standby, trying every `interval` seconds, takes it. A leader
/// checks every `interval` that its session still holds the lock (a connection the pool
/// replaced holds nothing) and steps down at once when it does not.
public final class Leadership: @unchecked Sendable {
    /// The advisory lock key ("esteira sched").
    public static let lockKey: Int64 = 0x6573_7465_7363_6864
    private let pool: PostgresPool
    private let logger: Logger
    public let interval: Double
    private let lock = NSLock()
    private var leading = false

    /// `pool` must be this object's alone, of one connection.
    public init(pool: PostgresPool, interval: Double = 1, logger: Logger) {
        self.pool = pool
        self.interval = interval
        self.logger = logger
    }

    /// Whether this instance leads now.
    public var isLeader: Bool { lock.withLock { leading } }

    /// One round: takes the lock when free, or checks it is still held. Returns whether
    /// this instance leads after the round; a failure of the database means "not leading".
    @discardableResult
    public func round() async -> Bool {
        let was = isLeader
        var now = false
        do {
            now = try await pool.withConnection { c in
                let held = try c.query("""
                    SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted
                                   AND classid = ($1::bigint >> 32)::oid AND objid = ($1::bigint & 4294967295)::oid AND objsubid = 1)
                    """, [Leadership.lockKey]).first?.decode(Bool.self, at: 0) ?? false
                if held { return true }
                return try c.query("SELECT pg_try_advisory_lock($1)", [Leadership.lockKey]).first?.decode(Bool.self, at: 0) ?? false
            }
        } catch {
            if was { logger.error("leadership check failed; stepping down", metadata: ["error": "\(error)"]) }
            now = false
        }
        lock.withLock { leading = now }
        if now != was {
            logger.notice(now ? "leading: this scheduler acts" : "not leading: standing by")
        }
        return now
    }

    /// Gives the lock up (a graceful stop), so a standby takes over at its next round.
    public func resign() async {
        guard isLeader else { return }
        lock.withLock { leading = false }
        _ = try? await pool.withConnection { try $0.query("SELECT pg_advisory_unlock_all()") }
        logger.notice("resigned leadership")
    }
}
