import Foundation
import HTTPClient
import Testing

/// The `api` executable run as a real process against the test servers.
@Suite struct APIProcessTests {
    static let adminToken = "est_admin_" + UUID().uuidString.replacingOccurrences(of: "-", with: "")
    let http = HTTPClient()

    /// A migrated scratch database and an `api serve` on a free port.
    final class RunningAPI {
        let database: ScratchDatabase
        let child: ChildProcess
        let base: String

        init(amqpURL: String? = nil, http: HTTPClient) async throws {
            database = try ScratchDatabase()
            let migrate = try await runToCompletion(TestPaths.executable("api"), ["migrate"],
                                                    environment: ["ESTEIRA_DATABASE_URL": database.url])
            #expect(migrate.status == 0, "migrate failed: \(migrate.output)")
            (child, base) = try await launchAPI(environment: [
                "ESTEIRA_DATABASE_URL": database.url,
                "ESTEIRA_AMQP_URL": try amqpURL ?? TestServers.amqpURL(),
                "ESTEIRA_ADMIN_TOKEN": APIProcessTests.adminToken,
            ], http: http, untilHealthy: false)
        }
    }

    @Test func aPortInUseIsReportedByNameAndExitsNonZero() async throws {
        let api = try await RunningAPI(http: http)
        let port = try #require(Int(api.base.split(separator: ":").last ?? ""))
        let second = try await runToCompletion(TestPaths.executable("api"), ["serve"], environment: [
            "ESTEIRA_DATABASE_URL": api.database.url,
            "ESTEIRA_AMQP_URL": try TestServers.amqpURL(),
            "ESTEIRA_HTTP_PORT": "\(port)",
        ])
        #expect(second.status != 0)
        #expect(second.output.contains("ESTEIRA_HTTP_PORT=\(port) is not valid"), "\(second.output)")
        #expect(second.output.contains("127.0.0.1:\(port) is in use"))
        // The first one still serves.
        #expect(try await get(api, "/healthz").status == 200)
    }

    func get(_ api: RunningAPI, _ path: String, token: String? = nil, headers: [(String, String)] = []) async throws -> HTTPResponse {
        var all = headers
        if let token { all.append(("Authorization", "Bearer \(token)")) }
        return try await http.execute(HTTPRequest(method: .get, url: api.base + path, headers: HTTPHeaders(all)))
    }

    func json(_ response: HTTPResponse) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any])
    }

    @Test func healthzChecksDatabaseAndBroker() async throws {
        let api = try await RunningAPI(http: http)
        let response = try await get(api, "/healthz")
        #expect(response.status == 200)
        let body = try json(response)
        #expect(body["status"] as? String == "ok")
        let checks = try #require(body["checks"] as? [String: [String: Any]])
        #expect(checks["database"]?["status"] as? String == "ok")
        #expect(checks["broker"]?["status"] as? String == "ok")
    }

    @Test func healthzFailsWithoutTheBrokerAndLeaksNoPassword() async throws {
        let api = try await RunningAPI(amqpURL: "amqp://guest:s3cr3t-pass@127.0.0.1:\(freePort())/", http: http)
        let response = try await get(api, "/healthz")
        #expect(response.status == 503)
        let body = try json(response)
        #expect(body["status"] as? String == "failing")
        let checks = try #require(body["checks"] as? [String: [String: Any]])
        #expect(checks["broker"]?["status"] as? String == "failing")
        #expect(checks["database"]?["status"] as? String == "ok")
        #expect(!String(decoding: response.body, as: UTF8.self).contains("s3cr3t-pass"))
        #expect(!api.child.text.contains("s3cr3t-pass"))
    }

    @Test func metricsAreServedInPrometheusFormat() async throws {
        let api = try await RunningAPI(http: http)
        _ = try await get(api, "/healthz")
        let response = try await get(api, "/metrics")
        #expect(response.status == 200)
        #expect(response.headers["content-type"]?.hasPrefix("text/plain") == true)
        let text = String(decoding: response.body, as: UTF8.self)
        #expect(text.contains("hb_requests"), "no request counter in:\n\(text.prefix(2000))")
    }

    @Test func whoamiNeedsALiveBearerToken() async throws {
        let api = try await RunningAPI(http: http)
        let ok = try await get(api, "/v1/whoami", token: Self.adminToken)
        #expect(ok.status == 200)
        let me = try json(ok)
        #expect(me["name"] as? String == "admin")
        #expect(me["role"] as? String == "admin")

        for (label, headers) in [
            ("no header", [(String, String)]()),
            ("wrong token", [("Authorization", "Bearer est_wrong_0123456789abcdef")]),
            ("not bearer", [("Authorization", "Basic YWRtaW46YWRtaW4=")]),
            ("short token", [("Authorization", "Bearer abc")]),
        ] {
            let denied = try await get(api, "/v1/whoami", headers: headers)
            #expect(denied.status == 401, "\(label)")
            #expect(denied.headers["content-type"] == "application/problem+json", "\(label)")
            #expect(denied.headers["www-authenticate"]?.hasPrefix("Bearer") == true, "\(label)")
            let problem = try json(denied)
            #expect(problem["status"] as? Int == 401, "\(label)")
            #expect((problem["detail"] as? String)?.isEmpty == false, "\(label)")
        }
    }

    @Test func unknownRouteIsAProblem() async throws {
        let api = try await RunningAPI(http: http)
        let response = try await get(api, "/v1/nothing-here", token: Self.adminToken)
        #expect(response.status == 404)
        #expect(response.headers["content-type"] == "application/problem+json")
        #expect(try json(response)["status"] as? Int == 404)
    }

    @Test func sigtermStopsTheServerCleanly() async throws {
        let api = try await RunningAPI(http: http)
        api.child.signal(SIGTERM)
        let status = await api.child.waitForExit(timeout: .seconds(30))
        #expect(status == 0, "exit status \(String(describing: status)); output:\n\(api.child.text)")
    }

    @Test func invalidConfigurationIsNamed() async throws {
        let result = try await runToCompletion(TestPaths.executable("api"), ["serve"],
                                               environment: ["ESTEIRA_HTTP_PORT": "eighty"])
        #expect(result.status != 0)
        #expect(result.output.contains("ESTEIRA_HTTP_PORT"), "\(result.output)")
    }

    @Test func helpListsTheSubcommands() async throws {
        let result = try await runToCompletion(TestPaths.executable("api"), ["--help"], environment: [:])
        #expect(result.status == 0)
        #expect(result.output.contains("serve") && result.output.contains("migrate"))
    }
}
