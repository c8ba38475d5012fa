import EsteiraCore
import Foundation
import HTTPClient

/// Pages through a store's Shopify Admin REST API (`X-Shopify-Access-Token`, the `Link`
/// header's `rel="next"` URL with `page_info`, `limit` 250) and its Klaviyo API
/// (`Authorization: Klaviyo-API-Key`, a `revision` header, JSON:API `links.next` with
/// `page[cursor]`, `page[size]` 100).
struct StoreAPIs: Sendable {
    let http: HTTPClient
    /// The Shopify base URL with `{shop}` for the store's shop domain (`https://{shop}`).
    let shopifyURL: String
    /// The Klaviyo base URL, `{store}` for the store's id where a deployment routes by it.
    let klaviyoURL: String
    static let shopifyVersion = "2024-01"
    static let klaviyoRevision = "2024-10-15"

    /// The target asked to wait (429, or 503 with `Retry-After`).
    struct Throttled: Error {
        var seconds: Double
    }

    /// The first page of `type` for the period `[start, end]` (UTC days, both included).
    func firstURL(_ type: StoreDataType, store: Store, start: String, end: String) throws -> String {
        switch type.source {
        case "shopify":
            guard let shop = store.shopifyDomain, store.hasShopify else { throw JobError.permanent("the store has no Shopify credentials") }
            let base = shopifyURL.replacingOccurrences(of: "{shop}", with: shop)
            return "\(base)/admin/api/\(Self.shopifyVersion)/\(type.resource).json?limit=250"
                + "&created_at_min=\(start)T00:00:00Z&created_at_max=\(end)T23:59:59Z"
        default:
            guard store.hasKlaviyo else { throw JobError.permanent("the store has no Klaviyo key") }
            let base = klaviyoURL.replacingOccurrences(of: "{store}", with: store.id.uuidString.lowercased())
            let next = Self.dayAfter(end)
            let filter = "greater-or-equal(created,\(start)T00:00:00Z),less-than(created,\(next)T00:00:00Z)"
            return "\(base)/api/\(type.resource)/?page%5Bsize%5D=100&filter=\(filter.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? filter)"
        }
    }

    static func dayAfter(_ day: String) -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "yyyy-MM-dd"
        return f.date(from: day).map { f.string(from: $0.addingTimeInterval(86_400)) } ?? day
    }

    /// One page as the API sent it: the body (JSON, parsed by PostgreSQL when it is kept),
    /// the member holding its items, and the next page's URL when a header says it (Shopify's
    /// `Link`; Klaviyo's is in the body, `links.next`).
    struct Page: Sendable {
        var body: String
        var itemsKey: String
        var nextFromHeader: String?
        /// Shopify's `X-Shopify-Shop-Api-Call-Limit`: the shop's bucket, used of its size
        /// (other apps of the shop fill it too).
        var callLimit: (used: Int, size: Int)?
    }

    /// Fetches one page.
    /// - Throws: ``Throttled``; `JobError.permanent` for refused credentials or another 4xx;
    ///   `JobError.transient` for 408, 5xx and failures to reach the API.
    func page(_ url: String, type: StoreDataType, store: Store) async throws -> Page {
        var headers: [(String, String)] = []
        if type.source == "shopify" {
            headers += [("X-Shopify-Access-Token", store.shopifyToken ?? ""), ("Accept", "application/json")]
        } else {
            headers += [("Authorization", "Klaviyo-API-Key \(store.klaviyoKey ?? "")"), ("revision", Self.klaviyoRevision),
                        ("Accept", "application/vnd.api+json")]
        }
        let response: HTTPResponse
        do {
            response = try await http.execute(HTTPRequest(method: .get, url: url, headers: HTTPHeaders(headers), timeout: .seconds(60)))
        } catch let error as HTTPClientError {
            throw JobError.transient("\(type.source) not reached: \(error)")
        }
        let what = "HTTP \(response.status) from \(type.source) \(type.resource)"
        switch response.status {
        case 200..<300: break
        case 429: throw Throttled(seconds: response.retryAfter ?? 1)
        case 503 where response.retryAfter != nil: throw Throttled(seconds: response.retryAfter!)
        case 401, 403: throw JobError.permanent("\(what): the store's credentials were refused")
        case 408, 500..<600: throw JobError.transient(what)
        default: throw JobError.permanent("\(what): \(response.bodyString.prefix(300))")
        }
        return type.source == "shopify"
            ? Page(body: response.bodyString, itemsKey: type.resource, nextFromHeader: Self.nextLink(response.headers["Link"]),
                   callLimit: Self.callLimit(response.headers["X-Shopify-Shop-Api-Call-Limit"]))
            : Page(body: response.bodyString, itemsKey: "data", nextFromHeader: nil)
    }

    /// `used/size` of Shopify's call-limit header.
    static func callLimit(_ header: String?) -> (used: Int, size: Int)? {
        let parts = header?.split(separator: "/").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) } ?? []
        guard parts.count == 2, parts[1] > 0 else { return nil }
        return (parts[0], parts[1])
    }

    /// The `rel="next"` URL of a `Link` header.
    static func nextLink(_ header: String?) -> String? {
        guard let header else { return nil }
        for part in header.components(separatedBy: ",") {
            let pieces = part.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }
            guard pieces.count >= 2, pieces.dropFirst().contains(#"rel="next""#),
                  pieces[0].hasPrefix("<"), pieces[0].hasSuffix(">") else { continue }
            return String(pieces[0].dropFirst().dropLast())
        }
        return nil
    }
}
