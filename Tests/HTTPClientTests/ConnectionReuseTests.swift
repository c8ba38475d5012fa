import HTTPClient
import StandIns
import Testing

@Suite("Connections are kept alive and shared")
struct ConnectionReuseTests {
    @Test("Two requests in a row on one connection share the TCP connection")
    func sequentialReuse() async throws {
        try await StandInHTTPServer.withServer { server in
            server.on("GET", "/a", respond: .init(body: "a"))
            server.on("POST", "/b", respond: .init(status: 201))
            let connection = try HTTPConnection()
            let urlA = server.url("/a"), urlB = server.url("/b")
            let (first, second) = try await blocking {
                (try connection.send(HTTPRequest(url: urlA)),
                 try connection.send(HTTPRequest(method: .post, url: urlB, body: "b")))
            }
            #expect(first.connectionReused == false)
            #expect(second.connectionReused == true)
            #expect(second.status == 201)
            let ports = server.requests().map(\.remotePort)
            #expect(ports.count == 2 && ports[0] != nil && ports[0] == ports[1])
        }
    }

    @Test("Options from one request do not leak into the next on a reused handle")
    func optionsReset() async throws {
        try await StandInHTTPServer.withServer { server in
            server.on("*", "/any") { request in StandInResponse(body: request.method) }
            let connection = try HTTPConnection()
            let url = server.url("/any")
            let responses = try await blocking {
                [try connection.send(HTTPRequest(method: .post, url: url, headers: ["X-Once": "1"], body: "x")),
                 try connection.send(HTTPRequest(method: .head, url: url)),
                 try connection.send(HTTPRequest(url: url)),
                 try connection.send(HTTPRequest(method: .delete, url: url))]
            }
            #expect(responses.map(\.bodyString) == ["POST", "", "GET", "DELETE"])
            let received = server.requests()
            #expect(received.map(\.method) == ["POST", "HEAD", "GET", "DELETE"])
            #expect(received.dropFirst().allSatisfy { $0.header("X-Once") == nil && $0.body.isEmpty })
        }
    }

    @Test("100 concurrent requests all succeed through a pool of 4 handles")
    func concurrentThroughPool() async throws {
        try await StandInHTTPServer.withServer { server in
            server.on("GET", "/n") { request in
                try await Task.sleep(for: .milliseconds(5))
                return StandInResponse(body: request.query ?? "")
            }
            let client = HTTPClient(configuration: .init(poolSize: 4))
            let bodies = try await withThrowingTaskGroup(of: (Int, String).self) { group in
                for i in 0..<100 {
                    group.addTask {
                        let response = try await client.execute(HTTPRequest(url: server.url("/n?i=\(i)")))
                        #expect(response.status == 200)
                        return (i, response.bodyString)
                    }
                }
                return try await group.reduce(into: [:]) { $0[$1.0] = $1.1 }
            }
            #expect(bodies.count == 100)
            #expect(bodies.allSatisfy { $0.value == "i=\($0.key)" })
            let received = server.requests(path: "/n")
            #expect(received.count == 100)
            // At most one TCP connection per handle: the pool bounds them, keep-alive reuses them.
            #expect(Set(received.compactMap(\.remotePort)).count <= 4)
        }
    }
}
