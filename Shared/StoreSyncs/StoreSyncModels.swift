import EsteiraCore
import Foundation
import Postgres

/// The job kind of store syncs.
public enum StoreSyncKinds {
    /// Fetches a sync's data types page by page and writes them to the cache.
    public static let run = "store-sync.run"
}

/// What a sync can fetch: a store API's resource.
public enum StoreDataType: String, Sendable, CaseIterable, Codable, Comparable {
    case shopifyOrders = "shopify.orders", shopifyCustomers = "shopify.customers", shopifyProducts = "shopify.products"
    case klaviyoProfiles = "klaviyo.profiles", klaviyoCampaigns = "klaviyo.campaigns", klaviyoMetrics = "klaviyo.metrics"

    /// `shopify` or `klaviyo`.
    public var source: String { String(rawValue.prefix { $0 != "." }) }
    /// The API's resource: `orders`, `profiles`, ...
    public var resource: String { String(rawValue.drop { $0 != "." }.dropFirst()) }

    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
}

/// A principal's store; its credentials are kept for the syncer and never encoded.
public struct Store: Sendable, Encodable {
    public var id: UUID
    public var ownerID: UUID
    public var name: String
    public var shopifyDomain: String?
    public var hasShopify: Bool { shopifyToken != nil }
    public var hasKlaviyo: Bool { klaviyoKey != nil }
    public var createdAt: Date
    var shopifyToken: String?
    var klaviyoKey: String?

    enum CodingKeys: String, CodingKey {
        case id, name
        case ownerID = "owner_id", shopifyDomain = "shopify_domain", hasShopify = "shopify", hasKlaviyo = "klaviyo", createdAt = "created_at"
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(name, forKey: .name)
        try c.encode(ownerID, forKey: .ownerID)
        try c.encodeIfPresent(shopifyDomain, forKey: .shopifyDomain)
        try c.encode(hasShopify, forKey: .hasShopify)
        try c.encode(hasKlaviyo, forKey: .hasKlaviyo)
        try c.encode(createdAt, forKey: .createdAt)
    }

    static let columns = "s.id, s.owner_id, s.name, s.shopify_domain, s.shopify_token, s.klaviyo_key, s.created_at"

    init(row: PostgresRow) throws {
        id = try row.decode(UUID.self, named: "id")
        ownerID = try row.decode(UUID.self, named: "owner_id")
        name = try row.decode(String.self, named: "name")
        shopifyDomain = try row.decode(String?.self, named: "shopify_domain")
        shopifyToken = try row.decode(String?.self, named: "shopify_token")
        klaviyoKey = try row.decode(String?.self, named: "klaviyo_key")
        createdAt = try row.decode(Date.self, named: "created_at")
    }

    /// The data types its credentials allow.
    public var dataTypes: [StoreDataType] {
        StoreDataType.allCases.filter { ($0.source == "shopify" && hasShopify) || ($0.source == "klaviyo" && hasKlaviyo) }.sorted()
    }
}

/// A sync of a store's data for a period.
public struct StoreSync: Sendable, Equatable, Encodable {
    public enum Status: String, Sendable, Codable, CaseIterable {
        case queued, running, completed, failed
    }

    public var id: UUID
    public var storeID: UUID
    public var periodStart: String
    public var periodEnd: String
    public var dataTypes: [String]
    public var status: Status
    public var priority: Int
    public var force: Bool
    public var joined: Int
    public var pages: Int
    public var jobID: UUID?
    public var error: String?
    public var createdAt: Date
    public var startedAt: Date?
    public var finishedAt: Date?

    static let columns = """
        y.id, y.store_id, y.period_start::text, y.period_end::text, y.data_types, y.status, y.priority, y.force, y.joined, y.pages,
        y.job_id, y.error, y.created_at, y.started_at, y.finished_at
        """

    init(row: PostgresRow) throws {
        id = try row.decode(UUID.self, named: "id")
        storeID = try row.decode(UUID.self, named: "store_id")
        periodStart = try row.decode(String.self, named: "period_start")
        periodEnd = try row.decode(String.self, named: "period_end")
        dataTypes = try row.decode([String].self, named: "data_types")
        status = Status(rawValue: try row.decode(String.self, named: "status")) ?? .queued
        priority = try row.decode(Int.self, named: "priority")
        force = try row.decode(Bool.self, named: "force")
        joined = try row.decode(Int.self, named: "joined")
        pages = try row.decode(Int.self, named: "pages")
        jobID = try row.decode(UUID?.self, named: "job_id")
        error = try row.decode(String?.self, named: "error")
        createdAt = try row.decode(Date.self, named: "created_at")
        startedAt = try row.decode(Date?.self, named: "started_at")
        finishedAt = try row.decode(Date?.self, named: "finished_at")
    }
}

/// A cache entry: one data type of a store for a period; its data as the JSON text stored
/// (passed through to the answer as it is, never parsed on the way).
public struct CacheEntry: Sendable {
    public var dataType: String
    public var source: String
    public var periodStart: String
    public var periodEnd: String
    public var syncedAt: Date
    public var dataJSON: String
}

/// Why a store or sync request was refused; each names its field.
public enum StoreSyncError: Error, Sendable, Equatable {
    case storeNotFound(UUID)
    case syncNotFound(UUID)
    case noCredentials(StoreDataType)
}
