import EsteiraCore
import Foundation
import Testing

/// Job ids are version 7 UUIDs: the time in their first 48 bits, so ids made later sort after.
@Suite struct TimeOrderedUUIDTests {
    @Test func carriesTheVersionTheVariantAndTheTime() {
        let now = Date(timeIntervalSince1970: 1_796_385_000.123)
        let id = UUID.timeOrdered(now: now)
        let text = id.uuidString.lowercased()
        #expect(text.hasPrefix(String(1_796_385_000_123, radix: 16).leftPadded(to: 12).inserting("-", at: 8)))
        let bytes = withUnsafeBytes(of: id.uuid) { Array($0) }
        #expect(bytes[6] >> 4 == 7)
        #expect(bytes[8] >> 6 == 0b10)
        let millis = bytes[0..<6].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        #expect(millis == 1_796_385_000_123)
    }

    @Test func idsOfLaterMillisecondsSortAfterAndNoTwoAreEqual() {
        let start = Date()
        let ids = (0..<1000).map { UUID.timeOrdered(now: start.addingTimeInterval(Double($0) / 1000)) }
        let texts = ids.map { $0.uuidString.lowercased() }
        #expect(texts == texts.sorted())
        #expect(Set(ids).count == ids.count)
        let same = (0..<1000).map { _ in UUID.timeOrdered(now: start) }
        #expect(Set(same).count == same.count)
    }
}

private extension String {
    func leftPadded(to length: Int) -> String { String(repeating: "0", count: max(0, length - count)) + self }
    func inserting(_ piece: String, at offset: Int) -> String {
        let i = index(startIndex, offsetBy: offset)
        return String(self[..<i]) + piece + String(self[i...])
    }
}
