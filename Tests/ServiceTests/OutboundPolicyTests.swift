import EsteiraCore
import Foundation
import Logging
import HTTPClient
import Postgres
import StandIns
import Testing

/// What an `http` job may reach and read: a URL the job chose goes only to public addresses
/// (and the stand-ins' own address, which the tests' allow-list admits), never to the test
/// stack's RabbitMQ management port or PostgreSQL; named endpoints are the operator's and
/// are signed with their own secret; bodies are read only up to what is kept.
@Suite struct OutboundPolicyTests {
    static func port(of url: String) throws -> Int {
        try #require(URLComponents(string: url)?.port)
    }

    @Test func aJobsURLCannotReachLoopbackOrPrivateAddresses() async throws {
        let stack = try await JobStack()
        try await stack.startProcessor()
        let management = try Self.port(of: try TestServers.variable("ESTEIRA_TEST_AMQP_MGMT_URL"))
        let postgres = try Self.port(of: try TestServers.databaseURL())
        let targets = [
            "http://127.0.0.1:\(management)/api/queues",     // the broker's management API (guest works from loopback)
            "http://localhost:\(postgres)/",                 // a name that resolves to loopback
            "http://[::1]:\(management)/api/overview",
            "http://[::ffff:127.0.0.1]:\(management)/api/overview",
            "http://169.254.169.254/latest/meta-data/",      // cloud metadata
            "http://10.255.255.1:\(postgres)/",
            "http://0.0.0.0:\(management)/",
        ]
        let ids = try await stack.enqueue(targets.map { NewJob(kind: "http", payload: #"{"url": "\#($0)"}"#) }).map(\.id)
        for (id, target) in zip(ids, targets) {
            let job = try await stack.waitFor(id, .dead, timeout: .seconds(30))
            #expect(job.attempts == 1, "refused at once, not retried: \(target)")
            #expect(job.lastErrorClass == "forbidden", "\(target)")
            // The same words whether something listens there or not: nothing to scan ports with.
            let error = job.lastError ?? ""
            #expect(error.hasSuffix(" is not an allowed target: it resolves to a non-public address"), "\(target): \(error)")
        }
        #expect(try await stack.scalar("SELECT count(*) FROM dead_letters WHERE error_class = 'forbidden'", as: Int.self) == targets.count)
    }

    @Test func namedEndpointsAreTrustedAndSignedWithTheirOwnSecret() async throws {
        try await StandInHTTPServer.withServer { server in
            server.on("POST", "/hook", respond: .json(#"{"ok": true}"#))
            let stack = try await JobStack(kinds: """
                endpoints:
                  billing: { url: "\(server.url("/hook"))", secret: "endpoint-secret" }
                kinds:
                  billing.sync: { handler: http, endpoint: billing }
                """)
            try await stack.startProcessor()
            let id = try await stack.enqueue([NewJob(kind: "billing.sync", payload: #"{"body": {"n": 1}}"#)])[0].id
            _ = try await stack.waitFor(id, .completed)
            let request = try #require(server.requests(path: "/hook").first)
            let timestamp = try #require(request.header("X-Esteira-Timestamp"))
            let expected = "sha256=" + HMACSHA256.hex(key: "endpoint-secret", message: Array(timestamp.utf8) + [UInt8(ascii: ".")] + request.body)
            #expect(request.header("X-Esteira-Signature") == expected)
        }
    }

    @Test func framingHeadersInAPayloadEndTheJob() async throws {
        try await StandInHTTPServer.withServer { server in
            server.on("POST", "/hook", respond: .json(#"{"ok": true}"#))
            let stack = try await JobStack()
            try await stack.startProcessor()
            // The api refuses such a payload (below); a job written by other means meets the
            // handler's own check. An enqueuer whose catalog does not run `http` with its handler
            // skips the enqueue check.
            var catalog = stack.catalog
            catalog.register(KindCatalog.Kind(name: "http", policy: KindPolicy(), handler: "elsewhere"))
            let bypass = Enqueuer(store: JobStore(catalog: catalog), pool: stack.pool, link: stack.link, logger: Logger(label: "test"))
            let id = try await bypass.enqueue([NewJob(kind: "http", payload: #"{"url": "\#(server.url("/hook"))", "headers": {"Host": "internal"}}"#)])[0].id
            let job = try await stack.waitFor(id, .dead)
            #expect(job.lastErrorClass == "permanent")
            #expect(job.lastError?.contains("Host") == true)
            #expect(server.requests(path: "/hook").isEmpty)
        }
    }

    /// A 100 MiB answer: the processor reads what it keeps (64 KiB) and stops the transfer, so
    /// its memory stays near idle.
    @Test func aHugeResponseIsReadOnlyUpToWhatIsKept() async throws {
        try await StandInHTTPServer.withServer { server in
            let huge = [UInt8](repeating: UInt8(ascii: "x"), count: 100 << 20)
            server.on("POST", "/huge", respond: StandInResponse(status: 200, body: huge))
            let stack = try await JobStack()
            let processor = try await stack.startProcessor()
            let before = try Self.residentKiB(processor.pid)
            let ids = try await stack.enqueue((0..<4).map { _ in NewJob(kind: "http", payload: #"{"url": "\#(server.url("/huge"))"}"#) }).map(\.id)
            for id in ids {
                let job = try await stack.waitFor(id, .completed, timeout: .seconds(60))
                #expect(job.result?["body_truncated"] == .bool(true))
                #expect(job.result?["body"]?.stringValue?.utf8.count == 64 * 1024)
            }
            let after = try Self.residentKiB(processor.pid)
            // Measured here: about 4 MiB more (its first http jobs); reading the bodies whole took 120 MB.
            #expect(after - before < 8 * 1024, "resident memory grew from \(before) KiB to \(after) KiB")
        }
    }

    static func residentKiB(_ pid: pid_t) throws -> Int {
        let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        let line = try #require(status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") })
        return try #require(Int(line.split(separator: " ", omittingEmptySubsequences: true)[1]))
    }
}

@Suite struct HTTPPayloadHeaderTests {
    /// Host, Content-Length, Transfer-Encoding and the rest frame the request or the
    /// connection: a payload that sets one is refused at enqueue, naming the header.
    @Test(arguments: ["Host", "content-length", "Transfer-Encoding", "Connection", "TE", "Upgrade", "Expect", "Proxy-Authorization"])
    func framingHeadersAreRefusedAtEnqueue(header: String) async throws {
        let stack = try await JobStack()
        let api = try await StackAPI(stack: stack)
        let r = try await api.call(.post, "/v1/jobs",
                                   body: #"{"kind": "http", "payload": {"url": "https://example.com/", "headers": {"\#(header)": "x", "X-Fine": "y"}}}"#)
        #expect(r.status == 422, "\(r.text)")
        #expect(r.field == "payload.headers.\(header)", "\(r.text)")
        #expect(try await stack.scalar("SELECT count(*) FROM jobs", as: Int.self) == 0)
        let fine = try await api.call(.post, "/v1/jobs", body: #"{"kind": "http", "payload": {"url": "https://example.com/", "headers": {"X-Fine": "y"}}}"#)
        #expect(fine.status == 201, "\(fine.text)")
    }
}

/// Signatures and named endpoints per principal.
@Suite struct SigningTests {
    static func sign(_ secret: String, _ request: StandInRequest) throws -> String {
        let timestamp = try #require(request.header("X-Esteira-Timestamp"))
        return "sha256=" + HMACSHA256.hex(key: secret, message: Array(timestamp.utf8) + [UInt8(ascii: ".")] + request.body)
    }

    @Test func aUsersOwnURLIsSignedWithTheUsersSecretAndEndpointsAdmitWhomTheyList() async throws {
        try await StandInHTTPServer.withServer { server in
            server.on("POST", "/mine", respond: .json(#"{"ok": true}"#))
            server.on("POST", "/billing", respond: .json(#"{"ok": true}"#))
            let stack = try await JobStack(kinds: """
                endpoints:
                  billing: { url: "\(server.url("/billing"))", secret: "billing-secret", principals: [alice] }
                """)
            let api = try await StackAPI(stack: stack)
            try await stack.startProcessor()
            let alice = try await api.userToken("alice"), bob = try await api.userToken("bob")
            let me = try await api.call(.get, "/v1/whoami", token: alice)
            let aliceSecret = try #require(me.json["signing_secret"] as? String)
            let bobMe = try await api.call(.get, "/v1/whoami", token: bob)
            #expect(aliceSecret.count == 64 && bobMe.json["signing_secret"] as? String != aliceSecret)

            let own = try await api.enqueue(#"{"kind": "http", "payload": {"url": "\#(server.url("/mine"))", "body": {"n": 1}}}"#, as: alice)
            _ = try await stack.waitFor(own, .completed)
            let request = try #require(server.requests(path: "/mine").first)
            #expect(request.header("X-Esteira-Signature") == (try Self.sign(aliceSecret, request)))

            // billing admits alice (and admins), not bob: refused at the door.
            let refused = try await api.call(.post, "/v1/jobs", token: bob, body: #"{"kind": "http", "payload": {"endpoint": "billing"}}"#)
            #expect(refused.status == 422 && refused.field == "payload.endpoint", "\(refused.text)")
            let unknown = try await api.call(.post, "/v1/jobs", token: alice, body: #"{"kind": "http", "payload": {"endpoint": "nowhere"}}"#)
            #expect(unknown.status == 422 && unknown.field == "payload.endpoint", "\(unknown.text)")
            let allowed = try await api.enqueue(#"{"kind": "http", "payload": {"endpoint": "billing"}}"#, as: alice)
            _ = try await stack.waitFor(allowed, .completed)
            let billed = try #require(server.requests(path: "/billing").first)
            #expect(billed.header("X-Esteira-Signature") == (try Self.sign("billing-secret", billed)))

            // A job of bob's written without the api meets the handler's own check.
            let bobText = try #require(bobMe.json["id"] as? String)
            let bobID = try #require(UUID(uuidString: bobText))
            let sneaked = try await stack.enqueue([NewJob(kind: "http", payload: #"{"endpoint": "billing"}"#, ownerID: bobID)])[0].id
            let dead = try await stack.waitFor(sneaked, .dead)
            #expect(dead.lastErrorClass == "forbidden")
            #expect(server.requests(path: "/billing").count == 1)
        }
    }
}
