import EsteiraCore
import Foundation
import HTTPClient
import Postgres
import StandIns
import Testing

/// An api, syncers pointed at Shopify and Klaviyo stand-ins, and helpers to make stores.
final class SyncRig {
    let stack: JobStack
    let api: StackAPI
    let server: StandInHTTPServer
    let gauge = ConcurrencyGauge()
    static let start = ISO8601DateFormatter().date(from: "2026-01-01T00:00:00Z")!

    private init(stack: JobStack, api: StackAPI, server: StandInHTTPServer) {
        self.stack = stack
        self.api = api
        self.server = server
    }

    static func with(kinds: String = "kinds: {}\n", _ body: (SyncRig) async throws -> Void) async throws {
        let stack = try await JobStack(kinds: kinds)
        let api = try await StackAPI(stack: stack)
        try await StandInHTTPServer.withServer { server in
            try await body(SyncRig(stack: stack, api: api, server: server))
        }
    }

    /// Starts a syncer that reaches the stand-ins.
    @discardableResult
    func startSyncer() async throws -> ChildProcess {
        try await stack.startExecutable("syncer", environment: [
            "ESTEIRA_SYNCER_SHOPIFY_URL": server.url("/shopify/{shop}"),
            "ESTEIRA_SYNCER_KLAVIYO_URL": server.url("/klaviyo/{store}"),
        ])
    }

    /// A store of `token`'s principal with a Shopify shop (and a Klaviyo account when `klaviyo`), served by the stand-ins.
    func store(_ name: String, token: String? = nil, orders: Int = 300, klaviyo: Bool = true) async throws -> (id: String, shop: ShopifyShop, klaviyo: KlaviyoAccount?) {
        let domain = "\(name).myshopify.com"
        let r = try await api.post("/v1/stores", """
            {"name": "\(name)", "shopify_domain": "\(domain)", "shopify_token": "shpat-\(name)"\(klaviyo ? #", "klaviyo_key": "pk-\#(name)""# : "")}
            """, as: token)
        #expect(r.status == 201, "store: \(r.text)")
        #expect(!r.text.contains("shpat-") && !r.text.contains("pk-"), "credentials are never returned: \(r.text)")
        let id = try #require(r.json["id"] as? String).lowercased()
        let shop = ShopifyShop(domain: domain, token: "shpat-\(name)", counts: ["orders": orders, "customers": 60, "products": 20],
                               start: Self.start, days: 90, gauge: gauge)
        shop.serve(on: server)
        var account: KlaviyoAccount?
        if klaviyo {
            account = KlaviyoAccount(account: id, privateKey: "pk-\(name)", start: Self.start, days: 90, perSecond: 1000, gauge: gauge)
            account!.serve(on: server)
        }
        return (id, shop, account)
    }

    func sync(_ id: String, as token: String? = nil) async throws -> [String: Any] {
        try await api.get("/v1/store-syncs/\(id)", as: token).json
    }

    func waitFor(_ id: String, _ status: String, as token: String? = nil, timeout: Duration = .seconds(60)) async throws -> [String: Any] {
        let deadline = ContinuousClock.now + timeout
        var last: [String: Any] = [:]
        while ContinuousClock.now < deadline {
            last = try await sync(id, as: token)
            if last["status"] as? String == status { return last }
            try await Task.sleep(for: .milliseconds(50))
        }
        Issue.record("sync \(id) is not \(status) after \(timeout): \(last)\nsyncers: \(stack.processors.map(\.text).joined(separator: "\n---\n").suffix(3000))")
        return last
    }
}

@Suite struct StoreSyncTests {
    static let period = #""period_start": "2026-01-15", "period_end": "2026-02-14""#

    @Test func aMissSyncsAnIdenticalRequestJoinsAndAFreshCacheAnswersWithoutAJob() async throws {
        try await SyncRig.with { rig in
            let alice = try await rig.api.userToken()
            let bob = try await rig.api.userToken()
            let (store, shop, klaviyo) = try await rig.store("acme", token: alice)
            shop.faults.slowPages(.milliseconds(150))
            // Bad input, each naming its field.
            let unknown = try await rig.api.post("/v1/store-syncs", #"{"store_id": "\#(UUID())", \#(Self.period)}"#, as: alice)
            #expect(unknown.status == 404 && unknown.field == "store_id", "\(unknown.text)")
            let backwards = try await rig.api.post("/v1/store-syncs", #"{"store_id": "\#(store)", "period_start": "2026-02-14", "period_end": "2026-01-15"}"#, as: alice)
            #expect(backwards.status == 400 && backwards.field == "period_end", "\(backwards.text)")
            let badType = try await rig.api.post("/v1/store-syncs", #"{"store_id": "\#(store)", \#(Self.period), "data_types": ["shopify.refunds"]}"#, as: alice)
            #expect(badType.status == 400 && badType.field == "data_types", "\(badType.text)")
            // Bob cannot use Alice's store.
            let theirs = try await rig.api.post("/v1/store-syncs", #"{"store_id": "\#(store)", \#(Self.period)}"#, as: bob)
            #expect(theirs.status == 404 && theirs.field == "store_id")

            let first = try await rig.api.post("/v1/store-syncs", #"{"store_id": "\#(store)", \#(Self.period)}"#, as: alice)
            #expect(first.status == 202 && first.json["joined"] as? Bool == false && first.json["cached"] as? Bool == false, "\(first.text)")
            let sync = try #require((first.json["sync"] as? [String: Any])?["id"] as? String)
            let again = try await rig.api.post("/v1/store-syncs", #"{"store_id": "\#(store)", \#(Self.period)}"#, as: alice)
            #expect(again.status == 202 && again.json["joined"] as? Bool == true && (again.json["sync"] as? [String: Any])?["id"] as? String == sync,
                    "\(again.text)")
            #expect(try await rig.api.get("/v1/store-syncs/\(sync)", as: bob).status == 404)
            try await rig.startSyncer()
            let done = try await rig.waitFor(sync, "completed", as: alice)
            #expect(done["joined"] as? Int == 1 && (done["pages"] as? Int ?? 0) >= 6, "\(done)")
            // Fresh now: the cache answers, no job.
            let jobs = try await rig.stack.scalar("SELECT count(*) FROM jobs WHERE kind = 'store-sync.run'", as: Int.self)
            let cached = try await rig.api.post("/v1/store-syncs", #"{"store_id": "\#(store)", \#(Self.period)}"#, as: alice)
            #expect(cached.status == 200 && cached.json["cached"] as? Bool == true, "\(cached.text.prefix(300))")
            #expect(try await rig.stack.scalar("SELECT count(*) FROM jobs WHERE kind = 'store-sync.run'", as: Int.self) == jobs)
            let entries = try #require(cached.json["entries"] as? [[String: Any]])
            #expect(entries.count == 6)
            let from = ISO8601DateFormatter().date(from: "2026-01-15T00:00:00Z")!, to = ISO8601DateFormatter().date(from: "2026-02-14T23:59:59Z")!
            let orders = (entries.first { $0["data_type"] as? String == "shopify.orders" }?["data"] as? [[String: Any]])?.compactMap { ($0["id"] as? NSNumber)?.int64Value }
            #expect(orders == shop.items("orders", from: from, to: to) && (orders?.count ?? 0) > 80)
            let profiles = (entries.first { $0["data_type"] as? String == "klaviyo.profiles" }?["data"] as? [[String: Any]])?.compactMap { $0["id"] as? String }
            #expect(profiles == klaviyo?.items("profiles", from: from, to: to.addingTimeInterval(1)))
            // force skips the cache, and still joins an identical sync under way.
            let forcedFirst = try await rig.api.post("/v1/store-syncs", #"{"store_id": "\#(store)", \#(Self.period), "force": true}"#, as: alice)
            let forcedAgain = try await rig.api.post("/v1/store-syncs", #"{"store_id": "\#(store)", \#(Self.period), "force": true}"#, as: alice)
            #expect(forcedFirst.status == 202 && forcedAgain.json["joined"] as? Bool == true
                    && (forcedAgain.json["sync"] as? [String: Any])?["id"] as? String == (forcedFirst.json["sync"] as? [String: Any])?["id"] as? String,
                    "\(forcedAgain.text)")
            let forced = try await rig.api.post("/v1/store-syncs", #"{"store_id": "\#(store)", \#(Self.period), "data_types": ["shopify.orders"], "force": true}"#, as: alice)
            #expect(forced.status == 202 && forced.json["joined"] as? Bool == false, "\(forced.text)")
            let stats = try await rig.api.get("/v1/store-syncs/stats", as: alice)
            let completed = (stats.json["statuses"] as? [[String: Any]])?.first { $0["status"] as? String == "completed" }
            #expect((completed?["count"] as? Int ?? 0) >= 1 && completed?["average_run_seconds"] != nil, "\(stats.text)")
            #expect((try await rig.api.get("/v1/store-syncs/stats", as: bob).json["statuses"] as? [Any])?.isEmpty == true)
        }
    }

    @Test func aFailureOnAMiddlePageResumesFromTheSavedCursorAndThreeFailuresFailIt() async throws {
        try await SyncRig.with { rig in
            let (store, shop, _) = try await rig.store("resume", orders: 1200, klaviyo: false)
            // Page 2 of the orders drops its connection, page 3 answers 502: each retry starts
            // at the page that failed (a dropped GET on a kept-alive connection may also be
            // sent again at once by the HTTP client).
            shop.faults.failPage("orders", page: 2, with: .dropConnection)
            shop.faults.failPage("orders", page: 3, with: StandInResponse(status: 502))
            try await rig.startSyncer()
            let r = try await rig.api.post("/v1/store-syncs", #"{"store_id": "\#(store)", "period_start": "2026-01-01", "period_end": "2026-03-31", "data_types": ["shopify.orders"]}"#)
            let sync = try #require((r.json["sync"] as? [String: Any])?["id"] as? String)
            let done = try await rig.waitFor(sync, "completed", timeout: .seconds(90))
            #expect(done["pages"] as? Int == 5, "1,200 orders in pages of 250: \(done)")
            let first = shop.faults.requests.filter { $0.contains("/orders.json") && !$0.contains("page_info") }
            #expect(first.count == 1, "page 1 was fetched once: \(shop.faults.requests)")
            let job = try #require(done["job_id"] as? String)
            let attempts = try await rig.stack.job(UUID(uuidString: job)!).attempts
            #expect((2...3).contains(attempts), "\(attempts) attempts")

            // Every attempt fails: after the third, the sync is failed with the error kept.
            let (broken, brokenShop, _) = try await rig.store("broken", orders: 10, klaviyo: false)
            brokenShop.faults.failNext(Array(repeating: StandInResponse(status: 500), count: 10))
            let b = try await rig.api.post("/v1/store-syncs", #"{"store_id": "\#(broken)", \#(Self.period), "data_types": ["shopify.orders"]}"#)
            let failedID = try #require((b.json["sync"] as? [String: Any])?["id"] as? String)
            let failed = try await rig.waitFor(failedID, "failed", timeout: .seconds(90))
            #expect((failed["error"] as? String)?.contains("HTTP 500") == true, "\(failed)")
            let failedJob = try #require(failed["job_id"] as? String)
            #expect(try await rig.stack.job(UUID(uuidString: failedJob)!).attempts == 3)
        }
    }

    @Test func aShopsBucketNearlyFullMakesTheSyncWaitInsteadOfMeeting429s() async throws {
        try await SyncRig.with { rig in
            let (store, shop, _) = try await rig.store("busy", orders: 1000, klaviyo: false)
            // The shop's other apps have used 36 of its 40 calls.
            shop.fillBucket(to: 36)
            try await rig.startSyncer()
            let r = try await rig.api.post("/v1/store-syncs", #"{"store_id": "\#(store)", "period_start": "2026-01-01", "period_end": "2026-03-31", "data_types": ["shopify.orders"]}"#)
            let sync = try #require((r.json["sync"] as? [String: Any])?["id"] as? String)
            _ = try await rig.waitFor(sync, "completed")
            #expect(try await rig.stack.scalar("SELECT pauses FROM rate_limiters WHERE name = 'shopify:busy.myshopify.com'", as: Int.self) >= 1)
            #expect(rig.stack.processors.map(\.text).joined().contains("shop's call limit nearly reached"))
        }
    }

    @Test func atMostThreeSyncsRunAtOnceAcrossThreeSyncersAndA429StormOnlySlowsThem() async throws {
        try await SyncRig.with { rig in
            var stores: [String] = []
            for i in 0..<20 {
                let (id, shop, _) = try await rig.store("cap\(i)", orders: 40, klaviyo: false)
                shop.faults.slowPages(.milliseconds(100))
                if i == 0 { shop.faults.failNext(Array(repeating: .tooManyRequests(retryAfter: 1), count: 3)) }
                stores.append(id)
            }
            for _ in 0..<3 { try await rig.startSyncer() }
            var syncs: [String] = []
            for store in stores {
                let r = try await rig.api.post("/v1/store-syncs", #"{"store_id": "\#(store)", \#(Self.period)}"#)
                syncs.append(try #require((r.json["sync"] as? [String: Any])?["id"] as? String))
            }
            for sync in syncs { _ = try await rig.waitFor(sync, "completed", timeout: .seconds(120)) }
            #expect(rig.gauge.peak <= 3 && rig.gauge.peak >= 2, "requests in flight at once: \(rig.gauge.peak)")
            #expect(try await rig.stack.scalar("SELECT pauses FROM rate_limiters WHERE name = 'shopify:cap0.myshopify.com'", as: Int.self) >= 3)
        }
    }

    @Test func completionReachesTheOwnersEventStreamAndAKilledSyncerIsRescued() async throws {
        // A heartbeat every second: a killed syncer's sync is rescued within seconds.
        try await SyncRig.with(kinds: "kinds:\n  store-sync.run: { heartbeatTimeout: 4 }\n") { rig in
            let alice = try await rig.api.userToken()
            let (store, shop, _) = try await rig.store("killed", token: alice, orders: 1200, klaviyo: false)
            shop.faults.slowPages(.milliseconds(400))
            let stream = try EventStreamClient(url: rig.api.base + "/v1/events?kind=store-sync.run", token: alice)
            defer { stream.close() }
            try await stream.waitUntilOpen()
            let first = try await rig.startSyncer()
            let r = try await rig.api.post("/v1/store-syncs", #"{"store_id": "\#(store)", \#(Self.period), "data_types": ["shopify.orders", "shopify.products"]}"#, as: alice)
            let sync = try #require((r.json["sync"] as? [String: Any])?["id"] as? String)
            let job = try #require((r.json["sync"] as? [String: Any])?["job_id"] as? String)
            _ = try await rig.waitFor(sync, "running", as: alice)
            try await eventually("a page kept") { (try await rig.sync(sync, as: alice)["pages"] as? Int ?? 0) >= 1 }
            first.signal(SIGKILL)
            _ = await first.waitForExit(timeout: .seconds(5))
            let kept = try #require(try await rig.sync(sync, as: alice)["pages"] as? Int)
            try await rig.stack.startScheduler(arguments: ["--rescue-interval", "0.5"])
            try await rig.startSyncer()
            let done = try await rig.waitFor(sync, "completed", as: alice, timeout: .seconds(90))
            #expect((done["pages"] as? Int ?? 0) >= kept)
            // Pages kept before the kill were not fetched again.
            let firstPages = shop.faults.requests.filter { $0.contains("/orders.json") && !$0.contains("page_info") }
            #expect(firstPages.count == 1, "\(shop.faults.requests)")
            // The owner heard of the completion on the event stream: no polling needed.
            let events = try await stream.waitFor(timeout: .seconds(10)) { events in
                events.contains { ($0.data["job_id"] as? String)?.lowercased() == job.lowercased() && $0.data["status"] as? String == "completed" }
            }
            #expect(events.contains { $0.data["status"] as? String == "progress" })
        }
    }

    @Test func theDashboardPageShowsStoresAndStartsASync() async throws {
        try await SyncRig.with { rig in
            let alice = try await rig.api.userToken()
            let (store, _, _) = try await rig.store("paged", token: alice, klaviyo: false)
            let d = try await DashboardClient(api: rig.api, token: alice)
            let page = try await d.get("/ui/store-syncs")
            #expect(page.status == 200 && page.text.contains("data-store=\"\(store)\"") && page.text.contains("Nothing cached yet."))
            let bad = try await d.post("/ui/store-syncs/\(store)/sync", ["period_start": "2026-02-14", "period_end": "2026-01-15"])
            #expect(bad.status == 400 && bad.text.contains("<code>period_end</code>"))
            #expect(try await d.post("/ui/store-syncs/\(store)/sync", ["period_start": "2026-01-15", "period_end": "2026-02-14"]).status == 303)
            let listed = try await d.get("/ui/store-syncs")
            #expect(listed.text.contains("badge s-queued") && listed.text.contains("store-syncs-table"))
            let other = try await DashboardClient(api: rig.api, token: try await rig.api.userToken())
            #expect(try await other.post("/ui/store-syncs/\(store)/sync", ["period_start": "2026-01-15", "period_end": "2026-02-14"]).status == 404)
            #expect(!(try await other.get("/ui/store-syncs")).text.contains(store))
            try await rig.startSyncer()
            let id = try await rig.stack.scalar("SELECT id::text FROM store_syncs", as: String.self)
            _ = try await rig.waitFor(id, "completed", as: alice)
            let done = try await d.get("/ui/store-syncs")
            #expect(done.text.contains("shopify.orders") && done.text.contains("badge s-fresh"), "\(done.text.suffix(2000))")
        }
    }
}

