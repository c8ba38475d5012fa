import AMQP
import EsteiraCore
import Foundation
import StandIns
import HTTPClient
import Logging
import Postgres
import Testing

/// A RabbitMQ virtual host of its own for one test, so that tests running at the same time
/// never consume each other's messages (queue names are global within a vhost). Deleted at
/// the end.
final class ScratchVhost {
    let name: String
    let amqpURL: String
    private let management: String

    init() async throws {
        name = "t-" + UUID().uuidString.lowercased().prefix(13)
        management = try TestServers.variable("ESTEIRA_TEST_AMQP_MGMT_URL")
        let base = try TestServers.amqpURL()
        amqpURL = (base.hasSuffix("/") ? base : base + "/") + name
        let http = HTTPClient()
        for (path, body) in [("/api/vhosts/\(name)", "{}"),
                             ("/api/permissions/\(name)/guest", #"{"configure":".*","write":".*","read":".*"}"#)] {
            let response = try await http.execute(ScratchVhost.request(.put, management + path, body: body))
            #expect((200..<300).contains(response.status), "management PUT \(path): \(response.status)")
        }
    }

    static func request(_ method: HTTPMethod, _ url: String, body: String? = nil) -> HTTPRequest {
        // The management URL carries guest:guest; send it as a header, curl-style.
        var components = URLComponents(string: url)!
        let auth = "\(components.user ?? "guest"):\(components.password ?? "guest")"
        components.user = nil
        components.password = nil
        return HTTPRequest(method: method, url: components.string!, headers: HTTPHeaders([
            ("Authorization", "Basic " + Data(auth.utf8).base64EncodedString()),
            ("Content-Type", "application/json"),
        ]), body: Array((body ?? "").utf8))
    }

    /// Messages waiting in `queue` (the management API's view; refreshed every few seconds).
    func queueInfo(_ queue: String) async throws -> [String: Any] {
        let response = try await HTTPClient().execute(ScratchVhost.request(.get, management + "/api/queues/\(name)/\(queue)"))
        return (try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any]) ?? [:]
    }

    /// Closes (through the management API) this vhost's connections whose client-given name
    /// starts with `prefix`, as a network failure would for their client; returns how many,
    /// and the names of all it saw.
    func closeConnections(named prefix: String) async throws -> (closed: Int, seen: [String]) {
        let http = HTTPClient()
        let listed = try await http.execute(ScratchVhost.request(.get, management + "/api/vhosts/\(name)/connections"))
        let connections = (try JSONSerialization.jsonObject(with: Data(listed.body)) as? [[String: Any]]) ?? []
        var closed = 0, seen: [String] = []
        for c in connections {
            let given = (c["client_properties"] as? [String: Any])?["connection_name"] as? String
            seen.append(given ?? "(unnamed) \(c["name"] ?? "")")
            guard let given, given.hasPrefix(prefix),
                  let id = (c["name"] as? String)?.addingPercentEncoding(withAllowedCharacters: .alphanumerics) else { continue }
            let response = try await http.execute(ScratchVhost.request(.delete, management + "/api/connections/\(id)"))
            if (200..<300).contains(response.status) { closed += 1 }
        }
        return (closed, seen)
    }

    deinit {
        let request = ScratchVhost.request(.delete, management + "/api/vhosts/\(name)")
        _ = try? HTTPClient().send(request)
    }
}

/// A job system for one test: a migrated database, a vhost, a kinds file, processors as
/// real child processes, and an in-process enqueuer.
final class JobStack: @unchecked Sendable {
    let database: ScratchDatabase
    let vhost: ScratchVhost
    let kindsFile: URL
    let pool: PostgresPool
    let link: BrokerLink
    let enqueuer: Enqueuer
    let catalog: KindCatalog
    var amqpURL: String
    /// The type of the work queues and hold tiers, for this stack's own link and its children.
    let queueType: Topology.QueueType
    private(set) var processors: [ChildProcess] = []
    private(set) var schedulers: [ChildProcess] = []
    static let signingSecret = "test-signing-secret"

    /// `kinds`: the YAML of the kinds file (policies of the kinds the test uses).
    init(kinds: String = "kinds: {}\n", amqpURL: String? = nil, databaseAdminURL: String? = nil,
         queueType: Topology.QueueType = .classic) async throws {
        self.queueType = queueType
        database = try ScratchDatabase(adminURL: databaseAdminURL)
        vhost = try await ScratchVhost()
        self.amqpURL = amqpURL ?? vhost.amqpURL
        kindsFile = FileManager.default.temporaryDirectory.appendingPathComponent("kinds-\(UUID().uuidString).yaml")
        try kinds.write(to: kindsFile, atomically: true, encoding: .utf8)
        let migrate = try await runToCompletion(TestPaths.executable("processor"), ["migrate"],
                                                environment: ["ESTEIRA_DATABASE_URL": database.url])
        #expect(migrate.status == 0, "migrate failed: \(migrate.output)")
        var catalog = try KindCatalog.load(path: kindsFile.path, signingSecret: JobStack.signingSecret)
        catalog.queueType = queueType
        self.catalog = catalog
        pool = PostgresPool(configuration: try PostgresConfiguration(url: database.url), maxConnections: 4)
        let logger = Logger(label: "test")
        link = BrokerLink(configuration: try AMQPConfiguration(url: self.amqpURL),
                          topology: catalog.topology, label: "test", logger: logger)
        enqueuer = Enqueuer(store: JobStore(catalog: catalog), pool: pool, link: link, logger: logger)
    }

    /// Starts a processor; returns it once its /healthz answers.
    @discardableResult
    func startProcessor(arguments: [String] = [], environment: [String: String] = [:]) async throws -> ChildProcess {
        let (child, _) = try await start("processor", arguments: arguments, environment: environment)
        processors.append(child)
        return child
    }

    /// Starts an exporter; returns it once its /healthz answers.
    @discardableResult
    func startExporter(arguments: [String] = [], environment: [String: String] = [:]) async throws -> ChildProcess {
        try await startExecutable("exporter", arguments: arguments, environment: environment)
    }

    /// Starts a consuming executable (`exporter`, `syncer`); returns it once its /healthz answers.
    @discardableResult
    func startExecutable(_ name: String, arguments: [String] = [], environment: [String: String] = [:]) async throws -> ChildProcess {
        let (child, _) = try await start(name, arguments: arguments, environment: environment)
        processors.append(child)
        return child
    }

    /// Starts a scheduler (`scheduler run` with `arguments`); returns it once its /healthz
    /// answers, with its ops port.
    @discardableResult
    func startScheduler(arguments: [String] = [], environment: [String: String] = [:]) async throws -> (child: ChildProcess, port: Int) {
        let (child, port) = try await start("scheduler", arguments: arguments, environment: environment)
        schedulers.append(child)
        return (child, port)
    }

    /// Whether the scheduler on `port` leads now (nil: it does not answer).
    func schedulerLeads(port: Int) async -> Bool? {
        guard let r = try? await HTTPClient().execute(HTTPRequest(method: .get, url: "http://127.0.0.1:\(port)/status")),
              r.status == 200,
              let o = try? JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any] else { return nil }
        return o["leader"] as? Bool
    }

    /// The environment a service of this stack runs with, `overrides` laid over it.
    func environment(port: Int, _ overrides: [String: String] = [:]) -> [String: String] {
        var env = [
            "ESTEIRA_DATABASE_URL": database.url,
            "ESTEIRA_AMQP_URL": amqpURL,
            "ESTEIRA_HTTP_PORT": "\(port)",
            "ESTEIRA_KINDS_FILE": kindsFile.path,
            "ESTEIRA_HTTP_SIGNING_SECRET": JobStack.signingSecret,
            // The stand-ins' own loopback address, and nothing else that is not public.
            "ESTEIRA_HTTP_ALLOW": "\(StandInHTTPServer.host)/32",
            "ESTEIRA_LOG_LEVEL": "debug",
            "ESTEIRA_QUEUE_TYPE": queueType.rawValue,
        ]
        for (k, v) in overrides { env[k] = v }
        return env
    }

    /// Runs `executable arguments` (a command that exits, e.g. `switch-queues`) with this
    /// stack's environment; its exit status and output.
    func runCommand(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) async throws -> (status: Int32, output: String) {
        try await runToCompletion(TestPaths.executable(executable), arguments, environment: self.environment(port: 0, environment))
    }

    private func start(_ executable: String, arguments: [String], environment: [String: String]) async throws -> (ChildProcess, Int) {
        let fixedPort = environment["ESTEIRA_HTTP_PORT"].flatMap { Int($0) }
        var tries = 0
        while true {
            tries += 1
            let port = fixedPort ?? freePort()
            let env = self.environment(port: port, environment)
            let child = try ChildProcess(TestPaths.executable(executable), arguments: ["run"] + arguments, environment: env)
            let http = HTTPClient()
            let deadline = ContinuousClock.now + .seconds(120)
            while ContinuousClock.now < deadline {
                if let r = try? await http.execute(HTTPRequest(method: .get, url: "http://127.0.0.1:\(port)/healthz")), r.status == 200 {
                    return (child, port)
                }
                guard child.isRunning else { break }
                try await Task.sleep(for: .milliseconds(50))
            }
            // Another test's server took the port between the check and the bind: another port.
            if fixedPort == nil, tries < 5, !child.isRunning, child.text.contains("is in use") { continue }
            child.signal(SIGKILL)
            Issue.record("\(executable) did not become healthy: \(child.text)")
            throw CancellationError()
        }
    }

    func enqueue(_ jobs: [NewJob]) async throws -> [EnqueueOutcome] {
        try await enqueuer.enqueue(jobs)
    }

    func job(_ id: UUID) async throws -> JobRecord {
        let store = enqueuer.store
        return try #require(try await pool.withConnection { try store.job(id, on: $0) })
    }

    /// Statuses of a job's events, in order.
    /// A job's statuses in order, without the relay's releases: on a slow machine the relay
    /// may publish a row again before its enqueuer marked it published (a duplicate message
    /// the processors skip), which adds a `queued` event.
    func statuses(_ id: UUID) async throws -> [String] {
        try await events(id).filter { !($0.status == "queued" && $0.detail?.contains("released") == true) }.map(\.status)
    }

    func events(_ id: UUID) async throws -> [(status: String, attempt: Int, detail: String?)] {
        try await pool.withConnection { c in
            try c.query("SELECT status, attempt, detail::text FROM job_events WHERE job_id = $1 ORDER BY id", [id]).map {
                (try $0.decode(String.self, at: 0), try $0.decode(Int.self, at: 1), try $0.decode(String?.self, at: 2))
            }
        }
    }

    func scalar<T: PostgresDecodable>(_ sql: String, _ parameters: [PostgresEncodable?] = [], as type: T.Type = T.self) async throws -> T {
        let rows = try await pool.withConnection { c in try c.query(sql, parameters) }
        // No row is this test's failure, not a crash of every test running beside it.
        return try #require(rows.first, "no row: \(sql)").decode(T.self, at: 0)
    }

    /// Waits until `id` reaches `status` (or any final status), up to `timeout`.
    @discardableResult
    func waitFor(_ id: UUID, _ status: JobStatus, timeout: Duration = .seconds(60)) async throws -> JobRecord {
        let deadline = ContinuousClock.now + timeout
        var job = try await self.job(id)
        while ContinuousClock.now < deadline {
            job = try await self.job(id)
            if job.status == status { return job }
            if job.status.isFinal && (status.isFinal || status != job.status) { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        Issue.record("job \(id) is \(job.status), not \(status), after \(timeout); processors: \(processors.map(\.text).joined(separator: "\n---\n").suffix(4000))")
        return job
    }

    /// Waits until `count` jobs (of `ids`, when given) are in `status`.
    func waitForCount(_ status: JobStatus, _ count: Int, among ids: [UUID]? = nil, timeout: Duration = .seconds(60)) async throws {
        let deadline = ContinuousClock.now + timeout
        var n = 0
        while ContinuousClock.now < deadline {
            n = try await scalar("SELECT count(*) FROM jobs WHERE status = $1 AND ($2::uuid[] IS NULL OR id = ANY($2))",
                                 [status.rawValue, ids], as: Int.self)
            if n >= count { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        Issue.record("\(n) jobs \(status) after \(timeout), wanted \(count)")
    }

    deinit {
        for p in processors + schedulers where p.isRunning { p.signal(SIGKILL) }
        link.close()
        pool.close()
        try? FileManager.default.removeItem(at: kindsFile)
    }
}
