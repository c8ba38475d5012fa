import EsteiraCore
import Foundation
import HTTPClient
import Testing

/// Input that generated requests (scripts/schemathesis.sh) found the api mishandling: each was
/// a 500, a silently changed value, or input the document forbids taken as valid.
@Suite struct APIBadInputTests {
    /// PostgreSQL's text and jsonb cannot hold U+0000: a NUL anywhere in a body was a 500, or,
    /// in a plain text field, cut the value short at the NUL (a principal named "x\0y" became
    /// "x"). Now it is a 400 naming the field, and nothing is written.
    @Test func nulInABodyOrQueryIsA400NamingTheField() async throws {
        let stack = try await JobStack()
        let api = try await StackAPI(stack: stack)
        let cases: [(method: HTTPMethod, path: String, body: String?, field: String)] = [
            (.post, "/v1/jobs", #"{"kind": "noop", "idempotency_key": "a\u0000b"}"#, "idempotency_key"),
            (.post, "/v1/jobs", #"{"kind": "noop", "payload": {"x": [1, "a\u0000b"]}}"#, "payload.x[1]"),
            (.post, "/v1/jobs", #"{"jobs": [{"kind": "noop"}, {"kind": "noop", "payload": "\u0000"}]}"#, "jobs[1].payload"),
            (.post, "/v1/tokens", #"{"name": "x\u0000y"}"#, "name"),
            (.post, "/v1/schedules", #"{"name": "n\u0000", "cron": "@daily", "kind": "noop"}"#, "name"),
            (.post, "/v1/schedules", #"{"name": "n", "cron": "@daily", "kind": "noop", "payload": {"k": "\u0000"}}"#, "payload.k"),
            (.get, "/v1/jobs?cursor=a%00b", nil, "cursor"),
            (.get, "/v1/dead-letters?kind=noop%00", nil, "kind"),
        ]
        for c in cases {
            let r = try await api.call(c.method, c.path, body: c.body)
            #expect(r.status == 400, "\(c.method) \(c.path) \(c.body ?? ""): \(r.status) \(r.text)")
            #expect(r.field == c.field, "\(c.method) \(c.path) \(c.body ?? ""): \(r.text)")
            #expect(r.headers["content-type"]?.hasPrefix("application/problem+json") == true)
        }
        #expect(try await stack.scalar("SELECT count(*) FROM jobs", as: Int.self) == 0)
        #expect(try await stack.scalar("SELECT count(*) FROM schedules", as: Int.self) == 0)
        #expect(try await stack.scalar("SELECT count(*) FROM api_principals WHERE name LIKE 'x%'", as: Int.self) == 0)
    }

    /// Times before 1 AD reached PostgreSQL as year 0, which it does not have (1 BC comes
    /// before 1 AD): a 500. RFC 3339 allows years from 0001, and Foundation reads 0001-01-01 as
    /// a Julian date, two days into 1 BC.
    @Test func theEarliestRFC3339TimesAreAnswered() async throws {
        let stack = try await JobStack()
        let api = try await StackAPI(stack: stack)
        for path in ["/v1/stats?from=0001-01-01T00:00:00Z",
                     "/v1/metrics/queues?from=0001-01-01T00:00:00Z&to=0001-01-02T00:00:00Z",
                     "/v1/jobs?created_after=0001-01-01T00:00:00Z",
                     "/v1/dead-letters?dead_after=0001-01-01T00:00:00Z"] {
            let r = try await api.get(path)
            #expect(r.status == 200, "\(path): \(r.status) \(r.text)")
        }
        let requeue = try await api.post("/v1/dead-letters/requeue", #"{"dead_after": "0001-01-01T00:00:00Z"}"#)
        #expect(requeue.status == 200, "\(requeue.text)")
        #expect(requeue.json["count"] as? Int == 0)
    }

    /// Integers were read through a Double: 9223372036854775807 was refused as "not an
    /// integer", and 9007199254740993 became 9007199254740992.
    @Test func largeIntegersAreTakenExactly() async throws {
        let stack = try await JobStack()
        let api = try await StackAPI(stack: stack)
        let r = try await api.post("/v1/lead-migrations",
                                   #"{"run_id": 9223372036854775807, "funnel_id": 9007199254740993, "column_id": 1}"#)
        #expect(r.status == 404, "\(r.text)")
        #expect(r.field == "funnel_id")
        #expect((r.json["detail"] as? String)?.contains("9007199254740993") == true, "\(r.text)")
        let tooBig = try await api.post("/v1/lead-migrations",
                                        #"{"run_id": 9223372036854775808, "funnel_id": 1, "column_id": 1}"#)
        #expect(tooBig.status == 400 && tooBig.field == "run_id", "\(tooBig.text)")
    }

    /// An explicit null for a typed field was taken as "left out": `{"role": null}` made a
    /// user, though the document says role is a string. Now it is a 400 naming the field.
    @Test func nullIsRefusedWhereTheDocumentSaysAType() async throws {
        let stack = try await JobStack()
        let api = try await StackAPI(stack: stack)
        let cases: [(path: String, body: String, field: String)] = [
            ("/v1/tokens", #"{"name": "nobody", "role": null}"#, "role"),
            ("/v1/jobs", #"{"kind": "noop", "idempotency_key": null}"#, "idempotency_key"),
            ("/v1/jobs", #"{"kind": "noop", "priority": null}"#, "priority"),
            ("/v1/dead-letters/requeue", #"{"kind": "noop", "limit": null}"#, "limit"),
            ("/v1/dead-letters/requeue", #"{"job_ids": null, "kind": "noop"}"#, "job_ids"),
            ("/v1/schedules", #"{"name": "n", "cron": "@daily", "kind": "noop", "enabled": null}"#, "enabled"),
        ]
        for c in cases {
            let r = try await api.post(c.path, c.body)
            #expect(r.status == 400, "\(c.path) \(c.body): \(r.status) \(r.text)")
            #expect(r.field == c.field, "\(c.path) \(c.body): \(r.text)")
        }
        #expect(try await stack.scalar("SELECT count(*) FROM api_principals WHERE name = 'nobody'", as: Int.self) == 0)
        #expect(try await stack.scalar("SELECT count(*) FROM jobs", as: Int.self) == 0)
        // A null payload is a JSON value like any other.
        #expect(try await api.post("/v1/jobs", #"{"kind": "noop", "payload": null}"#).status == 201)
    }

    /// `last_event_id` was not read at all when the Last-Event-ID header came too, so a bad one
    /// opened a stream; each is checked now (the header still wins).
    @Test func aBadLastEventIDQueryIsRefusedBesideTheHeader() async throws {
        let stack = try await JobStack()
        let api = try await StackAPI(stack: stack)
        let r = try await api.call(.get, "/v1/events?last_event_id=9223372036854775808", headers: [("Last-Event-ID", "0")])
        #expect(r.status == 400, "\(r.status) \(r.text)")
        #expect(r.field == "last_event_id")
        let header = try await api.call(.get, "/v1/events?last_event_id=5", headers: [("Last-Event-ID", "x")])
        #expect(header.status == 400 && header.field == "Last-Event-ID", "\(header.text)")
    }

    /// /openapi.json lists the kinds this api accepts (its kinds file and the built-in ones),
    /// so generated jobs and schedules use them, and describes the event stream's events as
    /// they are sent (text fields, data a JSON Event).
    @Test func theDocumentListsTheKindsAndTheStreamsEvents() async throws {
        let stack = try await JobStack(kinds: "kinds:\n  reports.daily: { handler: noop }\n")
        let api = try await StackAPI(stack: stack)
        let r = try await api.call(.get, "/openapi.json", anonymous: true)
        let schemas = try #require((r.json["components"] as? [String: Any])?["schemas"] as? [String: Any])
        let kind = try #require(schemas["Kind"] as? [String: Any])
        let kinds = try #require(kind["enum"] as? [String])
        #expect(kinds.contains("reports.daily") && kinds.contains("noop") && kinds.contains("http"), "\(kinds)")
        let event = try #require(schemas["ServerSentEvent"] as? [String: Any])
        let properties = try #require(event["properties"] as? [String: Any])
        #expect((properties["id"] as? [String: Any])?["type"] as? String == "string")
        #expect((properties["data"] as? [String: Any])?["contentMediaType"] as? String == "application/json")
    }

    /// A body nested past 64 levels below its envelope is refused before it is parsed, naming
    /// the member it sits under; a payload stored deeper before the cap lists as text.
    @Test func deepNestingIsRefusedAndAStoredDeepPayloadStillLists() async throws {
        let stack = try await JobStack()
        let api = try await StackAPI(stack: stack)
        func nested(_ n: Int) -> String { String(repeating: "[", count: n) + String(repeating: "]", count: n) }
        let deep = try await api.call(.post, "/v1/jobs", body: #"{"kind": "noop", "payload": {"a": \#(nested(70))}}"#)
        #expect(deep.status == 400 && deep.field == "payload", "\(deep.text)")
        let deepBatch = try await api.call(.post, "/v1/jobs", body: #"{"jobs": [{"kind": "noop", "payload": \#(nested(70))}]}"#)
        #expect(deepBatch.status == 400 && deepBatch.field == "jobs", "\(deepBatch.text)")
        let fine = try await api.call(.post, "/v1/jobs", body: #"{"kind": "noop", "payload": {"a": \#(nested(60))}}"#)
        #expect(fine.status == 201, "\(fine.text)")

        let stored = UUID()
        try await stack.pool.withConnection { c in
            try c.execute("INSERT INTO jobs (id, kind, status, payload, max_attempts) VALUES ($1, 'noop', 'dead', $2::jsonb, 1)",
                          [stored, #"{"a": \#(nested(500))}"#])
        }
        let list = try await api.call(.get, "/v1/jobs?limit=10")
        #expect(list.status == 200, "\(list.text.prefix(300))")
        let one = try await api.call(.get, "/v1/jobs/\(stored.uuidString.lowercased())")
        #expect(one.status == 200 && one.json["payload"] is String, "\(one.text.prefix(300))")
    }

    /// A workload's internal kinds (a lead migration's plan and batches carry migration ids)
    /// are enqueued by the workload alone: not through POST /v1/jobs, not by a schedule.
    @Test func internalKindsCannotBeEnqueuedOrScheduledThroughTheAPI() async throws {
        let stack = try await JobStack()
        let api = try await StackAPI(stack: stack)
        let job = try await api.call(.post, "/v1/jobs", body: #"{"kind": "lead-migration.batch", "payload": {"lead_migration_id": "\#(UUID())", "batch": 0}}"#)
        #expect(job.status == 422 && job.field == "kind", "\(job.text)")
        let batch = try await api.call(.post, "/v1/jobs", body: #"{"jobs": [{"kind": "noop"}, {"kind": "lead-migration.plan"}]}"#)
        #expect(batch.status == 422 && batch.field == "jobs[1].kind", "\(batch.text)")
        let schedule = try await api.call(.post, "/v1/schedules", body: #"{"name": "n", "cron": "@daily", "kind": "lead-migration.plan"}"#)
        #expect(schedule.status == 422 && schedule.field == "kind", "\(schedule.text)")
        #expect(try await stack.scalar("SELECT count(*) FROM jobs", as: Int.self) == 0)
        #expect(try await stack.scalar("SELECT count(*) FROM schedules", as: Int.self) == 0)
        let document = try await api.call(.get, "/openapi.json")
        let schemas = ((document.json["components"] as? [String: Any])?["schemas"] as? [String: Any]) ?? [:]
        let enqueueable = ((schemas["EnqueueKind"] as? [String: Any])?["enum"] as? [String]) ?? []
        let all = ((schemas["Kind"] as? [String: Any])?["enum"] as? [String]) ?? []
        #expect(all.contains("lead-migration.plan") && !enqueueable.contains("lead-migration.plan") && enqueueable.contains("noop"))
    }
}
