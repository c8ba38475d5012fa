import EsteiraCore
import EsteiraService

/// Store syncs: a store's Shopify and Klaviyo data for a period, answered from
/// `store_sync_cache` when fresh, else fetched by the `syncer` executable (at most three
/// syncs at once across all syncers, each store API within its rate limit), identical
/// requests joining the sync already queued or running.
public enum StoreSyncs: WorkloadModule {
    public static let workload: Workload = {
        // Three attempts; a sync whose syncer stopped reporting for ten minutes is rescued;
        // at most three run at once in all (the kinds file may change it: globalConcurrency).
        var run = KindPolicy()
        run.maxAttempts = 3
        run.heartbeatTimeout = 600
        run.timeout = 3600
        run.backoffBase = 5
        run.priorities = true
        var kind = KindCatalog.Kind(name: StoreSyncKinds.run, policy: run, isInternal: true)
        kind.limit = KindCatalog.ConcurrencyLimit(global: 3)
        return Workload(name: "store-syncs", kinds: [kind],
                        // This workload's migrations take 0300-0399.
                        migrations: [try! Migration(fileName: "0300_store_syncs.sql", bytes: PackageResources._300_store_syncs_sql)])
    }()

    public static var openAPI: OpenAPIPart? {
        OpenAPIPart(name: workload.name, json: PackageResources.store_syncs_openapi_json)
    }

    public static var links: [String: String] { ["stores": "/v1/stores", "store_syncs": "/v1/store-syncs"] }

    public static var executable: String { "syncer" }

    static let freshnessSetting = Setting("ESTEIRA_STORE_SYNC_FRESHNESS",
                                          "Seconds a cache entry answers a sync request without a job: one number for every data type, or type=seconds pairs (shopify.orders=600,klaviyo.metrics=86400), the others 3600 (default 3600).")
    static let shopifySetting = Setting("ESTEIRA_SYNCER_SHOPIFY_URL", "Shopify's base URL, {shop} for the store's shop domain (default https://{shop}).")
    static let klaviyoSetting = Setting("ESTEIRA_SYNCER_KLAVIYO_URL", "Klaviyo's base URL; {store} is the store's id (default https://a.klaviyo.com).")
    static let shopifyRateSetting = Setting("ESTEIRA_SYNCER_SHOPIFY_RATE", "Requests a second to one shop, and the burst, as rate/burst (default 2/40: Shopify's leaky bucket).")
    static let klaviyoRateSetting = Setting("ESTEIRA_SYNCER_KLAVIYO_RATE", "Requests a second with one Klaviyo key, and the burst, as rate/burst (default 10/75).")

    public static var apiSettings: [Setting] { [freshnessSetting] }
    public static var settings: [Setting] { [shopifySetting, klaviyoSetting, shopifyRateSetting, klaviyoRateSetting] }

    /// The freshness per data type from `ESTEIRA_STORE_SYNC_FRESHNESS`.
    static func freshness(_ value: String?) throws -> [StoreDataType: Double] {
        var out = Dictionary(uniqueKeysWithValues: StoreDataType.allCases.map { ($0, 3600.0) })
        guard let value, !value.isEmpty else { return out }
        let bad = ConfigurationError(variable: freshnessSetting.name, value: value, expected: "seconds, or type=seconds pairs separated by commas")
        if let all = Double(value) {
            guard all >= 0 else { throw bad }
            for t in StoreDataType.allCases { out[t] = all }
            return out
        }
        for pair in value.split(separator: ",") {
            let kv = pair.split(separator: "=").map { $0.trimmingCharacters(in: .whitespaces) }
            guard kv.count == 2, let type = StoreDataType(rawValue: kv[0]), let seconds = Double(kv[1]), seconds >= 0 else { throw bad }
            out[type] = seconds
        }
        return out
    }

    public static func addRoutes(to routes: RouteRecorder, runtime: Runtime) throws {
        let freshness = try freshness(runtime.settings.string(freshnessSetting.name))
        StoreSyncController(enqueuer: runtime.enqueuer, pool: runtime.pool, freshness: freshness).addRoutes(to: routes)
    }

    public static func addPages(to dashboard: DashboardRoutes, runtime: Runtime) {
        // addRoutes has read the setting already (a bad value stopped the api there).
        let freshness = (try? freshness(runtime.settings.string(freshnessSetting.name))) ?? [:]
        StoreSyncPage(enqueuer: runtime.enqueuer, pool: runtime.pool, freshness: freshness).addPages(to: dashboard)
    }

    public static func handlers(runtime: Runtime) throws -> [String: any JobHandler] {
        let s = runtime.settings
        var settings = StoreSyncHandler.Settings()
        if let url = s.string(shopifySetting.name), !url.isEmpty { settings.shopifyURL = url }
        if let url = s.string(klaviyoSetting.name), !url.isEmpty { settings.klaviyoURL = url }
        settings.shopifyLimit = try .parse(shopifyRateSetting, s.string(shopifyRateSetting.name), default: settings.shopifyLimit)
        settings.klaviyoLimit = try .parse(klaviyoRateSetting, s.string(klaviyoRateSetting.name), default: settings.klaviyoLimit)
        return [StoreSyncKinds.run: StoreSyncHandler(pool: runtime.pool, settings: settings, logger: runtime.logger)]
    }
}
