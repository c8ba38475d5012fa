import Foundation
import HTTPClient
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite("TLS certificates are verified by default")
struct TLSTests {
    @Test("A self-signed server is refused with the default configuration")
    func selfSignedRefused() async throws {
        try await withOpenSSLServer { port, _ in
            let client = HTTPClient()
            let error = await expectHTTPClientError {
                _ = try await client.execute(HTTPRequest(url: "https://localhost:\(port)/"))
            }
            #expect(error?.code == .tls)
            #expect(error?.isTransient == false)
        }
    }

    @Test("The same server is accepted when its certificate is the CA bundle")
    func trustedWithCABundle() async throws {
        try await withOpenSSLServer { port, certificatePath in
            let client = HTTPClient(configuration: .init(caBundlePath: certificatePath))
            let response = try await client.execute(HTTPRequest(url: "https://localhost:\(port)/"))
            #expect(response.status == 200)
            // `openssl s_server -www` answers with a page about the TLS session.
            #expect(response.bodyString.contains("Ciphers supported"))
        }
    }

    @Test("Host verification is on: the certificate for localhost does not pass for 127.0.0.1")
    func hostVerified() async throws {
        try await withOpenSSLServer { port, certificatePath in
            let client = HTTPClient(configuration: .init(caBundlePath: certificatePath))
            let error = await expectHTTPClientError {
                _ = try await client.execute(HTTPRequest(url: "https://127.0.0.1:\(port)/"))
            }
            #expect(error?.code == .tls)
        }
    }
}

/// Runs `body` against `openssl s_server -www` with a fresh self-signed certificate for
/// `localhost`, and kills the server afterwards whatever happens.
private func withOpenSSLServer(_ body: (_ port: Int, _ certificatePath: String) async throws -> Void) async throws {
    let directory = FileManager.default.temporaryDirectory
        .appendingPathComponent("esteira-tls-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: directory) }
    let certificate = directory.appendingPathComponent("cert.pem").path
    let key = directory.appendingPathComponent("key.pem").path

    let generate = try runOpenSSL(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
                                   "-days", "1", "-keyout", key, "-out", certificate])
    generate.waitUntilExit()
    try #require(generate.terminationStatus == 0, "openssl req failed")

    let port = try freePort()
    let server = try runOpenSSL(["s_server", "-accept", String(port), "-cert", certificate, "-key", key,
                                 "-www", "-quiet"])
    defer {
        // SIGKILL, not terminate(): the child inherits the spawning Dispatch thread's signal
        // mask, which blocks SIGTERM, and s_server would never exit.
        kill(server.processIdentifier, SIGKILL)
        server.waitUntilExit()
    }
    try await waitUntilListening(port: port, process: server)
    try await body(port, certificate)
}

private func runOpenSSL(_ arguments: [String]) throws -> Process {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
    process.arguments = arguments
    process.standardOutput = FileHandle.nullDevice
    process.standardError = FileHandle.nullDevice
    try process.run()
    return process
}

/// Polls until something accepts TCP connections on the loopback port, for up to 5 s.
private func waitUntilListening(port: Int, process: Process) async throws {
    for _ in 0..<100 {
        try #require(process.isRunning, "openssl s_server exited early")
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
        close(descriptor)
        if connected { return }
        try await Task.sleep(for: .milliseconds(50))
    }
    Issue.record("openssl s_server did not listen on port \(port)")
    throw CancellationError()
}
