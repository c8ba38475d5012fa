import EsteiraCore
import Foundation
import HTTPClient
import StandIns
import Testing

/// Three RabbitMQ nodes of their own on this machine, joined in a cluster (scripts/stack.sh,
/// `rabbit_cluster_start`), listening on loopback and, when given, on one more address.
final class PrivateCluster {
    let directory: URL
    let prefix: String
    /// AMQP ports base...base+2, management +3...+5, Prometheus +6...+8, distribution +10,
    /// +30, +50 (each with its CLI tools' ten ports after it).
    let base = freePortBlock(61)
    let listen: String?

    init(listen: String? = nil) async throws {
        directory = URL(fileURLWithPath: TestPaths.scratch("esteira-cluster"))
        prefix = "cl\(UUID().uuidString.prefix(6).lowercased())"
        self.listen = listen
        try await start()
    }

    private var arguments: String { "'\(directory.path)' \(prefix) \(base) \(base + 3) \(base + 6) \(base + 10)" }

    /// Starts the nodes that are not running and joins any that is not a member yet.
    func start() async throws {
        try await stackScript("\(listen.map { "RABBIT_LISTEN_EXTRA=\($0) " } ?? "")rabbit_cluster_start \(arguments)")
    }

    /// The three nodes' URLs, reached at `host`.
    func urls(host: String = "127.0.0.1") -> String {
        (0..<3).map { "amqp://guest:guest@\(host):\(base + $0)/" }.joined(separator: ",")
    }

    var managementURL: String { "http://guest:guest@127.0.0.1:\(base + 3)" }

    /// kill -9 of node `i` (1-3).
    func kill(_ i: Int) throws {
        let pidFile = directory.appendingPathComponent("cluster/node\(i)/rabbitmq/rabbit.pid")
        let pid = try #require(Int32(String(contentsOf: pidFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)))
        Foundation.kill(pid, SIGKILL)
    }

    /// Stops nodes `nodes` (1-3) the orderly way.
    func stop(_ nodes: [Int]) async throws {
        try await stackScript("rabbit_cluster_stop \(arguments) \(nodes.map(String.init).joined(separator: " "))")
    }

    /// The nodes the cluster sees running (its management API), nil when it does not answer.
    func runningNodes() async -> Int? {
        guard let r = try? await HTTPClient().execute(ScratchVhost.request(.get, managementURL + "/api/nodes")), r.status == 200,
              let nodes = try? JSONSerialization.jsonObject(with: Data(r.body)) as? [[String: Any]] else { return nil }
        return nodes.filter { $0["running"] as? Bool == true }.count
    }

    deinit {
        stackScriptBlocking("rabbit_cluster_stop \(arguments); rm -rf '\(directory.path)'")
    }
}

/// Hosts of their own: network namespaces joined to this machine by a bridge
/// (scripts/stack.sh, `netns_hosts_up`), each with its own address and a link a test can cut.
final class NamespaceHosts {
    let tag = String(UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(6).lowercased())
    let octet = Int.random(in: 20...250)
    let count: Int

    init(count: Int) async throws {
        self.count = count
        try await stackScript("netns_hosts_down \(tag) \(count); netns_hosts_up \(tag) \(octet) \(count)")
    }

    /// This machine's address on the bridge.
    var bridgeAddress: String { "10.213.\(octet).1" }
    var subnet: String { "10.213.\(octet).0/24" }
    /// Host `i`'s (1...count) address and namespace.
    func address(_ i: Int) -> String { "10.213.\(octet).\(10 + i)" }
    func namespace(_ i: Int) -> String { "en\(tag)-\(i)" }

    func cut(_ i: Int) async throws { try await stackScript("netns_cut \(tag) \(i)") }
    func restore(_ i: Int) async throws { try await stackScript("netns_restore \(tag) \(i)") }

    /// Starts `executable run arguments` inside host `i`'s namespace with `environment`
    /// (which must set ESTEIRA_HTTP_HOST to the host's address), once its /healthz answers.
    func start(_ i: Int, _ executable: String, arguments: [String], environment: [String: String]) async throws -> ChildProcess {
        let port = freePort()
        var env = environment
        env["ESTEIRA_HTTP_HOST"] = address(i)
        env["ESTEIRA_HTTP_PORT"] = "\(port)"
        let ip = FileManager.default.isExecutableFile(atPath: "/usr/sbin/ip") ? "/usr/sbin/ip" : "/sbin/ip"
        let root = getuid() == 0
        let child = try ChildProcess(URL(fileURLWithPath: root ? ip : "/usr/bin/sudo"),
                                     arguments: (root ? [] : ["-E", ip]) + ["netns", "exec", namespace(i),
                                                                            TestPaths.executable(executable).path, "run"] + arguments,
                                     environment: env)
        let http = HTTPClient()
        let deadline = ContinuousClock.now + .seconds(120)
        while ContinuousClock.now < deadline, child.isRunning {
            if let r = try? await http.execute(HTTPRequest(method: .get, url: "http://\(address(i)):\(port)/healthz")), r.status == 200 {
                return child
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        child.signal(SIGKILL)
        Issue.record("\(executable) in \(namespace(i)) did not become healthy: \(child.text.suffix(3000))")
        throw CancellationError()
    }

    deinit {
        stackScriptBlocking("netns_hosts_down \(tag) \(count)")
    }
}

/// The cluster suite: the crash suite's stack and load (jobs through the api, every accepted
/// job checked to end exactly once, and the http target counting jobs run by two
/// processors at once) against a three-node RabbitMQ cluster with quorum queues, with two
/// processors each on a host of its own (a network namespace), and one fault at a time:
/// kill -9 of a RabbitMQ node, two nodes of three stopped, one processor host's network cut
/// for longer than its jobs' heartbeat timeout (a long job running there is rescued, and the
/// processor stops its attempt once back). Prints "cluster suite, <scenario>: ..." lines.
@Suite struct ClusterSuiteTests {
    static let kinds = """
        kinds:
          http: { maxAttempts: 5, backoffBase: 1, backoffFactor: 1, timeout: 5, heartbeatTimeout: 4 }
          noop: { heartbeatTimeout: 4 }
          slow: { handler: noop, heartbeatTimeout: 4 }
        """

    @Test func everyAcceptedJobEndsExactlyOnceAcrossClusterFaults() async throws {
        let hosts = try await NamespaceHosts(count: 2)
        let cluster = try await PrivateCluster(listen: hosts.bridgeAddress)
        let postgres = try await PrivatePostgres(listen: hosts.bridgeAddress, trust: hosts.subnet)
        #expect(await cluster.runningNodes() == 3)
        let suite = try await CrashStack(amqpURL: cluster.urls(), postgres: postgres, queueType: .quorum, kinds: Self.kinds,
                                         targetAddress: hosts.bridgeAddress, workers: false)
        // The processors reach the servers and the target through the bridge, as other hosts would.
        let database = suite.stack.database.url.replacingOccurrences(of: "127.0.0.1", with: hosts.bridgeAddress)
        var environment = suite.stack.environment(port: 0, [
            "ESTEIRA_DATABASE_URL": database, "ESTEIRA_AMQP_URL": cluster.urls(host: hosts.bridgeAddress),
            "ESTEIRA_HTTP_ALLOW": "\(hosts.bridgeAddress)/32", "ESTEIRA_LOG_LEVEL": "info",
        ])
        environment["PATH"] = ProcessInfo.processInfo.environment["PATH"]
        var processors: [ChildProcess] = []
        // Only the processor on host 1 runs `slow` jobs: one of them is running there when
        // that host is cut off, and it must stop its attempt once it finds the job taken.
        for i in 1...2 {
            processors.append(try await hosts.start(i, "processor", arguments: CrashStack.processorArguments + (i == 1 ? [] : ["--kinds", "noop,http"]),
                                                    environment: environment))
        }
        let slowJobs = Accepted()
        try await suite.stack.startScheduler(arguments: ["--leader-interval", "0.5"], environment: ["ESTEIRA_LOG_LEVEL": "info"])

        let scenarios: [(String, (CrashStack) async throws -> Void)] = [
            ("kill -9 one RabbitMQ node of three", { _ in
                try cluster.kill(1)
                try await Task.sleep(for: .seconds(3))
                try await cluster.start()
                #expect(await cluster.runningNodes() == 3, "the killed node rejoined")
            }),
            ("stop two RabbitMQ nodes of three", { s in
                try await cluster.stop([2, 3])
                let before = s.accepted?.jobs.count ?? 0
                try await Task.sleep(for: .seconds(6))
                let during = (s.accepted?.jobs.count ?? 0) - before
                print("cluster suite: \(during) jobs accepted by the api in 6 s with one node of three up")
                #expect(during > 20, "the api keeps accepting jobs into PostgreSQL while the queues have no quorum (\(during) in 6 s)")
                try await cluster.start()
            }),
            ("cut one processor host's network for 12 s", { s in
                let slow = try await s.stack.enqueue([NewJob(kind: "slow", payload: #"{"sleep_ms": 20000}"#)])[0].id
                slowJobs.add(slow, .completed)
                _ = try await s.stack.waitFor(slow, .running, timeout: .seconds(30))
                try await hosts.cut(1)
                try await Task.sleep(for: .seconds(12))
                try await hosts.restore(1)
            }),
        ]
        for (name, fault) in scenarios {
            try await suite.run(name, fault: fault).report("cluster suite", name)
        }
        // The slow job was rescued while its host was cut off; back on the network, the
        // processor there stopped the old attempt and ran the new one, to completion.
        let slow = try #require(slowJobs.jobs.keys.first)
        let job = try await suite.stack.waitFor(slow, .completed, timeout: .seconds(90))
        #expect(job.attempts == 2, "the slow job's first attempt was rescued (\(job.attempts) attempts)")
        #expect(processors[0].text.contains("attempt stopped: the job is no longer held by this processor"),
                "the cut-off processor stopped its taken attempt: \(processors[0].text.suffix(3000))")
        // The processor whose host was cut is still up and working, not wedged.
        for (i, p) in processors.enumerated() { #expect(p.isRunning, "processor \(i + 1) exited: \(p.text.suffix(2000))") }
        for p in processors { p.signal(SIGKILL) }
        await suite.shutdown()
    }
}
