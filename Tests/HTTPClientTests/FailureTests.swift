import HTTPClient
import StandIns
import Testing

@Suite("Failures become typed errors")
struct FailureTests {
    let client = HTTPClient()

    @Test("A slow server times out at the request's timeout, not later")
    func timeout() async throws {
        try await StandInHTTPServer.withServer { server in
            server.on("GET", "/slow", respond: StandInResponse(body: "late").delayed(by: .seconds(60)))
            let clock = ContinuousClock()
            let started = clock.now
            let error = await expectHTTPClientError {
                _ = try await client.execute(HTTPRequest(url: server.url("/slow"), timeout: .milliseconds(300)))
            }
            let elapsed = clock.now - started
            #expect(error?.code == .timeout)
            #expect(error?.isTransient == true)
            // Far under the server's 60 s: the 300 ms limit ended it (with room for a busy machine).
            #expect(elapsed < .seconds(30))
        }
    }

    @Test("A port nothing listens on refuses the connection")
    func connectionRefused() async throws {
        let closed = try ClosedPort()
        let error = await expectHTTPClientError {
            _ = try await client.execute(HTTPRequest(url: "http://127.0.0.1:\(closed.port)/"))
        }
        #expect(error?.code == .connectionRefused)
        #expect(error?.isTransient == true)
        #expect(error?.message.isEmpty == false)
    }

    @Test("A host that does not resolve is reported as such")
    func hostNotFound() async throws {
        let error = await expectHTTPClientError {
            _ = try await client.execute(HTTPRequest(url: "http://no-such-host.invalid/"))
        }
        #expect(error?.code == .hostNotFound)
        #expect(error?.isTransient == true)
    }

    @Test("A server that hangs up without answering loses the connection")
    func droppedConnection() async throws {
        try await StandInHTTPServer.withServer { server in
            server.on("POST", "/drop", respond: .dropConnection)
            let error = await expectHTTPClientError {
                _ = try await client.execute(HTTPRequest(method: .post, url: server.url("/drop"), body: "hello", timeout: .seconds(120)))
            }
            #expect(error?.code == .connectionLost)
            #expect(error?.isTransient == true)
            #expect(server.requests(path: "/drop").count == 1)
        }
    }

    @Test("Malformed URLs and other schemes are refused before any connection")
    func invalidURL() async throws {
        for url in ["not a url", "ftp://127.0.0.1/file", "file:///etc/passwd"] {
            let error = await expectHTTPClientError { _ = try await client.execute(HTTPRequest(url: url)) }
            #expect(error?.code == .invalidURL, "\(url)")
            #expect(error?.isTransient == false)
        }
    }

    @Test("Error descriptions never contain the request's Authorization value")
    func noCredentialsInErrors() async throws {
        let secret = "s3cr3t-token-5f2a"
        let closed = try ClosedPort()
        var errors: [HTTPClientError] = []
        try await StandInHTTPServer.withServer { server in
            server.on("GET", "/drop", respond: .dropConnection)
            server.on("GET", "/slow", respond: StandInResponse().delayed(by: .seconds(2)))
            let headers: HTTPHeaders = ["Authorization": "Bearer \(secret)"]
            for request in [
                HTTPRequest(url: "http://127.0.0.1:\(closed.port)/", headers: headers),
                HTTPRequest(url: server.url("/drop"), headers: headers),
                HTTPRequest(url: server.url("/slow"), headers: headers, timeout: .milliseconds(200)),
                // A line break in a value is refused; the refusal must not quote the value.
                HTTPRequest(url: server.url("/drop"), headers: ["Authorization": "Bearer \(secret)\r\nX-Evil: 1"]),
            ] {
                if let error = await expectHTTPClientError({ _ = try await client.execute(request) }) {
                    errors.append(error)
                }
            }
            #expect(server.requests().allSatisfy { $0.header("X-Evil") == nil })
        }
        // The codes themselves are checked one by one above; here each request must fail, and on
        // a loaded machine the dropped connection may surface as a timeout.
        #expect(errors.count == 4)
        #expect(errors.first?.code == .connectionRefused)
        #expect(errors.dropFirst().prefix(2).allSatisfy { [.connectionLost, .timeout].contains($0.code) }, "\(errors.map(\.code))")
        #expect(errors.last?.code == .invalidRequest)
        for error in errors {
            for text in [error.description, error.debugDescription, "\(error)", String(reflecting: error), error.message] {
                #expect(!text.contains(secret), "\(text)")
            }
        }
    }

    @Test("Cancelling the task aborts a transfer in progress")
    func cancellation() async throws {
        try await StandInHTTPServer.withServer { server in
            server.on("GET", "/slow", respond: StandInResponse().delayed(by: .seconds(60)))
            let client = self.client
            let url = server.url("/slow")
            let clock = ContinuousClock()
            let started = clock.now
            let task = Task { try await client.execute(HTTPRequest(url: url)) }
            try await Task.sleep(for: .milliseconds(300))
            task.cancel()
            let result = await task.result
            #expect(throws: CancellationError.self) { try result.get() }
            #expect(clock.now - started < .seconds(30)) // not the server's 60 s
        }
    }
}
