import Foundation
import HTTPTypes
import Hummingbird
import Logging
import ServiceLifecycle

/// An in-process HTTP server that stands in for the APIs Esteira talks to (shops, export
/// targets, messaging providers) in tests.
///
/// It listens on 127.0.0.2 (``host``) on a port the system picks, records every request, and answers
/// each method and path as the test scripted it; anything unscripted gets a 404 saying so.
///
/// ```swift
/// try await StandInHTTPServer.withServer { server in
///     server.on("POST", "/rest/v1/fichas") { request in .json(#"{"id":1}"#, status: 201) }
///     // ... send to server.url("/rest/v1/fichas") ...
///     #expect(server.requests(path: "/rest/v1/fichas").count == 1)
/// }
/// ```
public final class StandInHTTPServer: Sendable {
    /// Computes the answer to a request.
    public typealias Handler = @Sendable (StandInRequest) async throws -> StandInResponse

    private struct Route {
        let method: String?
        let path: String
        let handler: Handler
    }

    private struct State {
        var routes: [Route] = []
        var requests: [StandInRequest] = []
        var port: Int?
        var task: Task<Void, Never>?
        var group: ServiceGroup?
    }

    private let state = Locked(State())

    /// Creates a server; it listens once ``start()`` returns.
    /// The loopback address stand-ins listen on: one of their own (all of 127.0.0.0/8 is
    /// loopback on Linux), so the services under test can be given an allow-list of just this
    /// address (`ESTEIRA_HTTP_ALLOW`) and the rest of loopback (the brokers' and databases'
    /// ports) stays refused to jobs' URLs.
    public static let host = "127.0.0.2"

    /// The address this server listens on: ``host`` unless made with another (e.g. a network
    /// namespace's bridge, for services running in namespaces).
    public let address: String

    public init(address: String = StandInHTTPServer.host) { self.address = address }

    // MARK: Lifecycle

    /// Runs a body with a started server, stopping the server afterwards even if the body throws.
    public static func withServer<T>(_ body: (StandInHTTPServer) async throws -> T) async throws -> T {
        let server = StandInHTTPServer()
        try await server.start()
        do {
            let result = try await body(server)
            await server.stop()
            return result
        } catch {
            await server.stop()
            throw error
        }
    }

    /// Starts listening and returns once the port is bound; pair it with ``stop()``.
    public func start() async throws {
        let bound = OneShot<Int>()
        let application = Application(
            responder: CallbackResponder { [self] (request: Request, context: StandInContext) in
                try await self.respond(to: request, context: context)
            },
            configuration: .init(address: .hostname(address, port: 0)),
            onServerRunning: { channel in
                bound.complete(.success(channel.localAddress?.port ?? 0))
            }
        )
        // A task of its own, so that start() can return while the server runs; stop() ends it
        // with a graceful shutdown: cancelling a serving task can drop a connection accepted
        // but not yet served, which NIO traps on ("Deinited NIOAsyncWriter without calling
        // finish()").
        let group = ServiceGroup(configuration: .init(services: [.init(service: application)], gracefulShutdownSignals: [],
                                                      logger: Logger(label: "stand-in") { _ in SwiftLogNoOpLogHandler() }))
        let task = Task {
            do {
                try await group.run()
                bound.complete(.failure(StandInServerError.stoppedBeforeListening))
            } catch {
                bound.complete(.failure(error))
            }
        }
        state.withLock { $0.task = task; $0.group = group }
        let port = try await bound.value
        state.withLock { $0.port = port }
    }

    /// Stops the server and waits until it has stopped: it stops accepting, gives requests
    /// being answered a second, and then cuts off those still waiting on a delay.
    public func stop() async {
        let (task, group): (Task<Void, Never>?, ServiceGroup?) = state.withLock { state in
            defer { state.task = nil; state.group = nil }
            return (state.task, state.group)
        }
        guard let task else { return }
        await group?.triggerGracefulShutdown()
        let cutOff = Task {
            try? await Task.sleep(for: .seconds(1))
            if !Task.isCancelled { task.cancel() }
        }
        await task.value
        cutOff.cancel()
        // Requests answered during the shutdown may still build URLs from the port.
        state.withLock { $0.port = nil }
    }

    // MARK: Addresses

    /// The port the server listens on; valid from ``start()`` until ``stop()`` has returned.
    public var port: Int {
        guard let port = state.withLock({ $0.port }) else {
            preconditionFailure("StandInHTTPServer is not running")
        }
        return port
    }

    /// `http://127.0.0.2:<port>`.
    public var baseURL: String {
        "http://\(address):\(port)"
    }

    /// The absolute URL of a path (with any query), e.g. `server.url("/orders?page=2")`.
    public func url(_ pathAndQuery: String) -> String {
        baseURL + pathAndQuery
    }

    // MARK: Scripting

    /// Answers requests for a method and path with a handler; `method` "*" matches any method.
    /// A later registration for the same method and path replaces an earlier one.
    public func on(_ method: String, _ path: String, handler: @escaping Handler) {
        let route = Route(method: method == "*" ? nil : method.uppercased(), path: path, handler: handler)
        state.withLock { $0.routes.append(route) }
    }

    /// Answers every request for a method and path the same way.
    public func on(_ method: String, _ path: String, respond response: StandInResponse) {
        on(method, path) { _ in response }
    }

    /// Answers requests for a method and path with these responses in turn, the last one
    /// repeating: e.g. `[503, 503, 200]` for a service that recovers.
    public func on(_ method: String, _ path: String, sequence responses: [StandInResponse]) {
        precondition(!responses.isEmpty, "a sequence needs at least one response")
        let next = Locked(0)
        on(method, path) { _ in
            let index = next.withLock { index -> Int in
                defer { index += 1 }
                return min(index, responses.count - 1)
            }
            return responses[index]
        }
    }

    // MARK: Inspection

    /// The requests received, oldest first; only those for `path` when it is given.
    public func requests(path: String? = nil) -> [StandInRequest] {
        let all = state.withLock { $0.requests }
        guard let path else { return all }
        return all.filter { $0.path == path }
    }

    /// Forgets the requests received so far; the scripted routes stay.
    public func clearRequests() {
        state.withLock { $0.requests.removeAll() }
    }

    // MARK: Serving

    private func respond(to request: Request, context: StandInContext) async throws -> Response {
        var request = request
        let body = try await request.collectBody(upTo: .max)
        let recorded = StandInRequest(
            method: request.method.rawValue,
            path: request.uri.path,
            query: request.uri.query,
            headers: request.headers.map { (name: $0.name.rawName, value: $0.value) },
            body: Array(body.readableBytesView),
            remotePort: context.remotePort
        )
        let handler: Handler? = state.withLock { state in
            state.requests.append(recorded)
            return state.routes.last {
                ($0.method == nil || $0.method == recorded.method) && $0.path == recorded.path
            }?.handler
        }
        let answer = try await handler?(recorded)
            ?? StandInResponse(status: 404, body: "no stand-in behaviour for \(recorded.method) \(recorded.path)")

        if let delay = answer.delay {
            try await Task.sleep(for: delay)
        }
        if answer.dropsConnection {
            await context.closeConnection()
            throw StandInServerError.connectionDropped
        }
        var fields = HTTPFields()
        for (name, value) in answer.headers {
            guard let fieldName = HTTPField.Name(name) else {
                preconditionFailure("invalid header name in a stand-in response: \(name)")
            }
            fields.append(HTTPField(name: fieldName, value: value))
        }
        // A response to HEAD has headers only; a body would be read as the next response.
        let bytes = request.method == .head ? [] : answer.body
        return Response(
            status: .init(code: answer.status),
            headers: fields,
            body: .init(byteBuffer: ByteBuffer(bytes: bytes))
        )
    }
}

/// Why the stand-in server did not do what a test asked.
public enum StandInServerError: Error, Sendable {
    /// The server stopped before it bound its port.
    case stoppedBeforeListening
    /// Thrown after hanging up on purpose, so that nothing is written to the closed connection.
    case connectionDropped
}
