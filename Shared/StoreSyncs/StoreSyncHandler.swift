import EsteiraCore
import Foundation
import HTTPClient
import Logging
import Metrics
import Postgres

/// `store-sync.run`: fetches a sync's data types page by page, keeping each page as it
/// arrives, so that an attempt after a failure resumes after the last page kept; then writes
/// every type to the cache and completes the sync in one transaction. Each store API is
/// called through a flow-control limiter of its own (Shopify's per shop, Klaviyo's per key),
/// which its 429 answers pause.
public struct StoreSyncHandler: JobHandler {
    public struct Settings: Sendable {
        /// `https://{shop}` in production; a stand-in's URL in tests.
        public var shopifyURL = "https://{shop}"
        public var klaviyoURL = "https://a.klaviyo.com"
        /// Shopify's leaky bucket: 2 requests a second, 40 at once, per shop.
        public var shopifyLimit = KindCatalog.RateLimit(rate: 2, burst: 40)
        /// Klaviyo's per-key steady limit (its burst is higher for a second).
        public var klaviyoLimit = KindCatalog.RateLimit(rate: 10, burst: 75)

        public init() {}
    }

    let pool: PostgresPool
    let apis: StoreAPIs
    let settings: Settings
    let logger: Logger

    public init(pool: PostgresPool, settings: Settings = .init(), logger: Logger) {
        self.pool = pool
        self.settings = settings
        self.logger = logger
        apis = StoreAPIs(http: HTTPClient(), shopifyURL: settings.shopifyURL, klaviyoURL: settings.klaviyoURL)
    }

    public func run(_ job: JobContext) async throws -> JSONValue? {
        guard let text = job.payload["store_sync_id"]?.stringValue, let id = UUID(uuidString: text) else {
            throw JobError.permanent("payload needs store_sync_id")
        }
        guard let (sync, store) = try await pool.withConnection({ try StoreSyncStore.start(id, on: $0) }) else {
            return .object(["stopped": .string("the sync has finished")])
        }
        return try await job.recordingFinalFailure({
            var fetched = 0
            for name in sync.dataTypes {
                guard let type = StoreDataType(rawValue: name) else { throw JobError.permanent("unknown data type \(name)") }
                fetched += try await fetch(type, sync: sync, store: store, job: job)
            }
            try await pool.withConnection { try StoreSyncStore.complete(sync, on: $0) }
            return .object(["pages": .number(Double(fetched)), "data_types": .array(sync.dataTypes.map { .string($0) })])
        }) { message in
            try? await pool.withConnection { try StoreSyncStore.fail(id, error: message, on: $0) }
        }
    }

    /// Fetches the pages of `type` not kept yet; returns how many it fetched.
    private func fetch(_ type: StoreDataType, sync: StoreSync, store: Store, job: JobContext) async throws -> Int {
        var (page, next, done) = try await pool.withConnection { try StoreSyncStore.resumePoint(sync.id, type: type, on: $0) }
        if done { return 0 }
        if page > 0 { logger.info("resuming a sync", metadata: ["sync": "\(sync.id)", "type": "\(type.rawValue)", "after_page": "\(page)"]) }
        var url = try next ?? apis.firstURL(type, store: store, start: sync.periodStart, end: sync.periodEnd)
        let (limiter, limit) = type.source == "shopify"
            ? ("shopify:\(store.shopifyDomain ?? "")", settings.shopifyLimit)
            : ("klaviyo:\(store.id.uuidString.lowercased())", settings.klaviyoLimit)
        let pages = Counter(label: "esteira_store_sync_pages_total", dimensions: [("source", type.source)])
        var fetched = 0, lastReport = ContinuousClock.now - .seconds(3600)
        while true {
            let wait = try await pool.withConnection { try RateLimiters.reserve(limiter, limit: limit, on: $0) }
            if wait > 0 { try await Task.sleep(for: .milliseconds(Int((wait * 1000).rounded(.up)))) }
            let result: StoreAPIs.Page
            do {
                result = try await apis.page(url, type: type, store: store)
            } catch let throttled as StoreAPIs.Throttled {
                Counter(label: "esteira_store_sync_throttled_total", dimensions: [("source", type.source)]).increment()
                try await pool.withConnection { try RateLimiters.pause(limiter, for: throttled.seconds, on: $0) }
                continue
            }
            // The shop's bucket is shared with its other apps: when the header says it is
            // four-fifths full, wait until it has leaked back to half.
            if let (used, size) = result.callLimit, used * 5 >= size * 4 {
                let seconds = Double(used - size / 2) / limit.rate
                logger.info("shop's call limit nearly reached; waiting", metadata: ["shop": "\(store.shopifyDomain ?? "")",
                                                                                     "used": "\(used)/\(size)", "seconds": "\(seconds)"])
                try await pool.withConnection { try RateLimiters.pause(limiter, for: seconds, on: $0) }
            }
            page += 1
            fetched += 1
            pages.increment()
            let n = page
            let next = try await pool.withConnection { try StoreSyncStore.savePage(sync.id, type: type, number: n, page: result, on: $0) }
            // Progress at most twice a second, and at each type's last page.
            if next == nil || ContinuousClock.now - lastReport >= .milliseconds(500) {
                try await job.report(JobProgress(message: "\(type.rawValue): page \(page)",
                                                 detail: ["store_sync_id": .string(sync.id.uuidString.lowercased()),
                                                          "data_type": .string(type.rawValue), "page": .number(Double(page))]))
                lastReport = ContinuousClock.now
            }
            guard let following = next else { return fetched }
            url = following
        }
    }
}
