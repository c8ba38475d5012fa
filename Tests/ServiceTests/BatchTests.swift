import EsteiraCore
import Foundation
import Postgres
import StandIns
import Testing

/// Batches of jobs: progress, fan-out from a handler, callbacks enqueued exactly once, cancel.
@Suite struct BatchTests {
    /// Callback jobs of batch `id` (their payload names it).
    static func callbacks(_ stack: JobStack, _ id: String) async throws -> Int {
        try await stack.scalar("SELECT count(*)::int FROM jobs WHERE payload->'batch'->>'id' = lower($1)", [id], as: Int.self)
    }

    /// Batch `id`'s count of open jobs, checked against its jobs.
    static func openJobs(_ stack: JobStack, _ id: String) async throws -> Int {
        let counted = try await stack.scalar("SELECT open_jobs FROM batches WHERE id = $1::uuid", [id], as: Int.self)
        let open = try await stack.scalar("""
            SELECT count(*)::int FROM jobs WHERE batch_id = $1::uuid AND status NOT IN ('completed', 'dead', 'cancelled')
            """, [id], as: Int.self)
        #expect(counted == open, "batch \(id) counts \(counted) open jobs; \(open) are")
        return counted
    }

    static func waitForState(_ api: StackAPI, _ id: String, _ states: Set<String>) async throws -> StackAPI.Reply {
        var reply = try await api.call(.get, "/v1/batches/\(id)")
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            reply = try await api.call(.get, "/v1/batches/\(id)")
            if let s = reply.json["state"] as? String, states.contains(s), reply.json["finished_at"] != nil { return reply }
            try await Task.sleep(for: .milliseconds(100))
        }
        Issue.record("batch \(id) did not reach \(states): \(reply.text)")
        return reply
    }

    @Test func aBatchFansOutFromAHandlerAndCallsBackExactlyOnce() async throws {
        let stack = try await JobStack()
        let api = try await StackAPI(stack: stack)
        for _ in 0..<2 { try await stack.startProcessor() }
        let created = try await api.call(.post, "/v1/batches", body: """
            {"description": "import run 7", "jobs": [{"kind": "noop", "payload": {"fan_out": 30, "sleep_ms": 20}}, {"kind": "noop"}],
             "on_success": {"kind": "noop", "payload": {"note": "all done"}}, "on_complete": {"kind": "noop"}}
            """)
        #expect(created.status == 201, "\(created.text)")
        let batch = try #require(created.json["batch"] as? [String: Any])
        let id = try #require(batch["id"] as? String)
        #expect((created.json["jobs"] as? [Any])?.count == 2)
        let done = try await Self.waitForState(api, id, ["succeeded"])
        // Two jobs, and the thirty the first one added to its batch.
        #expect(done.json["total"] as? Int == 32 && done.json["completed"] as? Int == 32 && done.json["percent"] as? Double == 100, "\(done.text)")
        #expect(done.json["success_job_id"] != nil && done.json["complete_job_id"] != nil, "\(done.text)")
        // Thirty-two jobs ended on two processors at once: one success and one complete callback.
        try await Task.sleep(for: .seconds(1))
        #expect(try await Self.callbacks(stack, id) == 2)
        #expect(try await Self.openJobs(stack, id) == 0)
        let successID = try #require(UUID(uuidString: done.json["success_job_id"] as? String ?? ""))
        let success = try await stack.waitFor(successID, .completed)
        #expect(success.payload["note"]?.stringValue == "all done" && success.payload["batch"]?["total"]?.doubleValue == 32)
        let events = ((done.json["events"] as? [[String: Any]]) ?? []).compactMap { $0["event"] as? String }
        #expect(events.first == "created" && events.contains("jobs_added") && events.last == "succeeded", "\(events)")
        // A finished batch takes no more jobs; another user does not see it.
        let late = try await api.call(.post, "/v1/batches/\(id)/jobs", body: #"{"jobs": [{"kind": "noop"}]}"#)
        #expect(late.status == 409 && late.field == "id", "\(late.text)")
        let user = try await api.userToken()
        #expect(try await api.call(.get, "/v1/batches/\(id)", token: user).status == 404)
        #expect(try await api.call(.post, "/v1/batches/\(id)/cancel", token: user).status == 404)
        let mine = try await api.call(.get, "/v1/batches", token: user)
        #expect((mine.json["batches"] as? [Any])?.isEmpty == true, "\(mine.text)")
    }

    @Test func aFailedJobMakesItCompletedNotSucceededAndCancelStopsWhatHasNotStarted() async throws {
        try await StandInHTTPServer.withServer { server in
            server.on("POST", "/bad", respond: StandInResponse(status: 400, body: "bad input"))
            let stack = try await JobStack()
            let api = try await StackAPI(stack: stack)
            try await stack.startProcessor()
            let failing = try await api.call(.post, "/v1/batches", body: """
                {"jobs": [{"kind": "http", "payload": {"url": "\(server.url("/bad"))"}}, {"kind": "noop"}],
                 "on_success": {"kind": "noop"}, "on_complete": {"kind": "noop"}}
                """)
            let failedID = try #require((failing.json["batch"] as? [String: Any])?["id"] as? String, "\(failing.text)")
            let failed = try await Self.waitForState(api, failedID, ["completed"])
            #expect(failed.json["failed"] as? Int == 1 && failed.json["completed"] as? Int == 1, "\(failed.text)")
            #expect(failed.json["success_job_id"] == nil && failed.json["complete_job_id"] != nil, "\(failed.text)")
            #expect(try await Self.callbacks(stack, failedID) == 1)
            #expect(try await Self.openJobs(stack, failedID) == 0)
            // Its dead job requeued opens the finished batch again (counted), and when it dies
            // again the batch's callbacks are not sent twice.
            let deadID = try await stack.scalar("SELECT id::text FROM jobs WHERE batch_id = $1::uuid AND status = 'dead'", [failedID], as: String.self)
            let requeued = try await api.call(.post, "/v1/dead-letters/requeue", body: #"{"job_ids": ["\#(deadID)"]}"#)
            #expect(requeued.status == 200, "\(requeued.text)")
            try await eventually("the requeued job dies again") {
                try await stack.scalar("""
                    SELECT j.status = 'dead' AND (SELECT count(*) FROM job_events e WHERE e.job_id = j.id AND e.status = 'dead') = 2
                    FROM jobs j WHERE j.id = $1::uuid
                    """, [deadID], as: Bool.self)
            }
            #expect(try await Self.openJobs(stack, failedID) == 0)
            #expect(try await Self.callbacks(stack, failedID) == 1)

            // One job running, five waiting for their time: a cancel stops the five.
            let mixed = try await api.call(.post, "/v1/batches", body: """
                {"jobs": [{"kind": "noop", "payload": {"sleep_ms": 2000}}, \((0..<5).map { _ in #"{"kind": "noop", "delay_seconds": 60}"# }.joined(separator: ","))],
                 "on_complete": {"kind": "noop"}}
                """)
            let mixedID = try #require((mixed.json["batch"] as? [String: Any])?["id"] as? String, "\(mixed.text)")
            try await eventually("its first job runs") {
                try await stack.scalar("SELECT count(*)::int FROM jobs WHERE batch_id = $1::uuid AND status = 'running'", [mixedID], as: Int.self) == 1
            }
            let cancelled = try await api.call(.post, "/v1/batches/\(mixedID)/cancel")
            #expect(cancelled.status == 200 && cancelled.json["cancelled"] as? Int == 5 && cancelled.json["cancelled_at"] != nil, "\(cancelled.text)")
            // The count on the batch's row is its unfinished jobs: the running one.
            #expect(try await Self.openJobs(stack, mixedID) == 1)
            let ended = try await Self.waitForState(api, mixedID, ["completed"])
            #expect(ended.json["completed"] as? Int == 1 && ended.json["cancelled"] as? Int == 5, "\(ended.text)")
            #expect(try await Self.openJobs(stack, mixedID) == 0)
            #expect(try await Self.callbacks(stack, mixedID) == 1)
            let closed = try await api.call(.post, "/v1/batches/\(mixedID)/jobs", body: #"{"jobs": [{"kind": "noop"}]}"#)
            #expect(closed.status == 409, "\(closed.text)")
        }
    }

    /// A fan-out's chunk counts its jobs into their batch last in its transaction: the batch
    /// row, which every outcome of the batch's jobs updates, is free while the chunk's caller
    /// writes its own rows, and the count is right once the chunks are written.
    @Test func aFanOutsChunkCountsItsJobsIntoTheBatchLast() async throws {
        let stack = try await JobStack()
        let batch = UUID(), batches = Batches(store: stack.enqueuer.store)
        try await stack.pool.withConnection { c in
            try c.transaction { try batches.create(batch, owner: nil, description: "fan-out", onSuccess: nil, onComplete: nil, jobs: 30, held: true, on: $0) }
        }
        let other = try stack.database.connect()
        defer { other.close() }
        let free = Locked<[Bool]>([])
        let written = try await stack.enqueuer.enqueueInChunks((0..<30).map { _ in NewJob(kind: "noop", batchID: batch) }, size: 10,
                                                               before: { _, _ in true }, afterward: { _, _, _ in
            // Another outcome writer of the batch, meanwhile.
            _ = try other.execute("BEGIN")
            let isFree = (try? other.query("SELECT 1 FROM batches WHERE id = $1 FOR NO KEY UPDATE NOWAIT", [batch])) != nil
            _ = try other.execute("ROLLBACK")
            free.withLock { $0.append(isFree) }
        })
        #expect(written.count == 30)
        #expect(free.withLock { $0 } == [true, true, true], "the batch row is not held while the chunk's caller writes")
        #expect(try await stack.scalar("SELECT open_jobs FROM batches WHERE id = $1", [batch], as: Int.self) == 31, "30 jobs and the hold")
    }

    @Test func badBatchesGetAProblemNamingTheField() async throws {
        let stack = try await JobStack()
        let api = try await StackAPI(stack: stack)
        for (body, status, field) in [
            (#"{"jobs": []}"#, 400, "jobs"),
            (#"{"jobs": [{"kind": "nope"}]}"#, 422, "jobs[0].kind"),
            (#"{"jobs": [{"kind": "noop"}], "on_success": {"kind": "nope"}}"#, 422, "on_success.kind"),
            (#"{"jobs": [{"kind": "noop"}], "on_complete": "noop"}"#, 400, "on_complete"),
            (#"{"jobs": [{"kind": "noop"}], "on_complete": {"kind": "noop", "payload": [1]}}"#, 400, "on_complete.payload"),
            (#"{"jobs": [{"kind": "noop"}], "extra": 1}"#, 400, "extra"),
        ] {
            let r = try await api.call(.post, "/v1/batches", body: body)
            #expect(r.status == status && r.field == field, "\(body): \(r.status) \(r.text)")
        }
        // A callback that could not be enqueued as it is is refused now, not when the batch ends.
        let badCallback = try await api.call(.post, "/v1/batches", body: #"{"jobs": [{"kind": "noop"}], "on_complete": {"kind": "http", "payload": {"url": "https://example.com", "headers": {"Host": "x"}}}}"#)
        #expect(badCallback.status == 422 && badCallback.field?.hasPrefix("on_complete.payload") == true, "\(badCallback.text)")
        // Jobs that all join existing ones would leave a batch that never ends.
        #expect(try await api.call(.post, "/v1/jobs", body: #"{"kind": "noop", "idempotency_key": "k1", "delay_seconds": 600}"#).status == 201)
        let joined = try await api.call(.post, "/v1/batches", body: #"{"jobs": [{"kind": "noop", "idempotency_key": "k1", "delay_seconds": 600}]}"#)
        #expect(joined.status == 409 && joined.field == "jobs", "\(joined.text)")
        let missing = try await api.call(.get, "/v1/batches/\(UUID())")
        #expect(missing.status == 404 && missing.field == "id")
        #expect(try await stack.scalar("SELECT count(*)::int FROM batches", as: Int.self) == 0)
    }
}
