import EsteiraCore
import EsteiraService
import Foundation
import Postgres

/// Per-bucket figures of every kind together, from the scheduler's per-minute roll-up
/// (`queue_metrics`): jobs completed and failed per minute, the worst kind's p95 wait and run.
struct MetricSeries: Sendable {
    var start: Date
    var bucketSeconds: Int
    var completedPerMinute: [Double?]
    var failedPerMinute: [Double?]
    var waitP95: [Double?]
    var runP95: [Double?]

    /// The `buckets` buckets of `bucketSeconds` up to now.
    static func load(buckets: Int, bucketSeconds: Int, kind: String? = nil, now: Date = Date(),
                     on connection: PostgresConnection) throws -> MetricSeries {
        let end = (now.timeIntervalSince1970 / Double(bucketSeconds)).rounded(.down) * Double(bucketSeconds) + Double(bucketSeconds)
        let start = Date(timeIntervalSince1970: end - Double(buckets * bucketSeconds))
        var parameters: [PostgresEncodable?] = [start, bucketSeconds]
        if let kind { parameters.append(kind) }
        let rows = try connection.query("""
            SELECT floor((extract(epoch FROM minute) - extract(epoch FROM $1::timestamptz)) / $2)::int AS b,
                   sum(completed)::float8, sum(failed)::float8, max(wait_p95), max(run_p95)
              FROM queue_metrics WHERE minute >= $1\(kind == nil ? "" : " AND kind = $3")
             GROUP BY b ORDER BY b
            """, parameters)
        var series = MetricSeries(start: start, bucketSeconds: bucketSeconds, completedPerMinute: .init(repeating: nil, count: buckets),
                                  failedPerMinute: .init(repeating: nil, count: buckets), waitP95: .init(repeating: nil, count: buckets),
                                  runP95: .init(repeating: nil, count: buckets))
        let minutes = Double(bucketSeconds) / 60
        for row in rows {
            let b = try row.decode(Int.self, at: 0)
            guard (0..<buckets).contains(b) else { continue }
            series.completedPerMinute[b] = try row.decode(Double.self, at: 1) / minutes
            series.failedPerMinute[b] = try row.decode(Double.self, at: 2) / minutes
            series.waitP95[b] = try row.decode(Double?.self, at: 3)
            series.runP95[b] = try row.decode(Double?.self, at: 4)
        }
        return series
    }
}

/// A line chart as inline SVG, drawn by the server (no script, no library): a gap where a
/// bucket has no figure, the top value and the time span on its axes.
struct LineChart {
    var title: String
    var series: [(name: String, values: [Double?])]
    var span: (from: Date, to: Date)
    var format: (Double) -> String

    static let width = 600.0, height = 170.0, left = 52.0, right = 8.0, top = 10.0, bottom = 22.0

    var svg: HTML {
        let count = series.map(\.values.count).max() ?? 0
        let top = max(series.flatMap { $0.values.compactMap { $0 } }.max() ?? 0, 1e-9)
        let plotWidth = Self.width - Self.left - Self.right, plotHeight = Self.height - Self.top - Self.bottom
        func x(_ i: Int) -> Double { Self.left + (count > 1 ? Double(i) * plotWidth / Double(count - 1) : 0) }
        func y(_ v: Double) -> Double { Self.top + (1 - v / top) * plotHeight }
        let paths: [HTML] = series.enumerated().map { n, s in
            var d = "", pen = false
            for (i, v) in s.values.enumerated() {
                guard let v else { pen = false; continue }
                d += (pen ? "L" : "M") + String(format: "%.1f %.1f ", x(i), y(v))
                pen = true
            }
            // A lone point draws as a dot.
            return "<path class=\"series c\(n)\" d=\"\(d)\"><title>\(s.name)</title></path>"
        }
        let hasData = series.contains { $0.values.contains { $0 != nil } }
        let time = Date.FormatStyle(date: .omitted, time: .shortened, timeZone: .gmt)
        let day = Date.FormatStyle(date: .abbreviated, time: .shortened, timeZone: .gmt)
        let long = span.to.timeIntervalSince(span.from) > 6 * 3600
        let legend: [HTML] = series.enumerated().map { "<span class=\"c\($0.offset)\">■ \($0.element.name)</span>" }
        return """
            <figure class="card"><figcaption>\(title)</figcaption>
            <svg class="chart" viewBox="0 0 \(Int(Self.width)) \(Int(Self.height))" role="img" aria-label="\(title)">
            <line class="axis" x1="\(Int(Self.left))" y1="\(Int(Self.height - Self.bottom))" x2="\(Int(Self.width - Self.right))" y2="\(Int(Self.height - Self.bottom))"/>
            <line class="axis" x1="\(Int(Self.left))" y1="\(Int(Self.top))" x2="\(Int(Self.left))" y2="\(Int(Self.height - Self.bottom))"/>
            <text x="\(Int(Self.left) - 4)" y="\(Int(Self.top) + 8)" text-anchor="end">\(hasData ? format(top) : "")</text>
            <text x="\(Int(Self.left) - 4)" y="\(Int(Self.height - Self.bottom))" text-anchor="end">0</text>
            <text x="\(Int(Self.left))" y="\(Int(Self.height) - 6)">\(span.from.formatted(long ? day : time)) UTC</text>
            <text x="\(Int(Self.width - Self.right))" y="\(Int(Self.height) - 6)" text-anchor="end">\(span.to.formatted(long ? day : time)) UTC</text>
            \(paths)\(hasData ? .empty : "<text x=\"300\" y=\"80\" text-anchor=\"middle\">no jobs in this span</text>" as HTML)
            </svg><div class="legend">\(legend)</div></figure>
            """
    }
}
