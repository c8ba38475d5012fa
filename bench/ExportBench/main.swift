// Export benchmark (docs/benchmarks.md, "Exports"): LEADS leads spread over 365 days exported
// through the api and the exporter that bench/export.sh started, to a PostgREST stand-in (in
// this process) writing into a `fichas` table of a database of its own, once per batch size;
// and, in the same run, the ceiling: one INSERT ... SELECT of the same rows into a table of
// the same shape on the same server. Prints leads/s, the ratio to the ceiling and to the
// original's 100 leads/s, and checks that every lead arrived once with one success event.
// Usage: ExportBench <database-url> <fichas-database-url> <api-base-url> <admin-token> <leads> <batch-size>...
import Foundation
import HTTPClient
import Postgres
import StandIns

func now() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
}

let arguments = CommandLine.arguments
guard arguments.count >= 7, let leads = Int(arguments[5]) else {
    print("usage: ExportBench <database-url> <fichas-database-url> <api-base-url> <admin-token> <leads> <batch-size>...")
    exit(2)
}
let (databaseURL, fichasURL, api, token) = (arguments[1], arguments[2], arguments[3], arguments[4])
let batchSizes = arguments[6...].compactMap { Int($0) }
let original = 100.0
let startDate = "2026-11-30"
func fmt(_ x: Double) -> String { String(format: "%.0f", x) }

let http = HTTPClient()
func call(_ method: HTTPMethod, _ path: String, _ body: String? = nil) async throws -> [String: Any] {
    let r = try await http.execute(HTTPRequest(method: method, url: api + path,
                                               headers: HTTPHeaders([("Authorization", "Bearer \(token)"), ("Content-Type", "application/json")]),
                                               body: Array((body ?? "").utf8)))
    guard (200..<300).contains(r.status) else { throw CocoaError(.fileReadUnknown, userInfo: ["reason": "\(method) \(path): \(r.status) \(r.bodyString)"]) }
    return ((try? JSONSerialization.jsonObject(with: Data(r.body))) as? [String: Any]) ?? [:]
}

do {
    let pool = PostgresPool(configuration: try PostgresConfiguration(url: databaseURL), maxConnections: 2)
    let fichas = try PostgRESTTable(databaseURL: fichasURL, apiKey: "bench-key")
    let fichasDB = try PostgresConnection(configuration: try PostgresConfiguration(url: fichasURL))
    defer { fichasDB.close() }

    // Leads over 365 days before the start date, a few seconds apart within each day.
    try await pool.withConnection { c in
        try c.execute("""
            INSERT INTO leads (run_id, name, email, created_at)
            SELECT 1, 'Lead ' || i, 'lead' || i || '@example.com',
                   ($1::date)::timestamp AT TIME ZONE 'UTC' - make_interval(days => (i % 365)::int) + make_interval(secs => (i / 365) * 0.25)
            FROM generate_series(1, $2) i
            """, [startDate, leads])
        try c.execute("ANALYZE leads")
    }
    print("seeded \(leads) leads over 365 days")

    // The ceiling: the same rows straight into a table shaped as the target's.
    let ceiling = try await pool.withConnection { c -> Double in
        try c.execute("DROP TABLE IF EXISTS fichas_ceiling")
        try c.execute("""
            CREATE TABLE fichas_ceiling (id bigint PRIMARY KEY, row jsonb NOT NULL, writes integer NOT NULL DEFAULT 1,
                                         written_at timestamptz NOT NULL DEFAULT clock_timestamp())
            """)
        let t0 = now()
        let n = try c.execute("""
            INSERT INTO fichas_ceiling (id, row)
            SELECT id, json_build_object('id', id, 'name', name, 'email', email, 'run_id', run_id, 'funnel_id', funnel_id,
                                         'column_id', column_id, 'created_at', created_at, 'updated_at', updated_at)::jsonb
            FROM leads ORDER BY created_at DESC, id
            """)
        let rate = Double(n) / (now() - t0)
        try c.execute("DROP TABLE fichas_ceiling")
        return rate
    }
    print("ceiling: one INSERT ... SELECT of \(leads) rows = \(fmt(ceiling)) leads/s")

    try await StandInHTTPServer.withServer { server in
        fichas.serve(on: server)
        _ = try await call(.post, "/v1/export-targets", #"{"name": "bench", "base_url": "\#(server.url(""))", "api_key": "bench-key"}"#)
        var results: [String] = []
        for size in batchSizes {
            try fichasDB.execute("TRUNCATE fichas")
            try await pool.withConnection { c in
                try c.execute("DELETE FROM sync_events")
                try c.execute("VACUUM ANALYZE sync_events")
            }
            let t0 = now()
            let created = try await call(.post, "/v1/exports", #"{"start_date": "\#(startDate)", "batch_size": \#(size)}"#)
            let id = created["id"] as! String
            var export: [String: Any] = [:]
            while true {
                export = try await call(.get, "/v1/exports/\(id)")
                let status = export["status"] as? String
                if status == "completed" || status == "failed" || status == "cancelled" { break }
                try await Task.sleep(for: .milliseconds(20))
            }
            let seconds = now() - t0
            guard export["status"] as? String == "completed" else { print("export \(id) ended \(export)"); exit(1) }
            let writes = try fichas.writes()
            let events = try await pool.withConnection { c in
                try c.query("SELECT count(*), count(DISTINCT lead_id) FILTER (WHERE status = 'success') FROM sync_events WHERE export_id = $1::uuid", [id])[0]
            }
            let (eventCount, distinct) = (try events.decode(Int.self, at: 0), try events.decode(Int.self, at: 1))
            let once = writes.count == leads && writes.values.allSatisfy { $0 == 1 } && eventCount == leads && distinct == leads
            let rate = Double(leads) / seconds
            print("batch \(size): \(leads) leads in \(String(format: "%.2f", seconds)) s = \(fmt(rate)) leads/s; "
                  + "\(String(format: "%.2f", rate / ceiling)) of the ceiling; \(String(format: "%.0f", rate / original))× the original's 100 leads/s; "
                  + "each lead once with one success event: \(once ? "yes" : "NO")")
            guard once else { exit(1) }
            results.append("batch\(size)_rate=\(fmt(rate)) batch\(size)_ratio=\(String(format: "%.3f", rate / ceiling)) batch\(size)_x_original=\(String(format: "%.0f", rate / original))")
        }
        print("RESULT leads=\(leads) ceiling=\(fmt(ceiling)) " + results.joined(separator: " "))
    }
    pool.close()
} catch {
    print("export bench failed: \(error)")
    exit(1)
}
