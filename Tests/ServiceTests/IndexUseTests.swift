import EsteiraCore
import Foundation
import Postgres
import Testing

/// The hot queries use the indexes made for them, on a table big enough that a sequential
/// scan would be the planner's choice otherwise.
@Suite struct IndexUseTests {
    /// A job's state changes are HOT updates (no index write) only while no index of `jobs`
    /// reads a column they change, in its columns, expressions or predicate: one that did
    /// (a partial index on status) made every job update write every index.
    @Test func noIndexOfJobsReadsAColumnTheStateChangesWrite() async throws {
        let database = try await ScratchDatabase.migrated()
        let c = try database.connect()
        defer { c.close() }
        let changing = ["status", "attempts", "updated_at", "started_at", "first_started_at", "finished_at", "published_at",
                        "run_after", "last_error", "last_error_class", "result", "progress", "limiter_ticket"]
        let indexes = try c.query("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() AND tablename = 'jobs'")
            .map { (try $0.decode(String.self, at: 0), try $0.decode(String.self, at: 1)) }
        #expect(indexes.count >= 5)
        for (name, definition) in indexes {
            let words = Set(definition.split { !($0.isLetter || $0.isNumber || $0 == "_") }.map(String.init))
            #expect(words.isDisjoint(with: changing), "index \(name) reads a changing column: \(definition)")
        }
        // And so the updates of a job's life are HOT.
        try c.execute("INSERT INTO jobs (id, kind, status, payload, max_attempts) SELECT gen_random_uuid(), 'noop', 'queued', '{}', 3 FROM generate_series(1, 200)")
        try c.execute("UPDATE jobs SET status = 'running', attempts = 1, started_at = now(), updated_at = now()")
        try c.execute("UPDATE jobs SET status = 'completed', finished_at = now(), updated_at = now()")
        try await eventually("the table's statistics show the updates") {
            try c.query("SELECT n_tup_upd FROM pg_stat_user_tables WHERE relname = 'jobs'")[0].decode(Int.self, at: 0) >= 400
        }
        let hot = try c.query("SELECT n_tup_hot_upd::float8 / n_tup_upd FROM pg_stat_user_tables WHERE relname = 'jobs'")[0].decode(Double.self, at: 0)
        #expect(hot > 0.75, "only \(hot) of the job updates were HOT")
    }

    @Test func hotQueriesUseTheirIndexes() async throws {
        let database = try await ScratchDatabase.migrated()
        let c = try database.connect()
        defer { c.close() }
        // 60,000 jobs over 30 days, 6 kinds, 20 owners, mostly completed; their events; dead letters.
        try insertPrincipals(20, on: c)
        try c.execute("""
            INSERT INTO jobs (id, kind, status, payload, idempotency_key, max_attempts, attempts, owner_id, created_at,
                              published_at, run_after, first_started_at, started_at, finished_at)
            SELECT gen_random_uuid(), 'k' || (i % 6),
                   CASE WHEN i % 50 = 0 THEN 'dead' WHEN i % 50 = 1 THEN 'queued' WHEN i % 50 = 2 THEN 'running'
                        WHEN i % 50 = 3 THEN 'scheduled' ELSE 'completed' END,
                   '{}', 'key-' || i, 3, 1,
                   ('00000000-0000-0000-0000-' || lpad((1 + i % 20)::text, 12, '0'))::uuid,
                   now() - (i % 43200) * interval '1 minute',
                   CASE WHEN i % 1000 = 3 THEN NULL ELSE now() END,
                   CASE WHEN i % 50 = 3 THEN now() + interval '1 hour' END,
                   now(), now(), now()
            FROM generate_series(1, 60000) i
            """)
        // The outbox holds the unpublished ones, the leases the running ones.
        try c.execute("""
            INSERT INTO job_outbox (job_id, due_at)
            SELECT id, coalesce(run_after, created_at) FROM jobs WHERE published_at IS NULL AND status IN ('queued', 'scheduled')
            """)
        try c.execute("""
            INSERT INTO job_leases (job_id, attempt, worker, heartbeat_at)
            SELECT id, attempts, 'w', now() FROM jobs WHERE status = 'running'
            """)
        try c.execute("""
            INSERT INTO job_events (job_id, kind, owner_id, status, attempt)
            SELECT id, kind, owner_id, s, 1 FROM jobs, unnest(ARRAY['queued', 'running', 'completed']) s
            """)
        try c.execute("""
            INSERT INTO dead_letters (job_id, kind, owner_id, reason, error_class, attempts)
            SELECT id, kind, owner_id, 'boom', 'permanent', 3 FROM jobs WHERE status = 'dead'
            """)
        try c.execute("""
            INSERT INTO schedules (id, name, cron, kind, enabled, next_run_at)
            SELECT gen_random_uuid(), 's' || i, '@hourly', 'k1', i % 10 <> 0, now() + (i % 3600) * interval '1 second'
            FROM generate_series(1, 5000) i
            """)
        // Jobs parked for a concurrency slot of k3, by conversation; a tenth of the leases hold k4's slots.
        try c.execute("""
            INSERT INTO job_outbox (job_id, due_at, relay_only, waiting_kind, waiting_key)
            SELECT gen_random_uuid(), now() + (i % 60) * interval '1 second', true, 'k3', '"c' || (i % 100) || '"'
            FROM generate_series(1, 5000) i
            """)
        try c.execute("""
            INSERT INTO job_outbox (job_id, due_at, relay_only, waiting_kind)
            SELECT gen_random_uuid(), now() + (i % 60) * interval '1 second', true, 'k' || (5 + i % 5) FROM generate_series(1, 5000) i
            """)
        try c.execute("UPDATE job_leases SET slot_kind = 'k4', slot_key = '\"s' || (hashtext(job_id::text) % 10) || '\"' WHERE hashtext(job_id::text) % 10 = 0")
        try c.execute("UPDATE jobs SET batch_id = ('00000000-0000-0000-0000-' || lpad((hashtext(id::text) % 300 + 300)::text, 12, '0'))::uuid WHERE hashtext(id::text) % 20 = 0")
        // Dashboard sign-ins: a few thousand browsers.
        try c.execute("""
            INSERT INTO dashboard_sessions (id_hash, principal_id, csrf_token, expires_at)
            SELECT sha256(convert_to('s' || i, 'UTF8')), ('00000000-0000-0000-0000-' || lpad((1 + i % 20)::text, 12, '0'))::uuid,
                   repeat('a', 64), now() + interval '1 hour'
            FROM generate_series(1, 3000) i
            """)
        try c.execute("ANALYZE")
        let owner = UUID(uuidString: "00000000-0000-0000-0000-000000000007")!
        let someJob = try c.query("SELECT id FROM jobs WHERE kind = 'k1' LIMIT 1").first!.decode(UUID.self, at: 0)

        func plan(_ sql: String, _ parameters: [PostgresEncodable?]) throws -> String {
            try c.query("EXPLAIN " + sql, parameters).map { try $0.decode(String.self, at: 0) }.joined(separator: "\n")
        }
        func expectIndex(_ index: String, _ query: (sql: String, parameters: [PostgresEncodable?]),
                         sourceLocation: SourceLocation = #_sourceLocation) throws {
            let text = try plan(query.sql, query.parameters)
            #expect(text.contains(index), "expected \(index):\n\(text)", sourceLocation: sourceLocation)
            #expect(!text.contains("Seq Scan on jobs") && !text.contains("Seq Scan on job_events"),
                    "sequential scan:\n\(text)", sourceLocation: sourceLocation)
        }

        var byKindStatus = JobFilter()
        byKindStatus.kind = "k2"
        byKindStatus.statuses = [.dead]
        // No index of jobs covers status (a state change would then update every index):
        // status lists read the created_at order of their kind, or of all jobs, and filter.
        try expectIndex("jobs_kind_created", JobQueries.listSQL(byKindStatus, scope: .everything))
        var byStatus = JobFilter()
        byStatus.statuses = [.running]
        try expectIndex("jobs_created", JobQueries.listSQL(byStatus, scope: .everything))
        try expectIndex("jobs_owner_created", JobQueries.listSQL(JobFilter(), scope: AccessScope(ownerID: owner)))
        try expectIndex("jobs_created", JobQueries.listSQL(JobFilter(), scope: .everything))
        var page2 = JobFilter()
        page2.cursor = ListCursor(createdAt: "2026-01-01T00:00:00.000000", id: someJob)
        try expectIndex("jobs_created", JobQueries.listSQL(page2, scope: .everything))
        // The dashboard's payload search: the window of the other filters comes off an index.
        var search = JobFilter()
        search.payloadEquals = PayloadMatch(path: ["customer", "id"], value: "42")
        try expectIndex("jobs_created", JobQueries.listSQL(search, scope: .everything))
        search.kind = "k1"
        try expectIndex("jobs_kind_created", JobQueries.listSQL(search, scope: .everything))
        try expectIndex("jobs_owner_created", JobQueries.listSQL(search, scope: AccessScope(ownerID: owner)))
        try expectIndex("jobs_pkey", ("SELECT \(JobRecord.columns) FROM jobs WHERE id = $1", [someJob]))
        try expectIndex("job_events_job", (JobQueries.eventsSQL, [someJob]))
        try expectIndex("job_outbox", (OutboxRelay.dueSQL, [5.0, 1000]))
        try expectIndex("jobs_pkey", (OutboxRelay.dueSQL, [5.0, 1000]))
        try expectIndex("job_outbox_waiting", (ConcurrencySlots.wakeSQL(.key), ["k3", "\"c7\""]))
        try expectIndex("job_outbox_waiting", (ConcurrencySlots.wakeSQL(.noKey), ["k6"]))
        try expectIndex("jobs_batch", (Batches.countsSQL, [UUID(uuidString: "00000000-0000-0000-0000-000000000301")!]))
        try expectIndex("job_leases_slot", (ConcurrencySlots.slotsSQL, ["k4"]))
        try expectIndex("jobs_unique_key", (JobStore.activeUniqueSQL, [["k1\u{1F}-\u{1F}7"]]))
        try expectIndex("jobs_kind_idempotency_key_owner",
                        (JobStore.existingSQL, [[0], ["k1"], ["key-7"], [UUID()], ["{}"]]))
        try expectIndex("jobs_created", (JobStats.sql(scope: .everything), [Date().addingTimeInterval(-3600), Date()]))
        // The scheduler's passes.
        try expectIndex("jobs_pkey", (StuckJobRescue.sql, [["k0", "k1"], [600.0, 60.0], 600.0, 500, 60.0]))
        try expectIndex("jobs_kind_created", (Retention.batchSQL, ["k1", ["k0", "k1"], 3600.0, 1000]))
        try expectIndex("job_events_job", (Retention.batchSQL, ["k1", ["k0", "k1"], 3600.0, 1000]))
        let due = try plan(ScheduleStore.dueSQL, [Date(), 500])
        #expect(due.contains("schedules_due"), "\(due)")
        let minute = try plan("SELECT count(*) FROM job_events WHERE at >= $1 AND at < $2",
                              [Date().addingTimeInterval(-2 * 86400), Date().addingTimeInterval(-86400)])
        #expect(minute.contains("job_events_at"), "\(minute)")
        var letters = DeadLetterSelection()
        letters.kind = "k0"
        let dl = DeadLetterStore.listSQL(letters, scope: .everything)
        let dlPlan = try plan(dl.sql, dl.parameters)
        #expect(dlPlan.contains("dead_letters_open"), "\(dlPlan)")
        let everyKind = DeadLetterStore.listSQL(DeadLetterSelection(), scope: .everything)
        let everyKindPlan = try plan(everyKind.sql, everyKind.parameters)
        #expect(everyKindPlan.contains("dead_letters_open_newest") && !everyKindPlan.contains("Sort"), "\(everyKindPlan)")
        let session = try plan("SELECT * FROM dashboard_sessions s JOIN api_principals p ON p.id = s.principal_id WHERE s.id_hash = $1",
                               [[UInt8](repeating: 1, count: 32)])
        #expect(session.contains("dashboard_sessions_pkey"), "\(session)")
        let feed = try plan("SELECT * FROM job_events WHERE id > $1 AND id <= $2 AND job_id = $3 ORDER BY id LIMIT 500",
                            [Int64(0), Int64(1_000_000), someJob])
        #expect(feed.contains("job_events_job"), "\(feed)")
        // A stream by kind or owner reads the new ids through the primary key (no index of its own).
        let byKind = try plan("SELECT * FROM job_events WHERE id > $1 AND id <= $2 AND kind = $3 ORDER BY id LIMIT 500",
                              [Int64(170_000), Int64(170_500), "k1"])
        #expect(byKind.contains("job_events_pkey"), "\(byKind)")
    }
}
