import AMQP
import EsteiraCore
import Foundation
import Postgres
import StandIns
import Testing

/// The enqueue side of the outbox: a job is written with its outbox row; marking jobs
/// published deletes their outbox rows and never waits for (or deadlocks with) a processor
/// that holds a job's row, and a claimed job counts as published.
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
        #expect(try writer.query("SELECT count(*) FROM job_outbox WHERE job_id = ANY($1::uuid[])", [[held, free]])
                    .first!.decode(Int.self, at: 0) == 2, "each job is written with its outbox row")
        let marked = try store.markPublished([held, free], on: writer)
        #expect(marked == 2, "both outbox rows go, without waiting for the held job row")
        try holder.execute("ROLLBACK")
        // A job without an outbox row reads as published at its enqueue time.
        let record = try #require(try store.job(free, on: writer))
        #expect(record.publishedAt == record.createdAt)
        // The relay's clean-up keeps an outbox row only for a job still waiting to be published.
        try writer.execute("UPDATE jobs SET published_at = now() WHERE id = $1", [free])
        try writer.execute("INSERT INTO job_outbox (job_id, due_at) VALUES ($1, now() - interval '1 minute'), ($2, now() - interval '1 minute')",
                           [held, free])
        #expect(try store.job(held, on: writer)?.publishedAt == nil, "an outbox row means not published yet")
        try writer.execute(OutboxRelay.staleSQL, [5.0])
        #expect(try writer.query("SELECT job_id FROM job_outbox").map { try $0.decode(UUID.self, at: 0) } == [held])

        // The claim of the skipped job marks it published, so the relay leaves it alone.
        let started2 = try AttemptStore.start([AttemptClaim(id: held, attempt: 1, redelivered: false)], worker: "test", on: writer)
        #expect(started2.map(\.id) == [held])
        let unpublished = try writer.query("SELECT count(*) FROM jobs WHERE published_at IS NULL").first!.decode(Int.self, at: 0)
        #expect(unpublished == 0)
        #expect(try store.job(held, on: writer)?.publishedAt != nil)
    }

    /// A retry whose message is lost from its retry tier (purged here; a broker node gone with
    /// it in a cluster) is published again by the relay once the watch after its due time
    /// runs out, and the job completes at its next attempt; the watch row goes with the claim.
    /// The relay leaves the tail of a large enqueue to its enqueuer: the rows of its first n
    /// jobs are due n / relayPace seconds after the enqueue, counted across a fan-out's
    /// chunks; a delayed job's row stays due at its run-after.
    @Test func aLargeEnqueuesOutboxRowsFallDueAtTheRelaysPace() async throws {
        let database = try await ScratchDatabase.migrated()
        let store = JobStore(catalog: .builtIn)
        let c = try database.connect()
        defer { c.close() }
        let later = Date().addingTimeInterval(3600)
        try c.execute("BEGIN")
        let first = try store.insert((0..<3).map { _ in NewJob(kind: "noop") }, on: c)
        let second = try store.insert([NewJob(kind: "noop"), NewJob(kind: "noop", runAfter: later)], on: c, position: 3000)
        // Seconds after the transaction's start (now()), per job.
        var due: [UUID: Double] = [:]
        for row in try c.query("SELECT job_id, extract(epoch FROM due_at - now())::float8 FROM job_outbox") {
            due[try row.decode(UUID.self, at: 0)] = try row.decode(Double.self, at: 1)
        }
        try c.execute("COMMIT")
        let pace = Double(JobStore.relayPace)
        for outcome in first {
            #expect(abs(due[outcome.id]! - 3 / pace) < 0.000_01, "the first 3 jobs of the enqueue")
        }
        #expect(abs(due[second[0].id]! - 3002 / pace) < 0.000_01, "a chunk of 2 at position 3,000")
        #expect(abs(due[second[1].id]! - later.timeIntervalSinceNow) < 5, "a delayed job's row is due at its run-after")
    }

    /// A fan-out's chunk written after the earlier chunks were published falls due after its
    /// own jobs only, not after every job of the fan-out before it: the relay takes over a
    /// late chunk its enqueuer died before publishing as soon as it would an early one.
    @Test func aFanOutsLateChunksFallDueAfterTheJobsStillToBePublished() async throws {
        let stack = try await JobStack()
        let due = Locked<[[Double]]>([])
        let written = try await stack.enqueuer.enqueueInChunks((0..<30).map { _ in NewJob(kind: "noop") }, size: 10, before: { _, _ in true },
                                                               afterward: { c, _, outcomes in
            let seconds = try c.query("SELECT extract(epoch FROM due_at - now())::float8 FROM job_outbox WHERE job_id = ANY($1)", [outcomes.map(\.id)])
                .map { try $0.decode(Double.self, at: 0) }
            due.withLock { $0.append(seconds) }
        }, committed: { _ in
            // The next chunk is written once this one is published (its outbox rows gone).
            for _ in 0..<200 where try await stack.scalar("SELECT count(*)::int FROM job_outbox", as: Int.self) > 0 {
                try await Task.sleep(for: .milliseconds(25))
            }
        })
        #expect(written.count == 30)
        let pace = Double(JobStore.relayPace)
        let chunks = due.withLock { $0 }
        #expect(chunks.count == 3 && chunks.allSatisfy { $0.count == 10 })
        for (n, chunk) in chunks.enumerated() {
            #expect(chunk.allSatisfy { abs($0 - 10 / pace) < 0.000_01 }, "chunk \(n): \(chunk)")
        }
        #expect(await stack.enqueuer.backlog(of: "noop") == 30, "every chunk was published")
    }

    @Test func aRetryLostFromItsTierIsPublishedAgainAfterItsWatch() async throws {
        try await StandInHTTPServer.withServer { server in
            server.on("POST", "/hook", sequence: [StandInResponse(status: 503), .json(#"{"ok": true}"#)])
            let stack = try await JobStack(kinds: """
                kinds:
                  http: { maxAttempts: 3, backoffBase: 5, timeout: 5 }
                """)
            try await stack.startProcessor(environment: ["ESTEIRA_PROCESSOR_RETRY_WATCH": "2"])
            let id = try await stack.enqueue([NewJob(kind: "http", payload: #"{"url": "\#(server.url("/hook"))"}"#)])[0].id
            _ = try await stack.waitFor(id, .retrying, timeout: .seconds(30))
            let due = try await stack.scalar("SELECT extract(epoch FROM o.due_at - j.run_after)::float8 FROM job_outbox o JOIN jobs j ON j.id = o.job_id WHERE o.job_id = $1",
                                             [id], as: Double.self)
            #expect(abs(due - 2) < 0.01, "the watch row is due 2 s after the retry's run-after (\(due))")
            let broker = try AMQPConnection(AMQPConfiguration(url: stack.amqpURL))
            defer { try? broker.close() }
            let channel = try broker.openChannel()
            #expect(try channel.purgeQueue("esteira.retry.5s") == 1, "the retry's message waited in its tier")
            let job = try await stack.waitFor(id, .completed, timeout: .seconds(30))
            #expect(job.attempts == 2)
            // The relay's publish shows as a "released" queued event between the retry and the run.
            let events = try await stack.events(id).map { $0.status + ($0.detail?.contains("released") == true ? " (relay)" : "") }
            #expect(events == ["queued", "running", "retrying", "queued (relay)", "running", "completed"], "\(events)")
            #expect(try await stack.scalar("SELECT count(*) FROM job_outbox WHERE job_id = $1", [id], as: Int.self) == 0)
        }
    }
}
