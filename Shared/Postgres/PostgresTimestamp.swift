import Foundation

/// Text formatting and parsing of timestamps, done by hand: Foundation's formatters stop at
/// milliseconds, and PostgreSQL keeps microseconds.
enum PostgresTimestamp {
    /// `YYYY-MM-DD HH:MM:SS.ffffff+00`, in UTC.
    static func format(_ date: Date) -> String {
        let micros = Int64((date.timeIntervalSince1970 * 1_000_000).rounded())
        var seconds = micros / 1_000_000
        var fraction = micros % 1_000_000
        if fraction < 0 { fraction += 1_000_000; seconds -= 1 }
        var days = seconds / 86_400
        var secondOfDay = seconds % 86_400
        if secondOfDay < 0 { secondOfDay += 86_400; days -= 1 }
        let (year, month, day) = civil(fromDays: Int(days))
        func pad(_ value: Int64, _ width: Int) -> String {
            let digits = String(value)
            return String(repeating: "0", count: max(0, width - digits.count)) + digits
        }
        // PostgreSQL has no year 0: the year before 1 AD is 1 BC (astronomical year 0).
        let era = year <= 0 ? " BC" : ""
        return "\(pad(Int64(year <= 0 ? 1 - year : year), 4))-\(pad(Int64(month), 2))-\(pad(Int64(day), 2)) "
            + "\(pad(secondOfDay / 3600, 2)):\(pad(secondOfDay / 60 % 60, 2)):\(pad(secondOfDay % 60, 2))"
            + ".\(pad(fraction, 6))+00\(era)"
    }

    /// Parses the ISO output of `timestamptz`, `timestamp` (read as UTC) and `date` (midnight
    /// UTC), with any UTC offset the session's TimeZone produces (`+05`, `-03:30`, `+00:53:28`).
    static func parse(_ text: String) -> Date? {
        switch text {
        case "infinity": return .distantFuture
        case "-infinity": return .distantPast
        default: break
        }
        // Years before 1 AD end in " BC" (1 BC is astronomical year 0).
        let bc = text.hasSuffix(" BC")
        let bytes = Array(text.utf8.dropLast(bc ? 3 : 0))
        var index = 0
        func number(maxDigits: Int = 9) -> Int? {
            var value = 0
            var count = 0
            while index < bytes.count, count < maxDigits, bytes[index] >= 48, bytes[index] <= 57 {
                value = value * 10 + Int(bytes[index] - 48)
                index += 1
                count += 1
            }
            return count == 0 ? nil : value
        }
        func skip(_ character: Character) -> Bool {
            guard index < bytes.count, bytes[index] == character.asciiValue else { return false }
            index += 1
            return true
        }
        guard let yearNumber = number(), skip("-"), let month = number(maxDigits: 2), skip("-"),
              let day = number(maxDigits: 2) else { return nil }
        let year = bc ? 1 - yearNumber : yearNumber
        var seconds = Int64(days(fromYear: year, month: month, day: day)) * 86_400
        var micros: Int64 = 0
        if skip(" ") || skip("T") {
            guard let hour = number(maxDigits: 2), skip(":"), let minute = number(maxDigits: 2), skip(":"),
                  let second = number(maxDigits: 2) else { return nil }
            seconds += Int64(hour * 3600 + minute * 60 + second)
            if skip(".") {
                let start = index
                guard let fraction = number(maxDigits: 6) else { return nil }
                var scaled = Int64(fraction)
                for _ in (index - start)..<6 { scaled *= 10 }
                micros = scaled
            }
            if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") {
                let sign: Int64 = bytes[index] == UInt8(ascii: "+") ? 1 : -1
                index += 1
                guard let hours = number(maxDigits: 2) else { return nil }
                var offset = Int64(hours) * 3600
                if skip(":") {
                    guard let minutes = number(maxDigits: 2) else { return nil }
                    offset += Int64(minutes) * 60
                    if skip(":") {
                        guard let secs = number(maxDigits: 2) else { return nil }
                        offset += Int64(secs)
                    }
                }
                seconds -= sign * offset
            }
        }
        guard index == bytes.count else { return nil }
        return Date(timeIntervalSince1970: Double(seconds) + Double(micros) / 1_000_000)
    }

    // Howard Hinnant's days-from-civil algorithms (proleptic Gregorian calendar).
    static func days(fromYear year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    static func civil(fromDays days: Int) -> (year: Int, month: Int, day: Int) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }
}
