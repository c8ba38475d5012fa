import EsteiraCore
import Foundation
import Postgres
import Testing

/// Waits until `condition` holds (polling); records an issue naming `what` when it never does.
@discardableResult
func eventually(_ what: String, timeout: Duration = .seconds(60), every: Duration = .milliseconds(100),
                _ condition: () async throws -> Bool) async throws -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try await Task.sleep(for: every)
    }
    Issue.record("not within \(timeout): \(what)")
    return false
}

/// The scheduler against real servers: leadership, cron ticks, relay, delayed jobs, stuck-job
/// rescue, retention and the metrics roll-up.
@Suite struct SchedulerTests {
    static let kinds = """
        kinds:
          slow: { handler: noop, heartbeatTimeout: 2, maxAttempts: 3, timeout: 120 }
          brief: { handler: noop, heartbeatTimeout: 2, maxAttempts: 1 }
          kept: { handler: noop, retention: 60 }
          steady: { handler: noop, heartbeatTimeout: 6 }
        """
    static let fast = ["--tick-interval", "0.1", "--rescue-interval", "0.5", "--leader-interval", "0.5"]

    /// Waits until exactly one of `ports` leads; returns its index.
    func leader(_ stack: JobStack, _ ports: [Int]) async throws -> Int? {
        var found: Int?
        try await eventually("exactly one scheduler leads") {
            var leaders: [Int] = []
            for (i, p) in ports.enumerated() where await stack.schedulerLeads(port: p) == true { leaders.append(i) }
            found = leaders.count == 1 ? leaders[0] : nil
            return found != nil
        }
        return found
    }

    @Test func aStandbyTakesOverWithinFiveSecondsOfTheLeadersDeath() async throws {
        let stack = try await JobStack(kinds: Self.kinds)
        let a = try await stack.startScheduler(arguments: Self.fast)
        let b = try await stack.startScheduler(arguments: Self.fast)
        let c = try await stack.startScheduler(arguments: Self.fast)
        let all = [a, b, c]
        let first = try #require(try await leader(stack, all.map(\.port)))
        // Only one holds the lock, and it stays so.
        try await Task.sleep(for: .seconds(1))
        #expect(try await leader(stack, all.map(\.port)) == first)

        all[first].child.signal(SIGKILL)
        let killedAt = ContinuousClock.now
        let rest = all.indices.filter { $0 != first }
        var second: Int?
        try await eventually("a standby leads", timeout: .seconds(30), every: .milliseconds(50)) {
            for i in rest where await stack.schedulerLeads(port: all[i].port) == true { second = i }
            return second != nil
        }
        let takeover = ContinuousClock.now - killedAt
        #expect(takeover < .seconds(5), "takeover took \(takeover)")

        // A graceful stop hands over too.
        let s = try #require(second)
        all[s].child.signal(SIGTERM)
        _ = await all[s].child.waitForExit(timeout: .seconds(30))
        let stoppedAt = ContinuousClock.now
        let last = try #require(rest.first { $0 != s })
        try await eventually("the last standby leads", timeout: .seconds(30), every: .milliseconds(50)) {
            await stack.schedulerLeads(port: all[last].port) == true
        }
        #expect(ContinuousClock.now - stoppedAt < .seconds(5))
        #expect(all[s].child.text.contains("resigned leadership"))
    }

    @Test func eachTickEnqueuesExactlyOneJobWithTwoSchedulersAndAcrossAFailover() async throws {
        let stack = try await JobStack(kinds: Self.kinds)
        try await stack.startProcessor()
        let a = try await stack.startScheduler(arguments: Self.fast)
        let b = try await stack.startScheduler(arguments: Self.fast)
        let id = try await stack.pool.withConnection { c in
            try ScheduleStore(catalog: stack.catalog).create(ScheduleInput(name: "every-second", cron: "* * * * * *", kind: "noop"),
                                                             ownerID: nil, on: c).id
        }
        let key = "schedule:\(id.uuidString.lowercased()):%"
        try await eventually("ticks run") {
            try await stack.scalar("SELECT count(*) FROM jobs WHERE idempotency_key LIKE $1", [key], as: Int.self) >= 3
        }
        // Kill the leader mid-run; the other goes on.
        let ports = [a.port, b.port]
        let l = try #require(try await leader(stack, ports))
        [a, b][l].child.signal(SIGKILL)
        let before = try await stack.scalar("SELECT count(*) FROM jobs WHERE idempotency_key LIKE $1", [key], as: Int.self)
        try await eventually("ticks go on after the failover") {
            try await stack.scalar("SELECT count(*) FROM jobs WHERE idempotency_key LIKE $1", [key], as: Int.self) >= before + 4
        }
        try await stack.pool.withConnection { c in
            _ = try c.execute("UPDATE schedules SET enabled = false, next_run_at = NULL WHERE id = $1", [id])
        }
        try await Task.sleep(for: .milliseconds(500))
        let ticks = try await stack.pool.withConnection { c in
            try c.query("SELECT idempotency_key FROM jobs WHERE idempotency_key LIKE $1 ORDER BY idempotency_key", [key])
                .map { try $0.decode(String.self, at: 0) }
        }
        let millis = ticks.compactMap { Int64($0.split(separator: ":").last ?? "") }
        // One job per tick: tick times are distinct whole seconds (the unique key makes a
        // second job of a tick impossible; this checks that no tick was re-keyed either).
        #expect(Set(millis).count == millis.count)
        #expect(millis.allSatisfy { $0 % 1000 == 0 })
        #expect(millis.count >= before + 4)
        // Every job ran.
        try await stack.waitForCount(.completed, millis.count,
                                     among: try await stack.pool.withConnection { c in
                                         try c.query("SELECT id FROM jobs WHERE idempotency_key LIKE $1", [key]).map { try $0.decode(UUID.self, at: 0) }
                                     })
    }

    @Test func ticksMissedWhileNoSchedulerRanRunOnceOnRecovery() async throws {
        let stack = try await JobStack(kinds: Self.kinds)
        let id = try await stack.pool.withConnection { c in
            let s = try ScheduleStore(catalog: stack.catalog).create(
                ScheduleInput(name: "every-2s", cron: "*/2 * * * * *", kind: "noop", payload: #"{"from": "schedule"}"#), ownerID: nil, on: c)
            // As if every scheduler had been down for 30 s: 15 ticks missed.
            _ = try c.execute("UPDATE schedules SET next_run_at = date_trunc('second', now()) - interval '30 seconds' WHERE id = $1", [s.id])
            return s.id
        }
        let startedAt = Date()
        try await stack.startScheduler(arguments: Self.fast)
        let key = "schedule:\(id.uuidString.lowercased()):%"
        try await eventually("the missed ticks' job") {
            try await stack.scalar("SELECT count(*) FROM jobs WHERE idempotency_key LIKE $1", [key], as: Int.self) >= 1
        }
        try await Task.sleep(for: .milliseconds(300))
        let rows = try await stack.pool.withConnection { c in
            try c.query("SELECT idempotency_key, payload::text FROM jobs WHERE idempotency_key LIKE $1 ORDER BY created_at", [key])
                .map { (try $0.decode(String.self, at: 0), try $0.decode(String.self, at: 1)) }
        }
        // One job for the 15 missed ticks, keyed by the latest of them, not 15: no job is keyed
        // by a tick of the missed stretch before the latest one (later ticks may have run since).
        let ticks = rows.compactMap { Double($0.0.split(separator: ":").last ?? "") }.map { $0 / 1000 }
        let checkedAt = Date().timeIntervalSince1970
        #expect(!ticks.isEmpty)
        #expect(ticks.allSatisfy { $0 >= startedAt.timeIntervalSince1970 - 2.5 }, "a missed tick other than the latest ran: \(rows)")
        #expect(Double(ticks.count) <= (checkedAt - startedAt.timeIntervalSince1970) / 2 + 2, "\(rows)")
        #expect(rows.first?.1.contains("schedule") == true)
        let next = try await stack.scalar("SELECT next_run_at FROM schedules WHERE id = $1", [id], as: Date.self)
        #expect(next > startedAt.addingTimeInterval(-2))
    }

    @Test func theRelayPublishesARowLeftUnpublished() async throws {
        let stack = try await JobStack(kinds: Self.kinds)
        let orphan = UUID()
        try await stack.pool.withConnection { c in
            // The job's row and its outbox row, committed together as the enqueuer does.
            _ = try c.execute("""
                WITH j AS (
                    INSERT INTO jobs (id, kind, status, payload, max_attempts, created_at)
                    VALUES ($1, 'noop', 'queued', '{}', 3, now() - interval '1 minute') RETURNING id, created_at
                )
                INSERT INTO job_outbox (job_id, due_at) SELECT id, created_at FROM j
                """, [orphan])
        }
        try await stack.startProcessor(arguments: ["--no-relay"])
        try await Task.sleep(for: .seconds(1))
        #expect(try await stack.job(orphan).status == .queued, "nothing publishes it without a scheduler")
        try await stack.startScheduler(arguments: Self.fast)
        let job = try await stack.waitFor(orphan, .completed)
        #expect(job.attempts == 1)
        // Published once: one release, one run.
        let events = try await stack.events(orphan)
        #expect(events.filter { $0.status == "running" }.count == 1, "\(events)")
        #expect(events.filter { $0.detail?.contains("released") == true }.count == 1, "\(events)")
    }

    @Test func aDelayedJobFiresWithinASecondOfItsTimeAfterARestartAndCanBeCancelledBefore() async throws {
        let stack = try await JobStack(kinds: Self.kinds)
        try await stack.startProcessor(arguments: ["--no-relay"])
        let first = try await stack.startScheduler(arguments: Self.fast)
        let runAfter = Date().addingTimeInterval(15)
        let outcomes = try await stack.enqueue([NewJob(kind: "noop", runAfter: runAfter), NewJob(kind: "noop", runAfter: runAfter)])
        let (delayed, cancelled) = (outcomes[0].id, outcomes[1].id)
        #expect(outcomes.allSatisfy { $0.status == .scheduled })
        try await Task.sleep(for: .seconds(1))
        first.child.signal(SIGKILL)
        _ = await first.child.waitForExit(timeout: .seconds(10))
        let outcome = try await stack.pool.withConnection { try JobQueries.cancel(cancelled, scope: .everything, by: "test", on: $0) }
        guard case .cancelled = outcome else { Issue.record("not cancelled: \(outcome)"); return }
        try await stack.startScheduler(arguments: Self.fast)
        let job = try await stack.waitFor(delayed, .completed)
        let released = try await stack.scalar("""
            SELECT at FROM job_events WHERE job_id = $1 AND status = 'queued' AND detail ? 'released'
            """, [delayed], as: Date.self)
        #expect(released.timeIntervalSince(runAfter) >= -0.05)
        #expect(released.timeIntervalSince(runAfter) < 1, "released \(released.timeIntervalSince(runAfter)) s after its time")
        #expect(try #require(job.startedAt).timeIntervalSince(runAfter) < 1.5)
        try await Task.sleep(for: .seconds(1))
        let c = try await stack.job(cancelled)
        #expect(c.status == .cancelled)
        #expect(c.attempts == 0)
    }

    @Test func aStuckJobIsRescuedOnceAndRunsOnceMore() async throws {
        let stack = try await JobStack(kinds: Self.kinds)
        let (stuck, last) = (UUID(), UUID())
        try await stack.pool.withConnection { c in
            // Running on a processor that vanished with its message: heartbeat a minute old.
            for (id, kind) in [(stuck, "slow"), (last, "brief")] {
                _ = try c.execute("""
                    INSERT INTO jobs (id, kind, status, payload, attempts, max_attempts, created_at, published_at, started_at)
                    VALUES ($1, $2, 'running', '{}', 1, $3, now() - interval '2 minutes', now() - interval '2 minutes',
                            now() - interval '2 minutes')
                    """, [id, kind, kind == "slow" ? 3 : 1])
                _ = try c.execute("INSERT INTO job_leases (job_id, attempt, worker, heartbeat_at) VALUES ($1, 1, 'ghost', now() - interval '1 minute')",
                                  [id])
            }
        }
        try await stack.startProcessor(arguments: ["--no-relay"])
        try await stack.startScheduler(arguments: Self.fast)
        let job = try await stack.waitFor(stuck, .completed)
        #expect(job.attempts == 2, "the lost attempt counts")
        let events = try await stack.events(stuck)
        #expect(events.filter { $0.detail?.contains("rescued") == true }.count == 1, "\(events)")
        #expect(events.filter { $0.status == "running" }.map(\.attempt) == [2], "\(events)")
        #expect(events.filter { $0.status == "completed" }.count == 1)
        // With no attempt left, the job is dead with the reason, and in the dead letters.
        let dead = try await stack.waitFor(last, .dead)
        #expect(dead.lastErrorClass == "timeout")
        #expect(dead.lastError?.contains("heartbeat lost: ghost") == true, "\(dead.lastError ?? "")")
        #expect(try await stack.scalar("SELECT count(*) FROM dead_letters WHERE job_id = $1", [last], as: Int.self) == 1)
        // A running job whose processor reports it is left alone, however long it runs.
        let live = try await stack.enqueue([NewJob(kind: "steady", payload: #"{"sleep_ms": 14000}"#)])[0].id
        let done = try await stack.waitFor(live, .completed)
        #expect(done.attempts == 1)
        let liveEvents = try await stack.events(live)
        #expect(!liveEvents.contains { $0.detail?.contains("rescued") == true }, "\(liveEvents)")
    }

    @Test func aFrozenProcessorsRescuedAttemptStopsAndItsOutcomeIsDiscarded() async throws {
        let stack = try await JobStack(kinds: Self.kinds)
        let processor = try await stack.startProcessor(arguments: ["--no-relay", "--consumers", "1"])
        try await stack.startScheduler(arguments: Self.fast)
        let id = try await stack.enqueue([NewJob(kind: "slow", payload: #"{"sleep_ms": 60000}"#)])[0].id
        try await stack.waitFor(id, .running)
        processor.signal(SIGSTOP)
        // Its heartbeat stops: the scheduler takes the job back.
        try await eventually("the job is rescued") {
            try await stack.scalar("SELECT count(*) FROM job_events WHERE job_id = $1 AND detail ? 'rescued'", [id], as: Int.self) == 1
        }
        // Attempt 2 need not take a minute.
        try await stack.pool.withConnection { c in _ = try c.execute("UPDATE jobs SET payload = '{\"sleep_ms\": 100}' WHERE id = $1", [id]) }
        processor.signal(SIGCONT)
        let job = try await stack.waitFor(id, .completed, timeout: .seconds(40))
        #expect(job.attempts == 2)
        try await eventually("the processor says it stopped attempt 1") { processor.text.contains("attempt stopped") }
        let events = try await stack.events(id)
        #expect(events.filter { $0.status == "completed" }.map(\.attempt) == [2], "\(events)")
        #expect(events.filter { $0.status == "running" }.map(\.attempt) == [1, 2], "\(events)")
    }

    @Test func retentionDeletesOnlyWhatIsOld() async throws {
        let stack = try await JobStack(kinds: Self.kinds)
        // kept: 60 s retention; noop: the default 7 days.
        let rows: [(kind: String, status: String, finishedAgo: Int?)] = [
            ("kept", "completed", 120), ("kept", "dead", 120), ("kept", "cancelled", 120), ("kept", "completed", 120),
            ("kept", "completed", 10), ("kept", "running", nil), ("kept", "queued", nil),
            ("noop", "completed", 120), ("noop", "completed", 8 * 86400),
        ]
        var ids: [UUID] = []
        try await stack.pool.withConnection { c in
            for r in rows {
                let id = UUID()
                ids.append(id)
                _ = try c.execute("""
                    INSERT INTO jobs (id, kind, status, payload, max_attempts, created_at, published_at, finished_at)
                    VALUES ($1, $2, $3, '{}', 1, now() - interval '9 days', now() - interval '9 days', CASE WHEN $4::int IS NULL THEN NULL ELSE now() - make_interval(secs => $4) END)
                    """, [id, r.kind, r.status, r.finishedAgo])
                _ = try c.execute("INSERT INTO job_events (job_id, kind, status) VALUES ($1, $2, $3)", [id, r.kind, r.status])
            }
            // A workload's expiring rows (the messaging feeds' log, kept 7 days): 3 old, 2 not.
            _ = try c.execute("""
                INSERT INTO messaging_changes (owner_id, tabela, op, row_data, at)
                SELECT gen_random_uuid(), 'campanhas', 'UPDATE', '{}', now() - make_interval(days => d) FROM unnest(ARRAY[8, 9, 30, 6, 0]) d
                """)
        }
        try await stack.startScheduler(arguments: Self.fast + ["--retention-interval", "1", "--retention-batch", "2"])
        let old: Set<Int> = [0, 1, 2, 3, 8]
        try await eventually("old finished jobs are deleted") {
            try await stack.scalar("SELECT count(*) FROM jobs", as: Int.self) == rows.count - old.count
        }
        let left = Set(try await stack.pool.withConnection { c in try c.query("SELECT id FROM jobs").map { try $0.decode(UUID.self, at: 0) } })
        for (i, id) in ids.enumerated() { #expect(left.contains(id) == !old.contains(i), "row \(i): \(rows[i])") }
        // Their events went with them; the others' stayed.
        #expect(try await stack.scalar("SELECT count(*) FROM job_events", as: Int.self) == rows.count - old.count)
        try await eventually("expired workload rows are deleted") {
            try await stack.scalar("SELECT count(*) FROM messaging_changes", as: Int.self) == 2
        }
        #expect(try await stack.scalar("SELECT count(*) FROM messaging_changes WHERE at < now() - interval '7 days'", as: Int.self) == 0)
    }
}
