import Foundation

extension UUID {
    /// A version 7 UUID (RFC 9562): the first 48 bits are the Unix time in milliseconds, the
    /// rest random. Rows keyed by such ids are appended at the right edge of their B-tree
    /// indexes, which stay in cache and write each page once, where random (version 4) ids
    /// touch a page anywhere in the index for every row: the ids of jobs and of the rows
    /// written with them in bulk.
    public static func timeOrdered(now: Date = Date()) -> UUID {
        var random = SystemRandomNumberGenerator()
        let millis = UInt64(max(0, now.timeIntervalSince1970 * 1000))
        let a = random.next() as UInt64, b = random.next() as UInt64
        // 48 bits of time, version 7, 12 random bits; variant 10, 62 random bits.
        let high = (millis << 16) | 0x7000 | (a & 0x0FFF)
        let low = (b & 0x3FFF_FFFF_FFFF_FFFF) | 0x8000_0000_0000_0000
        return UUID(uuid: (UInt8(truncatingIfNeeded: high >> 56), UInt8(truncatingIfNeeded: high >> 48),
                           UInt8(truncatingIfNeeded: high >> 40), UInt8(truncatingIfNeeded: high >> 32),
                           UInt8(truncatingIfNeeded: high >> 24), UInt8(truncatingIfNeeded: high >> 16),
                           UInt8(truncatingIfNeeded: high >> 8), UInt8(truncatingIfNeeded: high),
                           UInt8(truncatingIfNeeded: low >> 56), UInt8(truncatingIfNeeded: low >> 48),
                           UInt8(truncatingIfNeeded: low >> 40), UInt8(truncatingIfNeeded: low >> 32),
                           UInt8(truncatingIfNeeded: low >> 24), UInt8(truncatingIfNeeded: low >> 16),
                           UInt8(truncatingIfNeeded: low >> 8), UInt8(truncatingIfNeeded: low)))
    }

    /// The id as pages show it in short: its last 8 hex digits. A job id's first digits are
    /// its time, the same for every job made within a minute; its last ones are random.
    public var shortText: String { String(uuidString.lowercased().suffix(8)) }
}
