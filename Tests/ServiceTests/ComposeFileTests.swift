import Foundation
import Testing
import Yams

/// docker-compose.yml and deploy/Dockerfile describe the same stack as `make up`. No Docker
/// engine runs here, so these tests read the files instead of running them.
@Suite struct ComposeFileTests {
    let root = TestPaths.repositoryRoot
    let compose: [String: Any]
    let services: [String: [String: Any]]

    init() throws {
        let text = try String(contentsOf: root.appendingPathComponent("docker-compose.yml"), encoding: .utf8)
        compose = try #require(try Yams.load(yaml: text) as? [String: Any])
        let raw = try #require(compose["services"] as? [String: Any])
        services = raw.compactMapValues { $0 as? [String: Any] }
    }

    var executables: [String] {
        let dir = root.appendingPathComponent("Services")
        return ((try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []).sorted()
    }

    @Test func brokersAndDatabaseArePinnedAndChecked() throws {
        let rabbit = try #require(services["rabbitmq"])
        #expect((rabbit["image"] as? String)?.hasPrefix("rabbitmq:3.10") == true)
        #expect((rabbit["image"] as? String)?.contains("management") == true)
        #expect(rabbit["healthcheck"] != nil)
        let postgres = try #require(services["postgres"])
        #expect((postgres["image"] as? String)?.hasPrefix("postgres:15") == true)
        #expect(postgres["healthcheck"] != nil)
    }

    @Test func migrationsRunOnceBeforeTheServices() throws {
        let migrate = try #require(services["migrate"])
        #expect(migrate["command"] as? [String] == ["migrate"])
        #expect(migrate["restart"] as? String == "no")
        let dependsOn = try #require(migrate["depends_on"] as? [String: Any])
        #expect((dependsOn["postgres"] as? [String: Any])?["condition"] as? String == "service_healthy")
    }

    @Test func everyExecutableIsAServiceBuiltFromTheOneDockerfile() throws {
        #expect(!executables.isEmpty)
        for name in executables {
            let service = try #require(services[name], "docker-compose.yml has no service '\(name)'")
            let build = try #require(service["build"] as? [String: Any], "\(name) has no build section")
            #expect(build["dockerfile"] as? String == "deploy/Dockerfile", "\(name)")
            #expect((build["args"] as? [String: Any])?["SERVICE"] as? String == name, "\(name) builds another SERVICE")
            #expect(service["healthcheck"] != nil, "\(name) has no health check")
            let dependsOn = try #require(service["depends_on"] as? [String: Any], "\(name) has no depends_on")
            #expect((dependsOn["migrate"] as? [String: Any])?["condition"] as? String == "service_completed_successfully",
                    "\(name) does not wait for migrations")
            for server in ["rabbitmq", "postgres"] {
                #expect((dependsOn[server] as? [String: Any])?["condition"] as? String == "service_healthy",
                        "\(name) does not wait for \(server)")
            }
            let env = try #require(service["environment"] as? [String: Any])
            #expect(env["ESTEIRA_DATABASE_URL"] != nil && env["ESTEIRA_AMQP_URL"] != nil, "\(name) lacks URLs")
        }
    }

    @Test func workersScaleBecauseTheyHaveNoFixedNameOrHostPort() throws {
        for name in executables where name != "api" {
            let service = try #require(services[name])
            #expect(service["container_name"] == nil, "\(name) has a container_name: --scale would fail")
            #expect(service["ports"] == nil, "\(name) publishes a host port: --scale would fail")
        }
    }

    @Test func dockerfileBuildsTheNamedServiceWithAHealthCheck() throws {
        let text = try String(contentsOf: root.appendingPathComponent("deploy/Dockerfile"), encoding: .utf8)
        #expect(text.contains("ARG SERVICE"))
        #expect(text.contains("HEALTHCHECK"))
        #expect(text.contains("COPY migrations"))
        #expect(text.contains("AS build") && text.contains("--from=build"), "not a multi-stage build")
        for package in ["librabbitmq-dev", "libpq-dev", "libcurl4-openssl-dev"] {
            #expect(text.contains(package), "build stage lacks \(package)")
        }
    }
}
