// Lead migration benchmark (docs/design.md, "Lead migrations"): moves LEADS leads of one import run
// into a funnel column with a lead migration (batches run by the processors that
// bench/leads.sh started), and moves the same number of leads of another run with one plain
// UPDATE statement, in the same database, and prints both rates and their ratio.
// Usage: LeadsBench <database-url> <amqp-url> <leads> <batch-size> [<batch-size> ...]
import AMQP
import EsteiraCore
import LeadMigrations
import Foundation
import Logging
import Postgres

func now() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
}

let arguments = CommandLine.arguments
guard arguments.count >= 5, let leads = Int(arguments[3]) else {
    print("usage: LeadsBench <database-url> <amqp-url> <leads> <batch-size>...")
    exit(2)
}
let batchSizes = arguments[4...].compactMap { Int($0) }

func fmt(_ x: Double) -> String { String(format: "%.0f", x) }

do {
    let pool = PostgresPool(configuration: try PostgresConfiguration(url: arguments[1]), maxConnections: 4)
    let logger = Logger(label: "leads-bench")
    let catalog = try KindCatalog.load(path: nil, workloads: [LeadMigrations.workload])
    let link = BrokerLink(configuration: try AMQPConfiguration(url: arguments[2]), topology: catalog.topology,
                          label: "leads-bench", logger: logger)
    let enqueuer = Enqueuer(store: JobStore(catalog: catalog), pool: pool, link: link, logger: logger)
    let (funnel, column, runBase) = try await pool.withConnection { c -> (Int64, Int64, Int64) in
        let f = try c.query("INSERT INTO funnels (name) VALUES ('bench') RETURNING id").first!.decode(Int64.self, at: 0)
        let col = try c.query("INSERT INTO funnel_columns (funnel_id, name) VALUES ($1, 'target') RETURNING id", [f]).first!.decode(Int64.self, at: 0)
        let base = try c.query("SELECT coalesce(max(run_id), 0) + 1 FROM leads").first!.decode(Int64.self, at: 0)
        return (f, col, base)
    }
    func seed(_ run: Int64) async throws {
        try await pool.withConnection { c in
            try c.execute("""
                INSERT INTO leads (run_id, name, email)
                SELECT $1, 'lead ' || i, 'lead' || i || '@example.com' FROM generate_series(1, $2) i
                """, [run, leads])
            try c.execute("ANALYZE leads")
        }
    }

    // The baseline: one UPDATE statement moving a run of the same size.
    let baselineRun = runBase
    try await seed(baselineRun)
    let t0 = now()
    let updated = try await pool.withConnection { c in
        try c.execute("UPDATE leads SET funnel_id = $1, column_id = $2, updated_at = now() WHERE run_id = $3",
                      [funnel, column, baselineRun])
    }
    let baseline = Double(updated) / (now() - t0)
    print("plain UPDATE: \(updated) leads in \(String(format: "%.2f", now() - t0)) s = \(fmt(baseline)) leads/s")

    for (i, size) in batchSizes.enumerated() {
        let run = runBase + 1 + Int64(i)
        try await seed(run)
        let id = UUID()
        let job = NewJob(kind: LeadMigrationKinds.plan, payload: #"{"lead_migration_id":"\#(id.uuidString.lowercased())"}"#)
        let start = now()
        let outcomes = try await pool.transaction { c in
            try LeadMigrationStore.insert(id: id, runID: run, funnelID: funnel, columnID: column, batchSize: size, ownerID: nil, on: c)
            let o = try enqueuer.store.insert([job], on: c)
            try LeadMigrationStore.setJob(id, jobID: o[0].id, on: c)
            return o
        }
        await enqueuer.publish(outcomes)
        var state = "pending", moved = 0
        while true {
            let m = try await pool.withConnection { try LeadMigrationStore.get(id, scope: .everything, on: $0)! }
            state = m.state.rawValue
            moved = m.moved
            if m.state.isFinal { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        let seconds = now() - start
        let rate = Double(moved) / seconds
        print("migration batch_size=\(size): \(moved) leads \(state) in \(String(format: "%.2f", seconds)) s = \(fmt(rate)) leads/s, ratio to UPDATE \(String(format: "%.2f", rate / baseline))")
        print("RESULT batch_size=\(size) leads=\(moved) seconds=\(String(format: "%.2f", seconds)) rate=\(fmt(rate)) baseline=\(fmt(baseline)) ratio=\(String(format: "%.3f", rate / baseline))")
    }
    link.close()
    pool.close()
} catch {
    print("leads bench failed: \(error)")
    exit(1)
}
