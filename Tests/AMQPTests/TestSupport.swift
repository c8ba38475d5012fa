import AMQP
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Testing

/// Why a test cannot run: its broker is not configured. A thrown error fails the test (never skips).
struct MissingEnvironment: Error, CustomStringConvertible {
    let variable: String
    var description: String {
        "\(variable) is not set: AMQP integration tests need a broker, e.g. "
            + "ESTEIRA_TEST_AMQP_URL=amqp://guest:guest@127.0.0.1:5680/ "
            + "ESTEIRA_TEST_AMQP_MGMT_URL=http://guest:guest@127.0.0.1:15680"
    }
}

enum TestBroker {
    static func url() throws -> String {
        guard let value = ProcessInfo.processInfo.environment["ESTEIRA_TEST_AMQP_URL"], !value.isEmpty else {
            throw MissingEnvironment(variable: "ESTEIRA_TEST_AMQP_URL")
        }
        return value
    }

    static func configuration(name: String = #function) throws -> AMQPConfiguration {
        try AMQPConfiguration(url: url(), connectionName: "amqp-tests-\(name)-\(UUID().uuidString.prefix(8))")
    }

    static func connect(name: String = #function) throws -> AMQPConnection {
        try AMQPConnection(configuration(name: name))
    }

    /// A unique name, so tests running in parallel never share queues or exchanges.
    static func unique(_ prefix: String) -> String { "test.\(prefix).\(UUID().uuidString)" }
}

/// Just enough of the RabbitMQ management HTTP API to check what the broker holds.
struct Management {
    let base: URL
    let authorization: String

    init() throws {
        guard let text = ProcessInfo.processInfo.environment["ESTEIRA_TEST_AMQP_MGMT_URL"], !text.isEmpty,
              var components = URLComponents(string: text)
        else { throw MissingEnvironment(variable: "ESTEIRA_TEST_AMQP_MGMT_URL") }
        let user = components.user ?? "guest", password = components.password ?? "guest"
        components.user = nil
        components.password = nil
        components.path = "/api"
        base = components.url!
        authorization = "Basic " + Data("\(user):\(password)".utf8).base64EncodedString()
    }

    static func escape(_ segment: String) -> String {
        segment.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~")))!
    }

    func request(_ method: String, _ path: String, headers: [String: String] = [:]) async throws -> (Int, Any?) {
        var request = URLRequest(url: URL(string: base.absoluteString + path)!)
        request.httpMethod = method
        request.setValue(authorization, forHTTPHeaderField: "Authorization")
        for (key, value) in headers { request.setValue(value, forHTTPHeaderField: key) }
        let (data, response) = try await URLSession.shared.data(for: request)
        let status = (response as? HTTPURLResponse)?.statusCode ?? 0
        return (status, data.isEmpty ? nil : try? JSONSerialization.jsonObject(with: data))
    }

    func queue(_ name: String) async throws -> [String: Any] {
        let (status, body) = try await request("GET", "/queues/%2F/\(Self.escape(name))")
        #expect(status == 200)
        return body as? [String: Any] ?? [:]
    }

    /// The broker's name for the connection that sent `connection_name`; waits for it to be listed.
    func connectionName(for clientName: String) async throws -> String? {
        for _ in 0..<50 {
            let (_, body) = try await request("GET", "/connections?columns=name,client_properties")
            for connection in body as? [[String: Any]] ?? [] {
                let properties = connection["client_properties"] as? [String: Any]
                if properties?["connection_name"] as? String == clientName { return connection["name"] as? String }
            }
            try await Task.sleep(nanoseconds: 200_000_000)
        }
        return nil
    }

    func closeConnection(named name: String, reason: String) async throws -> Int {
        try await request("DELETE", "/connections/\(Self.escape(name))", headers: ["X-Reason": reason]).0
    }
}

/// Expects `body` to throw an `AMQPError` and returns it (nil, with a recorded issue, otherwise).
@discardableResult
func expectAMQPError<T>(_ code: AMQPError.Code, sourceLocation: SourceLocation = #_sourceLocation,
                        _ body: () throws -> T) -> AMQPError? {
    do {
        _ = try body()
        Issue.record("expected AMQPError \(code), nothing thrown", sourceLocation: sourceLocation)
    } catch let error as AMQPError {
        #expect(error.code == code, "got \(error)", sourceLocation: sourceLocation)
        return error
    } catch {
        Issue.record("expected AMQPError \(code), got \(error)", sourceLocation: sourceLocation)
    }
    return nil
}

extension Array where Element == UInt8 {
    init(_ text: String) { self = Array(text.utf8) }
}
