import EsteiraCore
import Foundation
import StandIns
import Testing

/// Named rate limiters shared by every processor, and their pause on 429 / 503 Retry-After.
@Suite struct RateLimiterTests {
    static let kinds = """
        limiters:
          slow: { rate: 5, burst: 1 }
          partner: { rate: 100, burst: 10 }
        kinds:
          metered: { handler: noop, limiter: slow }
          partner.call: { handler: http, limiter: partner, backoffBase: 1, maxAttempts: 5 }
        """

    /// When the jobs `ids` first started, in epoch seconds, sorted.
    static func starts(_ stack: JobStack, _ ids: [UUID]) async throws -> [Double] {
        try await stack.pool.withConnection { c in
            try c.query("SELECT extract(epoch FROM first_started_at)::float8 FROM jobs WHERE id = ANY($1) ORDER BY 1", [ids])
                .map { try $0.decode(Double.self, at: 0) }
        }
    }

    @Test func aLimiterHoldsItsRateAcrossProcessorsWithoutSpendingAttempts() async throws {
        let stack = try await JobStack(kinds: Self.kinds)
        for _ in 0..<2 { try await stack.startProcessor() }
        // The relay publishes the jobs a limiter held back, at their time.
        try await stack.startScheduler()
        let ids = try await stack.enqueue((0..<25).map { _ in NewJob(kind: "metered") }).map(\.id)
        try await stack.waitForCount(.completed, ids.count, among: ids, timeout: .seconds(60))
        let starts = try await Self.starts(stack, ids)
        // 25 jobs at 5 a second with a burst of 1: 24 intervals of 0.2 s.
        let span = try #require(starts.last) - starts[0]
        #expect(span >= 24 * 0.2 * 0.95, "25 jobs started within \(span) s: faster than 5 a second")
        #expect(span <= 24 * 0.2 * 1.6, "25 jobs took \(span) s to start: far slower than 5 a second")
        // The limiter's grants: the time each held job reserved (its event's time plus its
        // wait), else its start. No second holds more than its five tokens (plus the burst of
        // one), and no job starts before its grant. Starts themselves may bunch when jobs held
        // back are delivered late (the relay's rounds, a loaded machine): their tokens were
        // spent at their reserved times.
        let grants = try await stack.pool.withConnection { c in
            try c.query("""
                SELECT extract(epoch FROM j.first_started_at)::float8,
                       extract(epoch FROM coalesce(max(e.at + make_interval(secs => (e.detail->>'wait_seconds')::float8)),
                                                   j.first_started_at))::float8
                FROM jobs j LEFT JOIN job_events e ON e.job_id = j.id AND e.detail->>'limiter' = 'slow'
                WHERE j.id = ANY($1) GROUP BY j.id ORDER BY 2
                """, [ids]).map { (start: try $0.decode(Double.self, at: 0), grant: try $0.decode(Double.self, at: 1)) }
        }
        let times = grants.map(\.grant)
        let busiest = times.map { t in times.filter { $0 >= t && $0 < t + 1 }.count }.max() ?? 0
        #expect(busiest <= 6, "\(busiest) tokens granted within one second: \(times)")
        let early = grants.filter { $0.start < $0.grant - RateLimiters.slack - 0.002 }
        #expect(early.isEmpty, "jobs started before their reserved token: \(early)")
        #expect(try await stack.scalar("SELECT max(attempts) FROM jobs WHERE id = ANY($1)", [ids], as: Int.self) == 1)
        let held = try await stack.scalar("""
            SELECT count(DISTINCT job_id)::int FROM job_events WHERE job_id = ANY($1) AND detail->>'limiter' = 'slow'
            """, [ids], as: Int.self)
        #expect(held >= 20, "only \(held) jobs were held back by the limiter")
    }

    @Test func handlersTakeTokensOfASharedLimiterToo() async throws {
        let stack = try await JobStack(kinds: Self.kinds)
        for _ in 0..<2 { try await stack.startProcessor() }
        // Two jobs on two processors, six tokens each, of a limiter of 5 a second with a burst of 1.
        let ids = try await stack.enqueue((0..<2).map { _ in NewJob(kind: "noop", payload: #"{"limiter": "slow", "tokens": 6}"#) }).map(\.id)
        try await stack.waitForCount(.completed, 2, among: ids, timeout: .seconds(30))
        let span = try await stack.scalar("""
            SELECT extract(epoch FROM max(finished_at) - min(started_at))::float8 FROM jobs WHERE id = ANY($1)
            """, [ids], as: Double.self)
        #expect(span >= 11 * 0.2 * 0.95, "12 tokens at 5 a second were taken within \(span) s")
        let unknown = try await stack.enqueue([NewJob(kind: "noop", payload: #"{"limiter": "nope"}"#)])[0].id
        let dead = try await stack.waitFor(unknown, .dead)
        #expect(dead.lastError?.contains("no rate limiter 'nope'") == true, "\(String(describing: dead.lastError))")
    }

    @Test func aRetryAfterPausesTheLimiterForEveryJobThatUsesIt() async throws {
        try await StandInHTTPServer.withServer { server in
            let first = FirstCall()
            server.on("POST", "/partner") { _ in
                first.take() ? .tooManyRequests(retryAfter: 3) : StandInResponse(status: 200, body: "{}")
            }
            let stack = try await JobStack(kinds: Self.kinds)
            let api = try await StackAPI(stack: stack)
            try await stack.startProcessor()
            try await stack.startScheduler()
            let payload = #"{"url": "\#(server.url("/partner"))"}"#
            let throttled = try await stack.enqueue([NewJob(kind: "partner.call", payload: payload)])[0].id
            _ = try await stack.waitFor(throttled, .retrying)
            let paused = try await api.call(.get, "/v1/limiters")
            let partner = (paused.json["limiters"] as? [[String: Any]])?.first { $0["name"] as? String == "partner" }
            #expect(partner?["paused_until"] != nil && partner?["pauses"] as? Int == 1, "\(paused.text)")
            // Jobs enqueued during the pause wait for its end, without spending attempts.
            let others = try await stack.enqueue((0..<5).map { _ in NewJob(kind: "partner.call", payload: payload) }).map(\.id)
            try await stack.waitForCount(.completed, 6, among: others + [throttled], timeout: .seconds(60))
            let pausedAt = try #require(first.at)
            let requests = try await Self.starts(stack, others)
            #expect(requests.allSatisfy { $0 >= pausedAt.timeIntervalSince1970 + 2.9 }, "started during the pause: \(requests) vs \(pausedAt.timeIntervalSince1970)")
            #expect(try await stack.scalar("SELECT max(attempts) FROM jobs WHERE id = ANY($1)", [others], as: Int.self) == 1)
            #expect(try await stack.job(throttled).attempts == 2)
            let events = try await stack.events(others[0])
            #expect(events.contains { $0.detail?.contains(#""limiter": "partner""#) == true }, "\(events)")
            #expect(server.requests(path: "/partner").count == 7)
        }
    }
}

/// Tells the first call from the others, and when it came.
final class FirstCall: @unchecked Sendable {
    private let lock = NSLock()
    private var time: Date?

    /// True for the first call only.
    func take() -> Bool {
        lock.withLock {
            defer { if time == nil { time = Date() } }
            return time == nil
        }
    }

    var at: Date? { lock.withLock { time } }
}
