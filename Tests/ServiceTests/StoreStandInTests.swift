import Foundation
import HTTPClient
import StandIns
import Testing

/// The Shopify and Klaviyo stand-ins the store-sync tests and benchmark call: they must page,
/// authenticate, limit and fail as the real APIs do.
@Suite struct StoreStandInTests {
    static let start = ISO8601DateFormatter().date(from: "2026-01-01T00:00:00Z")!

    @Test func shopifyPagesThroughLinkHeadersWithinItsLeakyBucket() async throws {
        let gauge = ConcurrencyGauge()
        let shop = ShopifyShop(domain: "acme.myshopify.com", token: "shpat_1", counts: ["orders": 300], start: Self.start, days: 90, gauge: gauge)
        try await StandInHTTPServer.withServer { server in
            shop.serve(on: server)
            let http = HTTPClient()
            func get(_ url: String, token: String = "shpat_1") async throws -> HTTPResponse {
                try await http.execute(HTTPRequest(method: .get, url: url, headers: ["X-Shopify-Access-Token": token]))
            }
            let base = server.url(shop.basePath + "/admin/api/\(ShopifyShop.apiVersion)/orders.json")
            #expect(try await get(base, token: "wrong").status == 401)
            // A month of orders, 40 a page, following rel="next" until there is none.
            var url: String? = base + "?limit=40&created_at_min=2026-01-15T00:00:00Z&created_at_max=2026-02-15T00:00:00Z"
            var ids: [Int64] = [], pages = 0
            while let u = url {
                let r = try await get(u)
                #expect(r.status == 200 && r.headers["X-Shopify-Shop-Api-Call-Limit"]?.hasSuffix("/40") == true)
                let body = try #require(try JSONSerialization.jsonObject(with: Data(r.body)) as? [String: [[String: Any]]])
                ids += (body["orders"] ?? []).compactMap { ($0["id"] as? NSNumber)?.int64Value }
                pages += 1
                url = r.headers["Link"]?.components(separatedBy: ", ").first { $0.hasSuffix("rel=\"next\"") }
                    .flatMap { $0.split(separator: ";").first }.map { String($0.dropFirst().dropLast()) }
            }
            let expected = shop.items("orders", from: ISO8601DateFormatter().date(from: "2026-01-15T00:00:00Z")!,
                                      to: ISO8601DateFormatter().date(from: "2026-02-15T00:00:00Z")!)
            #expect(ids == expected && pages == (expected.count + 39) / 40 && expected.count > 80)
            // With page_info only limit may be given.
            let second = try #require(shop.faults.requests.dropFirst(2).first)
            let withFilter = try await get(server.url(second) + "&created_at_min=2026-01-01T00:00:00Z")
            #expect(withFilter.status == 400)
            // A scripted failure on page 2 answers once.
            shop.faults.failPage("orders", page: 2, with: StandInResponse(status: 502))
            let page2 = try await get(server.url(second))
            let again = try await get(server.url(second))
            #expect(page2.status == 502 && again.status == 200)
            // The bucket holds 40 and leaks 2 a second: a burst of 45 gets no more 200s than
            // that allows over the burst's time. (Pages take 50 ms, so the requests overlap.)
            shop.faults.slowPages(.milliseconds(50))
            let began = Date()
            let statuses = try await withThrowingTaskGroup(of: (Int, String?).self) { group in
                for _ in 0..<45 { group.addTask { let r = try await get(base + "?limit=1"); return (r.status, r.headers["Retry-After"]) } }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            let leaked = Int((Date().timeIntervalSince(began) * ShopifyShop.leakPerSecond).rounded(.up))
            #expect(statuses.filter { $0.0 == 200 }.count <= 40 + leaked)
            #expect(statuses.allSatisfy { $0.0 == 200 || ($0.0 == 429 && $0.1 == "1.0") })
            // A full bucket answers 429 with Retry-After (a leak of one takes half a second; a
            // request slower than that is tried again on a bucket filled again).
            shop.faults.slowPages(nil)
            var refused: HTTPResponse?
            for _ in 0..<10 where refused == nil {
                shop.fillBucket(to: ShopifyShop.bucketSize)
                let r = try await get(base + "?limit=1")
                if r.status == 429 { refused = r }
            }
            #expect(refused?.headers["Retry-After"] == "1.0" && refused?.headers["X-Shopify-Shop-Api-Call-Limit"] == "40/40")
            #expect(gauge.peak >= 2 && gauge.now == 0 && gauge.total == shop.faults.requests.count)
        }
    }

    @Test func klaviyoPagesThroughLinksNextWithinItsPerKeyLimit() async throws {
        let account = KlaviyoAccount(account: "acme", privateKey: "pk_1", counts: ["profiles": 130], start: Self.start, days: 90, perSecond: 1000)
        try await StandInHTTPServer.withServer { server in
            account.serve(on: server)
            let http = HTTPClient()
            func get(_ url: String, key: String = "pk_1", revision: String? = "2024-10-15") async throws -> HTTPResponse {
                var headers: [(String, String)] = [("Authorization", "Klaviyo-API-Key \(key)"), ("accept", "application/vnd.api+json")]
                if let revision { headers.append(("revision", revision)) }
                return try await http.execute(HTTPRequest(method: .get, url: url, headers: HTTPHeaders(headers)))
            }
            let base = server.url(account.basePath + "/api/profiles/")
            #expect(try await get(base, key: "nope").status == 401)
            #expect(try await get(base, revision: nil).status == 400)
            let filter = "greater-or-equal(created,2026-01-15T00:00:00Z),less-than(created,2026-02-15T00:00:00Z)"
            var url: String? = base + "?page%5Bsize%5D=25&filter=" + filter.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
            var ids: [String] = []
            while let u = url {
                let r = try await get(u)
                #expect(r.status == 200, "\(r.bodyString)")
                let body = try #require(try JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any])
                ids += ((body["data"] as? [[String: Any]]) ?? []).compactMap { $0["id"] as? String }
                url = (body["links"] as? [String: Any])?["next"] as? String
            }
            let expected = account.items("profiles", from: ISO8601DateFormatter().date(from: "2026-01-15T00:00:00Z")!,
                                         to: ISO8601DateFormatter().date(from: "2026-02-15T00:00:00Z")!)
            #expect(ids == expected && expected.count > 25)
        }
        // Beyond its limit in one second: 429 with Retry-After.
        let limited = KlaviyoAccount(account: "tight", privateKey: "pk_2", start: Self.start, days: 90, perSecond: 3)
        try await StandInHTTPServer.withServer { server in
            limited.serve(on: server)
            let http = HTTPClient()
            var statuses: [Int] = []
            for _ in 0..<8 {
                let r = try await http.execute(HTTPRequest(method: .get, url: server.url(limited.basePath + "/api/metrics/"),
                                                           headers: ["Authorization": "Klaviyo-API-Key pk_2", "revision": "2024-10-15"]))
                statuses.append(r.status)
                if r.status == 429 { #expect(r.headers["Retry-After"] == "1") }
            }
            #expect(statuses.contains(429) && statuses.filter { $0 == 200 }.count >= 3)
        }
    }
}
