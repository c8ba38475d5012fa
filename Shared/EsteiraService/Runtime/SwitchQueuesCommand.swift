import AMQP
import ArgumentParser
import EsteiraCore

/// `processor switch-queues`: moves the work queues and hold tiers to the queue type
/// `ESTEIRA_QUEUE_TYPE` names (and each kind's queue to its `priorities` setting), keeping
/// their messages (``QueueSwitch``), then exits.
public struct SwitchQueuesCommand<Executable: EsteiraExecutable>: AsyncParsableCommand {
    public static var configuration: CommandConfiguration {
        CommandConfiguration(
            commandName: "switch-queues",
            abstract: "Move the work queues and retry tiers to the queue type ESTEIRA_QUEUE_TYPE names, keeping their messages, then exit.",
            discussion: """
            RabbitMQ cannot change a queue's type or arguments. For each work queue (one per kind of the kinds file and \
            the workloads) and each retry tier whose arguments differ from those wanted, its messages are moved into a \
            transit queue (<queue>.switching, which takes new messages meanwhile), the queue is made anew with the wanted \
            arguments, and the messages are moved back; a message is acked from where it was only once the broker \
            confirmed its copy. Stop every processor first (a queue with consumers is refused); the api may keep \
            running. Running it again resumes an interrupted switch and is a no-op when nothing differs. A retry moved \
            out of a retry tier waits its tier's delay again. See "Switching queue types" in docs/topology.md.

            \(Setting.helpText(EsteiraConfiguration.settings.filter { ["ESTEIRA_AMQP_URL", "ESTEIRA_QUEUE_TYPE", "ESTEIRA_KINDS_FILE"].contains($0.name) }))
            """
        )
    }

    @OptionGroup public var options: ServiceOptions

    public init() {}

    public func run() async throws {
        let runtime = try Runtime(Executable.identity, options: options)
        let logger = runtime.logger
        let connection = try AMQPConnection.open(try AMQPConfiguration(url: runtime.configuration.amqpURL,
                                                                        connectionName: "\(runtime.name)-switch-queues"))
        defer { try? connection.close() }
        let moved = try QueueSwitch(topology: runtime.catalog.topology).run(on: connection) { line in
            logger.info("\(line)")
        }
        let switched = moved.filter(\.switched)
        logger.info("queues switched", metadata: [
            "type": "\(runtime.catalog.queueType.rawValue)", "queues": "\(moved.count)", "switched": "\(switched.count)",
            "messages": "\(switched.reduce(0) { $0 + $1.messages })",
        ])
    }
}
