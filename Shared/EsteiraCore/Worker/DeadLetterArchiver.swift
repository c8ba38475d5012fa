import AMQP
import Foundation
import Logging
import Postgres
import ServiceLifecycle

/// Records what reaches `esteira.dead-letters` (poison messages, broker rejects) in
/// PostgreSQL: the job, when the message names one that is not finished, becomes `dead` with
/// a dead-letter row; otherwise a dead-letter row keeps the raw message. A message is acked
/// only after its row is committed. A `Service` the processor runs beside its worker; on
/// graceful shutdown it stops consuming, records what it holds, and closes.
public final class DeadLetterArchiver: Service, Sendable {
    private let consumer: DeliveryConsumer
    private let pool: PostgresPool
    private let logger: Logger

    /// An archiver consuming `esteira.dead-letters` on a connection named `name`.
    public init(amqp: AMQPConfiguration, topology: Topology, pool: PostgresPool, name: String, logger: Logger) {
        consumer = DeliveryConsumer(configuration: amqp, topology: topology, queues: [Topology.deadLetterQueue], prefetch: 50,
                                    name: name, logger: logger)
        self.pool = pool
        self.logger = logger
    }

    public func run() async {
        consumer.start()
        await withDiscardingTaskGroup { group in
            group.addTask {
                try? await gracefulShutdown()
                self.consumer.stopConsuming()
                await self.consumer.stop()
            }
            group.addTask { await self.archive() }
        }
    }

    private func archive() async {
        while true {
            let batch = await consumer.nextBatch()
            if batch.isEmpty { return }
            for incoming in batch {
                let d = incoming.delivery
                let reason: String
                if case .string(let r)? = d.properties.headers[JobMessage.reasonHeader] {
                    reason = r
                } else {
                    reason = "dead-lettered by the broker"
                }
                let message = try? JSONDecoder().decode(JobMessage.self, from: Data(d.body))
                var failures = 0
                while true {
                    do {
                        try await pool.withConnection { connection in
                            try AttemptStore.recordDeadMessage(jobID: message?.id, kind: message?.kind ?? d.routingKey,
                                                               reason: reason, errorClass: .poison, raw: d.body, on: connection)
                        }
                        consumer.settle(incoming)
                        break
                    } catch {
                        failures += 1
                        logger.warning("recording a dead letter failed; retrying", metadata: ["error": "\(error)"])
                        if Task.isCancelled || Task.isShuttingDownGracefully { break }
                        await Backoff.standard.sleep(after: failures)
                    }
                }
            }
        }
    }
}
