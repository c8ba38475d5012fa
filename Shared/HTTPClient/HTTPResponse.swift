import Foundation

/// A response received for an ``HTTPRequest``; any status, including 4xx and 5xx, is a response
/// and not an error, since callers decide what a status means to them.
public struct HTTPResponse: Sendable {
    /// The status code of the final response, e.g. 200 or 429.
    public var status: Int
    /// The header fields of the final response (not of a `100 Continue` or a redirect before it).
    public var headers: HTTPHeaders
    /// The body bytes; empty for `HEAD`.
    public var body: [UInt8]
    /// The URL the response came from, which differs from the request's after redirects.
    public var effectiveURL: String
    /// Whether the request went over a connection kept alive from an earlier request.
    public var connectionReused: Bool
    /// The body is the first ``HTTPClient/Configuration/maxResponseBytes`` of a longer one:
    /// the transfer stopped there.
    public var bodyTruncated: Bool = false

    /// Creates a response; the client does this, tests may too.
    public init(status: Int, headers: HTTPHeaders = [:], body: [UInt8] = [], effectiveURL: String = "",
                connectionReused: Bool = false, bodyTruncated: Bool = false) {
        self.bodyTruncated = bodyTruncated
        self.status = status
        self.headers = headers
        self.body = body
        self.effectiveURL = effectiveURL
        self.connectionReused = connectionReused
    }

    /// The body as `Data`.
    public var bodyData: Data { Data(body) }

    /// The body decoded as UTF-8, with invalid bytes replaced.
    public var bodyString: String { String(decoding: body, as: UTF8.self) }

    /// Whether the status is 2xx.
    public var isSuccess: Bool { (200..<300).contains(status) }

    /// Seconds its `Retry-After` header asks to wait (delta-seconds or an HTTP date), if any.
    public var retryAfter: Double? { Self.retryAfter(headers["retry-after"]) }

    /// Seconds from a `Retry-After` value: delta-seconds or an HTTP date.
    public static func retryAfter(_ value: String?) -> Double? {
        guard let value = value?.trimmingCharacters(in: .whitespaces), !value.isEmpty else { return nil }
        if let seconds = Double(value) { return max(0, seconds) }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        guard let date = formatter.date(from: value) else { return nil }
        return max(0, date.timeIntervalSinceNow)
    }
}
