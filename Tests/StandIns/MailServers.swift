import Foundation
import HTTPClient

#if canImport(Glibc)
import Glibc
#endif

/// make test's Dovecot (scripts/stack.sh `dovecot_start`): any user name logs in with its one
/// password, and each caller takes a name of its own, so tests running at once never read
/// each other's mail.
public enum TestIMAP {
    /// Dovecot's port (ESTEIRA_TEST_IMAP_PORT) and password (ESTEIRA_TEST_IMAP_PASSWORD).
    public static func environment() throws -> (port: Int, password: String) {
        let env = ProcessInfo.processInfo.environment
        guard let port = env["ESTEIRA_TEST_IMAP_PORT"].flatMap(Int.init), let password = env["ESTEIRA_TEST_IMAP_PASSWORD"] else {
            throw StandInError("ESTEIRA_TEST_IMAP_PORT and ESTEIRA_TEST_IMAP_PASSWORD are not set: run the tests with make test")
        }
        return (port, password)
    }

    /// A new mail user (and so an empty INBOX): its login on the test Dovecot.
    public static func newUser() throws -> MailConnection.Server {
        let (port, password) = try environment()
        let name = "u" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").prefix(16)
        return MailConnection.Server(host: "127.0.0.1", port: port, security: .none, user: String(name), password: password)
    }
}

/// An SMTP server of the test's own (Tests/Support/smtp_sink.py, aiosmtpd in make test's
/// virtualenv) that keeps every message it accepts and refuses on demand.
public final class SMTPSink: @unchecked Sendable {
    /// A message it accepted.
    public struct Received: Sendable {
        public var mailFrom: String
        public var recipients: [String]
        public var receivedAt: Double
        public var data: [UInt8]
    }

    public let port: Int
    public let directory: URL
    private let pid: pid_t
    private let stopped = Locked(false)

    /// Starts a sink on a free port; `countOnly` keeps only a count (for benchmarks).
    public init(countOnly: Bool = false) throws {
        let env = ProcessInfo.processInfo.environment
        guard let python = env["ESTEIRA_TEST_SMTP_PYTHON"], let script = env["ESTEIRA_TEST_SMTP_SINK"] else {
            throw StandInError("ESTEIRA_TEST_SMTP_PYTHON and ESTEIRA_TEST_SMTP_SINK are not set: run the tests with make test")
        }
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("esteira-smtp-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        port = try SMTPSink.freePort()
        pid = try SMTPSink.spawn([python, script, "--port", "\(port)", "--dir", directory.path] + (countOnly ? ["--count-only"] : []))
        let deadline = Date().addingTimeInterval(20)
        while !SMTPSink.accepts(port) {
            var status: Int32 = 0
            guard waitpid(pid, &status, WNOHANG) == 0, Date() < deadline else {
                stop()
                throw StandInError("the SMTP sink did not start on port \(port)")
            }
            usleep(50_000)
        }
    }

    deinit { stop() }

    /// Stops the sink (SIGKILL: it keeps nothing in memory) and removes what it kept.
    public func stop() {
        let first = stopped.withLock { done in
            defer { done = true }
            return !done
        }
        guard first else { return }
        kill(pid, SIGKILL)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        try? FileManager.default.removeItem(at: directory)
    }

    /// Starts `arguments` (the program first), output to /dev/null.
    static func spawn(_ arguments: [String]) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        // The child starts with no signal blocked: it would inherit the calling thread's mask.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK))
        let argv = arguments.map { strdup($0) } + [nil]
        defer { for a in argv { free(a) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, arguments[0], &actions, &attributes, argv, environ)
        guard rc == 0 else { throw StandInError("cannot start \(arguments[0]): error \(rc)") }
        return pid
    }

    /// The messages accepted so far, in order.
    public func messages() -> [Received] {
        var out: [Received] = []
        for n in 1... {
            let base = directory.appendingPathComponent("\(n)")
            guard let meta = try? Data(contentsOf: base.appendingPathExtension("json")),
                  let object = try? JSONSerialization.jsonObject(with: meta) as? [String: Any],
                  let data = try? Data(contentsOf: base.appendingPathExtension("eml")) else { break }
            out.append(Received(mailFrom: object["mail_from"] as? String ?? "", recipients: object["rcpt_tos"] as? [String] ?? [],
                                receivedAt: object["received_at"] as? Double ?? 0, data: Array(data)))
        }
        return out
    }

    /// How many messages a `countOnly` sink accepted (written every 50 ms).
    public func count() -> Int {
        (try? String(contentsOf: directory.appendingPathComponent("count"), encoding: .utf8)).flatMap { Int($0) } ?? 0
    }

    /// Where a refusal happens.
    public enum Stage: String { case rcpt, data }

    /// From now on every transaction gets `reply` (`"550 5.1.1 no such user"`) at `stage`, or,
    /// with `reply` nil, none; `"drop"` at `.data` closes the connection instead, and
    /// `"hold 30"` keeps the message and waits 30 s before answering it.
    public func refuse(at stage: Stage, with reply: String?) throws {
        let file = directory.appendingPathComponent("fault")
        if let reply {
            try Data("\(stage.rawValue) \(reply)".utf8).write(to: file, options: .atomic)
        } else {
            try? FileManager.default.removeItem(at: file)
        }
    }

    static func accepts(_ port: Int) -> Bool {
        withLoopbackSocket(port: port) { fd, address, _ in connect(fd, address, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
    }

    /// A port the kernel handed out for a moment (bound to port 0, then closed).
    static func freePort() throws -> Int {
        let port = withLoopbackSocket(port: 0) { fd, address, addr in
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            guard bind(fd, address, length) == 0, getsockname(fd, address, &length) == 0 else { return 0 }
            return Int(UInt16(bigEndian: addr.pointee.sin_port))
        }
        guard port > 0 else { throw StandInError("no free port") }
        return port
    }
}

/// Runs `body` with a new TCP socket and the address `127.0.0.1:port` (as `sockaddr` and as
/// `sockaddr_in`, which calls like `getsockname` fill in), closing the socket afterwards.
public func withLoopbackSocket<T>(port: Int, _ body: (Int32, UnsafeMutablePointer<sockaddr>, UnsafeMutablePointer<sockaddr_in>) -> T) -> T {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = in_port_t(UInt16(port).bigEndian)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    return withUnsafeMutablePointer(to: &addr) { p in
        p.withMemoryRebound(to: sockaddr.self, capacity: 1) { body(fd, $0, p) }
    }
}

/// A stand-in that could not be set up.
public struct StandInError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
