import EsteiraCore
import Foundation
import HTTPClient
import Synchronization

/// `http`: POSTs the job to a URL, so a user with no Swift runs any job behind their own
/// endpoint. The payload names the target and the body:
///
/// ```json
/// {"url": "https://example.com/jobs/run", "body": {...}, "headers": {"X-Tenant": "7"}}
/// {"endpoint": "billing", "body": {...}}
/// ```
///
/// With neither, the kind's configured endpoint is used. The request body is `body` as JSON
/// (the whole payload when there is no `body`), signed: `X-Esteira-Signature: sha256=<hex>`,
/// the HMAC-SHA256 of `<X-Esteira-Timestamp>.<body>`, under the endpoint's secret (or
/// `ESTEIRA_HTTP_SIGNING_SECRET`) for a named endpoint, and under the job owner's own secret
/// (`GET /v1/whoami` shows it to the owner) for a URL the job chose: never an operator's
/// secret for a user's URL. An endpoint may admit only some principals or kinds. 2xx completes the job (the first 64 KiB of its
/// body kept as the result; the transfer stops there); 408, 429, 5xx and network errors are
/// transient and honour `Retry-After`; any other status is permanent.
///
/// Named endpoints are the operator's and trusted. A URL the job chose goes through the
/// user-target client, whose outbound policy refuses non-public addresses (unless
/// `ESTEIRA_HTTP_ALLOW` admits them): such a job ends dead with error class `forbidden`.
final class HTTPJobHandler: JobHandler, Sendable {
    /// For named endpoints: any address.
    let trusted: HTTPClient
    /// For URLs jobs chose: the outbound policy.
    let userTargets: HTTPClient
    let catalog: KindCatalog
    let principals: PrincipalStore
    /// Owners' names, roles and signing secrets, read once per owner.
    private let owners = Mutex<[UUID: (name: String, role: Principal.Role, secret: String)]>([:])

    /// The most of a 2xx body kept as the job's result, and so read.
    static let keptBodyBytes = 64 * 1024

    /// Clients whose handles number the concurrency of every kind this handler runs, so slow
    /// targets of one kind cannot take the handles of all; `allow` is the operator's allow-list.
    init(catalog: KindCatalog, allow: [String], principals: PrincipalStore) throws {
        self.principals = principals
        let concurrency = catalog.kinds.values.filter { $0.handler == "http" }.map(\.policy.concurrency).reduce(0, +)
        var configuration = HTTPClient.Configuration(poolSize: min(max(concurrency, 4), 4096))
        configuration.maxResponseBytes = Self.keptBodyBytes
        configuration.lowSpeedLimit = (bytesPerSecond: 1, seconds: 30)
        trusted = HTTPClient(configuration: configuration)
        configuration.policy = try OutboundPolicy.publicOnly(allowing: allow)
        userTargets = HTTPClient(configuration: configuration)
        self.catalog = catalog
    }


    func run(_ job: JobContext) async throws -> JSONValue? {
        let (url, secret, trusted) = try await target(of: job)
        let body: [UInt8]
        if let explicit = job.payload["body"] {
            body = Array(explicit.jsonText.utf8)
        } else {
            body = Array(job.payloadText.utf8)
        }
        let timestamp = String(Int(Date().timeIntervalSince1970))
        var headers: [(String, String)] = [
            ("Content-Type", "application/json"),
            ("X-Esteira-Job-Id", job.id.uuidString.lowercased()),
            ("X-Esteira-Kind", job.kind),
            ("X-Esteira-Attempt", String(job.attempt)),
            ("X-Esteira-Timestamp", timestamp),
            ("Idempotency-Key", job.id.uuidString.lowercased()),
        ]
        if let secret {
            headers.append(("X-Esteira-Signature", "sha256=" + HMACSHA256.hex(key: secret, message: Array(timestamp.utf8) + [UInt8(ascii: ".")] + body)))
        }
        if case .object(let extra)? = job.payload["headers"] {
            for (name, value) in extra {
                if HTTPJobPayload.isReserved(header: name) { throw JobError.permanent("payload.headers may not set \(name)") }
                if let v = value.stringValue, !name.lowercased().hasPrefix("x-esteira-") { headers.append((name, v)) }
            }
        }
        let request = HTTPRequest(method: .post, url: url, headers: HTTPHeaders(headers), body: body,
                                  timeout: .milliseconds(Int(job.kindInfo.policy.timeout * 1000)))
        let response: HTTPResponse
        do {
            response = try await (trusted ? self.trusted : userTargets).execute(request)
        } catch let error as HTTPClientError {
            if error.code == .forbiddenAddress {
                throw JobError.forbidden("\(Self.redacted(url)) is not an allowed target: it resolves to a non-public address")
            }
            if error.code == .invalidURL || error.code == .invalidRequest || error.code == .tls {
                throw JobError.permanent("\(error)")
            }
            throw JobError.transient("\(error)")
        }
        let status = response.status
        switch status {
        case 200..<300:
            let text = String(decoding: response.body, as: UTF8.self)
            var result: [String: JSONValue] = ["status": .number(Double(status))]
            result["body"] = response.bodyTruncated ? .string(text) : (JSONValue.parse(text) ?? .string(text))
            if response.bodyTruncated { result["body_truncated"] = .bool(true) }
            return .object(result)
        case 429, 503:
            let message = "HTTP \(status) from \(Self.redacted(url))"
            guard let retryAfter = response.retryAfter else { throw JobError.transient(message) }
            throw JobError.throttled(message, retryAfter: retryAfter)
        case 408, 500..<600:
            throw JobError.transient("HTTP \(status) from \(Self.redacted(url))",
                                     retryAfter: response.retryAfter)
        default:
            throw JobError.permanent("HTTP \(status) from \(Self.redacted(url))")
        }
    }

    /// The URL, the signing secret, and whether the target is the operator's (trusted).
    private func target(of job: JobContext) async throws -> (String, String?, Bool) {
        let owner = try await owner(of: job)
        if let url = job.payload["url"]?.stringValue {
            guard let u = URL(string: url), u.scheme == "http" || u.scheme == "https", u.host != nil else {
                throw JobError.permanent("payload.url is not an http(s) URL")
            }
            return (url, owner?.secret, false)
        }
        let named = job.payload["endpoint"]?.stringValue
        guard let name = named ?? job.kindInfo.endpoint else { throw JobError.permanent("payload needs url or endpoint") }
        guard let endpoint = catalog.endpoints[name] else { throw JobError.permanent("unknown endpoint '\(name)'") }
        guard endpoint.admits(kind: job.kind, principal: owner?.name, namedInPayload: named != nil, admin: owner?.role == .admin) else {
            throw JobError.forbidden("endpoint '\(name)' is not open to this job's owner or kind")
        }
        return (endpoint.url, endpoint.secret ?? catalog.defaultSigningSecret, true)
    }

    /// The job owner's name, role and signing secret (nil for the system's jobs).
    private func owner(of job: JobContext) async throws -> (name: String, role: Principal.Role, secret: String)? {
        guard let id = job.ownerID else { return nil }
        if let known = owners.withLock({ $0[id] }) { return known }
        guard let found = try await principals.signingIdentity(id) else { return nil }
        owners.withLock { $0[id] = found }
        return found
    }

    /// The URL without query string or credentials, for error messages.
    static func redacted(_ url: String) -> String {
        guard var c = URLComponents(string: url) else { return "the endpoint" }
        c.query = nil
        c.user = nil
        c.password = nil
        return c.string ?? "the endpoint"
    }
}
