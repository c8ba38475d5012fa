import EsteiraCore
import Foundation
import Postgres
import Testing

/// Workload 1 end to end: lead migrations through the api, moved by real processors.
@Suite struct LeadMigrationTests {
    /// Two funnels with two columns each; `runs` import runs with `leadsPerRun` leads each.
    struct Seed {
        var funnel: Int64, column: Int64, otherFunnel: Int64, otherColumn: Int64
    }

    static func seed(_ stack: JobStack, runs: [Int64: Int]) async throws -> Seed {
        try await stack.pool.withConnection { c in
            let f1 = try c.query("INSERT INTO funnels (name) VALUES ('sales') RETURNING id").first!.decode(Int64.self, at: 0)
            let f2 = try c.query("INSERT INTO funnels (name) VALUES ('support') RETURNING id").first!.decode(Int64.self, at: 0)
            let c1 = try c.query("INSERT INTO funnel_columns (funnel_id, name) VALUES ($1, 'new') RETURNING id", [f1]).first!.decode(Int64.self, at: 0)
            let c2 = try c.query("INSERT INTO funnel_columns (funnel_id, name) VALUES ($1, 'open') RETURNING id", [f2]).first!.decode(Int64.self, at: 0)
            for (run, count) in runs {
                try c.execute("""
                    INSERT INTO leads (run_id, funnel_id, column_id, name) SELECT $1, $2, $3, 'lead ' || i FROM generate_series(1, $4) i
                    """, [run, f2, c2, count])
            }
            return Seed(funnel: f1, column: c1, otherFunnel: f2, otherColumn: c2)
        }
    }

    func waitForState(_ api: StackAPI, _ id: String, _ states: Set<String>, timeout: Duration = .seconds(60)) async throws -> [String: Any] {
        let deadline = ContinuousClock.now + timeout
        var last: [String: Any] = [:]
        while ContinuousClock.now < deadline {
            last = try await api.get("/v1/lead-migrations/\(id)").json
            if let s = last["state"] as? String, states.contains(s) { return last }
            try await Task.sleep(for: .milliseconds(100))
        }
        Issue.record("migration \(id) is \(last["state"] ?? "?"), not \(states): \(last)")
        return last
    }

    func inTarget(_ stack: JobStack, _ run: Int64, _ seed: Seed) async throws -> Int {
        try await stack.scalar("SELECT count(*) FROM leads WHERE run_id = $1 AND funnel_id = $2 AND column_id = $3",
                               [run, seed.funnel, seed.column], as: Int.self)
    }

    @Test func migrationMovesEveryLeadOfTheRunInBatchesWithProgressOnSSE() async throws {
        let stack = try await JobStack()
        let seed = try await Self.seed(stack, runs: [7: 1050, 8: 40])
        let api = try await StackAPI(stack: stack)
        try await stack.startProcessor()
        let r = try await api.post("/v1/lead-migrations", #"{"run_id": 7, "funnel_id": \#(seed.funnel), "column_id": \#(seed.column)}"#)
        #expect(r.status == 202, "\(r.text)")
        let id = try #require(r.json["id"] as? String)
        let jobID = try #require(r.json["job_id"] as? String)
        #expect(r.json["batch_size"] as? Int == 100)
        let events = try EventStreamClient(url: api.base + "/v1/events?job_id=\(jobID)", token: api.adminToken)
        defer { events.close() }
        let done = try await waitForState(api, id, ["completed", "failed"])
        #expect(done["state"] as? String == "completed")
        #expect(done["total"] as? Int == 1050)
        #expect(done["moved"] as? Int == 1050)
        #expect(done["failed"] as? Int == 0)
        #expect(done["pending"] as? Int == 0)
        #expect(done["batches"] as? Int == 11)
        #expect(done["percent"] as? Double == 100)
        #expect(done["finished_at"] != nil)
        #expect(try await inTarget(stack, 7, seed) == 1050)
        // The other run is untouched.
        #expect(try await inTarget(stack, 8, seed) == 0)
        // Progress reached the stream: percent only grows, and ends at 100 with the state.
        let progress = try await events.waitFor { $0.contains { ($0.data["detail"] as? [String: Any])?["state"] as? String == "completed" } }
            .filter { $0.data["status"] as? String == "progress" }.compactMap { $0.data["detail"] as? [String: Any] }
        let percents = progress.compactMap { $0["percent"] as? Double }
        #expect(percents.count >= 3)
        #expect(percents == percents.sorted())
        #expect(percents.last == 100)
        // The summary counts it.
        let list = try await api.get("/v1/lead-migrations?state=completed").json
        #expect((list["lead_migrations"] as? [[String: Any]])?.count == 1)
        let summary = try #require(list["summary"] as? [[String: Any]])
        #expect(summary.first { $0["state"] as? String == "completed" }?["moved"] as? Int == 1050)
    }

    @Test func badTargetsAndInputsAreRefused() async throws {
        let stack = try await JobStack()
        let seed = try await Self.seed(stack, runs: [1: 5])
        let api = try await StackAPI(stack: stack)
        let cases: [(String, Int, String)] = [
            (#"{"run_id": 1, "funnel_id": 999999, "column_id": \#(seed.column)}"#, 404, "funnel_id"),
            (#"{"run_id": 1, "funnel_id": \#(seed.funnel), "column_id": 999999}"#, 404, "column_id"),
            (#"{"run_id": 1, "funnel_id": \#(seed.funnel), "column_id": \#(seed.otherColumn)}"#, 422, "column_id"),
            (#"{"funnel_id": \#(seed.funnel), "column_id": \#(seed.column)}"#, 400, "run_id"),
            (#"{"run_id": 1, "funnel_id": \#(seed.funnel), "column_id": \#(seed.column), "batch_size": 0}"#, 400, "batch_size"),
            (#"{"run_id": "x", "funnel_id": \#(seed.funnel), "column_id": \#(seed.column)}"#, 400, "run_id"),
        ]
        for (body, status, field) in cases {
            let r = try await api.post("/v1/lead-migrations", body)
            #expect(r.status == status && r.field == field, "\(body): \(r.status) \(r.text)")
        }
        #expect(try await api.get("/v1/lead-migrations/\(UUID())").status == 404)
        #expect(try await api.get("/v1/lead-migrations?state=done").field == "state")
        #expect(try await stack.scalar("SELECT count(*) FROM lead_migrations", as: Int.self) == 0)
        #expect(try await stack.scalar("SELECT count(*) FROM jobs", as: Int.self) == 0)
        // Another user's migration is not found.
        let alice = try await api.userToken("alice"), bob = try await api.userToken("bob")
        _ = try await stack.scalar("UPDATE funnels SET owner_id = (SELECT id FROM api_principals WHERE name = 'alice') WHERE id = $1 RETURNING 1",
                                   [seed.funnel], as: Int.self)
        let mine = try await api.post("/v1/lead-migrations", #"{"run_id": 1, "funnel_id": \#(seed.funnel), "column_id": \#(seed.column)}"#, as: alice)
        let id = try #require(mine.json["id"] as? String)
        #expect(try await api.get("/v1/lead-migrations/\(id)", as: bob).status == 404)
        #expect(try await api.post("/v1/lead-migrations/\(id)/cancel", "", as: bob).status == 404)
        #expect(try await api.get("/v1/lead-migrations/\(id)", as: alice).status == 200)
    }

    @Test func anEmptyRunCompletesAtOnce() async throws {
        let stack = try await JobStack()
        let seed = try await Self.seed(stack, runs: [1: 3])
        let api = try await StackAPI(stack: stack)
        try await stack.startProcessor()
        let r = try await api.post("/v1/lead-migrations", #"{"run_id": 424242, "funnel_id": \#(seed.funnel), "column_id": \#(seed.column)}"#)
        let done = try await waitForState(api, try #require(r.json["id"] as? String), ["completed", "failed"])
        #expect(done["state"] as? String == "completed")
        #expect(done["total"] as? Int == 0)
        #expect(done["percent"] as? Double == 100)
    }

    @Test func cancelStopsTheRemainingBatchesAndKeepsWhatMoved() async throws {
        let stack = try await JobStack()
        let seed = try await Self.seed(stack, runs: [3: 3000])
        let api = try await StackAPI(stack: stack)
        try await stack.startProcessor(arguments: ["--consumers", "1", "--prefetch", "2"])
        let r = try await api.post("/v1/lead-migrations", #"{"run_id": 3, "funnel_id": \#(seed.funnel), "column_id": \#(seed.column), "batch_size": 5}"#)
        let id = try #require(r.json["id"] as? String)
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline, (try await api.get("/v1/lead-migrations/\(id)").json["moved"] as? Int ?? 0) < 50 {
            try await Task.sleep(for: .milliseconds(20))
        }
        let cancelled = try await api.post("/v1/lead-migrations/\(id)/cancel", "")
        #expect(cancelled.status == 200, "\(cancelled.text)")
        #expect(cancelled.json["state"] as? String == "cancelled")
        #expect(try await api.post("/v1/lead-migrations/\(id)/cancel", "").status == 409)
        // Let the queued batch jobs drain: they see the cancel and move nothing.
        try await stack.waitForCount(.completed, 600, timeout: .seconds(90))
        try await Task.sleep(for: .seconds(1))
        let after = try await api.get("/v1/lead-migrations/\(id)").json
        let moved = try #require(after["moved"] as? Int)
        #expect(moved >= 50 && moved < 3000)
        #expect(try await inTarget(stack, 3, seed) == moved, "moved counts exactly the leads that moved")
        #expect(after["state"] as? String == "cancelled")
        #expect(after["pending"] as? Int == 0)
    }

    @Test func aFailingBatchIsRetriedAndRecordedWhileTheOthersGoOn() async throws {
        let stack = try await JobStack(kinds: "kinds:\n  lead-migration.batch: { maxAttempts: 2, backoffBase: 0.2 }\n")
        let seed = try await Self.seed(stack, runs: [5: 500])
        // Updating this one lead always fails: its batch cannot succeed.
        let poisoned = try await stack.scalar("SELECT id FROM leads WHERE run_id = 5 ORDER BY id OFFSET 250 LIMIT 1", as: Int64.self)
        try await stack.pool.withConnection { c in
            try c.execute("""
                CREATE FUNCTION refuse_lead() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN IF NEW.id = \(poisoned) THEN RAISE EXCEPTION 'lead % is locked by the CRM', NEW.id; END IF; RETURN NEW; END $$
                """)
            try c.execute("CREATE TRIGGER refuse_lead BEFORE UPDATE ON leads FOR EACH ROW EXECUTE FUNCTION refuse_lead()")
        }
        let api = try await StackAPI(stack: stack)
        try await stack.startProcessor()
        let r = try await api.post("/v1/lead-migrations", #"{"run_id": 5, "funnel_id": \#(seed.funnel), "column_id": \#(seed.column)}"#)
        let done = try await waitForState(api, try #require(r.json["id"] as? String), ["completed", "failed"])
        #expect(done["state"] as? String == "failed")
        #expect(done["moved"] as? Int == 400)
        #expect(done["failed"] as? Int == 100)
        #expect((done["last_error"] as? String)?.contains("locked by the CRM") == true)
        #expect(try await inTarget(stack, 5, seed) == 400)
        // The failing batch ran twice (its policy), each attempt recorded on its job. The
        // migration's counters move with the batch's own transaction; the job's final state
        // follows from the processor's batched state writes, so wait for it.
        try await stack.waitForCount(.dead, 1, timeout: .seconds(30))
        let attempts = try await stack.scalar("SELECT attempts FROM jobs WHERE kind = 'lead-migration.batch' AND status = 'dead'", as: Int.self)
        #expect(attempts == 2)
    }

    @Test func deletedLeadsAndAKilledProcessorLoseAndDoubleCountNothing() async throws {
        // The killed processor's batches run again once their heartbeat is 3 s old: the
        // scheduler rescues them.
        let stack = try await JobStack(kinds: "kinds:\n  lead-migration.batch: { heartbeatTimeout: 3 }\n  lead-migration.plan: { heartbeatTimeout: 3 }\n")
        try await stack.startScheduler(arguments: ["--rescue-interval", "0.5"])
        let seed = try await Self.seed(stack, runs: [9: 4000, 10: 300])
        let api = try await StackAPI(stack: stack)
        let first = try await stack.startProcessor(arguments: ["--consumers", "1", "--prefetch", "4"])
        let r = try await api.post("/v1/lead-migrations", #"{"run_id": 9, "funnel_id": \#(seed.funnel), "column_id": \#(seed.column), "batch_size": 10}"#)
        let id = try #require(r.json["id"] as? String)
        // A second migration runs at the same time.
        let other = try await api.post("/v1/lead-migrations", #"{"run_id": 10, "funnel_id": \#(seed.funnel), "column_id": \#(seed.column), "batch_size": 7}"#)
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline, (try await api.get("/v1/lead-migrations/\(id)").json["moved"] as? Int ?? 0) < 200 {
            try await Task.sleep(for: .milliseconds(20))
        }
        // Leads deleted mid-migration (from the end, not moved yet) do not fail their batches.
        let deleted = try await stack.pool.withConnection { c in
            try c.execute("DELETE FROM leads WHERE id IN (SELECT id FROM leads WHERE run_id = 9 ORDER BY id DESC LIMIT 25)")
        }
        let movedAtKill = try await stack.scalar("SELECT moved FROM lead_migrations WHERE id = $1", [UUID(uuidString: id)!], as: Int.self)
        first.signal(SIGKILL)
        _ = await first.waitForExit(timeout: .seconds(5))
        #expect(movedAtKill < 3900, "the processor died mid-migration (\(movedAtKill) moved before)")
        try await stack.startProcessor()
        let done = try await waitForState(api, id, ["completed", "failed"], timeout: .seconds(120))
        #expect(done["state"] as? String == "completed")
        #expect(done["total"] as? Int == 4000)
        #expect(done["failed"] as? Int == 0)
        #expect(done["moved"] as? Int == 4000 - deleted)
        #expect(try await inTarget(stack, 9, seed) == 4000 - deleted)
        let second = try await waitForState(api, try #require(other.json["id"] as? String), ["completed", "failed"])
        #expect(second["moved"] as? Int == 300)
        #expect(try await inTarget(stack, 10, seed) == 300)
    }

    /// Funnels and leads have owners: a user's migration targets only the user's funnels
    /// (another's is as unknown as a missing one) and moves only the user's leads of the run;
    /// an admin's moves the whole run.
    @Test func aUsersMigrationTouchesOnlyTheUsersFunnelsAndLeads() async throws {
        let stack = try await JobStack()
        let api = try await StackAPI(stack: stack)
        try await stack.startProcessor()
        let alice = try await api.userToken("alice"), bob = try await api.userToken("bob")
        func principalID(_ token: String) async throws -> UUID {
            let text = try #require(try await api.call(.get, "/v1/whoami", token: token).json["id"] as? String)
            return try #require(UUID(uuidString: text))
        }
        let aliceID = try await principalID(alice), bobID = try await principalID(bob)
        let (aliceFunnel, aliceColumn, bobFunnel, bobColumn) = try await stack.pool.withConnection { c in
            func funnel(_ owner: UUID) throws -> (Int64, Int64) {
                let f = try c.query("INSERT INTO funnels (name, owner_id) VALUES ('f', $1) RETURNING id", [owner]).first!.decode(Int64.self, at: 0)
                let col = try c.query("INSERT INTO funnel_columns (funnel_id, name) VALUES ($1, 'c') RETURNING id", [f]).first!.decode(Int64.self, at: 0)
                return (f, col)
            }
            let (af, ac) = try funnel(aliceID), (bf, bc) = try funnel(bobID)
            try c.execute("INSERT INTO leads (run_id, owner_id, name) SELECT 9, $1, 'a' || i FROM generate_series(1, 30) i", [aliceID])
            try c.execute("INSERT INTO leads (run_id, owner_id, name) SELECT 9, $1, 'b' || i FROM generate_series(1, 20) i", [bobID])
            return (af, ac, bf, bc)
        }
        let probe = try await api.call(.post, "/v1/lead-migrations", token: alice,
                                       body: #"{"run_id": 9, "funnel_id": \#(bobFunnel), "column_id": \#(bobColumn)}"#)
        #expect(probe.status == 404 && probe.field == "funnel_id", "\(probe.text)")
        let missing = try await api.call(.post, "/v1/lead-migrations", token: alice, body: #"{"run_id": 9, "funnel_id": 999999, "column_id": 1}"#)
        #expect(missing.status == 404 && missing.json["detail"] as? String == "no funnel 999999", "the same answer as for a missing funnel")

        let mine = try await api.call(.post, "/v1/lead-migrations", token: alice,
                                      body: #"{"run_id": 9, "funnel_id": \#(aliceFunnel), "column_id": \#(aliceColumn), "batch_size": 7}"#)
        #expect(mine.status == 202, "\(mine.text)")
        let mineID = try #require(mine.json["id"] as? String)
        let done = try await waitForState(api, mineID, ["completed", "failed"])
        #expect(done["total"] as? Int == 30 && done["moved"] as? Int == 30, "\(done)")
        #expect(try await stack.scalar("SELECT count(*) FROM leads WHERE funnel_id = $1 AND owner_id = $2", [aliceFunnel, aliceID], as: Int.self) == 30)
        #expect(try await stack.scalar("SELECT count(*) FROM leads WHERE funnel_id IS NOT NULL AND owner_id = $1", [bobID], as: Int.self) == 0,
                "bob's leads of the run stay where they were")
        #expect(try await api.call(.get, "/v1/lead-migrations/\(mineID)", token: bob).status == 404)

        let all = try await api.post("/v1/lead-migrations", #"{"run_id": 9, "funnel_id": \#(bobFunnel), "column_id": \#(bobColumn)}"#)
        #expect(all.status == 202, "\(all.text)")
        let allID = try #require(all.json["id"] as? String)
        let adminDone = try await waitForState(api, allID, ["completed", "failed"])
        #expect(adminDone["total"] as? Int == 50 && adminDone["moved"] as? Int == 50, "an admin's migration moves the whole run")
    }
}
