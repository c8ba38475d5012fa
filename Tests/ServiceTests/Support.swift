import Foundation
import Postgres
import StandIns
import Testing

/// Where the repository and the built executables are.
enum TestPaths {
    static let repositoryRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The folder of the test bundle is the build's bin folder, which holds every executable.
    static var binDirectory: URL {
        var url = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        while url.pathComponents.count > 1 && !url.lastPathComponent.hasSuffix(".xctest") {
            url.deleteLastPathComponent()
        }
        return url.deletingLastPathComponent()
    }

    static func executable(_ name: String) -> URL { binDirectory.appendingPathComponent(name) }

    /// A new folder path `prefix-xxxxxxxx` for servers a test starts itself, under the run's
    /// scratch folder (`ESTEIRA_TEST_SCRATCH`, set by `make test`, which stops whatever is
    /// left running there when the tests end, even if their process crashed), else `/tmp`.
    static func scratch(_ prefix: String) -> String {
        let root = ProcessInfo.processInfo.environment["ESTEIRA_TEST_SCRATCH"] ?? "/tmp"
        return "\(root)/\(prefix)-\(UUID().uuidString.prefix(8).lowercased())"
    }
}

/// The servers `make test` started, from ESTEIRA_TEST_* variables. A missing variable fails
/// the test (it is never skipped): run the tests with `make test`.
enum TestServers {
    static func variable(_ name: String) throws -> String {
        try #require(ProcessInfo.processInfo.environment[name], "\(name) is not set: run the tests with `make test`")
    }
    static func databaseURL() throws -> String { try variable("ESTEIRA_TEST_DATABASE_URL") }
    static func amqpURL() throws -> String { try variable("ESTEIRA_TEST_AMQP_URL") }
}

/// A database of its own for one test, dropped at the end.
final class ScratchDatabase {
    let name: String
    let url: String
    private let adminURL: String

    /// A database on the test server, or on the server of `adminURL`.
    init(adminURL: String? = nil) throws {
        self.adminURL = try adminURL ?? TestServers.databaseURL()
        name = "t_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
        let admin = try PostgresConnection(configuration: PostgresConfiguration(url: self.adminURL))
        defer { admin.close() }
        _ = try admin.query("CREATE DATABASE \(name)")
        guard let slash = self.adminURL.lastIndex(of: "/") else { throw CocoaError(.fileReadUnknown) }
        url = String(self.adminURL[..<slash]) + "/" + name
    }

    func connect() throws -> PostgresConnection {
        try PostgresConnection(configuration: PostgresConfiguration(url: url))
    }

    deinit {
        if let admin = try? PostgresConnection(configuration: PostgresConfiguration(url: adminURL)) {
            _ = try? admin.query("DROP DATABASE IF EXISTS \(name) WITH (FORCE)")
            admin.close()
        }
    }
}

/// A child process with its output collected, killed at the end of the test if still running.
///
/// Spawned with posix_spawn and reaped with waitpid by this object alone: Foundation's
/// Process on Linux was seen to miss a child's exit when many children run at once.
final class ChildProcess: @unchecked Sendable {
    let pid: pid_t
    private let output = OutputBuffer()
    private let lock = NSLock()
    private var status: Int32?

    init(_ executable: URL, arguments: [String] = [], environment: [String: String]) throws {
        var env = ProcessInfo.processInfo.environment
        for (k, v) in environment { env[k] = v }
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        // Close-on-exec, so other children spawned meanwhile do not hold this pipe open.
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
        posix_spawn_file_actions_adddup2(&actions, fds[1], 2)
        let argv: [UnsafeMutablePointer<CChar>?] = ([executable.path] + arguments).map { strdup($0) } + [nil]
        let envp: [UnsafeMutablePointer<CChar>?] = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { for p in argv + envp { free(p) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, executable.path, &actions, nil, argv, envp)
        close(fds[1])
        guard rc == 0 else {
            close(fds[0])
            throw POSIXError(POSIXErrorCode(rawValue: rc) ?? .EIO)
        }
        self.pid = pid
        let fd = fds[0], buffer = output
        Thread.detachNewThread {
            var chunk = [UInt8](repeating: 0, count: 65536)
            while true {
                let n = read(fd, &chunk, chunk.count)
                if n > 0 { buffer.append(chunk[0..<n]) } else if n < 0 && errno == EINTR { continue } else { break }
            }
            close(fd)
        }
    }

    var text: String { output.text }

    /// True until the child has exited (and been reaped).
    var isRunning: Bool { poll() == nil }

    /// The exit code, or 128 + the signal's number when a signal ended it; nil while running.
    private func poll(block: Bool = false) -> Int32? {
        lock.lock(); defer { lock.unlock() }
        if let status { return status }
        var raw: Int32 = 0
        let r = waitpid(pid, &raw, block ? 0 : WNOHANG)
        guard r == pid else { return nil }
        let signal = raw & 0x7f
        status = signal == 0 ? (raw >> 8) & 0xff : 128 + signal
        return status
    }

    /// Waits for exit up to `timeout`; nil when still running.
    func waitForExit(timeout: Duration) async -> Int32? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let status = poll() { return status }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return poll()
    }

    /// Blocks until the child exits.
    @discardableResult
    func waitUntilExit() -> Int32 { poll(block: true) ?? -1 }

    func signal(_ sig: Int32) {
        if isRunning { kill(pid, sig) }
    }

    deinit {
        if poll() == nil {
            kill(pid, SIGKILL)
            _ = poll(block: true)
        }
    }
}

/// Output collected from a child's pipe by its reader thread.
final class OutputBuffer: @unchecked Sendable {
    private let lock = NSLock()
    private var data = Data()
    func append(_ bytes: ArraySlice<UInt8>) { lock.lock(); data.append(contentsOf: bytes); lock.unlock() }
    var text: String { lock.lock(); defer { lock.unlock() }; return String(decoding: data, as: UTF8.self) }
}

/// Runs `command` in bash with scripts/stack.sh sourced (the project's own functions to start
/// and stop servers); fails the test when it exits non-zero.
@discardableResult
func stackScript(_ command: String) async throws -> String {
    let script = TestPaths.repositoryRoot.appendingPathComponent("scripts/stack.sh").path
    let (status, output) = try await runToCompletion(URL(fileURLWithPath: "/bin/bash"), ["-c", "source '\(script)'; \(command)"],
                                                     environment: [:], timeout: .seconds(120))
    try #require(status == 0, "\(command) failed: \(output)")
    return output
}

/// The same, blocking, for deinitializers (errors ignored).
func stackScriptBlocking(_ command: String) {
    let script = TestPaths.repositoryRoot.appendingPathComponent("scripts/stack.sh").path
    (try? ChildProcess(URL(fileURLWithPath: "/bin/bash"), arguments: ["-c", "source '\(script)'; \(command)"], environment: [:]))?
        .waitUntilExit()
}

extension ScratchDatabase {
    /// A scratch database with every migration applied (by the processor's `migrate`).
    static func migrated() async throws -> ScratchDatabase {
        let database = try ScratchDatabase()
        let migrate = try await runToCompletion(TestPaths.executable("processor"), ["migrate"],
                                                environment: ["ESTEIRA_DATABASE_URL": database.url])
        try #require(migrate.status == 0, "migrate failed: \(migrate.output)")
        return database
    }
}

/// Runs `executable arguments` to completion and returns its exit status and output.
func runToCompletion(_ executable: URL, _ arguments: [String], environment: [String: String],
                     timeout: Duration = .seconds(60)) async throws -> (status: Int32, output: String) {
    let child = try ChildProcess(executable, arguments: arguments, environment: environment)
    let status = try #require(await child.waitForExit(timeout: timeout), "\(executable.lastPathComponent) did not exit")
    try? await Task.sleep(for: .milliseconds(50)) // let the pipe drain
    return (status, child.text)
}

/// Ports this test process has handed out. Tests run in parallel: two of them could pick the
/// same free port before either binds it, and the second's health check would then be answered
/// by the first's server. A port handed out once is never handed out again.
private final class HandedOutPorts: @unchecked Sendable {
    private let lock = NSLock()
    private var ports = Set<Int>()

    /// Takes the `count` ports from `base` if none was handed out before.
    func take(_ base: Int, _ count: Int) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        let block = Set(base..<(base + count))
        guard ports.isDisjoint(with: block) else { return false }
        ports.formUnion(block)
        return true
    }
}

private let handedOut = HandedOutPorts()

/// The first of `count` consecutive loopback ports that nothing listens on and that no other
/// test of this process was given, picked at random between 20000 and 32000 (below the kernel's
/// ephemeral range, so no connection takes them meanwhile).
func freePortBlock(_ count: Int) -> Int {
    while true {
        let base = Int.random(in: 20000...(32000 - count))
        if (base..<(base + count)).allSatisfy(portIsFree), handedOut.take(base, count) { return base }
    }
}

private func portIsFree(_ port: Int) -> Bool {
    withLoopbackSocket(port: port) { fd, address, _ in bind(fd, address, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
}

/// A TCP port nothing listens on right now and no other test of this process was given.
func freePort() -> Int {
    freePortBlock(1)
}

/// Writes `count` user principals with ids 00000000-0000-0000-0000-000000000001 and on
/// (names p1, p2, ...), for tests that fill tables with many owners' rows.
func insertPrincipals(_ count: Int, on c: PostgresConnection) throws {
    try c.execute("""
        INSERT INTO api_principals (id, name, role, token_hash)
        SELECT ('00000000-0000-0000-0000-' || lpad(i::text, 12, '0'))::uuid, 'p' || i, 'user', sha256(convert_to('t' || i, 'UTF8'))
        FROM generate_series(1, $1) i
        """, [count])
}
