import EsteiraCore
import EsteiraService
import Foundation
import Hummingbird
import Postgres

/// Messaging: messages to a principal's contacts through a provider's HTTP API (one
/// instance per connected number), campaigns fanned out into one send per contact as a
/// batch, provider webhooks taken in by the ingestor and applied in the background, and live
/// feeds of every INSERT, UPDATE and DELETE of messages and campaigns.
public enum Messaging: WorkloadModule {
    public static let workload: Workload = {
        // Sends: 429/5xx/timeouts retry (2, 4, 8, 16 s), an invalid number is permanent.
        var send = KindPolicy()
        send.maxAttempts = 5
        send.backoffBase = 2
        send.timeout = 60
        send.heartbeatTimeout = 120
        // A send keeps its place until its outcome is committed with others': 256 at once (as
        // `noop`) keeps a processor's sends and commits overlapping, and its commits larger;
        // each instance's limiter keeps its provider's pace.
        send.concurrency = 256
        // A campaign's job follows its batch until it ends: long, with heartbeats.
        var campaign = KindPolicy()
        campaign.maxAttempts = 10
        campaign.backoffBase = 5
        campaign.timeout = 7 * 86_400
        campaign.heartbeatTimeout = 120
        campaign.concurrency = 8
        var webhook = KindPolicy()
        webhook.maxAttempts = 8
        webhook.backoffBase = 1
        webhook.timeout = 30
        return Workload(name: "messaging",
                        kinds: [KindCatalog.Kind(name: MessagingKinds.send, policy: send),
                                KindCatalog.Kind(name: MessagingKinds.campaign, policy: campaign),
                                KindCatalog.Kind(name: MessagingKinds.webhook, policy: webhook, isInternal: true)],
                        // This workload's migrations take 0400-0499.
                        migrations: [try! Migration(fileName: "0400_messaging.sql", bytes: PackageResources._400_messaging_sql),
                                     try! Migration(fileName: "0401_messaging_change_log_cost.sql",
                                                    bytes: PackageResources._401_messaging_change_log_cost_sql),
                                     try! Migration(fileName: "0402_messaging_change_log_owner_index.sql",
                                                    bytes: PackageResources._402_messaging_change_log_owner_index_sql),
                                     try! Migration(fileName: "0403_campaign_fan_out_in_chunks.sql",
                                                    bytes: PackageResources._403_campaign_fan_out_in_chunks_sql)],
                        expiring: [ExpiringRows(table: "messaging_changes", column: "at", seconds: 7 * 86_400),
                                   ExpiringRows(table: "webhook_eventos", column: "received_at", seconds: 30 * 86_400)])
    }()

    public static var openAPI: OpenAPIPart? {
        OpenAPIPart(name: workload.name, json: PackageResources.messaging_openapi_json)
    }

    public static var links: [String: String] {
        ["instances": "/v1/instances", "contacts": "/v1/contacts", "campaigns": "/v1/campaigns", "campaign_feed": "/v1/feeds/campaigns"]
    }

    static let timeoutSetting = Setting("ESTEIRA_MESSAGING_PROVIDER_TIMEOUT", "Seconds a provider send may take, 1-120 (default 10).")
    static let fanOutChunkSetting = Setting("ESTEIRA_MESSAGING_FANOUT_CHUNK",
                                            "Messages a campaign's fan-out writes to a transaction, 10-10000 (default 5000): its first sends start once the first chunk is written.")
    public static var settings: [Setting] { [timeoutSetting, fanOutChunkSetting, .httpAllow] }

    /// The api's one reader of the change log, shared by its routes and pages.
    static func feed(_ runtime: Runtime) throws -> MessagingFeed {
        try runtime.shared("messaging.feed") {
            // The api's keep-alive for quiet event streams (its --help documents the variable).
            let keepAlive = try runtime.settings.integer("ESTEIRA_API_SSE_KEEPALIVE", default: 15, range: 1...300)
            let feed = MessagingFeed(configuration: try PostgresConfiguration(url: runtime.configuration.databaseURL),
                                     pool: runtime.pool, keepAlive: keepAlive, logger: runtime.logger)
            runtime.add(feed)
            return feed
        }
    }

    public static func addRoutes(to routes: RouteRecorder, runtime: Runtime) throws {
        MessagingController(enqueuer: runtime.enqueuer, pool: runtime.pool, feed: try feed(runtime), limits: routes.limits).addRoutes(to: routes)
    }

    public static func addPages(to dashboard: DashboardRoutes, runtime: Runtime) {
        // addRoutes made the feed (a bad database URL stopped the api before).
        guard let feed = try? feed(runtime) else { return }
        MessagingPage(enqueuer: runtime.enqueuer, pool: runtime.pool, feed: feed).addPages(to: dashboard)
    }

    public static func addIntakeRoutes(to router: Router<BasicRequestContext>, runtime: Runtime) {
        WebhookIntake(enqueuer: runtime.enqueuer, pool: runtime.pool).addRoutes(to: router)
    }

    public static func handlers(runtime: Runtime) throws -> [String: any JobHandler] {
        let s = runtime.settings
        let timeout = try s.double(timeoutSetting.name, default: 10, range: 1...120)
        let sendConcurrency = runtime.catalog[MessagingKinds.send]?.policy.concurrency ?? 64
        let provider = try ProviderClient(allow: s.list(Setting.httpAllow.name), timeout: .milliseconds(Int(timeout * 1000)),
                                          connections: sendConcurrency)
        return [MessagingKinds.send: MessageSendHandler(pool: runtime.pool, provider: provider, logger: runtime.logger),
                MessagingKinds.campaign: CampaignHandler(pool: runtime.pool, enqueuer: runtime.enqueuer, logger: runtime.logger,
                                                         chunk: try s.integer(fanOutChunkSetting.name, default: 5000, range: 10...JobStore.maxBatch)),
                MessagingKinds.webhook: WebhookHandler(pool: runtime.pool, logger: runtime.logger)]
    }
}
