import Foundation
import Postgres
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

    init() throws {
        adminURL = try TestServers.databaseURL()
        name = "t_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
        let admin = try PostgresConnection(configuration: PostgresConfiguration(url: adminURL))
        defer { admin.close() }
        _ = try admin.query("CREATE DATABASE \(name)")
        guard let slash = adminURL.lastIndex(of: "/") else { throw CocoaError(.fileReadUnknown) }
        url = String(adminURL[..<slash]) + "/" + name
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
final class ChildProcess {
    let process = Process()
    private let output = Pipe()
    private let lock = NSLock()
    private var collected = Data()

    init(_ executable: URL, arguments: [String] = [], environment: [String: String]) throws {
        process.executableURL = executable
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        for (k, v) in environment { env[k] = v }
        process.environment = env
        process.standardOutput = output
        process.standardError = output
        output.fileHandleForReading.readabilityHandler = { [weak self] handle in
            let data = handle.availableData
            guard let self else { return }
            self.lock.lock(); self.collected.append(data); self.lock.unlock()
        }
        try process.run()
    }

    var text: String {
        lock.lock(); defer { lock.unlock() }
        return String(decoding: collected, as: UTF8.self)
    }

    /// Waits for exit up to `timeout`; nil when still running.
    func waitForExit(timeout: Duration) async -> Int32? {
        let deadline = ContinuousClock.now + timeout
        while process.isRunning && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
        return process.isRunning ? nil : process.terminationStatus
    }

    func signal(_ sig: Int32) { kill(process.processIdentifier, sig) }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() }
        output.fileHandleForReading.readabilityHandler = nil
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

/// A TCP port nothing listens on right now.
func freePort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = 0
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    withUnsafeMutablePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            _ = bind(fd, $0, len)
            _ = getsockname(fd, $0, &len)
        }
    }
    return Int(UInt16(bigEndian: addr.sin_port))
}
