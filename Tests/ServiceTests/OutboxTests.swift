import EsteiraCore
import Foundation
import Postgres
import Testing

/// The enqueue side of the outbox: marking rows published never waits for (or deadlocks
/// with) a processor that holds them, and a claimed job counts as published.
@Suite struct OutboxTests {
    @Test func markPublishedSkipsRowsOthersHoldAndClaimsMarkThem() async throws {
        let database = try await ScratchDatabase.migrated()
        let store = JobStore(catalog: .builtIn)
        let writer = try database.connect(), holder = try database.connect()
        defer { writer.close(); holder.close() }
        let outcomes = try store.insert([NewJob(kind: "noop"), NewJob(kind: "noop")], on: writer)
        let (held, free) = (outcomes[0].id, outcomes[1].id)

        // Another transaction (a processor's claim, say) holds the first row.
        try holder.execute("BEGIN")
        _ = try holder.query("SELECT id FROM jobs WHERE id = $1 FOR UPDATE", [held])
        // Waiting for the lock would hit this timeout and throw instead of returning.
        try writer.execute("SET statement_timeout = '30s'")
        let marked = try store.markPublished([held, free], on: writer)
        #expect(marked == 1, "only the free row is marked, without waiting for the held one")
        try holder.execute("ROLLBACK")

        // The claim of the skipped job marks it published, so the relay leaves it alone.
        let started2 = try AttemptStore.start([AttemptClaim(id: held, attempt: 1, redelivered: false)], worker: "test", on: writer)
        #expect(started2.map(\.id) == [held])
        let unpublished = try writer.query("SELECT count(*) FROM jobs WHERE published_at IS NULL").first!.decode(Int.self, at: 0)
        #expect(unpublished == 0)
    }
}
