// Store-sync benchmark (docs/benchmarks.md, "Store syncs"): STORES stores, three months each,
// served by Shopify and Klaviyo stand-ins in this process that take PAGE_MS per page; SYNCERS
// syncers (started here, pointed at the stand-ins) sync them all through the api. Prints the
// total time against the bound the cap of 3 concurrent syncs sets (3 syncs × 1000/PAGE_MS
// pages a second), then the api's cache-hit latency p50/p99 with 200 requests at once.
// Usage: SyncBench <api-base-url> <admin-token> <bin-dir> <stores> <page-ms> <syncers>
import Foundation
import HTTPClient
import StandIns

func now() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
}

let arguments = CommandLine.arguments
guard arguments.count >= 7, let storeCount = Int(arguments[4]), let pageMS = Int(arguments[5]), let syncerCount = Int(arguments[6]) else {
    print("usage: SyncBench <api-base-url> <admin-token> <bin-dir> <stores> <page-ms> <syncers>")
    exit(2)
}
let (api, token, bin) = (arguments[1], arguments[2], arguments[3])
let period = #""period_start": "2026-01-01", "period_end": "2026-03-31""#
let counts = (shopify: ["orders": 600, "customers": 250, "products": 100], klaviyo: ["profiles": 300, "campaigns": 40, "metrics": 20])
// Pages per store: orders 3, customers 1, products 1 (250 a page); profiles 3, campaigns 1, metrics 1 (100 a page).
let pagesPerStore = 10

let http = HTTPClient(configuration: .init(timeout: .seconds(120), poolSize: 256))
func call(_ method: HTTPMethod, _ path: String, _ body: String? = nil) async throws -> (Int, [String: Any]) {
    let r = try await http.execute(HTTPRequest(method: method, url: api + path,
                                               headers: HTTPHeaders([("Authorization", "Bearer \(token)"), ("Content-Type", "application/json")]),
                                               body: Array((body ?? "").utf8)))
    return (r.status, ((try? JSONSerialization.jsonObject(with: Data(r.body))) as? [String: Any]) ?? [:])
}

do {
    let start = ISO8601DateFormatter().date(from: "2026-01-01T00:00:00Z")!
    try await StandInHTTPServer.withServer { server in
        var stores: [String] = []
        for i in 0..<storeCount {
            let (status, store) = try await call(.post, "/v1/stores", """
                {"name": "bench-\(i)", "shopify_domain": "bench-\(i).myshopify.com", "shopify_token": "t\(i)", "klaviyo_key": "k\(i)"}
                """)
            guard status == 201, let id = (store["id"] as? String)?.lowercased() else { print("store: \(status) \(store)"); exit(1) }
            let shop = ShopifyShop(domain: "bench-\(i).myshopify.com", token: "t\(i)", counts: counts.shopify, start: start, days: 89)
            let account = KlaviyoAccount(account: id, privateKey: "k\(i)", counts: counts.klaviyo, start: start, days: 89, perSecond: 1000)
            shop.faults.slowPages(.milliseconds(pageMS))
            account.faults.slowPages(.milliseconds(pageMS))
            shop.serve(on: server)
            account.serve(on: server)
            stores.append(id)
        }
        var syncers: [Process] = []
        defer { for p in syncers { p.terminate() } }
        for i in 0..<syncerCount {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: bin + "/syncer")
            p.arguments = ["run"]
            var env = ProcessInfo.processInfo.environment
            env["ESTEIRA_HTTP_PORT"] = "\(19710 + i)"
            env["ESTEIRA_LOG_LEVEL"] = "warning"
            env["ESTEIRA_SYNCER_SHOPIFY_URL"] = server.url("/shopify/{shop}")
            env["ESTEIRA_SYNCER_KLAVIYO_URL"] = server.url("/klaviyo/{store}")
            p.environment = env
            try p.run()
            syncers.append(p)
        }
        try await Task.sleep(for: .seconds(2))
        print("\(storeCount) stores × \(pagesPerStore) pages of \(pageMS) ms; \(syncerCount) syncers; at most 3 syncs at once")

        let t0 = now()
        var syncs: [String] = []
        for store in stores {
            let (status, answer) = try await call(.post, "/v1/store-syncs", #"{"store_id": "\#(store)", \#(period)}"#)
            guard status == 202, let id = (answer["sync"] as? [String: Any])?["id"] as? String else { print("sync: \(status) \(answer)"); exit(1) }
            syncs.append(id)
        }
        while true {
            let (_, stats) = try await call(.get, "/v1/store-syncs/stats")
            let rows = (stats["statuses"] as? [[String: Any]]) ?? []
            let completed = rows.first { $0["status"] as? String == "completed" }?["count"] as? Int ?? 0
            let failed = rows.first { $0["status"] as? String == "failed" }?["count"] as? Int ?? 0
            if failed > 0 { print("\(failed) syncs failed"); exit(1) }
            if completed == syncs.count { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        let seconds = now() - t0
        let pages = storeCount * pagesPerStore
        let bound = Double(pages) / (3 * 1000 / Double(pageMS))
        print("synced \(storeCount) stores (\(pages) pages) in \(String(format: "%.2f", seconds)) s; the cap's bound \(String(format: "%.2f", bound)) s; "
              + "bound / time = \(String(format: "%.2f", bound / seconds))")

        // Cache hits: 200 requests at once for stores synced above.
        var latencies: [Double] = []
        for _ in 0..<3 {
            latencies = try await withThrowingTaskGroup(of: Double.self) { group in
                for i in 0..<200 {
                    let store = stores[i % stores.count]
                    group.addTask {
                        let t = now()
                        let (status, answer) = try await call(.post, "/v1/store-syncs", #"{"store_id": "\#(store)", \#(period)}"#)
                        guard status == 200, answer["cached"] as? Bool == true else { throw CocoaError(.fileReadUnknown) }
                        return (now() - t) * 1000
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
        }
        latencies.sort()
        let p50 = latencies[latencies.count / 2], p99 = latencies[Int(Double(latencies.count) * 0.99) - 1]
        print("cache hits, 200 at once: p50 \(String(format: "%.1f", p50)) ms, p99 \(String(format: "%.1f", p99)) ms")
        print("RESULT stores=\(storeCount) pages=\(pages) seconds=\(String(format: "%.2f", seconds)) bound=\(String(format: "%.2f", bound)) "
              + "ratio=\(String(format: "%.2f", bound / seconds)) hit_p50_ms=\(String(format: "%.1f", p50)) hit_p99_ms=\(String(format: "%.1f", p99))")
    }
} catch {
    print("sync bench failed: \(error)")
    exit(1)
}
