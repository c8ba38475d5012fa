import EsteiraCore
import Foundation
import Postgres

/// Reads and writes of stores, syncs, their pages and the cache.
public enum StoreSyncStore {
    // MARK: - Stores

    public static func createStore(owner: UUID, name: String, shopifyDomain: String?, shopifyToken: String?, klaviyoKey: String?,
                                   on c: PostgresConnection) throws -> Store {
        try c.query("""
            INSERT INTO stores AS s (id, owner_id, name, shopify_domain, shopify_token, klaviyo_key) VALUES ($1, $2, $3, $4, $5, $6)
            RETURNING \(Store.columns)
            """, [UUID(), owner, name, shopifyDomain, shopifyToken, klaviyoKey]).map(Store.init(row:))[0]
    }

    /// Store `id` in `scope` (another's answers like a missing one).
    public static func store(_ id: UUID, scope: AccessScope, on c: PostgresConnection) throws -> Store? {
        try c.query("SELECT \(Store.columns) FROM stores s WHERE s.id = $1 AND ($2::uuid IS NULL OR s.owner_id = $2)", [id, scope.ownerID])
            .first.map(Store.init(row:))
    }

    public static func stores(scope: AccessScope, on c: PostgresConnection) throws -> [Store] {
        try c.query("SELECT \(Store.columns) FROM stores s WHERE $1::uuid IS NULL OR s.owner_id = $1 ORDER BY s.created_at DESC LIMIT 500",
                    [scope.ownerID]).map(Store.init(row:))
    }

    // MARK: - Requests

    /// What a request came to.
    public enum Outcome: Sendable {
        /// Every type fresh in the cache: no job.
        case cached([CacheEntry])
        /// A new sync, or an identical one queued or running that this request joined.
        case sync(StoreSync, joined: Bool, [EnqueueOutcome])
    }

    /// Answers a request: fresh cache entries for every type (unless `force`), else an
    /// identical active sync joined, else a new sync and its job, in one transaction.
    static func request(store: Store, start: String, end: String, types: [StoreDataType], priority: Int, force: Bool,
                        freshness: [StoreDataType: Double], ownerID: UUID, jobStore: JobStore,
                        on connection: PostgresConnection) throws -> Outcome {
        let names = types.map(\.rawValue)
        if !force {
            let entries = try cache(store.id, start: start, end: end, types: names, on: connection)
            let fresh = entries.filter { e in
                guard let type = StoreDataType(rawValue: e.dataType) else { return false }
                return -e.syncedAt.timeIntervalSinceNow <= freshness[type] ?? 3600
            }
            if fresh.count == types.count { return .cached(fresh) }
        }
        var tries = 0
        while true {
            do {
                return try connection.transaction { c in
                    if let active = try c.query(joinSQL, [store.id, start, end, names]).first {
                        return .sync(try StoreSync(row: active), joined: true, [])
                    }
                    let id = UUID()
                    let job = NewJob(kind: StoreSyncKinds.run, payload: #"{"store_sync_id":"\#(id.uuidString.lowercased())"}"#,
                                     priority: priority > 0 ? priority : nil, ownerID: ownerID)
                    let outcomes = try jobStore.insert([job], on: c)
                    let row = try c.query("""
                        INSERT INTO store_syncs AS y (id, store_id, owner_id, period_start, period_end, data_types, priority, force, job_id)
                        VALUES ($1, $2, $3, $4::date, $5::date, $6::text[], $7, $8, $9)
                        RETURNING \(StoreSync.columns)
                        """, [id, store.id, ownerID, start, end, names, priority, force, outcomes[0].id])[0]
                    return .sync(try StoreSync(row: row), joined: false, outcomes)
                }
            } catch let error as PostgresError where error.sqlState == "23505" && tries < 3 {
                // An identical request made it first: join it on the next pass.
                tries += 1
            }
        }
    }

    /// Joins the identical sync queued or running, if there is one.
    static let joinSQL = """
        UPDATE store_syncs y SET joined = joined + 1
        WHERE store_id = $1 AND period_start = $2::date AND period_end = $3::date AND data_types = $4::text[]
          AND status IN ('queued', 'running')
        RETURNING \(StoreSync.columns)
        """

    static let cacheSQL = """
        SELECT data_type, source, period_start::text, period_end::text, synced_at, data::text FROM store_sync_cache
        WHERE store_id = $1 AND period_start = $2::date AND period_end = $3::date AND data_type = ANY($4::text[])
        ORDER BY data_type
        """

    public static func cache(_ store: UUID, start: String, end: String, types: [String], on c: PostgresConnection) throws -> [CacheEntry] {
        try c.query(cacheSQL, [store, start, end, types]).map { r in
            CacheEntry(dataType: try r.decode(String.self, at: 0), source: try r.decode(String.self, at: 1),
                       periodStart: try r.decode(String.self, at: 2), periodEnd: try r.decode(String.self, at: 3),
                       syncedAt: try r.decode(Date.self, at: 4), dataJSON: try r.decode(String.self, at: 5))
        }
    }

    /// Every cache entry of a store: its freshness per data type and period.
    public static func cacheSummary(_ store: UUID, on c: PostgresConnection) throws -> [(type: String, start: String, end: String, syncedAt: Date, items: Int)] {
        try c.query("""
            SELECT data_type, period_start::text, period_end::text, synced_at, jsonb_array_length(data) FROM store_sync_cache
            WHERE store_id = $1 ORDER BY synced_at DESC LIMIT 100
            """, [store]).map { (try $0.decode(String.self, at: 0), try $0.decode(String.self, at: 1), try $0.decode(String.self, at: 2),
                                 try $0.decode(Date.self, at: 3), try $0.decode(Int.self, at: 4)) }
    }

    // MARK: - Syncs

    public static func sync(_ id: UUID, scope: AccessScope, on c: PostgresConnection) throws -> StoreSync? {
        try c.query("SELECT \(StoreSync.columns) FROM store_syncs y WHERE y.id = $1 AND ($2::uuid IS NULL OR y.owner_id = $2)",
                    [id, scope.ownerID]).first.map(StoreSync.init(row:))
    }

    /// The newest syncs in `scope`, of a store and a status when given.
    public static func syncs(store: UUID?, status: StoreSync.Status?, limit: Int, scope: AccessScope,
                             on c: PostgresConnection) throws -> [StoreSync] {
        let (sql, parameters) = syncsQuery(store: store, status: status, limit: limit, scope: scope)
        return try c.query(sql, parameters).map(StoreSync.init(row:))
    }

    static func syncsQuery(store: UUID?, status: StoreSync.Status?, limit: Int, scope: AccessScope) -> (String, [PostgresEncodable?]) {
        var conditions: [String] = [], parameters: [PostgresEncodable?] = []
        if let owner = scope.ownerID { parameters.append(owner); conditions.append("y.owner_id = $\(parameters.count)") }
        if let store { parameters.append(store); conditions.append("y.store_id = $\(parameters.count)") }
        if let status { parameters.append(status.rawValue); conditions.append("y.status = $\(parameters.count)") }
        parameters.append(limit)
        let filter = conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ")
        return ("SELECT \(StoreSync.columns) FROM store_syncs y \(filter) ORDER BY y.created_at DESC LIMIT $\(parameters.count)", parameters)
    }

    /// Per status: how many, and the average wait (created to started) and run (started to
    /// finished) in seconds, as the team's `v_sync_queue_stats`.
    public struct StatusStats: Sendable, Encodable {
        public var status: String
        public var count: Int
        public var averageWaitSeconds: Double?
        public var averageRunSeconds: Double?
    }

    public static func stats(scope: AccessScope, on c: PostgresConnection) throws -> [StatusStats] {
        try c.query("""
            SELECT status, count(*)::int,
                   avg(extract(epoch FROM coalesce(started_at, now()) - created_at))::float8,
                   avg(extract(epoch FROM coalesce(finished_at, now()) - started_at)) FILTER (WHERE started_at IS NOT NULL)::float8
            FROM store_syncs WHERE $1::uuid IS NULL OR owner_id = $1 GROUP BY status ORDER BY status
            """, [scope.ownerID]).map {
            StatusStats(status: try $0.decode(String.self, at: 0), count: try $0.decode(Int.self, at: 1),
                        averageWaitSeconds: try $0.decode(Double?.self, at: 2).map { ($0 * 1000).rounded() / 1000 },
                        averageRunSeconds: try $0.decode(Double?.self, at: 3).map { ($0 * 1000).rounded() / 1000 })
        }
    }

    // MARK: - The syncer's side

    /// Marks the sync running (if queued) and returns it with its store; nil when it has
    /// finished already.
    static func start(_ id: UUID, on c: PostgresConnection) throws -> (StoreSync, Store)? {
        guard let row = try c.query("""
            UPDATE store_syncs y SET status = 'running', started_at = coalesce(started_at, now())
            WHERE id = $1 AND status IN ('queued', 'running') RETURNING \(StoreSync.columns)
            """, [id]).first else { return nil }
        let sync = try StoreSync(row: row)
        let store = try c.query("SELECT \(Store.columns) FROM stores s WHERE s.id = $1", [sync.storeID]).map(Store.init(row:))[0]
        return (sync, store)
    }

    /// The pages of `type` fetched so far: how many, and where the next one is (nil: none
    /// fetched yet, or `done`).
    static func resumePoint(_ id: UUID, type: StoreDataType, on c: PostgresConnection) throws -> (pages: Int, next: String?, done: Bool) {
        guard let row = try c.query("""
            SELECT page_no, next_url FROM store_sync_pages WHERE sync_id = $1 AND data_type = $2 ORDER BY page_no DESC LIMIT 1
            """, [id, type.rawValue]).first else { return (0, nil, false) }
        let next = try row.decode(String?.self, at: 1)
        return (try row.decode(Int.self, at: 0), next, next == nil)
    }

    /// Keeps page `page` of `type`: the items under `page.itemsKey` of its body, and where the
    /// next page is (the header's URL, else the body's `links.next`), all read by PostgreSQL.
    /// Returns the next page's URL (nil: it was the last).
    /// - Throws: `JobError.transient` when the body is not JSON with an array of items there.
    static func savePage(_ id: UUID, type: StoreDataType, number: Int, page: StoreAPIs.Page, on c: PostgresConnection) throws -> String? {
        let row: PostgresRow
        do {
            row = try c.query("""
                WITH b AS (SELECT $4::jsonb AS j),
                p AS (INSERT INTO store_sync_pages (sync_id, data_type, page_no, next_url, items)
                      SELECT $1, $2, $3, coalesce($5, j #>> '{links,next}'), j -> $6 FROM b WHERE jsonb_typeof(j -> $6) = 'array'
                      ON CONFLICT (sync_id, data_type, page_no) DO UPDATE SET items = EXCLUDED.items, next_url = EXCLUDED.next_url
                      RETURNING next_url, xmax = 0 AS inserted),
                u AS (UPDATE store_syncs SET pages = pages + 1 WHERE id = $1 AND EXISTS (SELECT 1 FROM p WHERE inserted))
                SELECT (SELECT jsonb_typeof(j -> $6) FROM b), (SELECT next_url FROM p)
                """, [id, type.rawValue, number, page.body, page.nextFromHeader, page.itemsKey])[0]
        } catch let error as PostgresError where error.sqlState?.hasPrefix("22") == true {
            throw JobError.transient("\(type.rawValue) page \(number) is not JSON: \(error)")
        }
        guard try row.decode(String?.self, at: 0) == "array" else {
            throw JobError.transient("\(type.rawValue) page \(number) has no \(page.itemsKey) array")
        }
        return try row.decode(String?.self, at: 1)
    }

    /// Writes every type's pages to the cache and completes the sync, in one transaction.
    static func complete(_ sync: StoreSync, on connection: PostgresConnection) throws {
        try connection.transaction { c in
            try c.execute("""
                INSERT INTO store_sync_cache (store_id, data_type, period_start, period_end, source, synced_at, data)
                SELECT $2, t.data_type, $3::date, $4::date, split_part(t.data_type, '.', 1), now(),
                       coalesce((SELECT jsonb_agg(e ORDER BY p.page_no) FROM store_sync_pages p, jsonb_array_elements(p.items) e
                                 WHERE p.sync_id = $1 AND p.data_type = t.data_type), '[]'::jsonb)
                FROM unnest($5::text[]) AS t(data_type)
                ON CONFLICT (store_id, data_type, period_start, period_end)
                DO UPDATE SET synced_at = EXCLUDED.synced_at, data = EXCLUDED.data, source = EXCLUDED.source
                """, [sync.id, sync.storeID, sync.periodStart, sync.periodEnd, sync.dataTypes])
            try c.execute("DELETE FROM store_sync_pages WHERE sync_id = $1", [sync.id])
            try c.execute("UPDATE store_syncs SET status = 'completed', finished_at = now(), error = NULL WHERE id = $1", [sync.id])
        }
    }

    static func fail(_ id: UUID, error: String, on c: PostgresConnection) throws {
        try c.execute("""
            UPDATE store_syncs SET status = 'failed', finished_at = now(), error = $2 WHERE id = $1 AND status IN ('queued', 'running')
            """, [id, String(error.prefix(2000))])
    }
}
