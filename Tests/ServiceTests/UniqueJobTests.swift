import EsteiraCore
import Foundation
import Testing

/// Unique while active: a kind whose jobs equal on some payload fields (per owner) are not
/// enqueued twice while one is active.
@Suite struct UniqueJobTests {
    static let kinds = """
        kinds:
          store.sync: { handler: noop, unique: { keys: [store_id, period.start] } }
          store.queued-only: { handler: noop, unique: { keys: [store_id], states: [queued] } }
        """

    @Test func equalRequestsMakeOneJobEvenAtOnceAndANewOneOnceItFinished() async throws {
        let stack = try await JobStack(kinds: Self.kinds)
        let api = try await StackAPI(stack: stack)
        let body = #"{"kind": "store.sync", "payload": {"store_id": 7, "period": {"start": "2026-11-01"}, "sleep_ms": 300}}"#
        // Eight at once: exactly one job.
        let replies = try await withThrowingTaskGroup(of: StackAPI.Reply.self) { group in
            for _ in 0..<8 { group.addTask { try await api.call(.post, "/v1/jobs", body: body) } }
            var all: [StackAPI.Reply] = []
            for try await r in group { all.append(r) }
            return all
        }
        #expect(replies.filter { $0.status == 201 }.count == 1, "\(replies.map(\.status))")
        #expect(replies.filter { $0.status == 200 && $0.json["duplicate"] as? Bool == true }.count == 7)
        #expect(Set(replies.compactMap { $0.json["id"] as? String }).count == 1)
        #expect(try await stack.scalar("SELECT count(*) FROM jobs WHERE kind = 'store.sync'", as: Int.self) == 1)
        let createdText = replies.first { $0.status == 201 }?.json["id"] as? String ?? ""
        let firstID = try #require(UUID(uuidString: createdText))
        let joined = try await stack.events(firstID).filter { $0.status == "duplicate" }
        #expect(joined.count == 7, "\(joined)")
        let metrics = try await api.call(.get, "/metrics", anonymous: true)
        #expect(metrics.text.contains(#"esteira_jobs_duplicates_total{kind="store.sync"} 7"#), "\(metrics.text.prefix(2000))")

        // Another store, another period, another owner: jobs of their own.
        let otherStore = try await api.call(.post, "/v1/jobs", body: #"{"kind": "store.sync", "payload": {"store_id": 8, "period": {"start": "2026-11-01"}}}"#)
        let otherPeriod = try await api.call(.post, "/v1/jobs", body: #"{"kind": "store.sync", "payload": {"store_id": 7, "period": {"start": "2026-12-01"}}}"#)
        let alice = try await api.userToken("alice")
        let otherOwner = try await api.call(.post, "/v1/jobs", token: alice, body: body)
        let statuses: [Int] = [otherStore.status, otherPeriod.status, otherOwner.status]
        #expect(statuses == [201, 201, 201])

        // In a batch, the second equal job is the first's.
        let batch = try await api.call(.post, "/v1/jobs", body: #"{"jobs": [{"kind": "store.sync", "payload": {"store_id": 9}}, {"kind": "store.sync", "payload": {"store_id": 9}}]}"#)
        let jobs = (batch.json["jobs"] as? [[String: Any]]) ?? []
        #expect(jobs.count == 2 && jobs[0]["id"] as? String == jobs[1]["id"] as? String && jobs[1]["duplicate"] as? Bool == true, "\(batch.text)")

        // Once the job finished, the same request makes a new one.
        try await stack.startProcessor()
        let firstText = try #require(replies.first { $0.status == 201 }?.json["id"] as? String)
        let first = try #require(UUID(uuidString: firstText))
        _ = try await stack.waitFor(first, .completed)
        let again = try await api.call(.post, "/v1/jobs", body: body)
        #expect(again.status == 201 && (again.json["id"] as? String)?.lowercased() != firstText.lowercased(), "\(again.text)")
    }

    @Test func onlyTheDeclaredStatesBlock() async throws {
        let stack = try await JobStack(kinds: Self.kinds)
        let api = try await StackAPI(stack: stack)
        let body = #"{"kind": "store.queued-only", "payload": {"store_id": 1, "sleep_ms": 3000}}"#
        let first = try await api.call(.post, "/v1/jobs", body: body)
        #expect(try await api.call(.post, "/v1/jobs", body: body).status == 200, "queued: blocks")
        try await stack.startProcessor()
        let idText = try #require(first.json["id"] as? String)
        let id = try #require(UUID(uuidString: idText))
        _ = try await stack.waitFor(id, .running)
        #expect(try await api.call(.post, "/v1/jobs", body: body).status == 201, "running is not among its states")
    }
}
