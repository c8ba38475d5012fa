import EsteiraCore
import EsteiraService
import Foundation
import Logging
import Postgres
import ServiceLifecycle

/// Jobs per kind and status now, for the overview and the queues page. No index of `jobs`
/// covers `status` (so that a job's state changes stay cheap writes), so a count reads every
/// job of its scope: it is never done while a page waits. ``StatusCountsService`` counts, in
/// the background, each scope (everyone's, or one owner's) a page asked for in the last
/// ``keepFor``, again after ``minInterval`` or twenty times as long as the last count took,
/// whichever is longer (so counting never takes more than a twentieth of a connection's
/// time). A page shows the latest counts and how old they are.
final class StatusCounts: @unchecked Sendable {
    /// The counts of one scope, by kind and status, and when they were taken.
    struct Snapshot: Sendable {
        var at: Date
        var counts: [String: [JobStatus: Int]]
        var took: Duration

        func count(_ kind: String, _ status: JobStatus) -> Int { counts[kind]?[status] ?? 0 }
    }

    static let statuses: [JobStatus] = [.scheduled, .queued, .running, .retrying, .dead]
    let pool: PostgresPool
    let minInterval: Duration
    let keepFor: Duration
    private let lock = NSLock()
    // Under lock: the latest counts, when each scope was last asked for, when each is due again.
    private var snapshots: [UUID?: Snapshot] = [:]
    private var asked: [UUID?: ContinuousClock.Instant] = [:]
    private var due: [UUID?: ContinuousClock.Instant] = [:]

    init(pool: PostgresPool, minInterval: Duration = .seconds(5), keepFor: Duration = .seconds(120)) {
        self.pool = pool
        self.minInterval = minInterval
        self.keepFor = keepFor
    }

    /// The latest counts of `scope`, nil until its first count is done (it is asked for now).
    func snapshot(_ scope: AccessScope) -> Snapshot? {
        lock.withLock {
            asked[scope.ownerID] = .now
            return snapshots[scope.ownerID]
        }
    }

    /// Counts every scope that is due; forgets scopes nobody asked for in ``keepFor``.
    func refreshDue(logger: Logger) async {
        let now = ContinuousClock.now
        let scopes: [UUID?] = lock.withLock {
            for (key, at) in asked where now - at > keepFor {
                asked[key] = nil
                snapshots[key] = nil
                due[key] = nil
            }
            return asked.keys.filter { due[$0].map { $0 <= now } ?? true }
        }
        for owner in scopes {
            do {
                try await count(AccessScope(ownerID: owner))
            } catch {
                logger.warning("counting jobs by status failed", metadata: ["error": "\(error)"])
                lock.withLock { due[owner] = .now + minInterval }
            }
        }
    }

    /// Counts `scope` now and keeps the result.
    @discardableResult
    func count(_ scope: AccessScope) async throws -> Snapshot {
        let started = ContinuousClock.now
        var parameters: [PostgresEncodable?] = [Self.statuses.map(\.rawValue)]
        if let owner = scope.ownerID { parameters.append(owner) }
        let sql = """
            SELECT kind, status, count(*)::bigint FROM jobs
             WHERE status = ANY($1::text[])\(scope.ownerID == nil ? "" : " AND owner_id = $2") GROUP BY kind, status
            """
        let rows = try await pool.withConnection { try $0.query(sql, parameters) }
        var counts: [String: [JobStatus: Int]] = [:]
        for r in rows {
            guard let status = JobStatus(rawValue: try r.decode(String.self, at: 1)) else { continue }
            counts[try r.decode(String.self, at: 0), default: [:]][status] = try r.decode(Int.self, at: 2)
        }
        let took = ContinuousClock.now - started
        let snapshot = Snapshot(at: Date(), counts: counts, took: took)
        lock.withLock {
            snapshots[scope.ownerID] = snapshot
            due[scope.ownerID] = .now + max(minInterval, took * 20)
        }
        return snapshot
    }
}

/// Runs ``StatusCounts``'s background counts in the api until shutdown.
struct StatusCountsService: Service {
    let counts: StatusCounts
    var logger = Logger(label: "esteira.dashboard")

    func run() async throws {
        // Every half second: a scope a page has just asked for the first time is counted soon.
        let counts = self.counts, logger = self.logger
        _ = try? await cancelOnGracefulShutdown {
            while !Task.isCancelled {
                await counts.refreshDue(logger: logger)
                try await Task.sleep(for: .milliseconds(500))
            }
        }
    }
}

extension Duration {
    /// The duration in seconds.
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
