// Jobs end to end: enqueues N noop jobs in batches through the Enqueuer (rows in PostgreSQL,
// messages published with confirms) while the processors bench/jobs.sh started run them,
// waits until every job is completed, and prints jobs/s from the first enqueue to the last
// completion and the enqueue→start latency percentiles, all read from the jobs table.
// Usage: JobsBench <database-url> <amqp-url> <jobs> <batch> [<enqueuers>]
// Environment: BENCH_KIND (default noop) with the kinds of ESTEIRA_KINDS_FILE; BENCH_PAYLOAD,
// more payload fields as JSON members (`"sleep_ms": 200`); BENCH_SAMPLE=1 samples the jobs of
// the kind running at once every 10 ms and prints the peak; BENCH_WINDOW=s prints the rate at
// which the jobs started over s seconds from the second after the first start.
import AMQP
import EsteiraCore
import Foundation
import Logging
import Postgres

func now() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
}

let arguments = CommandLine.arguments
guard arguments.count >= 5, let total = Int(arguments[3]), let batch = Int(arguments[4]) else {
    print("usage: JobsBench <database-url> <amqp-url> <jobs> <batch>")
    exit(2)
}

do {
    let lanes = arguments.count > 5 ? max(1, Int(arguments[5]) ?? 4) : 4
    let pool = PostgresPool(configuration: try PostgresConfiguration(url: arguments[1]), maxConnections: lanes + 1)
    let logger = Logger(label: "jobs-bench")
    let environment = ProcessInfo.processInfo.environment
    let kind = environment["BENCH_KIND"] ?? "noop"
    let extra = environment["BENCH_PAYLOAD"].map { "," + $0 } ?? ""
    var catalog = try KindCatalog.load(path: environment["ESTEIRA_KINDS_FILE"])
    catalog.queueType = try EsteiraConfiguration(environment: environment, defaultHTTPPort: 0).queueType
    let link = BrokerLink(configuration: try AMQPConfiguration(url: arguments[2]), topology: catalog.topology,
                          label: "jobs-bench", logger: logger)
    let enqueuer = Enqueuer(store: JobStore(catalog: catalog), pool: pool, link: link, logger: logger)
    let marker = UUID().uuidString.prefix(8)
    let start = now()
    // The most jobs of the kind running at once, sampled while the bench runs.
    let sampler: Task<Int, Never>? = environment["BENCH_SAMPLE"] == "1" ? Task {
        var peak = 0
        while !Task.isCancelled {
            if let n = try? await pool.withConnection({ [kind] in
                try $0.query("SELECT count(*)::int FROM jobs WHERE kind = $1 AND status = 'running'", [kind]).first!.decode(Int.self, at: 0)
            }) { peak = max(peak, n) }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return peak
    } : nil
    // Several enqueuers at once, as several api instances or services would.
    try await withThrowingTaskGroup(of: Void.self) { group in
        for lane in 0..<lanes {
            group.addTask {
                var i = lane * batch
                while i < total {
                    let n = min(batch, total - i)
                    try await enqueuer.enqueue((0..<n).map { k in NewJob(kind: kind, payload: #"{"bench":"\#(marker)","i":\#(i + k)\#(extra)}"#) })
                    i += lanes * batch
                }
            }
        }
        try await group.waitForAll()
    }
    let enqueued = now() - start
    print("enqueued \(total) jobs in \(String(format: "%.2f", enqueued)) s = \(Int(Double(total) / enqueued)) jobs/s")
    while true {
        let done = try await pool.withConnection {
            try $0.query("SELECT count(*) FROM jobs WHERE kind = $1 AND status = 'completed' AND payload->>'bench' = $2", [kind, String(marker)])
                .first!.decode(Int.self, at: 0)
        }
        if done >= total { break }
        try await Task.sleep(for: .milliseconds(100))
    }
    sampler?.cancel()
    let peak = await sampler?.value
    let row = try await pool.withConnection { c in
        try c.query("""
            SELECT extract(epoch FROM max(finished_at) - min(created_at))::float8,
                   percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM first_started_at - created_at))::float8,
                   percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM first_started_at - created_at))::float8,
                   count(*) FILTER (WHERE attempts <> 1)::bigint
            FROM jobs WHERE kind = $1 AND status = 'completed' AND payload->>'bench' = $2
            """, [kind, String(marker)]).first!
    }
    let seconds = try row.decode(Double.self, at: 0)
    let rate = Double(total) / seconds
    let p50 = try row.decode(Double.self, at: 1) * 1000, p99 = try row.decode(Double.self, at: 2) * 1000
    print("processed \(total) jobs end to end in \(String(format: "%.2f", seconds)) s = \(Int(rate)) jobs/s; enqueue→start p50 \(String(format: "%.1f", p50)) ms, p99 \(String(format: "%.1f", p99)) ms; retried \(try row.decode(Int.self, at: 3))")
    var more = peak.map { " peak_running=\($0)" } ?? ""
    if let window = environment["BENCH_WINDOW"].flatMap(Double.init) {
        let started = try await pool.withConnection { c in
            try c.query("""
                WITH s AS (SELECT min(first_started_at) AS t0 FROM jobs WHERE kind = $1 AND payload->>'bench' = $2)
                SELECT count(*)::int FROM jobs, s WHERE kind = $1 AND payload->>'bench' = $2
                  AND first_started_at >= s.t0 + interval '1 second' AND first_started_at < s.t0 + make_interval(secs => 1 + $3)
                """, [kind, String(marker), window]).first!.decode(Int.self, at: 0)
        }
        more += " window_rate=\(String(format: "%.2f", Double(started) / window))"
        print("started over \(Int(window)) s from the second after the first start: \(started) = \(String(format: "%.2f", Double(started) / window)) jobs/s")
    }
    if let peak { print("the most \(kind) jobs running at once: \(peak)") }
    print("RESULT jobs=\(total) seconds=\(String(format: "%.2f", seconds)) rate=\(Int(rate)) p50_ms=\(String(format: "%.1f", p50)) p99_ms=\(String(format: "%.1f", p99))\(more)")
    link.close()
    pool.close()
} catch {
    print("jobs bench failed: \(error)")
    exit(1)
}
