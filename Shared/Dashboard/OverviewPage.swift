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
            let snapshot = counts.snapshot(context.scope)
            let table = HTML.table(["Kind", "Scheduled", "Queued", "Running", "Retrying", "Dead"], catalog.names.map { kind in
                ["<a href=\"/ui/jobs?kind=\(kind)\">\(kind)</a>"]
                    + StatusCounts.statuses.map { s in
                        "<a href=\"/ui/jobs?kind=\(kind)&amp;status=\(s.rawValue)\" class=\"num\">\(Self.count(snapshot, kind, s))</a>" as HTML
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
                <div id="counts" data-region>\(table)\(Self.countedAt(snapshot))</div></section>
                <section aria-labelledby="charts-h"><h2 id="charts-h">Throughput</h2><div id="charts" data-region>\(charts)</div></section>
                """
            return render(DashboardPage(title: "Overview", body: body, live: ""), request, context)
        }
    }

    /// A count as shown: "…" until the first count of the scope is done.
    static func count(_ snapshot: StatusCounts.Snapshot?, _ kind: String, _ status: JobStatus) -> String {
        snapshot.map { HTML.number($0.count(kind, status)) } ?? "…"
    }

    /// When the counts were taken; while there are none yet, a mark that has the page's
    /// script fetch it again shortly.
    static func countedAt(_ snapshot: StatusCounts.Snapshot?) -> HTML {
        guard let snapshot else { return "<p class=\"hint\" data-pending>Counting jobs…</p>" }
        return """
            <p class="hint">Counted at \(HTML.time(snapshot.at)) (in \(HTML.duration(snapshot.took.seconds))); \
            counts are taken in the background, since counting reads every job.</p>
            """
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
