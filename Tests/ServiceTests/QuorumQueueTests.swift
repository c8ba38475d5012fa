import AMQP
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
                  http: { maxAttempts: 3, backoffBase: 1, timeout: 30 }
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

    /// A classic deployment with jobs waiting in its work queues and a retry in a hold tier
    /// switches to quorum queues with `processor switch-queues`: every message is kept, the
    /// transit queues are gone, and quorum processors finish every job; the switch is refused
    /// while a processor consumes, and running it again changes nothing.
    @Test func switchingAClassicDeploymentToQuorumKeepsEveryMessage() async throws {
        try await StandInHTTPServer.withServer { server in
            server.on("POST", "/hook", sequence: [StandInResponse(status: 503), .json(#"{"ok": true}"#)])
            let stack = try await JobStack(kinds: """
                kinds:
                  http: { maxAttempts: 3, backoffBase: 30, timeout: 30 }
                  ranked: { handler: noop, priorities: true }
                """)
            let quorum = ["ESTEIRA_QUEUE_TYPE": "quorum"]
            // A classic processor takes the http job, which fails once and waits in the 30 s tier:
            // still there when the queues are switched, however slow the machine.
            let classic = try await stack.startProcessor()
            let http = try await stack.enqueue([NewJob(kind: "http", payload: #"{"url": "\#(server.url("/hook"))"}"#)])[0].id
            _ = try await stack.waitFor(http, .retrying, timeout: .seconds(30))
            let refused = try await stack.runCommand("processor", ["switch-queues"], environment: quorum)
            #expect(refused.status != 0 && refused.output.contains("consumer"), "\(refused.output)")
            #expect(try await stack.vhost.queueInfo("esteira.retry.30s")["type"] as? String == "classic")
            classic.signal(SIGTERM)
            _ = await classic.waitForExit(timeout: .seconds(30))
            // Jobs waiting in the classic work queues while no processor runs.
            let waiting = try await stack.enqueue((0..<30).map { i in i % 3 == 0 ? NewJob(kind: "ranked", priority: i % 10) : NewJob(kind: "noop") })

            let switched = try await stack.runCommand("processor", ["switch-queues"], environment: quorum)
            #expect(switched.status == 0, "\(switched.output)")
            let broker = try AMQPConnection(AMQPConfiguration(url: stack.amqpURL))
            defer { try? broker.close() }
            /// Messages in `queue`, nil when there is no such queue.
            func messages(_ queue: String) throws -> UInt32? { try broker.queueInfo(queue)?.messageCount }
            for (queue, count) in [("esteira.work.noop", 20), ("esteira.work.ranked", 10), ("esteira.retry.30s", 1)] {
                let info = try await stack.vhost.queueInfo(queue)
                #expect(info["type"] as? String == "quorum", "\(queue): \(info)")
                #expect(try messages(queue) == UInt32(count), "\(queue)")
                #expect(try messages(QueueSwitch.transit(queue)) == nil, "\(QueueSwitch.transit(queue)) left behind")
            }
            let again = try await stack.runCommand("processor", ["switch-queues"], environment: quorum)
            #expect(again.status == 0 && again.output.contains(#""switched":"0""#), "\(again.output)")

            try await stack.startProcessor(environment: quorum)
            try await stack.waitForCount(.completed, 30, among: waiting.map(\.id))
            // Back from the 30 s tier.
            let job = try await stack.waitFor(http, .completed, timeout: .seconds(60))
            #expect(job.attempts == 2)
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
