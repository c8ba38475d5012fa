import Foundation

/// A stand-in for one Klaviyo account's API, served under `/klaviyo/<account>` so that one
/// server holds many: `GET /klaviyo/<account>/api/<resource>/` for `profiles`, `campaigns`
/// and `metrics`, as Klaviyo answers them:
///
/// - `Authorization: Klaviyo-API-Key <private key>`, else 401 with a JSON:API `errors` body;
///   a `revision` header (`YYYY-MM-DD`), else 400.
/// - JSON:API bodies: `data` (objects with `type`, `id`, `attributes.created`) and `links`
///   (`self`, `next`, `prev`); the next page is `links.next`, a URL with `page[cursor]`.
///   `page[size]` 1-100 (default 20); `filter=greater-or-equal(created,<ISO>),less-than(created,<ISO>)`.
/// - A per-key limit (default a burst of 10 in any second): beyond it 429 with an integer
///   `Retry-After` and a `throttled` error.
public final class KlaviyoAccount: Sendable {
    public static let resources = ["profiles", "campaigns", "metrics"]

    public let account: String
    public let privateKey: String
    public let gauge: ConcurrencyGauge
    /// Faults to answer with, slow pages, and the requests made.
    public let faults = FaultScript()
    /// Items per resource, id and creation time, oldest first.
    public let items: [String: [(id: String, createdAt: Date)]]
    private let perSecond: Int
    private let window = Locked<(second: Int, count: Int)>((0, 0))

    /// An account with `counts` items of each resource, created evenly over `days` days from
    /// `start`, taking `perSecond` requests in any one second.
    public init(account: String, privateKey: String, counts: [String: Int] = ["profiles": 250, "campaigns": 30, "metrics": 12],
                start: Date, days: Int, perSecond: Int = 10, gauge: ConcurrencyGauge = ConcurrencyGauge()) {
        self.account = account
        self.privateKey = privateKey
        self.perSecond = perSecond
        self.gauge = gauge
        var items: [String: [(String, Date)]] = [:]
        for resource in Self.resources {
            let n = counts[resource] ?? 0
            let step = Double(days) * 86_400 / Double(max(1, n)), prefix = resource.prefix(2).uppercased()
            items[resource] = (0..<n).map { i -> (String, Date) in
                (prefix + String(format: "%06d", i + 1), start.addingTimeInterval(step * Double(i)))
            }
        }
        self.items = items
    }

    /// The path prefix of this account on the server: what the syncer's Klaviyo URL points at.
    public var basePath: String { "/klaviyo/\(account)" }

    public func serve(on server: StandInHTTPServer) {
        for resource in Self.resources {
            let path = "\(basePath)/api/\(resource)/"
            server.on("GET", path) { [self] request in
                try await gauge.measure { try await answer(request, resource: resource, base: server.baseURL + path) }
            }
        }
    }

    /// The items of `resource` created in `[from, to)`.
    public func items(_ resource: String, from: Date, to: Date) -> [String] {
        (items[resource] ?? []).filter { $0.createdAt >= from && $0.createdAt < to }.map(\.id)
    }

    static func error(_ status: Int, code: String, title: String, detail: String) -> StandInResponse {
        .json(#"{"errors":[{"id":"\#(UUID().uuidString.lowercased())","status":\#(status),"code":"\#(code)","title":"\#(title)","detail":"\#(detail)","source":{"pointer":"/data/"}}]}"#,
              status: status)
    }

    private func answer(_ request: StandInRequest, resource: String, base: String) async throws -> StandInResponse {
        if let fault = try await faults.begin(request) { return fault }
        guard request.header("Authorization") == "Klaviyo-API-Key \(privateKey)" else {
            return Self.error(401, code: "not_authenticated", title: "Authentication credentials were not provided.",
                              detail: "Missing or invalid private key.")
        }
        guard let revision = request.header("revision"), revision.count == 10 else {
            return Self.error(400, code: "invalid", title: "Invalid input.", detail: "A revision header (YYYY-MM-DD) is required.")
        }
        let throttled = window.withLock { w -> Bool in
            let second = Int(Date().timeIntervalSince1970)
            if w.second != second { w = (second, 0) }
            w.count += 1
            return w.count > perSecond
        }
        if throttled {
            var r = Self.error(429, code: "throttled", title: "Request was throttled.", detail: "Request was throttled. Expected available in 1 second.")
            r.headers.append(("Retry-After", "1"))
            return r
        }
        let query = queryParameters(request.query)
        let size = query["page[size]"].map { Int($0) } ?? 20
        guard let size, (1...100).contains(size) else {
            return Self.error(400, code: "invalid", title: "Invalid input.", detail: "page[size] must be 1 to 100.")
        }
        var from = Date.distantPast, to = Date.distantFuture
        if let filter = query["filter"] {
            for term in filter.split(separator: "),") {
                let parts = term.trimmingCharacters(in: CharacterSet(charactersIn: ")")).split(separator: "(", maxSplits: 1)
                let args = parts.count == 2 ? parts[1].split(separator: ",", maxSplits: 1).map(String.init) : []
                guard args.count == 2, args[0] == "created", let date = ShopifyShop.iso.date(from: args[1]) else {
                    return Self.error(400, code: "invalid", title: "Invalid input.", detail: "Invalid filter: \(term)")
                }
                switch parts[0] {
                case "greater-or-equal": from = date
                case "less-than": to = date
                default: return Self.error(400, code: "invalid", title: "Invalid input.", detail: "Unknown operator \(parts[0])")
                }
            }
        }
        let all = (items[resource] ?? []).filter { $0.createdAt >= from && $0.createdAt < to }
        // The cursor: the offset, opaque to clients.
        var offset = 0
        if let cursor = query["page[cursor]"] {
            guard let data = Data(base64Encoded: cursor), let n = Int(String(decoding: data, as: UTF8.self)), n >= 0 else {
                return Self.error(400, code: "invalid", title: "Invalid input.", detail: "Invalid page cursor.")
            }
            offset = n
        }
        if let pageFault = faults.page(resource, offset / size + 1) { return pageFault }
        let page = all.dropFirst(offset).prefix(size)
        let type = String(resource.dropLast())
        let data = page.map { item in
            #"{"type":"\#(type)","id":"\#(item.id)","attributes":{"created":"\#(ShopifyShop.iso.string(from: item.createdAt))"}}"#
        }
        func url(_ offset: Int) -> String {
            var keep = query.filter { $0.key != "page[cursor]" }
            keep["page[cursor]"] = Data("\(offset)".utf8).base64EncodedString()
            let q = keep.sorted { $0.key < $1.key }.map { k, v in
                "\(k.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? k)=\(v.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? v)"
            }
            return base + "?" + q.joined(separator: "&")
        }
        let next = offset + page.count < all.count ? #""\#(url(offset + page.count))""# : "null"
        let prev = offset > 0 ? #""\#(url(max(0, offset - size)))""# : "null"
        var response = StandInResponse.json(#"{"data":[\#(data.joined(separator: ","))],"links":{"self":"\#(url(offset))","next":\#(next),"prev":\#(prev)}}"#)
        response.headers = [("Content-Type", "application/vnd.api+json")]
        return response
    }
}
