import EsteiraCore
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Postgres
import ServiceLifecycle

/// Server-Sent Events of job state changes, for the api's `/v1/events` and the dashboard's
/// live pages: filtered by kind, job and owner, resumable with Last-Event-ID (the header
/// wins over the `last_event_id` query parameter), a keep-alive comment when quiet.
public struct JobEventStream: Sendable {
    public let pool: PostgresPool
    public let feed: ChangeFeed
    public let limits: PrincipalLimits
    /// A comment line is sent after this many quiet seconds, so proxies keep the stream and
    /// a gone client is noticed (the second write after it left fails).
    public var keepAlive: Int

    public init(pool: PostgresPool, feed: ChangeFeed, limits: PrincipalLimits, keepAlive: Int = 15) {
        self.pool = pool
        self.feed = feed
        self.limits = limits
        self.keepAlive = keepAlive
    }

    /// The stream of `principal`'s view (`ownerID`: nil for an admin's everything), or a
    /// problem: a bad kind or event id (400), an unknown job (404), too many streams (429).
    public func response(_ request: Request, principal: Principal, kind: String?, jobID: UUID?, ownerID: UUID?,
                         logger: Logger) async throws -> Response {
        if let kind, !KindCatalog.isValidName(kind) { throw Problem(.badRequest, detail: "'\(kind)' is not a kind name", field: "kind") }
        let resumeAfter = try EventStreams.resumeAfter(request)
        if let jobID {
            let scope = ownerID.map { AccessScope(ownerID: $0) } ?? .everything
            let exists = try await pool.withConnection { try JobQueries.job(jobID, scope: scope, on: $0) != nil }
            guard exists else { throw Problem.jobNotFound(jobID) }
        }
        try limits.openStreamOrRefuse(principal.id)
        let pool = self.pool, feed = self.feed, keepAlive = self.keepAlive, limits = self.limits
        let resume = resumeAfter, owner = ownerID, principalID = principal.id
        let ticks = feed.subscribe()
        return Response(status: .ok, headers: EventStreams.headers, body: ResponseBody { writer in
            defer { limits.closeStream(principalID) }
            // Without Last-Event-ID: a job's whole history, or only what happens from now on
            // ("now" is taken before the opening lines go out, so a client that has read them
            // misses nothing that happens afterwards).
            var start: Int64
            if let resume { start = resume } else { start = jobID != nil ? 0 : await feed.freshMark() }
            // The feed has not read its first mark yet (PostgreSQL was slow to answer it):
            // "now" is the newest event, not whatever mark comes first, which may be later
            // than events this client must see.
            if start < 0 { start = try await pool.withConnection { try feed.latestID(on: $0) } }
            try await writer.write(ByteBuffer(string: "retry: 2000\n: esteira job events\n\n"))
            let out = SSEOutput(writer: writer)
            // A graceful shutdown ends the stream (the client reconnects to another api).
            _ = try await cancelOnGracefulShutdown {
            var last = start
            var quiet = 0
            for await mark in ticks {
                if last < 0 { last = mark }
                var sent = 0
                while last < mark {
                    let from = last
                    let batch = try await pool.withConnection {
                        try ChangeFeed.jobEvents(after: from, upTo: mark, jobID: jobID, kind: kind, ownerID: owner, on: $0)
                    }
                    var text = ""
                    for e in batch {
                        let data = try APIJSON.encoder.encode(EventView(e))
                        text += "id: \(e.id)\nevent: job\ndata: \(String(decoding: data, as: UTF8.self))\n\n"
                    }
                    if !text.isEmpty { try await out.write(text) }
                    sent += batch.count
                    last = batch.count < 500 ? mark : batch.last!.id
                }
                if sent == 0 {
                    quiet += 1
                    if quiet >= keepAlive {
                        quiet = 0
                        try await out.write(": keep-alive\n\n")
                    }
                } else {
                    quiet = 0
                }
            }
            }
            logger.debug("event stream ended")
            try await out.finish()
        })
    }
}

/// What every Server-Sent-Events route of the api does alike.
public enum EventStreams {
    /// The response headers: the type, no caching, no proxy buffering.
    public static let headers: HTTPFields = [.contentType: "text/event-stream", .cacheControl: "no-store",
                                             HTTPField.Name("X-Accel-Buffering")!: "no"]

    /// The event id a stream resumes after: the `Last-Event-ID` header or the
    /// `last_event_id` query parameter (EventSource sends the header on reconnects, a first
    /// connection can only set the query); each given one must be an event id, and the header
    /// wins. Nil when neither is given.
    /// - Throws: a 400 problem naming the one that is not an event id.
    public static func resumeAfter(_ request: Request) throws -> Int64? {
        func eventID(_ text: String?, field: String) throws -> Int64? {
            guard let text else { return nil }
            guard let n = Int64(text.trimmingCharacters(in: .whitespaces)), n >= 0 else {
                throw Problem(.badRequest, detail: "must be the id of an event this stream sent", field: field)
            }
            return n
        }
        let fromQuery = try eventID(request.uri.queryParameters.get("last_event_id").map { String($0) }, field: "last_event_id")
        let fromHeader = try eventID(request.headers[HTTPField.Name("Last-Event-ID")!], field: "Last-Event-ID")
        return fromHeader ?? fromQuery
    }
}

/// The response writer, shared with the task that streams (it is `inout` in the body
/// closure, which a `@Sendable` closure cannot capture).
public final class SSEOutput: @unchecked Sendable {
    private var writer: any ResponseBodyWriter
    public init(writer: any ResponseBodyWriter) { self.writer = writer }
    public func write(_ text: String) async throws { try await writer.write(ByteBuffer(string: text)) }
    public func finish() async throws { try await writer.finish(nil) }
}
