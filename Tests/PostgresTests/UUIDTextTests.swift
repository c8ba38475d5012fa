import Foundation
import Postgres
import Testing

/// UUID text without Foundation's parser and formatter: same results as Foundation's.
@Suite struct UUIDTextTests {
    @Test func writesAndReadsTheCanonicalForm() {
        for _ in 0..<2000 {
            let id = UUID()
            #expect(id.lowercasedText == id.uuidString.lowercased())
            #expect(UUID(text: id.lowercasedText) == id)
            #expect(UUID(text: id.uuidString) == id)
            var bytes = Array(id.uuidString.utf8)
            #expect(bytes.withUnsafeMutableBufferPointer { UUID.parseCanonical(UnsafeBufferPointer($0)) } == id)
            bytes[Int.random(in: 0..<36)] = UInt8(ascii: "g")
            #expect(bytes.withUnsafeMutableBufferPointer { UUID.parseCanonical(UnsafeBufferPointer($0)) } == nil)
        }
    }

    @Test func acceptsWhatFoundationAcceptsAndNothingElse() {
        let texts = ["", "not-a-uuid", "00000000-0000-0000-0000-000000000000", "FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF",
                     "a1b2c3d4-e5f6-a7b8-c9d0-e1f2a3b4c5d6", "a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6", "a1b2c3d4-e5f6-a7b8-c9d0-e1f2a3b4c5d",
                     "a1b2c3d4-e5f6-a7b8-c9d0-e1f2a3b4c5d67", "a1b2c3d4+e5f6-a7b8-c9d0-e1f2a3b4c5d6", "{a1b2c3d4-e5f6-a7b8-c9d0-e1f2a3b4c5d6}",
                     "a1b2c3d4-e5f6-a7b8-c9d0-e1f2a3b4c5dz", " a1b2c3d4-e5f6-a7b8-c9d0-e1f2a3b4c5d6"]
        for text in texts {
            #expect(UUID(text: text) == UUID(uuidString: text), "\(text.debugDescription)")
        }
    }
}
