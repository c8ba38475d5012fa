import Foundation

/// A cron expression: five fields (minute hour day-of-month month day-of-week), or six with
/// a leading seconds field, so that `*/10 * * * * *` is "every 10 seconds".
///
/// Each field takes `*`, numbers, ranges `a-b`, steps `*/n` and `a-b/n`, and lists `a,b,c`;
/// months take `jan`–`dec` and days of the week `sun`–`sat` (0 and 7 are Sunday). As in
/// Vixie cron, when both day fields are restricted a day matches either. Macros: `@yearly`
/// (`@annually`), `@monthly`, `@weekly`, `@daily` (`@midnight`), `@hourly`.
public struct CronExpression: Sendable, Equatable, CustomStringConvertible {
    public let seconds: Set<Int>
    public let minutes: Set<Int>
    public let hours: Set<Int>
    public let daysOfMonth: Set<Int>
    public let months: Set<Int>
    /// 0 = Sunday.
    public let daysOfWeek: Set<Int>
    let dayOfMonthRestricted: Bool
    let dayOfWeekRestricted: Bool
    /// The text it was parsed from.
    public let description: String

    /// Why an expression was refused: the field and what is wrong with it.
    public struct ParseError: Error, Sendable, Equatable, CustomStringConvertible {
        public let description: String
    }

    private static let macros = [
        "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
        "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
    ]
    private static let monthNames = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
    private static let dayNames = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]

    public init(_ text: String) throws(ParseError) {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        description = trimmed
        let expanded = Self.macros[trimmed.lowercased()] ?? trimmed
        if expanded.hasPrefix("@") { throw ParseError(description: "unknown macro '\(trimmed)'") }
        var fields = expanded.split(separator: " ", omittingEmptySubsequences: true).map { String($0).lowercased() }
        guard fields.count == 5 || fields.count == 6 else {
            throw ParseError(description: "expected 5 fields (minute hour day month weekday) or 6 (seconds first), found \(fields.count)")
        }
        if fields.count == 5 { fields.insert("0", at: 0) }
        seconds = try Self.field(fields[0], name: "seconds", 0...59)
        minutes = try Self.field(fields[1], name: "minute", 0...59)
        hours = try Self.field(fields[2], name: "hour", 0...23)
        daysOfMonth = try Self.field(fields[3], name: "day of month", 1...31)
        months = try Self.field(fields[4], name: "month", 1...12, names: Self.monthNames, nameBase: 1)
        var dow = try Self.field(fields[5], name: "day of week", 0...7, names: Self.dayNames, nameBase: 0)
        if dow.remove(7) != nil { dow.insert(0) }
        daysOfWeek = dow
        dayOfMonthRestricted = !(fields[3] == "*" || fields[3] == "?")
        dayOfWeekRestricted = !(fields[5] == "*" || fields[5] == "?")
    }

    private static func field(_ text: String, name: String, _ range: ClosedRange<Int>,
                              names: [String] = [], nameBase: Int = 0) throws(ParseError) -> Set<Int> {
        func value(_ s: Substring) throws(ParseError) -> Int {
            if let n = Int(s), range.contains(n) { return n }
            if let i = names.firstIndex(of: String(s)) { return i + nameBase }
            throw ParseError(description: "\(name): '\(s)' is not in \(range.lowerBound)-\(range.upperBound)\(names.isEmpty ? "" : " or a name")")
        }
        var result = Set<Int>()
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            guard !part.isEmpty else { throw ParseError(description: "\(name): empty list item in '\(text)'") }
            let pieces = part.split(separator: "/", omittingEmptySubsequences: false)
            guard pieces.count <= 2 else { throw ParseError(description: "\(name): '\(part)' has more than one '/'") }
            var step = 1
            if pieces.count == 2 {
                guard let s = Int(pieces[1]), s >= 1, s <= range.upperBound else {
                    throw ParseError(description: "\(name): step '\(pieces[1])' must be 1-\(range.upperBound)")
                }
                step = s
            }
            let base = pieces[0]
            var low: Int, high: Int
            if base == "*" || base == "?" {
                low = range.lowerBound; high = range.upperBound
            } else if let dash = base.firstIndex(of: "-") {
                low = try value(base[..<dash]); high = try value(base[base.index(after: dash)...])
                guard low <= high else { throw ParseError(description: "\(name): range '\(base)' runs backwards") }
            } else {
                low = try value(base)
                high = pieces.count == 2 ? range.upperBound : low
            }
            result.formUnion(stride(from: low, through: high, by: step))
        }
        return result
    }

    private func dayMatches(day: Int, weekday: Int) -> Bool {
        let dom = daysOfMonth.contains(day), dow = daysOfWeek.contains(weekday)
        if dayOfMonthRestricted && dayOfWeekRestricted { return dom || dow }
        return dom && dow
    }

    /// The first time strictly after `date` that matches, in `timeZone`; nil when none comes
    /// within 8 years (`0 0 30 2 *`). A wall-clock time a DST change skips does not fire
    /// that day; one it repeats fires once.
    public func next(after date: Date, in timeZone: TimeZone) -> Date? {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = timeZone
        var t = Date(timeIntervalSince1970: (date.timeIntervalSince1970 + 1).rounded(.down))
        let limit = date.addingTimeInterval(8 * 366 * 86400)
        while t <= limit {
            let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second, .weekday], from: t)
            guard let year = c.year, let month = c.month, let day = c.day, let hour = c.hour, let minute = c.minute,
                  let second = c.second, let weekday = c.weekday else { return nil }
            if !months.contains(month) {
                guard let n = calendar.date(from: DateComponents(year: year, month: month + 1, day: 1)) else { return nil }
                t = n; continue
            }
            if !dayMatches(day: day, weekday: weekday - 1) {
                guard let n = calendar.date(from: DateComponents(year: year, month: month, day: day + 1)) else { return nil }
                t = n; continue
            }
            if !hours.contains(hour) {
                guard let n = calendar.date(byAdding: .hour, value: 1, to: calendar.date(from: DateComponents(
                    year: year, month: month, day: day, hour: hour))!) else { return nil }
                t = n; continue
            }
            if !minutes.contains(minute) {
                t = Date(timeIntervalSince1970: (t.timeIntervalSince1970 / 60).rounded(.down) * 60 + 60); continue
            }
            if !seconds.contains(second) {
                t = t.addingTimeInterval(1); continue
            }
            return t
        }
        return nil
    }
}
