@testable import EsteiraCore
import Foundation
import Testing

/// Global and per-key concurrency: limits that hold across every processor instance.
@Suite struct ConcurrencyLimitTests {
    static let kinds = """
        kinds:
          capped: { handler: noop, globalConcurrency: 3, heartbeatTimeout: 30 }
          convo: { handler: noop, concurrencyKey: payload.conversation, heartbeatTimeout: 30 }
          single: { handler: noop, globalConcurrency: 1, heartbeatTimeout: 3 }
          both: { handler: noop, globalConcurrency: 1, concurrencyKey: payload.k, heartbeatTimeout: 3 }
        """

    /// Samples, every 10 ms until stopped, how many jobs of `kind` are running, in all and
    /// per value of `keyField`; keeps the peaks.
    final class Sampler: @unchecked Sendable {
        private let lock = NSLock()
        private var peakTotal = 0
        private var peakPerKey = 0
        private var keysAtOnce = 0
        private var task: Task<Void, Never>?

        init(_ stack: JobStack, kind: String, keyField: String = "none") {
            task = Task { [weak self] in
                while !Task.isCancelled {
                    if let rows = try? await stack.pool.withConnection({ c in
                        try c.query("""
                            SELECT coalesce(payload->>$2, ''), count(*)::int FROM jobs
                            WHERE kind = $1 AND status = 'running' GROUP BY 1
                            """, [kind, keyField]).map { try $0.decode(Int.self, at: 1) }
                    }) {
                        self?.lock.withLock {
                            guard let self else { return }
                            peakTotal = max(peakTotal, rows.reduce(0, +))
                            peakPerKey = max(peakPerKey, rows.max() ?? 0)
                            keysAtOnce = max(keysAtOnce, rows.count)
                        }
                    }
                    try? await Task.sleep(for: .milliseconds(10))
                }
            }
        }

        /// Stops sampling; the peaks: running at once in all, of one key, and keys at once.
        func stop() async -> (total: Int, perKey: Int, keys: Int) {
            task?.cancel()
            await task?.value
            return lock.withLock { (peakTotal, peakPerKey, keysAtOnce) }
        }
    }

    @Test func aGlobalLimitHoldsAcrossProcessorsAndSpendsNoAttempt() async throws {
        let stack = try await JobStack(kinds: Self.kinds)
        for _ in 0..<4 { try await stack.startProcessor() }
        let sampler = Sampler(stack, kind: "capped")
        let capped = try await stack.enqueue((0..<24).map { _ in NewJob(kind: "capped", payload: #"{"sleep_ms": 300}"#) }).map(\.id)
        // Jobs of other kinds do not wait behind the limited ones.
        let plain = try await stack.enqueue((0..<20).map { _ in NewJob(kind: "noop") }).map(\.id)
        try await stack.waitForCount(.completed, plain.count, among: plain, timeout: .seconds(30))
        let cappedDone = try await stack.scalar("SELECT count(*) FROM jobs WHERE id = ANY($1) AND status = 'completed'", [capped], as: Int.self)
        #expect(cappedDone < capped.count, "the plain jobs finished only after every limited one")
        try await stack.waitForCount(.completed, capped.count, among: capped, timeout: .seconds(60))
        let peaks = await sampler.stop()
        #expect(peaks.total == 3, "peak running at once: \(peaks.total)")
        // Waiting spent no attempt, and the waits are on the jobs' histories.
        #expect(try await stack.scalar("SELECT max(attempts) FROM jobs WHERE id = ANY($1)", [capped], as: Int.self) == 1)
        let waited = try await stack.scalar("""
            SELECT count(DISTINCT job_id)::int FROM job_events WHERE job_id = ANY($1) AND detail->>'waiting_for' = 'concurrency'
            """, [capped], as: Int.self)
        #expect(waited > 0, "no job waited for a slot")
        #expect(try await stack.scalar("SELECT count(*) FROM job_leases", as: Int.self) == 0)
        #expect(try await stack.scalar("SELECT count(*) FROM job_outbox WHERE waiting_kind IS NOT NULL", as: Int.self) == 0)
    }

    @Test func aPerKeyLimitIsALockPerKeyThatLetsOtherKeysRun() async throws {
        let stack = try await JobStack(kinds: Self.kinds)
        for _ in 0..<2 { try await stack.startProcessor() }
        let sampler = Sampler(stack, kind: "convo", keyField: "conversation")
        let jobs = try await stack.enqueue((0..<16).map { i in
            NewJob(kind: "convo", payload: #"{"conversation": "\#(["a", "b"][i % 2])", "sleep_ms": 200}"#)
        }).map(\.id)
        try await stack.waitForCount(.completed, jobs.count, among: jobs, timeout: .seconds(60))
        let peaks = await sampler.stop()
        #expect(peaks.perKey == 1, "one conversation ran \(peaks.perKey) jobs at once")
        #expect(peaks.keys == 2, "the two conversations never ran at the same time")
        #expect(try await stack.scalar("SELECT max(attempts) FROM jobs WHERE id = ANY($1)", [jobs], as: Int.self) == 1)
    }

    /// A per-key limit alone locks the keys a claim reads, not the kind: while one claim holds
    /// conversation a's lock, a claim of another conversation (in another stripe) goes ahead,
    /// and a second claim of a waits until the first ends (told by the server's clock inside
    /// each transaction, so a loaded machine cannot make it pass or fail).
    @Test func aPerKeyClaimLocksItsKeysNotTheKind() async throws {
        let stack = try await JobStack(kinds: Self.kinds)
        let limit = KindCatalog.ConcurrencyLimit(keyPath: "payload.conversation")
        let a = #""a""#
        let b = try await stack.scalar("""
            SELECT k FROM (SELECT '"' || i || '"' AS k FROM generate_series(1, 100) i) t
            WHERE hashtext(k) & 63 <> hashtext($1) & 63 LIMIT 1
            """, [a], as: String.self)
        /// Claims `key`, holds it `seconds`, and returns the server's time just before the commit.
        func claim(_ key: String, holding seconds: Double = 0) async throws -> Double {
            try await stack.pool.transaction { c in
                _ = try ConcurrencySlots.lockAndRead(kind: "convo", limit: limit, keys: [key], on: c)
                if seconds > 0 { _ = try c.query("SELECT pg_sleep($1)", [seconds]) }
                return try c.query("SELECT extract(epoch FROM clock_timestamp())::float8").first!.decode(Double.self, at: 0)
            }
        }
        let holder = Task { try await claim(a, holding: 5) }
        let deadline = ContinuousClock.now + .seconds(30)
        while try await stack.scalar("""
            SELECT count(*)::int FROM pg_locks
            WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
            """, as: Int.self) == 0 {
            guard ContinuousClock.now < deadline else {
                _ = try await holder.value // its error, if it failed
                Issue.record("the first claim never took its key's lock")
                return
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        let other = try await claim(b)
        let same = try await claim(a)
        let held = try await holder.value
        #expect(other < held, "another conversation's claim ended only after conversation a's claim did")
        #expect(same > held, "a second claim of conversation a ended before the first did: it did not wait")
    }

    @Test func aKilledProcessorsSlotIsFreedByTheRescueAndNothingRunsTwiceAtOnce() async throws {
        let stack = try await JobStack(kinds: Self.kinds)
        let first = try await stack.startProcessor()
        let sampler = Sampler(stack, kind: "single")
        let holder = try await stack.enqueue([NewJob(kind: "single", payload: #"{"sleep_ms": 2500}"#)])[0].id
        try await stack.waitFor(holder, .running, timeout: .seconds(30))
        let waiter = try await stack.enqueue([NewJob(kind: "single", payload: #"{"sleep_ms": 100}"#)])[0].id
        // It waits for the slot, parked.
        try await eventually("the second job is parked") {
            try await stack.scalar("SELECT count(*) FROM job_outbox WHERE job_id = $1 AND waiting_kind = 'single'", [waiter], as: Int.self) == 1
        }
        first.signal(SIGKILL)
        _ = await first.waitForExit(timeout: .seconds(5))
        // The scheduler rescues the silent attempt (heartbeat timeout 3 s), which frees its slot.
        try await stack.startScheduler()
        try await stack.startProcessor()
        _ = try await stack.waitFor(holder, .completed, timeout: .seconds(90))
        _ = try await stack.waitFor(waiter, .completed, timeout: .seconds(90))
        let peaks = await sampler.stop()
        #expect(peaks.total == 1, "peak running at once: \(peaks.total)")
    }

    @Test func aParkedJobKeepsItsOutboxRowAgainstItsEnqueuerAndIsWokenWhenASlotFrees() async throws {
        let stack = try await JobStack(kinds: Self.kinds)
        let kind = try #require(stack.catalog["single"])
        let limit = try #require(kind.limit)
        let store = JobStore(catalog: stack.catalog)
        let (id, outcome, markedAfterPark) = try await stack.pool.withConnection { c in
            // Someone holds the one slot.
            try c.execute("""
                INSERT INTO job_leases (job_id, attempt, worker, heartbeat_at, slot_kind) VALUES (gen_random_uuid(), 1, 'elsewhere', now(), 'single')
                """)
            let id = try store.insert([NewJob(kind: "single")], on: c)[0].id
            let outcome = try FlowGate.claim([AttemptClaim(id: id, attempt: 1, redelivered: false)], kind: kind,
                                             catalog: stack.catalog, parkFor: 60, worker: "test", on: c)
            // The enqueuer's confirm arrives after the processor parked the job: the parked row stays.
            return (id, outcome, try store.markPublished([id], on: c))
        }
        #expect(outcome.started.isEmpty && outcome.parked == [id])
        #expect(markedAfterPark == 0)
        #expect(try await stack.scalar("SELECT waiting_kind FROM job_outbox WHERE job_id = $1", [id], as: String.self) == "single")
        #expect(try await stack.scalar("SELECT status FROM jobs WHERE id = $1", [id], as: String.self) == "scheduled")
        let woken = try await stack.pool.withConnection { c in
            try c.execute("DELETE FROM job_leases WHERE worker = 'elsewhere'")
            #expect(try ConcurrencySlots.hasWaiters(kind: "single", on: c))
            return try ConcurrencySlots.wakeIfFree(kind: "single", limit: limit, keys: [nil], on: c)
        }
        #expect(woken == [id])
        #expect(try await stack.scalar("SELECT count(*) FROM job_outbox WHERE job_id = $1 AND waiting_kind IS NULL AND due_at <= now()",
                                       [id], as: Int.self) == 1)
    }

    @Test func aFreedSlotWakesAWaiterOfAnotherKeyParkedByTheGlobalLimitAndLeftLeasesAreCleared() async throws {
        let stack = try await JobStack(kinds: Self.kinds)
        let kind = try #require(stack.catalog["both"])
        let limit = try #require(kind.limit)
        let store = JobStore(catalog: stack.catalog)
        let woken = try await stack.pool.withConnection { c -> ([UUID], UUID) in
            // Key "a" holds the one global slot; a job of key "b" is parked by the global limit.
            try c.execute("""
                INSERT INTO job_leases (job_id, attempt, worker, heartbeat_at, slot_kind, slot_key) VALUES (gen_random_uuid(), 1, 'elsewhere', now(), 'both', '"a"')
                """)
            let id = try store.insert([NewJob(kind: "both", payload: #"{"k": "b"}"#)], on: c)[0].id
            let outcome = try FlowGate.claim([AttemptClaim(id: id, attempt: 1, redelivered: false)], kind: kind,
                                             catalog: stack.catalog, parkFor: 60, worker: "test", on: c)
            #expect(outcome.parked == [id] && outcome.parkedKeys == [#""b""#])
            // Key "a" ends: its waiters are none, but "b" fits the freed global slot.
            try c.execute("DELETE FROM job_leases WHERE worker = 'elsewhere'")
            return (try ConcurrencySlots.wakeIfFree(kind: "both", limit: limit, keys: [#""a""#], on: c), id)
        }
        #expect(woken.0 == [woken.1])

        // A cancelled job's lease whose processor is gone is cleared once its heartbeat is old.
        let cleared = try await stack.pool.withConnection { c -> Int in
            let id = try store.insert([NewJob(kind: "both", payload: #"{"k": "c"}"#)], on: c)[0].id
            try c.execute("UPDATE jobs SET status = 'cancelled' WHERE id = $1", [id])
            try c.execute("""
                INSERT INTO job_leases (job_id, attempt, worker, heartbeat_at, slot_kind, slot_key)
                VALUES ($1, 1, 'gone', now() - interval '10 seconds', 'both', '"c"'), (gen_random_uuid(), 1, 'alive', now(), 'both', '"d"')
                """, [id])
            return try StuckJobRescue.clearLeftLeases(catalog: stack.catalog, on: c)
        }
        #expect(cleared == 1)
        #expect(try await stack.scalar("SELECT count(*)::int FROM job_leases WHERE worker = 'gone'", as: Int.self) == 0)
    }
}
