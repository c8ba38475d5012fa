import EsteiraCore
import EsteiraService
import Foundation
import Hummingbird

extension Dashboard {
    /// `/ui/`: per kind, jobs waiting, running, retrying and dead now; for admins, throughput,
    /// failures and p95 wait and run per minute over the last hour and day (the roll-up
    /// counts every principal's jobs).
    func addOverview() {
        routes.page("/") { request, context in
            let rows = try await counts.rows(kinds: catalog.names, scope: context.scope)
            let table = HTML.table(["Kind", "Scheduled", "Queued", "Running", "Retrying", "Dead"], rows.map { row in
                ["<a href=\"/ui/jobs?kind=\(row.kind)\">\(row.kind)</a>"]
                    + StatusCounts.statuses.map { s in
                        "<a href=\"/ui/jobs?kind=\(row.kind)&amp;status=\(s.rawValue)\" class=\"num\">\(row.text(s))</a>" as HTML
                    }
            }, empty: "No kinds are configured.", id: "counts-table")
            var charts: HTML = .note("Throughput charts count every principal's jobs: admins see them.")
            if context.principal?.role == .admin {
                let now = Date()
                let (hour, day) = try await pool.withConnection { c in
                    (try MetricSeries.load(buckets: 60, bucketSeconds: 60, now: now, on: c),
                     try MetricSeries.load(buckets: 96, bucketSeconds: 900, now: now, on: c))
                }
                charts = HTML([Self.charts(hour, title: "Last hour"), Self.charts(day, title: "Last day (15-minute buckets)")])
            }
            let body: HTML = """
                <section aria-labelledby="now-h"><h2 id="now-h">Now</h2>
                <div id="counts" data-region>\(table)</div>
                <p class="hint">Counts stop at 10,000 (shown as 10,000+) so that this page never scans the table.</p></section>
                <section aria-labelledby="charts-h"><h2 id="charts-h">Throughput</h2><div id="charts" data-region>\(charts)</div></section>
                """
            return render(DashboardPage(title: "Overview", body: body, live: ""), request, context)
        }
    }

    static func charts(_ s: MetricSeries, title: String) -> HTML {
        let span = (s.start, s.start.addingTimeInterval(Double(s.completedPerMinute.count * s.bucketSeconds)))
        let rate = { (v: Double) in v >= 10 ? HTML.number(Int(v.rounded())) : String(format: "%.1f", v) }
        return """
            <h3>\(title)</h3><div class="grid">
            \(LineChart(title: "Jobs per minute", series: [("completed", s.completedPerMinute), ("failed", s.failedPerMinute)],
                        span: span, format: rate).svg)
            \(LineChart(title: "p95 seconds (slowest kind)", series: [("wait", s.waitP95), ("run", s.runP95)],
                        span: span, format: { HTML.duration($0) }).svg)
            </div>
            """
    }
}
