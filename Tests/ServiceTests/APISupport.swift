import EsteiraCore
import Foundation
import HTTPClient
import Testing

/// An `api serve` process on a ``JobStack``'s database and vhost, with helpers to call it.
final class StackAPI: @unchecked Sendable {
    let child: ChildProcess
    let base: String
    let adminToken: String
    let http = HTTPClient()

    /// `adminToken`: the bootstrap admin's token, to keep one across restarts of the api;
    /// a new one when nil.
    init(stack: JobStack, adminToken: String? = nil, environment: [String: String] = [:]) async throws {
        self.adminToken = adminToken ?? "est_admin_" + UUID().uuidString.replacingOccurrences(of: "-", with: "")
        var env = [
            "ESTEIRA_DATABASE_URL": stack.database.url,
            "ESTEIRA_AMQP_URL": stack.amqpURL,
            "ESTEIRA_ADMIN_TOKEN": self.adminToken,
            "ESTEIRA_KINDS_FILE": stack.kindsFile.path,
            "ESTEIRA_LOG_LEVEL": "debug",
            "ESTEIRA_QUEUE_TYPE": stack.queueType.rawValue,
        ]
        for (k, v) in environment { env[k] = v }
        (child, base) = try await launchAPI(environment: env, http: http, untilHealthy: true)
    }

    struct Reply {
        let status: Int
        let headers: HTTPHeaders
        let body: [UInt8]
        var text: String { String(decoding: body, as: UTF8.self) }
        var json: [String: Any] { ((try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any]) ?? [:] }
        /// The `field` of a problem body.
        var field: String? { json["field"] as? String }
    }

    /// As `token`, as the admin when nil, or with no Authorization header when `anonymous`.
    func call(_ method: HTTPMethod, _ path: String, token: String? = nil, anonymous: Bool = false, body: String? = nil,
              headers: [(String, String)] = []) async throws -> Reply {
        var all = headers
        if !anonymous { all.append(("Authorization", "Bearer \(token ?? adminToken)")) }
        if body != nil { all.append(("Content-Type", "application/json")) }
        let r = try await http.execute(HTTPRequest(method: method, url: base + path, headers: HTTPHeaders(all),
                                                   body: body.map { Array($0.utf8) } ?? []))
        return Reply(status: r.status, headers: r.headers, body: r.body)
    }

    /// Calls as the admin (the default) or as `token`.
    func get(_ path: String, as token: String? = nil) async throws -> Reply { try await call(.get, path, token: token) }
    func post(_ path: String, _ body: String, as token: String? = nil) async throws -> Reply {
        try await call(.post, path, token: token, body: body)
    }

    /// A new user principal's token.
    func userToken(_ name: String = "user-\(UUID().uuidString.prefix(8))") async throws -> String {
        let r = try await post("/v1/tokens", #"{"name": "\#(name)"}"#)
        #expect(r.status == 201, "token: \(r.text)")
        return try #require(r.json["token"] as? String)
    }

    /// Enqueues through the api; returns the job id.
    func enqueue(_ body: String, as token: String? = nil) async throws -> UUID {
        let r = try await post("/v1/jobs", body, as: token)
        #expect(r.status == 201, "enqueue: \(r.status) \(r.text)")
        return try #require(UUID(uuidString: r.json["id"] as? String ?? ""))
    }

    deinit { child.signal(SIGTERM) }
}

/// Starts `api serve` on a free port and waits until it answers (with 200 on /healthz when
/// `untilHealthy`). Another test's server may take the port between the check and the bind:
/// then it tries another.
func launchAPI(environment: [String: String], http: HTTPClient, untilHealthy: Bool) async throws -> (ChildProcess, String) {
    for _ in 0..<5 {
        let port = freePort()
        var env = environment
        env["ESTEIRA_HTTP_PORT"] = "\(port)"
        let child = try ChildProcess(TestPaths.executable("api"), arguments: ["serve"], environment: env)
        let base = "http://127.0.0.1:\(port)"
        let deadline = ContinuousClock.now + .seconds(120)
        while ContinuousClock.now < deadline {
            if let r = try? await http.execute(HTTPRequest(method: .get, url: base + (untilHealthy ? "/healthz" : "/"))),
               !untilHealthy || r.status == 200 {
                return (child, base)
            }
            guard child.isRunning else { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        child.signal(SIGKILL)
        if child.text.contains("is in use") { continue }
        Issue.record("api did not become \(untilHealthy ? "healthy" : "ready"): \(child.text.suffix(3000))")
        throw CancellationError()
    }
    Issue.record("api: no free port after 5 tries")
    throw CancellationError()
}

/// A Server-Sent-Events client: curl reading the stream, its output parsed as it arrives.
final class EventStreamClient {
    let child: ChildProcess

    /// As `token`, or (when `cookie` is given) as the signed-in browser holding that cookie.
    init(url: String, token: String, lastEventID: Int64? = nil, cookie: String? = nil) throws {
        var arguments = ["-sSN", "--max-time", "120"] + (cookie.map { ["-H", "Cookie: \($0)"] } ?? ["-H", "Authorization: Bearer \(token)"])
        if let lastEventID { arguments += ["-H", "Last-Event-ID: \(lastEventID)"] }
        child = try ChildProcess(URL(fileURLWithPath: "/usr/bin/curl"), arguments: arguments + [url], environment: [:])
    }

    struct Event {
        let id: Int64
        let name: String
        let data: [String: Any]
    }

    /// The events received so far, in order.
    var events: [Event] {
        child.text.components(separatedBy: "\n\n").compactMap { block in
            var id: Int64?, name = "message", data = ""
            for line in block.split(separator: "\n") {
                if line.hasPrefix("id: ") { id = Int64(line.dropFirst(4)) }
                if line.hasPrefix("event: ") { name = String(line.dropFirst(7)) }
                if line.hasPrefix("data: ") { data += line.dropFirst(6) }
            }
            guard let id, let object = try? JSONSerialization.jsonObject(with: Data(data.utf8)) as? [String: Any] else { return nil }
            return Event(id: id, name: name, data: object)
        }
    }

    /// Waits until the server's opening lines arrived: from then on, the stream carries every
    /// event that happens.
    func waitUntilOpen(timeout: Duration = .seconds(60)) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if child.text.contains("retry: ") { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        Issue.record("event stream: not open after \(timeout); received: \(child.text.suffix(500))")
    }

    /// Waits until `predicate` holds for the events received.
    func waitFor(timeout: Duration = .seconds(60), _ predicate: ([Event]) -> Bool) async throws -> [Event] {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let e = events
            if predicate(e) { return e }
            try await Task.sleep(for: .milliseconds(50))
        }
        Issue.record("event stream: condition not met in \(timeout); received: \(child.text.suffix(3000))")
        return events
    }

    func close() { child.signal(SIGTERM) }
}
