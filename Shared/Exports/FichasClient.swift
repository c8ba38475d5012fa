import EsteiraCore
import Foundation
import HTTPClient

/// Sends batches of leads to a target's `fichas` table the way PostgREST takes an upsert:
/// `POST {base}/rest/v1/fichas?on_conflict=id` with `Prefer: resolution=merge-duplicates`,
/// `apikey` and `Authorization: Bearer` headers and a JSON array body. Sending a batch again
/// writes each row once more, not twice.
struct FichasClient: Sendable {
    let http: HTTPClient
    let timeout: Duration

    /// The target asked to wait (429, or 503 with `Retry-After`) before anything more is sent.
    struct Throttled: Error, Equatable {
        var seconds: Double
        var status: Int
    }

    /// Sends `rows` (JSON objects, each with its lead's `id` from `ids`). A 4xx whose error
    /// names one of the rows (a constraint the target's table puts on it) fails that row
    /// alone: it is left out and the rest are sent again, until they are taken. Returns the
    /// rows refused that way, with the target's error.
    /// - Throws: ``Throttled``; `JobError.permanent` for a refused key or a 4xx that names no
    ///   row of the batch; `JobError.transient` for 408, 5xx and failures to reach the target.
    func upsert(_ rows: [String], ids: [Int64], to target: ExportTarget) async throws -> [Int64: String] {
        var remaining = Array(zip(ids, rows))
        var refused: [Int64: String] = [:]
        while !remaining.isEmpty {
            let response = try await send(remaining.map(\.1), to: target)
            switch response.status {
            case 200..<300:
                return refused
            case 429, 503:
                throw Throttled(seconds: response.retryAfter ?? 1, status: response.status)
            case 401, 403:
                throw JobError.permanent("target \(target.name) refused the API key (HTTP \(response.status)): \(Self.message(response))")
            case 408, 500..<600:
                throw JobError.transient("HTTP \(response.status) from target \(target.name): \(Self.message(response))")
            default:
                let error = Self.error(response)
                let index = Self.namedRow(in: error).flatMap { id in remaining.firstIndex { $0.0 == id } }
                guard let index else {
                    throw JobError.permanent("HTTP \(response.status) from target \(target.name): \(Self.message(response))")
                }
                refused[remaining[index].0] = Self.message(response)
                remaining.remove(at: index)
            }
        }
        return refused
    }

    private func send(_ rows: [String], to target: ExportTarget) async throws -> HTTPResponse {
        var base = target.baseURL
        while base.hasSuffix("/") { base.removeLast() }
        var body = [UInt8]()
        body.reserveCapacity(rows.reduce(2) { $0 + $1.utf8.count + 1 })
        body.append(UInt8(ascii: "["))
        for (i, row) in rows.enumerated() {
            if i > 0 { body.append(UInt8(ascii: ",")) }
            body.append(contentsOf: row.utf8)
        }
        body.append(UInt8(ascii: "]"))
        let request = HTTPRequest(method: .post, url: base + "/rest/v1/fichas?on_conflict=id",
                                  headers: HTTPHeaders([("apikey", target.apiKey), ("Authorization", "Bearer \(target.apiKey)"),
                                                        ("Content-Type", "application/json"),
                                                        ("Prefer", "resolution=merge-duplicates,return=minimal")]),
                                  body: body, timeout: timeout)
        do {
            return try await http.execute(request)
        } catch let error as HTTPClientError {
            throw JobError.transient("target \(target.name) not reached: \(error)")
        }
    }

    /// PostgREST's error body: code, message, details, hint.
    static func error(_ response: HTTPResponse) -> [String: Any] {
        ((try? JSONSerialization.jsonObject(with: Data(response.body))) as? [String: Any]) ?? [:]
    }

    /// The error for a person: its code, message and details, or the body's start.
    static func message(_ response: HTTPResponse) -> String {
        let e = error(response)
        let parts = [e["code"], e["message"], e["details"]].compactMap { $0 as? String }.filter { !$0.isEmpty }
        return parts.isEmpty ? String(response.bodyString.prefix(300)) : parts.joined(separator: ": ")
    }

    /// The id of the row a PostgreSQL error names, from its details: "Failing row contains
    /// (7, ...)." for a check or not-null constraint, "Key (id)=(7) ..." for a key.
    static func namedRow(in error: [String: Any]) -> Int64? {
        guard let details = error["details"] as? String else { return nil }
        for marker in ["Failing row contains (", "Key (id)=("] {
            guard let range = details.range(of: marker) else { continue }
            let value = details[range.upperBound...].prefix { $0 != "," && $0 != ")" }
            return Int64(value.trimmingCharacters(in: .whitespaces))
        }
        return nil
    }
}
