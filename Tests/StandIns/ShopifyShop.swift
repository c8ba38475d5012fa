import Foundation

/// A stand-in for one shop's Shopify Admin REST API (version ``apiVersion``), served under
/// `/shopify/<domain>` so that one server holds many shops: `GET
/// /shopify/<domain>/admin/api/<version>/<resource>.json` for `orders`, `customers` and
/// `products`, as Shopify answers them:
///
/// - `X-Shopify-Access-Token` must be the shop's token, else 401 with Shopify's `errors` body.
/// - A leaky bucket of 40 requests leaking 2 a second per shop; every answer carries
///   `X-Shopify-Shop-Api-Call-Limit: <used>/40`, and a request that finds it full gets 429
///   with `Retry-After: 1.0`.
/// - `limit` (default 50, at most 250), `created_at_min` and `created_at_max` (ISO 8601) on
///   the first page; later pages are asked for with the `page_info` of the `Link` header's
///   `rel="next"` URL, with which only `limit` may be given (anything else: 400).
/// - Items are the shop's, made up from its seed, oldest first by id.
///
/// Orders added with ``addOrder(number:email:firstName:fulfillment:trackingURL:)`` answer the
/// lookups `orders.json?status=any&name=%23<number>` and `orders.json?status=any&email=<address>`
/// (newest first), with Shopify's `name`, `email`, `financial_status`, `fulfillment_status`,
/// `fulfillments[].tracking_url` and `customer.first_name`.
///
/// A test scripts faults through ``faults`` (the next answers, a given page's, slow pages) and
/// reads the requests made there; a ``ConcurrencyGauge`` shared by several shops counts those
/// in flight.
public final class ShopifyShop: Sendable {
    public static let apiVersion = "2024-01"
    public static let resources = ["orders", "customers", "products"]
    public static let bucketSize = 40.0
    public static let leakPerSecond = 2.0

    public let domain: String
    public let token: String
    public let gauge: ConcurrencyGauge
    /// Items per resource, id and creation time, oldest first.
    public let items: [String: [(id: Int64, createdAt: Date)]]

    /// Faults to answer with, slow pages, and the requests made.
    public let faults = FaultScript()
    private let bucket = Locked<(level: Double, leakedAt: Date)>((0, Date()))
    /// Orders of ``addOrder(number:email:firstName:fulfillment:trackingURL:)``, newest first.
    private let customerOrders = Locked<[(name: String, email: String, json: String)]>([])

    /// Adds an order a customer can ask about.
    public func addOrder(number: Int, email: String, firstName: String, fulfillment: String? = nil, trackingURL: String? = nil) {
        let fulfillments = trackingURL.map { #"[{"tracking_url":"\#($0)"}]"# } ?? "[]"
        let json = ##"{"id":\##(5_000_000 + number),"name":"#\##(number)","email":"\##(email)","financial_status":"paid","##
            + #""fulfillment_status":\#(fulfillment.map { "\"\($0)\"" } ?? "null"),"cancelled_at":null,"#
            + #""fulfillments":\#(fulfillments),"customer":{"first_name":"\#(firstName)"}}"#
        customerOrders.withLock { $0.insert(("#\(number)", email.lowercased(), json), at: 0) }
    }

    /// A shop with `counts` items of each resource, created evenly over `days` days from `start`.
    public init(domain: String, token: String, counts: [String: Int] = ["orders": 300, "customers": 120, "products": 40],
                start: Date, days: Int, gauge: ConcurrencyGauge = ConcurrencyGauge()) {
        self.domain = domain
        self.token = token
        self.gauge = gauge
        var items: [String: [(Int64, Date)]] = [:]
        for (r, resource) in Self.resources.enumerated() {
            let n = counts[resource] ?? 0
            let step = Double(days) * 86_400 / Double(max(1, n)), first = Int64(r + 1) * 1_000_000
            items[resource] = (0..<n).map { i -> (Int64, Date) in (first + Int64(i + 1), start.addingTimeInterval(step * Double(i))) }
        }
        self.items = items
    }

    /// Fills the shop's bucket to `level`, as its other apps' calls would.
    public func fillBucket(to level: Double) {
        bucket.withLock { $0 = (level, Date()) }
    }

    /// The path prefix of this shop on the server: what the syncer's Shopify URL points at.
    public var basePath: String { "/shopify/\(domain)" }

    /// Serves the shop's resources on `server`.
    public func serve(on server: StandInHTTPServer) {
        for resource in Self.resources {
            let path = "\(basePath)/admin/api/\(Self.apiVersion)/\(resource).json"
            server.on("GET", path) { [self] request in
                try await gauge.measure { try await answer(request, resource: resource, base: server.baseURL + path) }
            }
        }
    }

    /// The items of `resource` created in `[from, to]`.
    public func items(_ resource: String, from: Date, to: Date) -> [Int64] {
        (items[resource] ?? []).filter { $0.createdAt >= from && $0.createdAt <= to }.map(\.id)
    }

    static let iso: ISO8601DateFormatter = {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime]
        return f
    }()

    private struct PageInfo: Codable {
        var min: Double
        var max: Double
        var offset: Int
        var page: Int
    }

    private func answer(_ request: StandInRequest, resource: String, base: String) async throws -> StandInResponse {
        if let fault = try await faults.begin(request) { return fault }
        guard request.header("X-Shopify-Access-Token") == token else {
            return .json(#"{"errors":"[API] Invalid API key or access token (unrecognized login or wrong password)"}"#, status: 401)
        }
        // The leaky bucket.
        let used = bucket.withLock { s -> Double? in
            let now = Date()
            s.level = max(0, s.level - now.timeIntervalSince(s.leakedAt) * Self.leakPerSecond)
            s.leakedAt = now
            guard s.level + 1 <= Self.bucketSize else { return nil }
            s.level += 1
            return s.level
        }
        guard let used else {
            var r = StandInResponse.json(#"{"errors":"Exceeded 2 calls per second for api client. Reduce request rates to resume uninterrupted service."}"#,
                                         status: 429)
            r.headers.append(("Retry-After", "1.0"))
            r.headers.append(("X-Shopify-Shop-Api-Call-Limit", "40/40"))
            return r
        }
        let callLimit = ("X-Shopify-Shop-Api-Call-Limit", "\(Int(used.rounded(.up)))/\(Int(Self.bucketSize))")
        func bad(_ message: String) -> StandInResponse {
            var r = StandInResponse.json(#"{"errors":"\#(message)"}"#, status: 400)
            r.headers.append(callLimit)
            return r
        }
        let query = queryParameters(request.query)
        if resource == "orders", query["name"] != nil || query["email"] != nil {
            let found = customerOrders.withLock { $0 }.filter { order in
                (query["name"].map { $0 == order.name } ?? true) && (query["email"].map { $0.lowercased() == order.email } ?? true)
            }.prefix(Int(query["limit"] ?? "50") ?? 50).map(\.json)
            var r = StandInResponse.json(#"{"orders":[\#(found.joined(separator: ","))]}"#)
            r.headers.append(callLimit)
            return r
        }
        let limit = query["limit"].map { Int($0) } ?? 50
        guard let limit, (1...250).contains(limit) else { return bad("limit - must be 1 to 250") }
        var info: PageInfo
        if let token = query["page_info"] {
            guard query.keys.allSatisfy({ $0 == "page_info" || $0 == "limit" }) else {
                return bad("page_info - only limit may be given with page_info")
            }
            guard let data = Data(base64Encoded: token), let decoded = try? JSONDecoder().decode(PageInfo.self, from: data) else {
                return bad("page_info - Invalid value")
            }
            info = decoded
        } else {
            func date(_ key: String, _ fallback: Date) -> Date? { query[key].map { Self.iso.date(from: $0) } ?? fallback }
            guard let from = date("created_at_min", .distantPast), let to = date("created_at_max", .distantFuture) else {
                return bad("created_at - must be ISO 8601")
            }
            info = PageInfo(min: from.timeIntervalSince1970, max: to.timeIntervalSince1970, offset: 0, page: 1)
        }
        if let pageFault = faults.page(resource, info.page) { return pageFault }
        let all = (items[resource] ?? []).filter { $0.createdAt.timeIntervalSince1970 >= info.min && $0.createdAt.timeIntervalSince1970 <= info.max }
        let page = all.dropFirst(info.offset).prefix(limit)
        let singular = String(resource.dropLast())
        let objects = page.map { item in
            #"{"id":\#(item.id),"created_at":"\#(Self.iso.string(from: item.createdAt))","admin_graphql_api_id":"gid://shopify/\#(singular.capitalized)/\#(item.id)"}"#
        }
        var links: [String] = []
        func link(_ offset: Int, _ page: Int, _ rel: String) {
            var next = info
            next.offset = offset
            next.page = page
            let token = (try? JSONEncoder().encode(next))?.base64EncodedString() ?? ""
            let escaped = token.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? token
            links.append("<\(base)?limit=\(limit)&page_info=\(escaped)>; rel=\"\(rel)\"")
        }
        if info.offset > 0 { link(max(0, info.offset - limit), info.page - 1, "previous") }
        if info.offset + page.count < all.count { link(info.offset + page.count, info.page + 1, "next") }
        var response = StandInResponse.json(#"{"\#(resource)":[\#(objects.joined(separator: ","))]}"#)
        response.headers.append(callLimit)
        if !links.isEmpty { response.headers.append(("Link", links.joined(separator: ", "))) }
        return response
    }
}
