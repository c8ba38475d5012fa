import EsteiraCore
import EsteiraService
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Postgres
import ServiceLifecycle

/// A row of `messaging_changes`: an INSERT, UPDATE or DELETE of a message or a campaign.
struct FeedChange: Sendable {
    var id: Int64
    var owner: UUID
    var table: String
    var contact: UUID?
    var op: String
    /// The row after the change (before it, for a DELETE), as JSON.
    var row: String

    static let columns = "id, owner_id, tabela, contato_id, op, row_data::text"

    init(row r: PostgresRow) throws {
        id = try r.decode(Int64.self, at: 0)
        owner = try r.decode(UUID.self, at: 1)
        table = try r.decode(String.self, at: 2)
        contact = try r.decode(UUID?.self, at: 3)
        op = try r.decode(String.self, at: 4)
        row = try r.decode(String.self, at: 5)
    }

    /// The Server-Sent Event: `id`, `event: change`, and `{"op", "table", "row"}`.
    var event: String {
        "id: \(id)\nevent: change\ndata: {\"op\":\"\(op)\",\"table\":\"\(table)\",\"row\":\(row)}\n\n"
    }
}

/// What one feed follows: a contact's messages, or an owner's campaigns.
struct FeedTopic: Sendable, Equatable {
    var owner: UUID
    /// nil: the owner's campaigns.
    var contact: UUID?

    func matches(_ c: FeedChange) -> Bool {
        guard c.owner == owner else { return false }
        if let contact { return c.table == "mensagens" && c.contact == contact }
        return c.table == "campanhas"
    }

    /// Changes of this topic after `after` up to `upTo`, oldest first, at most `limit`
    /// (through `messaging_changes_contato` or `messaging_changes_owner`).
    func changes(after: Int64, upTo: Int64, limit: Int, on c: PostgresConnection) throws -> [FeedChange] {
        if let contact {
            return try c.query(Self.contactSQL, [contact, after, upTo, owner, limit]).map(FeedChange.init(row:))
        }
        return try c.query(Self.campaignsSQL, [owner, after, upTo, limit]).map(FeedChange.init(row:))
    }

    /// Contact `$1`'s changes after `$2` up to `$3` of owner `$4`, at most `$5`.
    static let contactSQL = """
        SELECT \(FeedChange.columns) FROM messaging_changes WHERE contato_id = $1 AND id > $2 AND id <= $3 AND owner_id = $4
        ORDER BY id LIMIT $5
        """
    /// Owner `$1`'s campaign changes after `$2` up to `$3`, at most `$4`.
    static let campaignsSQL = """
        SELECT \(FeedChange.columns) FROM messaging_changes WHERE owner_id = $1 AND tabela = 'campanhas' AND id > $2 AND id <= $3
        ORDER BY id LIMIT $4
        """
}

/// The api's one reader of `messaging_changes`: the change feed looks for new rows every
/// 20 ms (the triggers do not notify: see the migration); when its high-water mark moves
/// this reads the new changes once and hands each open stream those of its topic, so a
/// thousand open streams cost one query per commit, not a thousand. A stream that falls too
/// far behind is ended (its client reconnects with Last-Event-ID and catches up from the table).
final class MessagingFeed: Service, @unchecked Sendable {
    let changes: ChangeFeed
    let pool: PostgresPool
    let logger: Logger
    private let lock = NSLock()
    /// Every change up to this id has been handed to the streams open then (-1: not started).
    private var handed: Int64 = -1
    /// When the streams were last told that nothing happened (only the feed's task uses it).
    private var lastQuiet = ContinuousClock.now
    private var streams: [UUID: (topic: FeedTopic, continuation: AsyncStream<[FeedChange]>.Continuation)] = [:]

    /// Seconds between keep-alive lines of a quiet stream (a client gone is noticed at the next).
    let keepAlive: Int

    init(configuration: PostgresConfiguration, pool: PostgresPool, keepAlive: Int = 15, logger: Logger) {
        self.keepAlive = keepAlive
        changes = ChangeFeed(configuration: configuration, table: "messaging_changes", pollInterval: .milliseconds(20),
                             logger: logger)
        self.pool = pool
        self.logger = logger
    }

    func run() async throws {
        let changes = self.changes
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            DispatchQueue.global().async { changes.start(); c.resume() }
        }
        // Passive: the streams this hands out to keep the change feed looking often (hold()).
        for await mark in changes.subscribe(active: false).cancelOnGracefulShutdown() {
            do {
                try await hand(upTo: mark)
            } catch {
                logger.warning("messaging feed could not read changes; retrying", metadata: ["error": "\(error)"])
                try? await Task.sleep(for: .seconds(1))
            }
        }
        changes.stop()
        let all = lock.withLock { () -> [AsyncStream<[FeedChange]>.Continuation] in defer { streams.removeAll() }; return streams.values.map(\.continuation) }
        for c in all { c.finish() }
    }

    /// Reads the changes up to `mark` and hands them out; a quiet tick hands out nothing (the
    /// streams count it for their keep-alive).
    private func hand(upTo mark: Int64) async throws {
        var from = lock.withLock { handed }
        // Before the first mark, or with no stream open, there is no one to read for: the
        // mark moves on (under the lock `open` takes, so a stream opened now starts after it).
        if lock.withLock({ () -> Bool in
            guard from < 0 || streams.isEmpty else { return false }
            handed = max(handed, mark)
            return true
        }) { return }
        if from >= mark {
            // Nothing new: the streams hear of it once a second (their keep-alive counts seconds).
            if ContinuousClock.now - lastQuiet >= .seconds(1) { lastQuiet = .now; give([], upTo: from) }
            return
        }
        while from < mark {
            let after = from
            let rows = try await pool.withConnection {
                try $0.query(Self.readSQL, [after, mark]).map(FeedChange.init(row:))
            }
            from = rows.count < 2000 ? mark : rows.last!.id
            give(rows, upTo: from)
        }
    }

    /// Hands `rows` to the streams and moves the mark, under one lock: a stream opened
    /// after it starts from the new mark and misses nothing.
    private func give(_ rows: [FeedChange], upTo mark: Int64) {
        let ended = lock.withLock { () -> [UUID] in
            handed = mark
            var ended: [UUID] = []
            for (id, s) in streams {
                let mine = rows.isEmpty ? [] : rows.filter(s.topic.matches)
                if !rows.isEmpty && mine.isEmpty { continue }
                if case .dropped = s.continuation.yield(mine) { ended.append(id) }
            }
            return ended
        }
        for id in ended {
            logger.info("a feed stream fell behind; ended (its client resumes with Last-Event-ID)")
            lock.withLock { streams.removeValue(forKey: id) }?.continuation.finish()
        }
    }

    /// Every change after `$1` up to `$2`, at most 2,000.
    static let readSQL = "SELECT \(FeedChange.columns) FROM messaging_changes WHERE id > $1 AND id <= $2 ORDER BY id LIMIT 2000"

    /// Every change up to this id has been handed out (-1: not started).
    var mark: Int64 { lock.withLock { handed } }

    /// Every change up to this id is committed, as of a look that began now: where a stream
    /// that starts "from now" (or a page rendered now) starts. The handed-out mark may be
    /// behind it by a second while no stream is open.
    func freshMark() async -> Int64 {
        max(mark, await changes.freshMark())
    }

    /// Opens a stream of `topic`'s changes after the returned mark (-1: the feed has not
    /// started; the caller refuses).
    func open(_ topic: FeedTopic) -> (AsyncStream<[FeedChange]>, Int64) {
        let id = UUID()
        let (stream, continuation) = AsyncStream<[FeedChange]>.makeStream(bufferingPolicy: .bufferingOldest(512))
        let mark = lock.withLock { () -> Int64 in
            streams[id] = (topic, continuation)
            return handed
        }
        changes.hold()
        let changes = self.changes
        continuation.onTermination = { [weak self] _ in
            _ = self?.lock.withLock { self?.streams.removeValue(forKey: id) }
            changes.release()
        }
        return (stream, mark)
    }

    /// The Server-Sent Events of `topic`: from `Last-Event-ID` (or `last_event_id`) when
    /// given, exactly the changes after it; else those from now on. A keep-alive comment
    /// after ``keepAlive`` quiet seconds.
    func response(_ request: Request, topic: FeedTopic, principal: UUID, limits: PrincipalLimits?) async throws -> Response {
        let resume = try EventStreams.resumeAfter(request)
        try limits?.openStreamOrRefuse(principal)
        // An api that has just started reads its first mark within moments.
        let deadline = ContinuousClock.now + .seconds(10)
        while self.mark < 0, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        guard self.mark >= 0 else {
            limits?.closeStream(principal)
            throw Problem(.serviceUnavailable, detail: "the feed could not read the change log; retry in a second", headers: [.retryAfter: "1"])
        }
        let (stream, mark) = open(topic)
        // From now: as of a look that began after the stream was opened (the handed-out mark
        // may be a second old while no stream was open).
        let now = resume == nil ? await freshMark() : mark
        let pool = self.pool, keepAlive = self.keepAlive
        return Response(status: .ok, headers: EventStreams.headers, body: ResponseBody { writer in
            defer { limits?.closeStream(principal) }
            let out = SSEOutput(writer: writer)
            try await out.write("retry: 2000\n: esteira messaging feed\n\n")
            var last = resume ?? now
            // What the client missed, from the table; then what the feed hands out.
            while last < mark {
                let from = last
                let rows = try await pool.withConnection { try topic.changes(after: from, upTo: mark, limit: 500, on: $0) }
                if !rows.isEmpty { try await out.write(rows.map(\.event).joined()) }
                last = rows.count < 500 ? mark : rows.last!.id
            }
            _ = try await cancelOnGracefulShutdown {
                var quiet = 0
                for await rows in stream {
                    let fresh = rows.filter { $0.id > last }
                    guard let newest = fresh.last else {
                        quiet += 1
                        if quiet >= keepAlive { quiet = 0; try await out.write(": keep-alive\n\n") }
                        continue
                    }
                    quiet = 0
                    try await out.write(fresh.map(\.event).joined())
                    last = newest.id
                }
            }
            try await out.finish()
        })
    }
}
