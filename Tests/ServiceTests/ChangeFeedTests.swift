import EsteiraCore
import Foundation
import Logging
import Postgres
import Testing

/// The change feed looks often only while an active stream waits for it, and a stream that
/// starts "from now" gets a mark from a look made after it asked, not an idle one.
@Suite struct ChangeFeedTests {
    /// A feed over a log table of its own that looks every 20 ms while active and (in effect)
    /// never while idle, unless woken.
    private static func feed(_ database: ScratchDatabase) throws -> (ChangeFeed, PostgresConnection) {
        let c = try database.connect()
        try c.execute("CREATE TABLE feed_log (id bigserial PRIMARY KEY)")
        let feed = ChangeFeed(configuration: try PostgresConfiguration(url: database.url), table: "feed_log",
                              pollInterval: .milliseconds(20), idlePollInterval: .seconds(600), logger: Logger(label: "test"))
        feed.start()
        return (feed, c)
    }

    private static func append(_ n: Int, on c: PostgresConnection) throws {
        try c.execute("INSERT INTO feed_log SELECT FROM generate_series(1, $1)", [n])
    }

    /// Waits up to 5 s for `condition`.
    private static func eventually(_ condition: () -> Bool) async throws -> Bool {
        let deadline = ContinuousClock.now + .seconds(5)
        while ContinuousClock.now < deadline {
            if condition() { return true }
            try await Task.sleep(for: .milliseconds(10))
        }
        return condition()
    }

    @Test func anIdleFeedDoesNotLookUntilAskedAndAFreshMarkIsCurrent() async throws {
        let database = try ScratchDatabase()
        let (feed, c) = try Self.feed(database)
        defer { feed.stop(); c.close() }
        #expect(feed.highWater == 0)
        try Self.append(3, on: c)
        try await Task.sleep(for: .milliseconds(300))
        // Idle: nobody waits, so it has not looked.
        #expect(feed.highWater == 0)
        let start = ContinuousClock.now
        #expect(await feed.freshMark() == 3)
        #expect(ContinuousClock.now - start < .seconds(1), "a fresh mark waits for one look, not for the timeout")
        // A passive subscriber does not make it look; a hold does.
        let passive = feed.subscribe(active: false)
        try Self.append(2, on: c)
        try await Task.sleep(for: .milliseconds(300))
        #expect(feed.highWater == 3)
        feed.hold()
        #expect(try await Self.eventually { feed.highWater == 5 })
        feed.release()
        _ = passive
    }

    @Test func anActiveSubscriberGetsEveryLooksMark() async throws {
        let database = try ScratchDatabase()
        let (feed, c) = try Self.feed(database)
        defer { feed.stop(); c.close() }
        let marks = feed.subscribe()
        var iterator = marks.makeAsyncIterator()
        #expect(await iterator.next() == 0)
        try Self.append(4, on: c)
        var seen: Int64 = 0
        let deadline = ContinuousClock.now + .seconds(5)
        while seen < 4, ContinuousClock.now < deadline, let mark = await iterator.next() { seen = mark }
        #expect(seen == 4)
    }

    @Test func aFreshMarkFromAFeedThatCannotLookIsTheMarkAfterItsTimeout() async throws {
        // Started against a server that is not there: no look will come.
        let feed = ChangeFeed(configuration: try PostgresConfiguration(url: "postgres://esteira@127.0.0.1:1/none"),
                              table: "feed_log", logger: Logger(label: "test"))
        feed.start(timeout: 0.1)
        defer { feed.stop() }
        let start = ContinuousClock.now
        #expect(await feed.freshMark(timeout: .milliseconds(300)) == -1)
        let waited = ContinuousClock.now - start
        #expect(waited >= .milliseconds(300) && waited < .seconds(3), "\(waited)")
    }
}
