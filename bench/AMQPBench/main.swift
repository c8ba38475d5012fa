// The workload of bench/amqp_c_bench.c through the Swift AMQP module: publish N persistent
// 200-byte messages with confirms (up to 500 unconfirmed) to a fresh durable queue, then
// consume them all with prefetch 500, acking each.
// Usage: AMQPBench [amqp-url] [messages]
import AMQP
#if canImport(Glibc)
import Glibc
#endif

func now() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
}

let arguments = CommandLine.arguments
let url = arguments.count > 1 ? arguments[1] : "amqp://guest:guest@127.0.0.1:5680/"
let count = arguments.count > 2 ? Int(arguments[2]) ?? 200_000 : 200_000

do {
    let connection = try AMQPConnection(AMQPConfiguration(url: url, connectionName: "amqp-bench-swift"))
    let channel = try connection.openChannel()
    let queue = "bench.swift.\(getpid()).\(time(nil))"
    try channel.declareQueue(queue, durable: true)
    try channel.enableConfirms()
    channel.maxUnconfirmed = 500

    let body = [UInt8](repeating: UInt8(ascii: "x"), count: 200)
    let properties = AMQPProperties.persistent
    let start = now()
    for _ in 0..<count {
        try channel.publish(body, routingKey: queue, properties: properties)
    }
    let confirms = try channel.waitForConfirms()
    let published = now()
    if !confirms.nacked.isEmpty { fputs("\(confirms.nacked.count) nacked\n", stderr) }

    try channel.consume(queue: queue, prefetch: 500)
    let consumeStart = now()
    var received = 0
    while received < count {
        guard let delivery = try channel.nextDelivery() else { continue }
        precondition(delivery.body.count == 200, "bad body")
        try channel.ack(delivery.deliveryTag)
        received += 1
    }
    let consumed = now()
    try channel.deleteQueue(queue)
    try channel.close()
    try connection.close()

    let publishSeconds = published - start, consumeSeconds = consumed - consumeStart
    let rates = [Double(count) / publishSeconds, Double(count) / consumeSeconds,
                 Double(count) / (publishSeconds + consumeSeconds)].map { String(Int($0.rounded())) }
    print("RESULT impl=swift messages=\(count) publish=\(rates[0]) consume=\(rates[1]) combined=\(rates[2])")
} catch {
    fputs("AMQPBench failed: \(error)\n", stderr)
    exit(1)
}
