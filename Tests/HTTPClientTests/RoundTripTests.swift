import HTTPClient
import StandIns
import Testing

@Suite("Requests and responses arrive intact")
struct RoundTripTests {
    let client = HTTPClient()

    @Test("Every method round-trips method, path, query, headers and body",
          arguments: [HTTPMethod.get, .post, .put, .patch, .delete, .head])
    func roundTrip(method: HTTPMethod) async throws {
        try await StandInHTTPServer.withServer { server in
            server.on(method.rawValue, "/things/42") { request in
                StandInResponse(status: 201, headers: [("X-Answer", "yes"), ("Content-Type", "text/plain")],
                                body: "reply to \(request.method)")
            }
            let sendsBody = method != .get && method != .head
            let body: [UInt8] = sendsBody ? Array(#"{"method":"\#(method)"}"#.utf8) : []
            var headers: HTTPHeaders = ["X-Trace": "trace-1", "Accept": "text/plain"]
            if sendsBody { headers.add(name: "Content-Type", value: "application/json") }

            let response = try await client.execute(HTTPRequest(
                method: method, url: server.url("/things/42?a=1&b=two%20words"), headers: headers, body: body))

            let received = try #require(server.requests().only)
            #expect(received.method == method.rawValue)
            #expect(received.path == "/things/42")
            #expect(received.query == "a=1&b=two%20words")
            #expect(received.header("x-trace") == "trace-1")
            #expect(received.header("Accept") == "text/plain")
            #expect(received.header("User-Agent") == "esteira/\(HTTPClient.esteiraVersion)")
            #expect(received.header("Content-Type") == (sendsBody ? "application/json" : nil))
            #expect(received.header("Expect") == nil)
            #expect(received.body == body)

            #expect(response.status == 201)
            #expect(response.headers["x-answer"] == "yes")
            #expect(response.headers["CONTENT-TYPE"] == "text/plain")
            #expect(response.bodyString == (method == .head ? "" : "reply to \(method)"))
            #expect(response.effectiveURL == server.url("/things/42?a=1&b=two%20words"))
        }
    }

    @Test("A POST without a content type is sent without one, not as a form")
    func noInventedContentType() async throws {
        try await StandInHTTPServer.withServer { server in
            server.on("POST", "/raw", respond: .init(status: 204))
            _ = try await client.execute(HTTPRequest(method: .post, url: server.url("/raw"), body: "x"))
            let received = try #require(server.requests().only)
            #expect(received.header("Content-Type") == nil)
            #expect(received.header("Content-Length") == "1")
        }
    }

    @Test("A binary body with zero bytes goes and comes back unchanged")
    func binaryBody() async throws {
        try await StandInHTTPServer.withServer { server in
            server.on("POST", "/echo") { request in StandInResponse(body: request.body) }
            let body: [UInt8] = [0, 0, 1, 0, 255, 0, 13, 10, 0] + (0...255).map { UInt8($0) } + [0]
            let response = try await client.execute(HTTPRequest(
                method: .post, url: server.url("/echo"),
                headers: ["Content-Type": "application/octet-stream"], body: body))
            #expect(server.requests().only?.body == body)
            #expect(response.body == body)
            #expect(response.bodyData.count == body.count)
        }
    }

    @Test("A 5 MiB body goes and comes back unchanged")
    func largeBody() async throws {
        try await StandInHTTPServer.withServer { server in
            server.on("PUT", "/blob") { request in StandInResponse(body: request.body.reversed()) }
            var generator = SystemRandomNumberGenerator()
            let body = (0..<(5 * 1024 * 1024)).map { _ in UInt8.random(in: 0...255, using: &generator) }
            let response = try await client.execute(HTTPRequest(method: .put, url: server.url("/blob"), body: body))
            #expect(server.requests().only?.body == body)
            #expect(response.body == body.reversed())
        }
    }

    @Test("Repeated header names are sent and received with every value, in order")
    func repeatedHeaders() async throws {
        try await StandInHTTPServer.withServer { server in
            server.on("GET", "/cookies", respond: StandInResponse(
                headers: [("Set-Cookie", "a=1"), ("X-Other", "o"), ("Set-Cookie", "b=2")]))
            let response = try await client.execute(HTTPRequest(
                url: server.url("/cookies"), headers: HTTPHeaders([("X-Tag", "one"), ("X-Tag", "two"), ("x-tag", "three")])))
            #expect(server.requests().only?.headerValues("X-Tag") == ["one", "two", "three"])
            #expect(response.headers.values(for: "set-cookie") == ["a=1", "b=2"])
            #expect(response.headers["Set-Cookie"] == "a=1")
        }
    }

    @Test("A 429's Retry-After is readable, and a scripted sequence plays in order")
    func rateLimited() async throws {
        try await StandInHTTPServer.withServer { server in
            server.on("GET", "/limited", sequence: [.tooManyRequests(retryAfter: 7), .init(status: 503), .init(status: 200)])
            let request = HTTPRequest(url: server.url("/limited"))
            let first = try await client.execute(request)
            #expect(first.status == 429)
            #expect(first.headers["retry-after"] == "7")
            #expect(try await client.execute(request).status == 503)
            #expect(try await client.execute(request).status == 200)
            #expect(try await client.execute(request).status == 200)
        }
    }

    @Test("The blocking send works through the same pool")
    func blockingSend() async throws {
        try await StandInHTTPServer.withServer { server in
            server.on("GET", "/sync", respond: .init(body: "sync"))
            let client = self.client
            let url = server.url("/sync")
            let response = try await blocking { try client.send(HTTPRequest(url: url)) }
            #expect(response.bodyString == "sync")
        }
    }
}

extension Array {
    /// The single element, or nil when there are none or several.
    var only: Element? { count == 1 ? first : nil }
}
