import CLibPQ
import Foundation

/// One connection to PostgreSQL over libpq.
///
/// Not thread-safe, like the `PGconn` under it: use it from one thread at a time (the pool
/// gives each connection its own serial queue). Calls block the calling thread; from async
/// code go through `PostgresPool`, which runs them off Swift's cooperative threads.
public final class PostgresConnection {
    /// The configuration this connection was opened with (password redacted in `description`).
    public let configuration: PostgresConfiguration
    /// The `PGconn`; nil once closed.
    private var handle: OpaquePointer?
    /// Written by libpq's notice callback; outlives `handle` (freed first, in deinit).
    private let notices = NoticeState()
    /// The statements ``queryPrepared(_:_:)`` prepared in this session.
    var preparedStatements: [String: (name: String, types: [Oid])] = [:]

    /// Opens a connection; blocks until connected, failed, or `connectTimeout` elapsed.
    ///
    /// - Throws: `PostgresError` with code `connectionFailed`, carrying the server's SQLSTATE
    ///   when the server refused (e.g. "28000" unknown role, "3D000" unknown database).
    public init(configuration: PostgresConfiguration) throws {
        self.configuration = configuration
        self.handle = try Self.open(configuration)
        installNoticeReceiver()
    }

    /// Opens a connection from a `postgres://` URL.
    public convenience init(url: String, applicationName: String? = nil) throws {
        try self.init(configuration: PostgresConfiguration(url: url, applicationName: applicationName))
    }

    deinit {
        if let handle { PQfinish(handle) }
    }

    /// Closes the connection; later calls throw `connectionLost`. Closing twice is harmless.
    public func close() {
        if let handle { PQfinish(handle) }
        handle = nil
        preparedStatements = [:]
    }

    /// Whether the connection is open and libpq has not seen it break.
    public var isConnected: Bool {
        guard let handle else { return false }
        return PQstatus(handle) == CONNECTION_OK && !notices.serverIsClosing
    }

    /// The server process serving this connection (as in `pg_stat_activity.pid`).
    public var backendPID: Int32 {
        guard let handle else { return 0 }
        return PQbackendPID(handle)
    }

    /// Closes and reopens the connection with the same configuration (after `connectionLost`).
    public func reset() throws {
        close()
        notices.serverIsClosing = false
        handle = try Self.open(configuration)
        installNoticeReceiver()
    }

    /// Runs one statement with `$1, $2, ...` parameters and returns its rows.
    ///
    /// Parameters are sent separately from the SQL (no quoting, no injection); nil is NULL.
    public func query(_ sql: String, _ parameters: [PostgresEncodable?] = []) throws -> PostgresRows {
        let connection = try liveHandle()
        let encoded = try PostgresParameters(parameters)
        let result = encoded.withPointers { types, values in
            PQexecParams(connection, sql, Int32(encoded.count), types, values, nil, nil, 0)
        }
        return try check(result, query: sql)
    }

    /// Runs one statement with parameters and returns the number of rows it affected.
    @discardableResult
    public func execute(_ sql: String, _ parameters: [PostgresEncodable?] = []) throws -> Int {
        try query(sql, parameters).affectedRowCount
    }

    /// Runs a script of one or more `;`-separated statements without parameters (the simple
    /// query protocol). Unless the script has its own BEGIN/COMMIT, the statements run in one
    /// implicit transaction. Returns the last statement's rows.
    @discardableResult
    public func executeScript(_ sql: String) throws -> PostgresRows {
        let connection = try liveHandle()
        return try check(PQexec(connection, sql), query: sql)
    }

    /// Quotes an identifier (table, column, channel) for use in SQL text: `a"b` → `"a""b"`.
    public static func quoteIdentifier(_ identifier: String) -> String {
        "\"" + identifier.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    // MARK: - Internals shared by the extensions

    /// The handle, or `connectionLost` if closed or broken.
    func liveHandle() throws -> OpaquePointer {
        guard let handle else {
            throw PostgresError(.connectionLost, message: "the connection is closed")
        }
        if PQstatus(handle) == CONNECTION_BAD {
            throw PostgresError(connection: handle, code: .connectionLost, fallback: "the connection is broken")
        }
        return handle
    }

    /// Turns a result into rows or a thrown error; frees the result on error.
    func check(_ result: OpaquePointer?, query: String?) throws -> PostgresRows {
        guard let result else {
            throw failure(query: query, fallback: "no result from server (out of memory or connection broken)")
        }
        switch PQresultStatus(result) {
        case PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_EMPTY_QUERY:
            return PostgresRows(result: PostgresResult(result))
        case PGRES_COPY_IN, PGRES_COPY_OUT, PGRES_COPY_BOTH:
            PQclear(result)
            abandonCopy()
            var error = PostgresError(.unexpectedResult, message: "COPY is only supported through copyIn(table:columns:rows:)")
            error.query = query
            throw error
        default:
            let lost = handle.map { PQstatus($0) == CONNECTION_BAD } ?? true
            let error = PostgresError(result: result, code: lost ? .connectionLost : .queryFailed, query: query)
            PQclear(result)
            throw error
        }
    }

    /// An error from the connection's error message: `connectionLost` if libpq saw it break.
    func failure(query: String?, fallback: String) -> PostgresError {
        let lost = handle.map { PQstatus($0) == CONNECTION_BAD } ?? true
        return PostgresError(connection: handle, code: lost ? .connectionLost : .queryFailed,
                             fallback: fallback, query: query)
    }

    /// Gets the connection out of a COPY it did not ask for, so it stays usable.
    private func abandonCopy() {
        guard let handle else { return }
        _ = PQputCopyEnd(handle, "COPY is not supported through query()")
        while let result = PQgetResult(handle) { PQclear(result) }
    }

    /// Checks, without blocking, whether the server closed the connection while it sat idle
    /// (e.g. `pg_terminate_backend`): reads whatever is pending and reports whether the
    /// connection is still good.
    func refreshStatus() -> Bool {
        guard let handle else { return false }
        // A terminated backend sends a FATAL message and then closes; the close only shows up
        // on a later read, so read while the socket stays readable (bounded, in case of a
        // steady stream of notifications).
        for _ in 0..<8 {
            guard PQstatus(handle) == CONNECTION_OK else { return false }
            var descriptor = pollfd(fd: PQsocket(handle), events: Int16(POLLIN), revents: 0)
            guard poll(&descriptor, 1, 0) > 0 else { break }
            if PQconsumeInput(handle) == 0 { return false }
            // Parsing hands an idle-time FATAL message to the notice receiver, which catches
            // the termination even when the socket's close has not arrived yet.
            _ = PQisBusy(handle)
        }
        return isConnected
    }

    /// Routes notices to `notices` instead of stderr, where libpq prints them by default.
    private func installNoticeReceiver() {
        guard let handle else { return }
        PQsetNoticeReceiver(handle, { context, result in
            guard let context, let result else { return }
            let state = Unmanaged<NoticeState>.fromOpaque(context).takeUnretainedValue()
            // 'V': the severity, never translated.
            if let severity = PQresultErrorField(result, Int32(UInt8(ascii: "V"))) {
                let text = String(cString: severity)
                if text == "FATAL" || text == "PANIC" { state.serverIsClosing = true }
            }
        }, Unmanaged.passUnretained(notices).toOpaque())
    }

    // MARK: - Connecting

    /// Opens a connection with PQconnectStartParams/PQconnectPoll rather than PQconnectdb, so
    /// error verbosity can be raised before the server answers: the verbose message is the
    /// only place libpq puts the SQLSTATE of a refused connection.
    private static func open(_ configuration: PostgresConfiguration) throws -> OpaquePointer {
        let timeoutSeconds = max(1, Int(configuration.connectTimeout.components.seconds))
        // libpq reads "dbname" as a URL when expand_dbname is set; keywords after it override
        // the URL's parameters.
        var keywords = ["dbname", "client_encoding", "connect_timeout"]
        var values = [configuration.url, "UTF8", String(timeoutSeconds)]
        if let name = configuration.applicationName {
            keywords.append("application_name")
            values.append(name)
        }
        let started = PostgresCStrings(keywords).withPointers { keywordPointers in
            PostgresCStrings(values).withPointers { valuePointers in
                PQconnectStartParams(keywordPointers, valuePointers, 1)
            }
        }
        guard let connection = started else {
            throw PostgresError(.connectionFailed, message: "libpq could not allocate a connection")
        }
        do {
            try drive(connection, configuration: configuration)
        } catch {
            PQfinish(connection)
            throw error
        }
        PQsetErrorVerbosity(connection, PQERRORS_DEFAULT)
        return connection
    }

    private static func drive(_ connection: OpaquePointer, configuration: PostgresConfiguration) throws {
        if PQstatus(connection) == CONNECTION_BAD {
            throw connectFailure(connection, configuration)
        }
        PQsetErrorVerbosity(connection, PQERRORS_VERBOSE)
        let deadline = ContinuousClock.now + configuration.connectTimeout
        var state = PGRES_POLLING_WRITING
        while true {
            switch state {
            case PGRES_POLLING_OK:
                return
            case PGRES_POLLING_FAILED:
                throw connectFailure(connection, configuration)
            default:
                let events = state == PGRES_POLLING_READING ? Int16(POLLIN) : Int16(POLLOUT)
                guard try waitForSocket(PQsocket(connection), events: events, until: deadline) else {
                    throw PostgresError(.connectionFailed,
                                        message: "timed out connecting to \(configuration.hostDescription)")
                }
            }
            state = PQconnectPoll(connection)
        }
    }

    /// The connection error with the SQLSTATE pulled out of libpq's verbose message and
    /// the password scrubbed from it.
    private static func connectFailure(_ connection: OpaquePointer,
                                       _ configuration: PostgresConfiguration) -> PostgresError {
        let raw = String(cString: PQerrorMessage(connection))
        var sqlState: String?
        var lines: [String] = []
        for var line in raw.split(separator: "\n").map(String.init) {
            if line.hasPrefix("LOCATION:") { continue }
            // Verbose server errors read "...: FATAL:  28000: role "x" does not exist".
            for severity in ["FATAL:  ", "ERROR:  "] {
                guard let range = line.range(of: severity) else { continue }
                let rest = line[range.upperBound...]
                let code = rest.prefix(5)
                if code.count == 5, rest.dropFirst(5).hasPrefix(": "),
                   code.allSatisfy({ $0.isUppercase || $0.isNumber }) {
                    sqlState = sqlState ?? String(code)
                    line = String(line[..<range.upperBound]) + String(rest.dropFirst(7))
                }
            }
            lines.append(line)
        }
        var message = configuration.redact(lines.joined(separator: "; ").trimmingTrailingNewlines())
        if message.isEmpty { message = "could not connect to \(configuration.hostDescription)" }
        var error = PostgresError(.connectionFailed, message: message)
        error.sqlState = sqlState
        return error
    }
}

/// What the notice receiver learned. A server that is about to close an idle connection (e.g.
/// `pg_terminate_backend`) says so with a FATAL message that libpq hands to the receiver.
final class NoticeState {
    var serverIsClosing = false
}

extension PostgresConfiguration {
    var hostDescription: String { "\(host ?? "local socket")\(port.map { ":\($0)" } ?? "")" }
}

/// Waits until `socket` is ready for `events` or `deadline` passes; false on timeout.
func waitForSocket(_ socket: Int32, events: Int16, until deadline: ContinuousClock.Instant) throws -> Bool {
    guard socket >= 0 else {
        throw PostgresError(.connectionLost, message: "the connection has no socket")
    }
    while true {
        let remaining = deadline - ContinuousClock.now
        if remaining <= .zero { return false }
        let (seconds, attoseconds) = remaining.components
        let milliseconds = Int32(clamping: seconds * 1000 + attoseconds / 1_000_000_000_000_000 + 1)
        var descriptor = pollfd(fd: socket, events: events, revents: 0)
        let ready = poll(&descriptor, 1, milliseconds)
        if ready > 0 { return true }
        if ready < 0 && errno != EINTR {
            throw PostgresError(.connectionLost, message: "poll failed: errno \(errno)")
        }
    }
}

/// NUL-terminated copies of strings, alive for the duration of `withPointers`.
struct PostgresCStrings {
    private let strings: [String?]
    init(_ strings: [String?]) { self.strings = strings }

    /// Calls `body` with a NULL-terminated array of C string pointers (nil entries stay nil).
    func withPointers<R>(_ body: (UnsafePointer<UnsafePointer<CChar>?>) throws -> R) rethrows -> R {
        let copies: [UnsafeMutablePointer<CChar>?] = strings.map { $0.map { strdup($0)! } }
        defer { copies.forEach { free($0) } }
        let pointers: [UnsafePointer<CChar>?] = copies.map { $0.map { UnsafePointer($0) } } + [nil]
        return try pointers.withUnsafeBufferPointer { try body($0.baseAddress!) }
    }
}

/// Parameters encoded to text with their type OIDs, ready for the PQ*Params calls.
struct PostgresParameters {
    let types: [Oid]
    let values: PostgresCStrings
    let count: Int

    init(_ parameters: [PostgresEncodable?]) throws {
        var types: [Oid] = []
        var texts: [String?] = []
        types.reserveCapacity(parameters.count)
        texts.reserveCapacity(parameters.count)
        for parameter in parameters {
            if let parameter {
                types.append(Oid(type(of: parameter).postgresDataType.oid))
                let text = try parameter.postgresText()
                // Parameters go to libpq as C strings, which end at the first NUL: the rest
                // would be dropped without a word. PostgreSQL's text cannot hold NUL anyway.
                if let text, text.utf8.contains(0) {
                    throw PostgresError(.encodingFailed,
                                        message: "parameter $\(texts.count + 1) contains U+0000 (NUL), which PostgreSQL text cannot hold")
                }
                texts.append(text)
            } else {
                types.append(0)
                texts.append(nil)
            }
        }
        self.types = types
        self.values = PostgresCStrings(texts)
        self.count = parameters.count
    }

    func withPointers<R>(_ body: (UnsafePointer<Oid>?, UnsafePointer<UnsafePointer<CChar>?>) throws -> R) rethrows -> R {
        try types.withUnsafeBufferPointer { typePointer in
            try values.withPointers { valuePointers in
                try body(typePointer.baseAddress, valuePointers)
            }
        }
    }
}
