import Foundation

/// A fragment of HTML. Interpolated strings are escaped; only other `HTML` values go in as
/// they are, so a page cannot carry markup that came from a job, a payload or a query.
public struct HTML: Sendable, Equatable, ExpressibleByStringInterpolation, CustomStringConvertible {
    public private(set) var text: String

    public init(stringLiteral value: String) { text = value }
    public init(stringInterpolation: Interpolation) { text = stringInterpolation.text }
    /// Markup as it is: for what this code itself wrote (never for data).
    public init(trusted text: String) { self.text = text }
    /// Fragments one after the other.
    public init(_ parts: [HTML]) { text = parts.map(\.text).joined() }

    public var description: String { text }
    public static let empty: HTML = ""

    /// `s` with `& < > " '` escaped: safe as text and inside quoted attributes.
    public static func escape(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for c in s.unicodeScalars {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }

    public struct Interpolation: StringInterpolationProtocol {
        var text = ""
        public init(literalCapacity: Int, interpolationCount: Int) { text.reserveCapacity(literalCapacity + 16 * interpolationCount) }
        public mutating func appendLiteral(_ literal: String) { text += literal }
        public mutating func appendInterpolation(_ value: String) { text += HTML.escape(value) }
        public mutating func appendInterpolation(_ value: String?) { if let value { text += HTML.escape(value) } }
        public mutating func appendInterpolation(_ value: HTML) { text += value.text }
        public mutating func appendInterpolation(_ value: HTML?) { if let value { text += value.text } }
        public mutating func appendInterpolation(_ values: [HTML]) { for v in values { text += v.text } }
        public mutating func appendInterpolation(_ value: Int) { text += String(value) }
        public mutating func appendInterpolation(_ value: Int64) { text += String(value) }
        public mutating func appendInterpolation(_ value: UUID) { text += value.uuidString.lowercased() }
    }
}

extension HTML {
    /// `n` with thousands separators (1,234,567).
    public static func number(_ n: Int) -> String {
        let digits = String(abs(n))
        var out = ""
        for (i, c) in digits.enumerated() {
            if i > 0 && (digits.count - i) % 3 == 0 { out += "," }
            out.append(c)
        }
        return n < 0 ? "-" + out : out
    }

    /// A `<time>` element: UTC ISO 8601 in `datetime` (the page's script shows it in the
    /// browser's zone), `yyyy-MM-dd HH:mm:ssZ` as its text.
    public static func time(_ date: Date?) -> HTML {
        guard let date else { return "–" }
        return "<time datetime=\"\(date.formatted(Self.iso))\">\(date.formatted(Self.plain))</time>"
    }

    /// Seconds as a short duration: 850 ms, 12.5 s, 3 min 4 s, 2 h 5 min.
    public static func duration(_ seconds: Double?) -> String {
        guard let s = seconds, s.isFinite else { return "–" }
        if s < 1 { return "\(Int((s * 1000).rounded())) ms" }
        if s < 60 { return String(format: "%.1f s", s) }
        if s < 3600 { return "\(Int(s) / 60) min \(Int(s) % 60) s" }
        return "\(Int(s) / 3600) h \(Int(s) % 3600 / 60) min"
    }

    static let iso = Date.ISO8601FormatStyle()
    static let plain = Date.ISO8601FormatStyle(dateTimeSeparator: .space)
}
