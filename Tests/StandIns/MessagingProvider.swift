import EsteiraCore
import Foundation
import HTTPClient

/// A stand-in for a messaging provider's API, one instance under `/provider/<instance>` so
/// that one server holds many:
///
/// - `POST <base>/messages {"to", "text"}` with `Authorization: Bearer <token>` (else 401)
///   and an `Idempotency-Key` (else 400): 200 `{"id": "<provider message id>"}`. The same
///   key again answers the same id and sends nothing more (counted in ``repeats``).
/// - A number refused (``refuse(_:)``): 400 `{"error": "invalid_number"}`.
/// - ``faults``: scripted answers (429 with Retry-After, 5xx, dropped connections, slow ones)
///   and a delay on every send (latency).
/// - It posts receipts and incoming messages back to a webhook URL, signed as the ingestor
///   expects (``postReceipts(_:status:to:secret:)``, ``postIncoming(from:text:to:secret:)``).
public final class MessagingProvider: Sendable {
    public let instance: String
    public let token: String
    public let faults = FaultScript()
    /// Numbers refused as invalid.
    private let invalidNumbers: Locked<Set<String>>
    private struct State {
        var byKey: [String: String] = [:]
        var sent: [(id: String, key: String, to: String, text: String)] = []
        var repeats = 0
        var dropAfterSend = 0
    }
    private let state = Locked(State())
    private let http = HTTPClient(configuration: .init(timeout: .seconds(10), poolSize: 8))
    /// Ends every provider message id of this stand-in: ids differ between stand-ins.
    private let idTag = UUID().uuidString.prefix(8).lowercased()

    public init(instance: String = UUID().uuidString.lowercased(), token: String = "provider-token", invalidNumbers: Set<String> = []) {
        self.instance = instance
        self.token = token
        self.invalidNumbers = Locked(invalidNumbers)
    }

    /// The next `n` new sends are made and then the connection is dropped without an answer
    /// (as if the provider or the network failed after sending): the sender must retry with
    /// the same key and get the same message.
    public func dropAfterSending(_ n: Int) { state.withLock { $0.dropAfterSend += n } }

    /// From now on `number` is refused as invalid.
    public func refuse(_ number: String) { invalidNumbers.withLock { _ = $0.insert(number) } }

    /// Where this instance's API is on the server: the messaging instance's base URL.
    public var basePath: String { "/provider/\(instance)" }

    /// The messages sent, each once: provider id, idempotency key, number, text.
    public var sent: [(id: String, key: String, to: String, text: String)] { state.withLock { $0.sent } }
    /// Sends that came again with a key already used (answered, not sent again).
    public var repeats: Int { state.withLock { $0.repeats } }

    public func serve(on server: StandInHTTPServer) {
        server.on("POST", "\(basePath)/messages") { [self] request in try await answer(request) }
    }

    private func answer(_ request: StandInRequest) async throws -> StandInResponse {
        if let fault = try await faults.begin(request) { return fault }
        guard request.header("Authorization") == "Bearer \(token)" else {
            return .json(#"{"error":"unauthorized","message":"invalid token"}"#, status: 401)
        }
        guard let key = request.header("Idempotency-Key"), !key.isEmpty else {
            return .json(#"{"error":"missing_idempotency_key","message":"Idempotency-Key is required"}"#, status: 400)
        }
        guard let body = JSONValue.parse(String(decoding: request.body, as: UTF8.self))?.objectValue,
              let to = body["to"]?.stringValue, let text = body["text"]?.stringValue else {
            return .json(#"{"error":"invalid_body","message":"to and text are required"}"#, status: 400)
        }
        if invalidNumbers.withLock({ $0.contains(to) }) {
            return .json(#"{"error":"invalid_number","message":"the number is not on the network"}"#, status: 400)
        }
        let (id, drop) = state.withLock { s -> (String, Bool) in
            if let existing = s.byKey[key] { s.repeats += 1; return (existing, false) }
            let id = "msg-\(s.sent.count + 1)-\(idTag)"
            s.byKey[key] = id
            s.sent.append((id, key, to, text))
            guard s.dropAfterSend > 0 else { return (id, false) }
            s.dropAfterSend -= 1
            return (id, true)
        }
        if drop { return .dropConnection }
        return .json(#"{"id":"\#(id)","status":"sent"}"#)
    }

    /// Posts a `message.status` receipt (`delivered`, `read` or `failed`) for each provider
    /// message id to the webhook `url`, signed with `secret`; returns the answers' statuses.
    @discardableResult
    public func postReceipts(_ ids: [String], status: String, to url: String, secret: String) async throws -> [Int] {
        var statuses: [Int] = []
        for id in ids {
            let body = #"{"event_id":"evt-\#(id)-\#(status)","type":"message.status","message_id":"\#(id)","status":"\#(status)"}"#
            statuses.append(try await post(body, to: url, secret: secret))
        }
        return statuses
    }

    /// Posts an incoming message from `from` to the webhook `url`; returns the answer's status.
    @discardableResult
    public func postIncoming(from: String, text: String, eventID: String = UUID().uuidString, to url: String, secret: String) async throws -> Int {
        let text = String(decoding: try JSONSerialization.data(withJSONObject: [text], options: [.fragmentsAllowed]), as: UTF8.self).dropFirst().dropLast()
        let body = #"{"event_id":"\#(eventID)","type":"message.received","message_id":"in-\#(eventID)","from":"\#(from)","text":\#(text),"name":"Cliente"}"#
        return try await post(body, to: url, secret: secret)
    }

    /// Posts `body` signed as the ingestor checks it.
    public func post(_ body: String, to url: String, secret: String) async throws -> Int {
        let bytes = Array(body.utf8)
        let signature = "sha256=" + HMACSHA256.hex(key: secret, message: bytes)
        return try await http.execute(HTTPRequest(method: .post, url: url, headers: HTTPHeaders([("Content-Type", "application/json"),
                                                                                              ("X-Esteira-Signature", signature)]),
                                                  body: bytes)).status
    }
}
