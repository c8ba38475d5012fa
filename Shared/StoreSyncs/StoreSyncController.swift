import EsteiraCore
import EsteiraService
import Foundation
import Hummingbird
import Postgres

/// `/v1/stores` (a principal's stores; credentials never returned) and `/v1/store-syncs`.
struct StoreSyncController {
    let enqueuer: Enqueuer
    let pool: PostgresPool
    let freshness: [StoreDataType: Double]

    func addRoutes(to routes: RouteRecorder) {
        routes.post("/v1/stores", use: createStore)
        routes.get("/v1/stores", use: stores)
        routes.get("/v1/stores/{id}", use: store)
        routes.post("/v1/store-syncs", use: request)
        routes.get("/v1/store-syncs", use: list)
        routes.get("/v1/store-syncs/stats", use: stats)
        routes.get("/v1/store-syncs/{id}", use: show)
    }

    /// `POST /v1/stores {name, shopify_domain?, shopify_token?, klaviyo_key?}` → 201, the caller's.
    @Sendable func createStore(_ request: Request, context: APIRequestContext) async throws -> Response {
        let input = try await JSONInput.read(request, limit: 16 * 1024)
        try input.allowOnly(["name", "shopify_domain", "shopify_token", "klaviyo_key"])
        let name = try input.string("name", required: true, maxLength: 200)!
        let domain = try input.string("shopify_domain", maxLength: 255)
        let token = try input.string("shopify_token", maxLength: 500)
        let key = try input.string("klaviyo_key", maxLength: 500)
        if let domain {
            let allowed = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyz0123456789.-")
            guard domain.unicodeScalars.allSatisfy(allowed.contains), domain.contains(".") else {
                throw Problem(.badRequest, detail: "must be a shop's domain, e.g. acme.myshopify.com", field: "shopify_domain")
            }
        }
        guard (domain == nil) == (token == nil) else {
            throw Problem(.badRequest, detail: "shopify_domain and shopify_token go together", field: domain == nil ? "shopify_domain" : "shopify_token")
        }
        let owner = context.principal!.id
        let store = try await pool.withConnection {
            try StoreSyncStore.createStore(owner: owner, name: name, shopifyDomain: domain, shopifyToken: token, klaviyoKey: key, on: $0)
        }
        return try APIJSON.response(store, status: .created, headers: [.location: "/v1/stores/\(store.id.uuidString.lowercased())"])
    }

    @Sendable func stores(_ request: Request, context: APIRequestContext) async throws -> Response {
        let scope = context.scope
        return try APIJSON.response(["stores": try await pool.withConnection { try StoreSyncStore.stores(scope: scope, on: $0) }])
    }

    @Sendable func store(_ request: Request, context: APIRequestContext) async throws -> Response {
        let id = try context.pathID(of: "store"), scope = context.scope
        guard let store = try await pool.withConnection({ try StoreSyncStore.store(id, scope: scope, on: $0) }) else {
            throw Problem(.notFound, detail: "no store \(id.uuidString.lowercased())", field: "id")
        }
        return try APIJSON.response(store)
    }

    /// `POST /v1/store-syncs {store_id, period_start, period_end, data_types?, priority?, force?}`:
    /// 200 with the cached data when every type is fresh, else 202 with the sync (a new one,
    /// or an identical one queued or running, `"joined": true`).
    @Sendable func request(_ request: Request, context: APIRequestContext) async throws -> Response {
        let input = try await JSONInput.read(request, limit: 16 * 1024)
        try input.allowOnly(["store_id", "period_start", "period_end", "data_types", "priority", "force"])
        guard let text = try input.string("store_id", required: true, maxLength: 36), let storeID = UUID(uuidString: text) else {
            throw Problem(.badRequest, detail: "must be a store id (a UUID)", field: "store_id")
        }
        let (start, end) = try Self.period(try input.string("period_start", required: true, maxLength: 10),
                                           try input.string("period_end", required: true, maxLength: 10))
        var types: [StoreDataType]?
        if try input.given("data_types", "an array of data types") {
            guard let list = input.object["data_types"] as? [String], !list.isEmpty else {
                throw Problem(.badRequest, detail: "must be a non-empty array of data types", field: "data_types")
            }
            types = try Set(list).map { name in
                guard let t = StoreDataType(rawValue: name) else {
                    throw Problem(.badRequest, detail: "'\(name.prefix(40))' is not one of \(StoreDataType.allCases.map(\.rawValue).joined(separator: ", "))",
                                  field: "data_types")
                }
                return t
            }.sorted()
        }
        let priority = try input.int("priority", in: 0...9) ?? 0
        let force = try input.bool("force") ?? false
        switch try await Self.submit(storeID, start: start, end: end, types: types, priority: priority, force: force,
                                     context: context, enqueuer: enqueuer, pool: pool, freshness: freshness) {
        case .cached(let entries):
            return Self.cachedAnswer(entries)
        case .sync(let sync, let joined, _):
            return try APIJSON.response(SyncAnswer(cached: false, joined: joined, sync: sync), status: .accepted,
                                        headers: [.location: "/v1/store-syncs/\(sync.id.uuidString.lowercased())"])
        }
    }

    /// Answers a sync request of the caller's (checked): from the cache, by joining, or with a
    /// new sync whose job is then published. For the api and the dashboard.
    static func submit(_ storeID: UUID, start: String, end: String, types: [StoreDataType]?, priority: Int, force: Bool,
                       context: APIRequestContext, enqueuer: Enqueuer, pool: PostgresPool,
                       freshness: [StoreDataType: Double]) async throws -> StoreSyncStore.Outcome {
        let scope = context.scope, owner = context.principal!.id, jobStore = enqueuer.store
        let outcome = try await pool.withConnection { c -> StoreSyncStore.Outcome in
            guard let store = try StoreSyncStore.store(storeID, scope: scope, on: c) else { throw StoreSyncError.storeNotFound(storeID) }
            let wanted = types ?? store.dataTypes
            if let missing = wanted.first(where: { !store.dataTypes.contains($0) }) { throw StoreSyncError.noCredentials(missing) }
            guard !wanted.isEmpty else { throw StoreSyncError.noCredentials(.shopifyOrders) }
            return try StoreSyncStore.request(store: store, start: start, end: end, types: wanted, priority: priority, force: force,
                                              freshness: freshness, ownerID: owner, jobStore: jobStore, on: c)
        }
        if case .sync(_, _, let outcomes) = outcome { await enqueuer.publish(outcomes) }
        return outcome
    }

    /// A period of days, checked: both given, real days, the end not before the start.
    static func period(_ start: String?, _ end: String?) throws -> (String, String) {
        guard let start else { throw Problem(.badRequest, detail: "is required", field: "period_start") }
        guard let end else { throw Problem(.badRequest, detail: "is required", field: "period_end") }
        guard try APIDates.day(end, field: "period_end") >= APIDates.day(start, field: "period_start") else {
            throw Problem(.badRequest, detail: "is before period_start (\(start))", field: "period_end")
        }
        return (start, end)
    }

    /// `{"cached": true, "entries": [...]}`, each entry's data as stored: the cache's JSON is
    /// written out as it is, not parsed and encoded again (a large entry costs a copy).
    static func cachedAnswer(_ entries: [CacheEntry]) -> Response {
        func quoted(_ s: String) -> String {
            String(decoding: (try? JSONEncoder().encode(s)) ?? Data("\"\"".utf8), as: UTF8.self)
        }
        var body = #"{"cached":true,"entries":["#
        for (i, e) in entries.enumerated() {
            if i > 0 { body += "," }
            body += #"{"data_type":\#(quoted(e.dataType)),"source":\#(quoted(e.source)),"period_start":\#(quoted(e.periodStart)),"#
                + #""period_end":\#(quoted(e.periodEnd)),"synced_at":\#(quoted(APIDates.format(e.syncedAt))),"data":\#(e.dataJSON)}"#
        }
        body += "]}"
        return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: body)))
    }

    struct SyncAnswer: Encodable {
        var cached: Bool
        var joined: Bool
        var sync: StoreSync
    }

    /// `GET /v1/store-syncs?store_id=&status=&limit=`: newest first.
    @Sendable func list(_ request: Request, context: APIRequestContext) async throws -> Response {
        let q = QueryInput(request: request)
        let store = try q.uuid("store_id")
        let status = try q.choice("status", of: StoreSync.Status.self)
        let limit = try q.int("limit", in: 1...500) ?? 50
        let scope = context.scope
        let syncs = try await pool.withConnection { try StoreSyncStore.syncs(store: store, status: status, limit: limit, scope: scope, on: $0) }
        return try APIJSON.response(["store_syncs": syncs])
    }

    @Sendable func show(_ request: Request, context: APIRequestContext) async throws -> Response {
        let id = try context.pathID(of: "store sync"), scope = context.scope
        guard let sync = try await pool.withConnection({ try StoreSyncStore.sync(id, scope: scope, on: $0) }) else {
            throw StoreSyncError.syncNotFound(id)
        }
        return try APIJSON.response(sync)
    }

    /// `GET /v1/store-syncs/stats`: per status, how many, average wait and run time.
    @Sendable func stats(_ request: Request, context: APIRequestContext) async throws -> Response {
        let scope = context.scope
        return try APIJSON.response(["statuses": try await pool.withConnection { try StoreSyncStore.stats(scope: scope, on: $0) }])
    }
}

extension StoreSyncError: ProblemConvertible {
    public var problem: Problem {
        switch self {
        case .storeNotFound(let id): return Problem(.notFound, detail: "no store \(id.uuidString.lowercased())", field: "store_id")
        case .syncNotFound(let id): return Problem(.notFound, detail: "no store sync \(id.uuidString.lowercased())", field: "id")
        case .noCredentials(let type):
            return Problem(.unprocessableContent, detail: "the store has no \(type.source) credentials for \(type.rawValue)", field: "data_types")
        }
    }
}
