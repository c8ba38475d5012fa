import EsteiraCore
import Foundation
import HTTPClient

/// Finds a customer's order in a shop's Shopify Admin REST API: by the order number the
/// customer gave (`name`), else the customer's latest order by e-mail.
struct ShopOrders: Sendable {
    let http: HTTPClient
    /// The Shopify base URL with `{shop}` for the store's shop domain (`https://{shop}`).
    let baseURL: String
    static let version = "2024-01"

    /// An order as a reply tells it.
    struct Order: Sendable, Equatable {
        var number: String
        var status: String
        var trackingURL: String?
        var customerName: String?
    }

    /// The shop asked to wait (429, or 503 with `Retry-After`).
    struct Throttled: Error {
        var seconds: Double
    }

    /// The order numbered `number` (when given), else `email`'s latest; nil when the shop has none.
    /// - Throws: ``Throttled``; `JobError.permanent` for refused credentials (401, 403), a
    ///   missing shop (404) or another 4xx; `JobError.transient` for 408, 5xx and failures to
    ///   reach the shop.
    func find(shop: String, token: String, number: String?, email: String) async throws -> Order? {
        let base = baseURL.replacingOccurrences(of: "{shop}", with: shop) + "/admin/api/\(Self.version)/orders.json?status=any&limit=1"
        func query(_ value: String) -> String { value.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? value }
        if let number, let order = try await first(base + "&name=\(query("#" + number))", token: token) { return order }
        return try await first(base + "&email=\(query(email))", token: token)
    }

    private func first(_ url: String, token: String) async throws -> Order? {
        let response: HTTPResponse
        do {
            response = try await http.execute(HTTPRequest(method: .get, url: url,
                                                          headers: HTTPHeaders([("X-Shopify-Access-Token", token), ("Accept", "application/json")]),
                                                          timeout: .seconds(20)))
        } catch let error as HTTPClientError {
            throw JobError.transient("the shop was not reached: \(error)")
        }
        let what = "HTTP \(response.status) from the shop's orders"
        switch response.status {
        case 200..<300: break
        case 429: throw Throttled(seconds: response.retryAfter ?? 1)
        case 503 where response.retryAfter != nil: throw Throttled(seconds: response.retryAfter!)
        case 401, 403: throw JobError.permanent("\(what): the store's shop token was refused")
        case 404: throw JobError.permanent("\(what): no such shop")
        case 408, 500..<600: throw JobError.transient(what)
        default: throw JobError.permanent("\(what): \(response.bodyString.prefix(300))")
        }
        guard let body = JSONValue.parse(response.bodyString), case .array(let orders)? = body["orders"] else {
            throw JobError.transient("\(what): not the orders list Shopify answers")
        }
        guard let order = orders.first else { return nil }
        return Order(number: (order["name"]?.stringValue ?? "").replacingOccurrences(of: "#", with: ""),
                     status: Self.status(order), trackingURL: Self.tracking(order),
                     customerName: order["customer"]?["first_name"]?.stringValue)
    }

    /// The order's state in the customer's words (Portuguese, like the templates).
    static func status(_ order: JSONValue) -> String {
        if let cancelled = order["cancelled_at"], cancelled != .null { return "cancelado" }
        if order["financial_status"]?.stringValue == "refunded" { return "reembolsado" }
        switch order["fulfillment_status"]?.stringValue {
        case "fulfilled": return "enviado"
        case "partial": return "enviado em parte"
        default: return order["financial_status"]?.stringValue == "paid" ? "pago, em preparação" : "aguardando pagamento"
        }
    }

    static func tracking(_ order: JSONValue) -> String? {
        guard case .array(let fulfillments)? = order["fulfillments"] else { return nil }
        return fulfillments.compactMap { $0["tracking_url"]?.stringValue }.last
    }
}
