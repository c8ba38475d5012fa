import EsteiraCore
import Foundation
import Testing

@Suite struct CronExpressionTests {
    let utc = TimeZone(identifier: "UTC")!

    func date(_ text: String) -> Date {
        let f = ISO8601DateFormatter()
        return f.date(from: text)!
    }

    func iso(_ date: Date?) -> String? { date.map { ISO8601DateFormatter().string(from: $0) } }

    @Test func everyTenSecondsWithTheSecondsField() throws {
        let e = try CronExpression("*/10 * * * * *")
        #expect(iso(e.next(after: date("2026-11-23T12:00:03Z"), in: utc)) == "2026-11-23T12:00:10Z")
        #expect(iso(e.next(after: date("2026-11-23T12:00:10Z"), in: utc)) == "2026-11-23T12:00:20Z", "strictly after")
        #expect(iso(e.next(after: date("2026-11-23T12:59:55Z"), in: utc)) == "2026-11-23T13:00:00Z")
    }

    @Test func fiveFieldsFireAtSecondZero() throws {
        let e = try CronExpression("30 9 * * mon-fri")
        // Friday 10:00 → Monday 09:30.
        #expect(iso(e.next(after: date("2026-11-27T10:00:00Z"), in: utc)) == "2026-11-30T09:30:00Z")
        #expect(iso(try CronExpression("@hourly").next(after: date("2026-11-23T12:00:00Z"), in: utc)) == "2026-11-23T13:00:00Z")
        #expect(iso(try CronExpression("@daily").next(after: date("2026-12-31T12:00:00Z"), in: utc)) == "2027-01-01T00:00:00Z")
    }

    @Test func listsRangesStepsAndNames() throws {
        let e = try CronExpression("0 0,15,45 8-18/5 * jan,jul *")
        #expect(e.minutes == [0, 15, 45])
        #expect(e.hours == [8, 13, 18])
        #expect(e.months == [1, 7])
        #expect(iso(e.next(after: date("2026-11-23T12:00:00Z"), in: utc)) == "2027-01-01T08:00:00Z")
        #expect(try CronExpression("0 0 * * 7").daysOfWeek == [0], "7 is Sunday too")
    }

    @Test func bothDayFieldsMatchEitherDay() throws {
        // The 1st of the month or any Monday.
        let e = try CronExpression("0 12 1 * mon")
        #expect(iso(e.next(after: date("2026-11-24T00:00:00Z"), in: utc)) == "2026-11-30T12:00:00Z")
        #expect(iso(e.next(after: date("2026-11-30T13:00:00Z"), in: utc)) == "2026-12-01T12:00:00Z")
    }

    @Test func timeZonesAndDaylightSaving() throws {
        let lisbon = TimeZone(identifier: "Europe/Lisbon")!
        let nine = try CronExpression("0 9 * * *")
        // Summer time (UTC+1), then winter time (UTC+0).
        #expect(iso(nine.next(after: date("2026-07-01T00:00:00Z"), in: lisbon)) == "2026-07-01T08:00:00Z")
        #expect(iso(nine.next(after: date("2026-12-01T00:00:00Z"), in: lisbon)) == "2026-12-01T09:00:00Z")
        // 01:30 does not exist in Lisbon on 2026-03-29 (01:00 → 02:00): that day is skipped.
        let skipped = try CronExpression("30 1 * * *")
        #expect(iso(skipped.next(after: date("2026-03-28T12:00:00Z"), in: lisbon)) == "2026-03-30T00:30:00Z")
    }

    @Test func anImpossibleDateNeverFires() throws {
        #expect(try CronExpression("0 0 30 2 *").next(after: date("2026-01-01T00:00:00Z"), in: utc) == nil)
    }

    @Test(arguments: [
        ("* * *", "expected 5 fields"),
        ("61 * * * *", "minute: '61'"),
        ("* 24 * * *", "hour: '24'"),
        ("* * 0 * *", "day of month: '0'"),
        ("* * * 13 *", "month: '13'"),
        ("* * * * 8", "day of week: '8'"),
        ("5-1 * * * *", "runs backwards"),
        ("*/0 * * * *", "step '0'"),
        ("1,,2 * * * *", "empty list item"),
        ("@often", "unknown macro"),
        ("* * * foo *", "month: 'foo'"),
    ])
    func badExpressionsNameTheField(_ text: String, _ message: String) {
        do {
            _ = try CronExpression(text)
            Issue.record("'\(text)' parsed")
        } catch {
            #expect(error.description.contains(message), "\(error.description)")
        }
    }

    @Test func missedTicksCollapseIntoTheLatest() throws {
        let e = try CronExpression("*/2 * * * * *")
        let first = date("2026-11-23T10:00:00Z")
        let now = date("2026-11-23T13:17:05Z")
        #expect(iso(ScheduleStore.latestTick(e, zone: utc, first: first, now: now)) == "2026-11-23T13:17:04Z")
        #expect(ScheduleStore.latestTick(e, zone: utc, first: now, now: now) == now)
    }
}
