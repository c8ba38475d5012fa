import EsteiraCore
import Foundation
import HTTPClient

/// A messaging provider's HTTP API, one instance (connected number) at a time:
/// `POST {base_url}/messages {"to", "text"}` with `Authorization: Bearer <token>` and an
/// `Idempotency-Key` (the message's id): the provider answers the same send twice with the
/// same message, so a redelivered job never sends twice. The answer carries the provider's
/// message id (`id` or `message_id`).
struct ProviderClient: Sendable {
    let http: HTTPClient
    let timeout: Duration

    /// The provider asked to wait (429, or 503 with `Retry-After`).
    struct Throttled: Error, Equatable {
        var seconds: Double
        var status: Int
    }

    /// A send as the provider takes it.
    struct Send: Sendable {
        var baseURL: String
        var token: String
        var to: String
        var text: String
        var idempotencyKey: String
    }

    /// Instance base URLs are chosen by their owners: the operator's outbound policy applies
    /// (non-public addresses refused unless `allow` admits them).
    init(allow: [String], timeout: Duration, connections: Int) throws {
        var configuration = HTTPClient.Configuration(timeout: timeout, connectTimeout: min(timeout, .seconds(10)),
                                                     poolSize: min(max(connections, 4), 1024))
        configuration.policy = try OutboundPolicy.publicOnly(allowing: allow)
        configuration.maxResponseBytes = 64 * 1024
        configuration.lowSpeedLimit = (bytesPerSecond: 1, seconds: 10)
        http = HTTPClient(configuration: configuration)
        self.timeout = timeout
    }

    /// Sends; returns the provider's message id.
    /// - Throws: ``Throttled``; `JobError.permanent` for a number the provider refuses (4xx
    ///   naming the recipient), a refused token, or any other 4xx; `JobError.transient` for
    ///   408, 5xx, timeouts and failures to connect.
    func send(_ send: Send) async throws -> String {
        var base = send.baseURL
        while base.hasSuffix("/") { base.removeLast() }
        let body = JSONValue.object(["to": .string(send.to), "text": .string(send.text)]).jsonText
        let request = HTTPRequest(method: .post, url: base + "/messages",
                                  headers: HTTPHeaders([("Authorization", "Bearer \(send.token)"), ("Content-Type", "application/json"),
                                                        ("Idempotency-Key", send.idempotencyKey)]),
                                  body: Array(body.utf8), timeout: timeout)
        let response: HTTPResponse
        do {
            response = try await http.execute(request)
        } catch let error as HTTPClientError {
            if error.code == .forbiddenAddress { throw JobError.forbidden("the instance's base URL is not allowed: \(error)") }
            if error.code == .invalidURL { throw JobError.permanent("the instance's base URL cannot be used: \(error)") }
            throw JobError.transient("provider not reached: \(error)")
        }
        let answer = JSONValue.parse(response.bodyString)?.objectValue ?? [:]
        switch response.status {
        case 200..<300:
            guard let id = (answer["id"] ?? answer["message_id"]).flatMap(Self.text), !id.isEmpty else {
                throw JobError.transient("the provider's answer has no message id: \(response.bodyString.prefix(200))")
            }
            return id
        case 429, 503:
            throw Throttled(seconds: response.retryAfter ?? 1, status: response.status)
        case 408, 500..<600:
            throw JobError.transient("HTTP \(response.status) from the provider: \(Self.message(answer, response))")
        case 401, 403:
            throw JobError.permanent("the provider refused the instance's token (HTTP \(response.status))")
        default:
            throw JobError.permanent("HTTP \(response.status) from the provider: \(Self.message(answer, response))")
        }
    }

    /// A provider id as text: a string, or a whole number.
    static func text(_ value: JSONValue) -> String? {
        if let s = value.stringValue { return s }
        guard let n = value.doubleValue, n == n.rounded(), abs(n) < 1e15 else { return nil }
        return String(Int64(n))
    }

    static func message(_ answer: [String: JSONValue], _ response: HTTPResponse) -> String {
        let parts = [answer["error"], answer["message"]].compactMap { $0?.stringValue }
        return parts.isEmpty ? String(response.bodyString.prefix(300)) : parts.joined(separator: ": ")
    }
}
