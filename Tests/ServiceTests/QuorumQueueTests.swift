import EsteiraCore
import Foundation
import StandIns
import Testing

/// `ESTEIRA_QUEUE_TYPE=quorum`: the work queues and hold tiers are quorum queues that
/// dead-letter at least once, and jobs, retries through the tiers and priorities run on them.
@Suite struct QuorumQueueTests {
    @Test func jobsAndRetriesRunOnQuorumQueues() async throws {
        try await StandInHTTPServer.withServer { server in
            server.on("POST", "/hook", sequence: [StandInResponse(status: 503), .json(#"{"ok": true}"#)])
            let stack = try await JobStack(kinds: """
                kinds:
                  http: { maxAttempts: 3, backoffBase: 1, timeout: 5 }
                  ranked: { handler: noop, priorities: true }
                """, queueType: .quorum)
            try await stack.startProcessor()
            let http = try await stack.enqueue([NewJob(kind: "http", payload: #"{"url": "\#(server.url("/hook"))"}"#)])[0].id
            let noops = try await stack.enqueue((0..<20).map { i in i % 2 == 0 ? NewJob(kind: "noop") : NewJob(kind: "ranked", priority: i % 10) })
            // The 503 sends the job through the 1 s tier and back to its queue.
            let job = try await stack.waitFor(http, .completed, timeout: .seconds(30))
            #expect(job.attempts == 2)
            try await stack.waitForCount(.completed, 20, among: noops.map(\.id))
            for (queue, extra) in [("esteira.work.http", ["x-dead-letter-exchange": "esteira.dead"]),
                                   ("esteira.work.ranked", ["x-dead-letter-exchange": "esteira.dead"]),
                                   ("esteira.retry.1s", ["x-dead-letter-exchange": "esteira.work"])] {
                let info = try await stack.vhost.queueInfo(queue)
                let arguments = info["arguments"] as? [String: Any] ?? [:]
                #expect(info["type"] as? String == "quorum", "\(queue): \(info)")
                #expect(arguments["x-overflow"] as? String == "reject-publish" && arguments["x-dead-letter-strategy"] as? String == "at-least-once",
                        "\(queue): \(arguments)")
                #expect(arguments["x-max-priority"] == nil && arguments["x-queue-version"] == nil, "\(queue): \(arguments)")
                for (key, value) in extra { #expect(arguments[key] as? String == value, "\(queue): \(arguments)") }
            }
            let tier = try await stack.vhost.queueInfo("esteira.retry.1s")
            #expect((tier["arguments"] as? [String: Any])?["x-message-ttl"] as? Int == 1000, "\(tier)")
        }
    }

    @Test func aQueueTypeOtherThanClassicOrQuorumIsRefused() throws {
        #expect(throws: ConfigurationError(variable: "ESTEIRA_QUEUE_TYPE", value: "stream", expected: "one of classic, quorum")) {
            try EsteiraConfiguration(environment: ["ESTEIRA_QUEUE_TYPE": "stream"], defaultHTTPPort: 1)
        }
        #expect(try EsteiraConfiguration(environment: ["ESTEIRA_QUEUE_TYPE": "quorum"], defaultHTTPPort: 1).queueType == .quorum)
        #expect(try EsteiraConfiguration(environment: [:], defaultHTTPPort: 1).queueType == .classic)
    }
}
