import EsteiraCore
import Foundation
import HTTPClient
import Postgres
import StandIns
import Testing

/// An api, exporters, and a PostgREST stand-in writing into a `fichas` table of a database
/// of its own, so tests read what actually arrived.
final class ExportRig {
    let stack: JobStack
    let api: StackAPI
    let fichas: PostgRESTTable
    let server: StandInHTTPServer
    private let fichasDatabase: ScratchDatabase

    static let apiKey = "sb-test-key"

    private init(stack: JobStack, api: StackAPI, fichas: PostgRESTTable, server: StandInHTTPServer, database: ScratchDatabase) {
        self.stack = stack
        self.api = api
        self.fichas = fichas
        self.server = server
        self.fichasDatabase = database
    }

    /// `kinds`: the kinds file (a short heartbeat for the export kind where a test kills an exporter).
    static func with(kinds: String = "kinds: {}\n", _ body: (ExportRig) async throws -> Void) async throws {
        let stack = try await JobStack(kinds: kinds)
        let api = try await StackAPI(stack: stack)
        let database = try ScratchDatabase()
        let fichas = try PostgRESTTable(databaseURL: database.url, apiKey: apiKey)
        try await StandInHTTPServer.withServer { server in
            fichas.serve(on: server)
            try await body(ExportRig(stack: stack, api: api, fichas: fichas, server: server, database: database))
        }
    }

    /// Adds target `name` pointing at the stand-in; `extra`: more JSON members.
    @discardableResult
    func addTarget(_ name: String = "gestao", key: String = ExportRig.apiKey, extra: String = "") async throws -> StackAPI.Reply {
        let r = try await api.post("/v1/export-targets", """
            {"name": "\(name)", "base_url": "\(server.url(""))", "api_key": "\(key)"\(extra.isEmpty ? "" : ", " + extra)}
            """)
        #expect(r.status == 201, "target: \(r.text)")
        return r
    }

    /// Writes `count` leads on each day (UTC), spread over the day; `owner`: whose.
    @discardableResult
    func seed(_ days: [(String, Int)], owner: UUID? = nil) async throws -> [Int64] {
        var ids: [Int64] = []
        for (day, count) in days where count > 0 {
            ids += try await stack.pool.withConnection { c in
                try c.query("""
                    INSERT INTO leads (run_id, name, email, created_at, owner_id)
                    SELECT 1, 'Lead ' || g, 'lead' || g || '@example.test',
                           ($1::date)::timestamp AT TIME ZONE 'UTC' + make_interval(secs => (g - 1) * 86000.0 / $2), $3
                    FROM generate_series(1, $2) g RETURNING id
                    """, [day, count, owner]).map { try $0.decode(Int64.self, at: 0) }
            }
        }
        return ids
    }

    func export(_ id: String, as token: String? = nil) async throws -> [String: Any] {
        try await api.get("/v1/exports/\(id)", as: token).json
    }

    /// Starts an export; returns its id.
    func start(_ body: String, as token: String? = nil) async throws -> String {
        let r = try await api.post("/v1/exports", body, as: token)
        #expect(r.status == 202, "export: \(r.text)")
        return try #require(r.json["id"] as? String)
    }

    /// Waits until the export's `key` satisfies `condition`.
    @discardableResult
    func waitFor(_ id: String, _ what: String, timeout: Duration = .seconds(60),
                 _ condition: ([String: Any]) -> Bool) async throws -> [String: Any] {
        let deadline = ContinuousClock.now + timeout
        var last: [String: Any] = [:]
        while ContinuousClock.now < deadline {
            last = try await export(id)
            if condition(last) { return last }
            try await Task.sleep(for: .milliseconds(50))
        }
        Issue.record("export \(id): not \(what) after \(timeout): \(last)\nexporters: \(stack.processors.map(\.text).joined(separator: "\n---\n").suffix(3000))")
        return last
    }

    func waitForStatus(_ id: String, _ status: String, timeout: Duration = .seconds(60)) async throws -> [String: Any] {
        try await waitFor(id, status, timeout: timeout) { $0["status"] as? String == status }
    }

    /// Sync events of export `id`: lead to its statuses.
    func syncEvents(_ id: String) async throws -> [Int64: [String]] {
        var out: [Int64: [String]] = [:]
        for row in try await stack.pool.withConnection({ try $0.query("SELECT lead_id, status FROM sync_events WHERE export_id = $1::uuid ORDER BY id", [id]) }) {
            out[try row.decode(Int64.self, at: 0), default: []].append(try row.decode(String.self, at: 1))
        }
        return out
    }

    /// Each of `ids` arrived exactly once and has exactly one success event, and nothing else arrived.
    func expectEachOnce(_ ids: [Int64], export id: String, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let writes = try fichas.writes()
        #expect(Set(writes.keys) == Set(ids), "arrived \(writes.count), expected \(ids.count)", sourceLocation: sourceLocation)
        #expect(writes.values.allSatisfy { $0 == 1 }, "written twice: \(writes.filter { $0.value > 1 }.keys.sorted().prefix(10))",
                sourceLocation: sourceLocation)
        let events = try await syncEvents(id)
        #expect(events.count == ids.count && events.values.allSatisfy { $0 == ["success"] },
                "events for \(events.count) leads; not one success each: \(events.filter { $0.value != ["success"] }.prefix(5))",
                sourceLocation: sourceLocation)
    }
}

@Suite struct ExportTests {
    static let days = [("2026-03-10", 230), ("2026-03-09", 0), ("2026-03-08", 100), ("2026-03-07", 57), ("2026-03-05", 1)]

    @Test func targetsAreAdminsAloneAndTheirKeyIsNeverShownAndBadRequestsNameTheirField() async throws {
        try await ExportRig.with { rig in
            let api = rig.api
            let user = try await api.userToken()
            // No target at all: 422 naming target.
            let none = try await api.post("/v1/exports", #"{"start_date": "2026-03-10"}"#)
            #expect(none.status == 422 && none.field == "target" && none.text.contains("no export target is active"), "\(none.text)")
            // Users cannot add targets.
            let forbidden = try await api.post("/v1/export-targets", #"{"name": "x", "base_url": "http://a.test", "api_key": "k"}"#, as: user)
            #expect(forbidden.status == 403 && forbidden.field == "token", "\(forbidden.text)")
            let created = try await rig.addTarget()
            #expect(!created.text.contains(ExportRig.apiKey) && created.json["api_key"] == nil, "\(created.text)")
            let listed = try await api.get("/v1/export-targets", as: user)
            #expect(listed.status == 200 && !listed.text.contains(ExportRig.apiKey), "\(listed.text)")
            #expect((listed.json["export_targets"] as? [[String: Any]])?.first?["name"] as? String == "gestao")
            let duplicate = try await api.post("/v1/export-targets", #"{"name": "gestao", "base_url": "http://a.test", "api_key": "k"}"#)
            #expect(duplicate.status == 409 && duplicate.field == "name", "\(duplicate.text)")
            let badURL = try await api.post("/v1/export-targets", #"{"name": "y", "base_url": "ftp://a.test", "api_key": "k"}"#)
            #expect(badURL.status == 400 && badURL.field == "base_url", "\(badURL.text)")
            let rotated = try await api.call(.patch, "/v1/export-targets/gestao", body: #"{"api_key": "new-key", "rate_limit": 50}"#)
            #expect(rotated.status == 200 && rotated.json["rate_limit"] as? Double == 50 && !rotated.text.contains("new-key"), "\(rotated.text)")
            _ = try await api.call(.patch, "/v1/export-targets/gestao", body: #"{"api_key": "\#(ExportRig.apiKey)", "rate_limit": 0}"#)
            #expect(try await api.get("/v1/export-targets/gestao").json["rate_limit"] == nil)

            // Bad dates and sizes: 400 naming the field, nothing written.
            for (body, field) in [(#"{}"#, "start_date"), (#"{"start_date": "2026-3-10"}"#, "start_date"),
                                  (#"{"start_date": "2026-02-30"}"#, "start_date"), (#"{"start_date": "yesterday"}"#, "start_date"),
                                  (#"{"start_date": "2026-03-10", "end_date": "2026-03-11"}"#, "end_date"),
                                  (#"{"start_date": "2026-03-10", "end_date": "10/03/2026"}"#, "end_date"),
                                  (#"{"start_date": "2026-03-10", "batch_size": 0}"#, "batch_size"),
                                  (#"{"start_date": "2026-03-10", "batch_size": 10001}"#, "batch_size"),
                                  (#"{"start_date": "2026-03-10", "since": "x"}"#, "since")] {
                let r = try await api.post("/v1/exports", body)
                #expect(r.status == 400 && r.field == field, "\(body): \(r.text)")
            }
            let unknown = try await api.post("/v1/exports", #"{"start_date": "2026-03-10", "target": "nope"}"#)
            #expect(unknown.status == 404 && unknown.field == "target", "\(unknown.text)")
            #expect(try await rig.stack.scalar("SELECT count(*) FROM exports", as: Int.self) == 0)

            // A second active target: a request must name one.
            try await rig.addTarget("other")
            let several = try await api.post("/v1/exports", #"{"start_date": "2026-03-10"}"#)
            #expect(several.status == 422 && several.field == "target" && several.text.contains("other"), "\(several.text)")
            _ = try await api.call(.patch, "/v1/export-targets/other", body: #"{"sync_enabled": false}"#)
            let disabled = try await api.post("/v1/exports", #"{"start_date": "2026-03-10", "target": "other"}"#)
            #expect(disabled.status == 422 && disabled.text.contains("sync is disabled"), "\(disabled.text)")
            // Deleting: a used target stays (deactivate it instead); an unused one goes.
            let deleted = try await api.call(.delete, "/v1/export-targets/other")
            #expect(deleted.status == 204, "\(deleted.text)")
            // Six requests at once for the one target: one export, five refusals naming it (no 500
            // when two meet at the unique index).
            let answers = try await withThrowingTaskGroup(of: StackAPI.Reply.self) { group in
                for _ in 0..<6 { group.addTask { try await api.post("/v1/exports", #"{"start_date": "2026-03-10"}"#) } }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(answers.filter { $0.status == 202 }.count == 1, "\(answers.map(\.status))")
            #expect(answers.filter { $0.status == 409 && $0.field == "target" }.count == 5, "\(answers.map(\.text))")
        }
    }

    @Test func anExportSendsEachLeadOnceDayByDayNewestFirstWithASyncEventEach() async throws {
        try await ExportRig.with { rig in
            try await rig.addTarget()
            let inRange = try await rig.seed(Self.days)
            // Outside the range: a newer day and an older one are not sent.
            let outside = try await rig.seed([("2026-03-11", 5), ("2026-03-04", 5)])
            let id = try await rig.start(#"{"start_date": "2026-03-10", "end_date": "2026-03-05", "batch_size": 100}"#)
            #expect(try await rig.export(id)["status"] as? String == "pending")
            // A second export to the target while this one is active: 409 naming it.
            let second = try await rig.api.post("/v1/exports", #"{"start_date": "2026-03-10"}"#)
            #expect(second.status == 409 && second.field == "target" && second.text.contains(id.lowercased()), "\(second.text)")

            try await rig.stack.startExporter()
            let done = try await rig.waitForStatus(id, "completed")
            #expect(done["total_leads"] as? Int == inRange.count && done["exported_leads"] as? Int == inRange.count, "\(done)")
            #expect(done["error_leads"] as? Int == 0 && done["percent"] as? Double == 100 && done["completed_at"] != nil, "\(done)")
            #expect(done["last_completed_date"] as? String == "2026-03-05" && done["started_at"] != nil, "\(done)")
            try await rig.expectEachOnce(inRange, export: id)
            #expect(try rig.fichas.writes().keys.allSatisfy { !outside.contains($0) })
            // What arrived is the lead, and the days went newest first.
            let first = try #require(try rig.fichas.row(inRange[0]))
            #expect(first.contains(#""email": "lead1@example.test""#) && first.contains(#""run_id": 1"#), "\(first)")
            let order = try await rig.stack.scalar("""
                SELECT string_agg(day, ',' ORDER BY first_sent) FROM (
                    SELECT (l.created_at AT TIME ZONE 'UTC')::date::text AS day, min(s.id) AS first_sent
                    FROM sync_events s JOIN leads l ON l.id = s.lead_id WHERE s.export_id = $1::uuid GROUP BY 1) d
                """, [id], as: String.self)
            #expect(order == "2026-03-10,2026-03-08,2026-03-07,2026-03-05")
            // Its job's progress events carried the export's counters.
            let progress = try await rig.stack.scalar("""
                SELECT count(*) FROM job_events e JOIN jobs j ON j.id = e.job_id
                WHERE j.kind = 'export.run' AND e.status = 'progress' AND e.detail->>'export_id' = lower($1)
                """, [id], as: Int.self)
            #expect(progress >= 1)
            // The target is free again.
            let again = try await rig.start(#"{"start_date": "2026-03-04", "end_date": "2026-03-04"}"#)
            let second2 = try await rig.waitForStatus(again, "completed")
            #expect(second2["exported_leads"] as? Int == 5)
            let history = try await rig.api.get("/v1/exports?limit=1")
            #expect((history.json["exports"] as? [[String: Any]])?.map { $0["id"] as? String } == [again], "\(history.text)")
            let completed = try await rig.api.get("/v1/exports?status=completed")
            #expect((completed.json["exports"] as? [[String: Any]])?.count == 2)
            let badStatus = try await rig.api.get("/v1/exports?status=done")
            #expect(badStatus.status == 400 && badStatus.field == "status")
        }
    }

    @Test func pauseAndResumeDuringARunLoseNothingAndSendNothingTwice() async throws {
        try await ExportRig.with { rig in
            // Twenty requests a second of 50 leads: about 5 seconds for 5,000 leads.
            try await rig.addTarget(extra: #""rate_limit": 20, "rate_burst": 1"#)
            let ids = try await rig.seed([("2026-03-10", 2000), ("2026-03-09", 1500), ("2026-03-08", 1500)])
            let id = try await rig.start(#"{"start_date": "2026-03-10", "batch_size": 50}"#)
            // Pause before it starts: pending → paused; resume → pending again.
            let early = try await rig.api.post("/v1/exports/\(id)/pause", "{}")
            #expect(early.status == 200 && early.json["status"] as? String == "paused", "\(early.text)")
            let back = try await rig.api.post("/v1/exports/\(id)/resume", "{}")
            #expect(back.status == 200 && back.json["status"] as? String == "pending", "\(back.text)")
            try await rig.stack.startExporter()
            try await rig.waitFor(id, "past 500 leads") { ($0["exported_leads"] as? Int ?? 0) >= 500 }
            let paused = try await rig.api.post("/v1/exports/\(id)/pause", #"{"reason": "target maintenance"}"#)
            #expect(paused.status == 200 && paused.json["status"] as? String == "paused" && paused.json["pause_reason"] as? String == "target maintenance",
                    "\(paused.text)")
            #expect(paused.json["paused_at"] != nil)
            // The batch in flight is recorded, then nothing more is sent.
            let stopped = try await rig.waitFor(id, "let go by its job", timeout: .seconds(10)) { $0["job_id"] == nil }
            let count = try #require(stopped["exported_leads"] as? Int)
            #expect(count < ids.count && count % 50 == 0, "\(stopped)")
            try await Task.sleep(for: .seconds(1))
            #expect(try rig.fichas.writes().count == count)
            #expect(try await rig.export(id)["exported_leads"] as? Int == count)
            // Nothing else may take the target meanwhile, and a paused export cannot be paused again.
            let other = try await rig.api.post("/v1/exports", #"{"start_date": "2026-03-10"}"#)
            #expect(other.status == 409 && other.text.contains("paused"), "\(other.text)")
            let twice = try await rig.api.post("/v1/exports/\(id)/pause", "{}")
            #expect(twice.status == 409 && twice.field == "status", "\(twice.text)")

            let resumed = try await rig.api.post("/v1/exports/\(id)/resume", "{}")
            #expect(resumed.status == 200 && resumed.json["status"] as? String == "running" && resumed.json["pause_reason"] == nil, "\(resumed.text)")
            let notPaused = try await rig.api.post("/v1/exports/\(id)/resume", "{}")
            #expect(notPaused.status == 409 && notPaused.field == "status", "\(notPaused.text)")
            let done = try await rig.waitForStatus(id, "completed")
            #expect(done["exported_leads"] as? Int == ids.count && done["error_leads"] as? Int == 0, "\(done)")
            try await rig.expectEachOnce(ids, export: id)
            // Finished: neither paused nor cancelled any more.
            let late = try await rig.api.post("/v1/exports/\(id)/cancel", "{}")
            #expect(late.status == 409 && late.field == "status", "\(late.text)")
        }
    }

    @Test func cancellingStopsAfterTheBatchInFlightAndKeepsWhatWasExported() async throws {
        try await ExportRig.with { rig in
            try await rig.addTarget(extra: #""rate_limit": 20, "rate_burst": 1"#)
            let ids = try await rig.seed([("2026-03-10", 3000)])
            let id = try await rig.start(#"{"start_date": "2026-03-10", "batch_size": 50}"#)
            try await rig.stack.startExporter()
            try await rig.waitFor(id, "past 200 leads") { ($0["exported_leads"] as? Int ?? 0) >= 200 }
            let cancelled = try await rig.api.post("/v1/exports/\(id)/cancel", "{}")
            #expect(cancelled.status == 200 && cancelled.json["status"] as? String == "cancelled" && cancelled.json["cancelled_at"] != nil)
            let stopped = try await rig.waitFor(id, "let go by its job", timeout: .seconds(10)) { $0["job_id"] == nil }
            let count = try #require(stopped["exported_leads"] as? Int)
            try await Task.sleep(for: .seconds(1))
            #expect(count < ids.count && stopped["status"] as? String == "cancelled")
            let events = try await rig.syncEvents(id)
            #expect(try rig.fichas.writes().count == count && events.count == count)
            let resume = try await rig.api.post("/v1/exports/\(id)/resume", "{}")
            #expect(resume.status == 409 && resume.field == "status", "\(resume.text)")
            // The target is free for the next one.
            _ = try await rig.start(#"{"start_date": "2026-03-10"}"#)
        }
    }

    @Test func disablingSyncOnTheTargetPausesARunningExport() async throws {
        try await ExportRig.with { rig in
            try await rig.addTarget(extra: #""rate_limit": 20, "rate_burst": 1"#)
            let ids = try await rig.seed([("2026-03-10", 2000)])
            let id = try await rig.start(#"{"start_date": "2026-03-10", "batch_size": 50}"#)
            try await rig.stack.startExporter()
            try await rig.waitFor(id, "past 200 leads") { ($0["exported_leads"] as? Int ?? 0) >= 200 }
            _ = try await rig.api.call(.patch, "/v1/export-targets/gestao", body: #"{"sync_enabled": false}"#)
            let paused = try await rig.waitForStatus(id, "paused", timeout: .seconds(10))
            #expect(paused["pause_reason"] as? String == "sync is disabled on the target" && (paused["exported_leads"] as? Int ?? 0) < ids.count,
                    "\(paused)")
            let refused = try await rig.api.post("/v1/exports/\(id)/resume", "{}")
            #expect(refused.status == 200, "resuming is allowed; the job pauses it again while sync is off: \(refused.text)")
            _ = try await rig.waitForStatus(id, "paused", timeout: .seconds(10))
            _ = try await rig.api.call(.patch, "/v1/export-targets/gestao", body: #"{"sync_enabled": true}"#)
            _ = try await rig.api.post("/v1/exports/\(id)/resume", "{}")
            _ = try await rig.waitForStatus(id, "completed")
            try await rig.expectEachOnce(ids, export: id)
        }
    }

    @Test func aKilledExporterResumesWithoutCountingALeadTwice() async throws {
        // A heartbeat every second: a killed exporter's job is rescued within a few seconds.
        try await ExportRig.with(kinds: "kinds:\n  export.run: { heartbeatTimeout: 4 }\n") { rig in
            try await rig.addTarget(extra: #""rate_limit": 10, "rate_burst": 1"#)
            let ids = try await rig.seed([("2026-03-10", 2000), ("2026-03-09", 1000)])
            let id = try await rig.start(#"{"start_date": "2026-03-10", "batch_size": 100}"#)
            let first = try await rig.stack.startExporter()
            try await rig.waitFor(id, "past 500 leads") { ($0["exported_leads"] as? Int ?? 0) >= 500 }
            // Answers now come 2 s after the write: the kill lands while a batch is written
            // but not yet answered.
            rig.fichas.slowDown(.seconds(2))
            try await Task.sleep(for: .milliseconds(500))
            first.signal(SIGKILL)
            _ = await first.waitForExit(timeout: .seconds(5))
            let atKill = try #require(try await rig.export(id)["exported_leads"] as? Int)
            rig.fichas.slowDown(nil)
            try await rig.stack.startScheduler(arguments: ["--rescue-interval", "0.5"])
            try await rig.stack.startExporter()
            let done = try await rig.waitForStatus(id, "completed", timeout: .seconds(90))
            #expect(done["exported_leads"] as? Int == ids.count && done["error_leads"] as? Int == 0, "\(done)")
            #expect(atKill < ids.count)
            // Each lead counted once, with one success event; the batch cut short arrived again
            // (an upsert: written twice, stored once).
            let events = try await rig.syncEvents(id)
            #expect(events.count == ids.count && events.values.allSatisfy { $0 == ["success"] })
            let writes = try rig.fichas.writes()
            #expect(Set(writes.keys) == Set(ids))
            #expect(writes.values.filter { $0 > 1 }.count <= 100, "at most the batch cut short is written again")
        }
    }

    @Test func aStormOf429SlowsTheExportWithoutFailingItAndRejectedRowsAreErrors() async throws {
        try await ExportRig.with { rig in
            try await rig.addTarget()
            let ids = try await rig.seed([("2026-03-10", 300), ("2026-03-09", 300)])
            let rejected: Set<Int64> = [ids[5], ids[420]]
            rig.fichas.reject(ids: rejected)
            // Ten 429s asking for a second each, a 503 with Retry-After, two 500s and a dropped connection.
            rig.fichas.failNext(Array(repeating: .tooManyRequests(retryAfter: 1), count: 10)
                                + [StandInResponse(status: 503, headers: [("Retry-After", "1")]), StandInResponse(status: 500),
                                   StandInResponse(status: 502), .dropConnection])
            let began = ContinuousClock.now
            let id = try await rig.start(#"{"start_date": "2026-03-10", "batch_size": 100}"#)
            try await rig.stack.startExporter()
            let done = try await rig.waitForStatus(id, "completed", timeout: .seconds(120))
            #expect(ContinuousClock.now - began >= .seconds(10), "the target's Retry-After was heeded")
            #expect(done["exported_leads"] as? Int == ids.count - 2 && done["error_leads"] as? Int == 2, "\(done)")
            let events = try await rig.syncEvents(id)
            for lead in ids {
                #expect(events[lead] == [rejected.contains(lead) ? "error" : "success"], "lead \(lead): \(events[lead] ?? [])")
            }
            let error = try await rig.stack.scalar("SELECT error FROM sync_events WHERE lead_id = $1", [ids[5]], as: String.self)
            #expect(error.contains("23514"), "\(error)")
            #expect(Set(try rig.fichas.writes().keys) == Set(ids).subtracting(rejected))
            #expect(try await rig.stack.scalar("SELECT pauses FROM rate_limiters WHERE name = 'export-target:gestao'", as: Int.self) >= 10)
            // The two are what was never exported.
            let never = try await rig.api.get("/v1/exports/never-exported?target=gestao")
            let leads = (never.json["leads"] as? [[String: Any]])?.compactMap { ($0["id"] as? NSNumber)?.int64Value }
            #expect(leads.map(Set.init) == rejected, "\(never.text)")
            #expect((never.json["leads"] as? [[String: Any]])?.first?["last_error"] as? String != nil)
        }
    }

    @Test func aRefusedKeyFailsTheExportAndResumeCarriesOnOnceItIsFixed() async throws {
        try await ExportRig.with { rig in
            try await rig.addTarget(key: "wrong-key")
            let ids = try await rig.seed([("2026-03-10", 120)])
            let id = try await rig.start(#"{"start_date": "2026-03-10"}"#)
            try await rig.stack.startExporter()
            let failed = try await rig.waitForStatus(id, "failed")
            #expect((failed["error"] as? String)?.contains("refused the API key") == true && failed["exported_leads"] as? Int == 0, "\(failed)")
            // The history offers to resume it.
            let page = try await DashboardClient(api: rig.api).get("/ui/exports")
            #expect(page.text.contains("/ui/exports/\(id.lowercased())/resume"))
            _ = try await rig.api.call(.patch, "/v1/export-targets/gestao", body: #"{"api_key": "\#(ExportRig.apiKey)"}"#)
            let resumed = try await rig.api.post("/v1/exports/\(id)/resume", "{}")
            #expect(resumed.status == 200 && resumed.json["error"] == nil, "\(resumed.text)")
            _ = try await rig.waitForStatus(id, "completed")
            try await rig.expectEachOnce(ids, export: id)
        }
    }

    @Test func anExportWhoseJobDiedIsResumedWithANewJob() async throws {
        try await ExportRig.with { rig in
            try await rig.addTarget()
            let ids = try await rig.seed([("2026-03-10", 30)])
            let id = try await rig.start(#"{"start_date": "2026-03-10"}"#)
            // Its job is alive (queued, no exporter yet): nothing to resume.
            let alive = try await rig.api.post("/v1/exports/\(id)/resume", "{}")
            #expect(alive.status == 409 && alive.field == "status", "\(alive.text)")
            // Its job died (as after its last attempt timed out): the export is stalled.
            let job = try #require(try await rig.export(id)["job_id"] as? String)
            _ = try await rig.stack.scalar("WITH d AS (UPDATE jobs SET status = 'dead' WHERE id = $1::uuid RETURNING 1) SELECT count(*) FROM d", [job], as: Int.self)
            let resumed = try await rig.api.post("/v1/exports/\(id)/resume", "{}")
            #expect(resumed.status == 200 && resumed.json["job_id"] as? String != job, "\(resumed.text)")
            try await rig.stack.startExporter()
            _ = try await rig.waitForStatus(id, "completed")
            try await rig.expectEachOnce(ids, export: id)
        }
    }

    @Test func aUsersExportSendsOnlyTheirLeadsAndOthersCannotSeeOrMoveIt() async throws {
        try await ExportRig.with { rig in
            try await rig.addTarget()
            let alice = try await rig.api.userToken("alice-\(UUID().uuidString.prefix(6))")
            let bob = try await rig.api.userToken("bob-\(UUID().uuidString.prefix(6))")
            let aliceID = try await rig.stack.scalar("SELECT id FROM api_principals WHERE name LIKE 'alice-%'", as: UUID.self)
            let hers = try await rig.seed([("2026-03-10", 40)], owner: aliceID)
            let others = try await rig.seed([("2026-03-10", 30)])
            let id = try await rig.start(#"{"start_date": "2026-03-10"}"#, as: alice)
            // Bob sees nothing of it and cannot act on it.
            #expect(try await rig.api.get("/v1/exports/\(id)", as: bob).status == 404)
            #expect((try await rig.api.get("/v1/exports", as: bob).json["exports"] as? [Any])?.isEmpty == true)
            for action in ["pause", "resume", "cancel"] {
                let r = try await rig.api.post("/v1/exports/\(id)/\(action)", "{}", as: bob)
                #expect(r.status == 404 && r.field == "id", "\(action): \(r.text)")
            }
            try await rig.stack.startExporter()
            let done = try await rig.waitFor(id, "completed") { $0["status"] as? String == "completed" }
            #expect(done["total_leads"] as? Int == hers.count && done["created_by"] as? String != nil, "\(done)")
            #expect(Set(try rig.fichas.writes().keys) == Set(hers))
            // Never exported: to Alice none of hers; to an admin, the others' leads.
            let mine = try await rig.api.get("/v1/exports/never-exported", as: alice)
            #expect((mine.json["leads"] as? [Any])?.isEmpty == true, "\(mine.text)")
            let all = try await rig.api.get("/v1/exports/never-exported?limit=20")
            let page = (all.json["leads"] as? [[String: Any]])?.compactMap { ($0["id"] as? NSNumber)?.int64Value } ?? []
            #expect(page == Array(others.prefix(20)) && all.json["next_after"] as? Int == Int(others[19]), "\(all.text)")
            let next = try await rig.api.get("/v1/exports/never-exported?limit=20&after=\(others[19])")
            #expect((next.json["leads"] as? [Any])?.count == 10 && next.json["next_after"] == nil, "\(next.text)")
        }
    }

    @Test func theDashboardPageStartsPausesResumesAndCancelsExportsAndShowsTheirHistory() async throws {
        try await ExportRig.with { rig in
            let d = try await DashboardClient(api: rig.api)
            #expect(try await d.get("/ui/exports").text.contains("No export target is active"))
            try await rig.addTarget()
            let ids = try await rig.seed([("2026-03-10", 50)])
            let page = try await d.get("/ui/exports")
            #expect(page.status == 200 && page.text.contains("name=\"start_date\"") && page.text.contains("<option value=\"gestao\" selected>"))
            #expect(page.text.contains("id=\"targets-table\"") && !page.text.contains(ExportRig.apiKey), "admins see the targets, never a key")
            // Bad dates: an error page naming the field, nothing started.
            let bad = try await d.post("/ui/exports", ["start_date": "2026-03-10", "end_date": "2026-03-11", "batch_size": "100", "target": "gestao"])
            #expect(bad.status == 400 && bad.text.contains("<code>end_date</code>"), "\(bad.status) \(bad.text.prefix(300))")
            let started = try await d.post("/ui/exports", ["start_date": "2026-03-10", "end_date": "", "batch_size": "20", "target": "gestao"])
            #expect(started.status == 303, "\(started.text.prefix(300))")
            let id = try await rig.stack.scalar("SELECT id::text FROM exports", as: String.self)
            #expect(try await d.get("/ui/exports").text.contains("data-export=\"\(id)\""))
            // A user sees neither the card nor the targets, and cannot pause it.
            let user = try await DashboardClient(api: rig.api, token: try await rig.api.userToken())
            let theirs = try await user.get("/ui/exports")
            #expect(!theirs.text.contains(id) && !theirs.text.contains("targets-table"))
            #expect(try await user.post("/ui/exports/\(id)/pause").status == 404)
            // Paused with a reason, resumed, then run to the end by an exporter.
            #expect(try await d.post("/ui/exports/\(id)/pause", ["reason": "checking the target"]).status == 303)
            let paused = try await d.get("/ui/exports")
            #expect(paused.text.contains("Paused: checking the target") && paused.text.contains("/ui/exports/\(id)/resume"))
            #expect(try await d.post("/ui/exports/\(id)/resume").status == 303)
            try await rig.stack.startExporter()
            _ = try await rig.waitForStatus(id, "completed")
            let done = try await d.get("/ui/exports")
            #expect(done.text.contains("badge s-completed") && done.text.contains("No export is active.") && done.text.contains(">50<"), "\(done.text)")
            #expect(try await d.post("/ui/exports/\(id)/cancel").status == 409)
            try await rig.expectEachOnce(ids, export: id)
        }
    }
}

