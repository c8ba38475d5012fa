import Foundation

extension UUID {
    /// Parses the canonical form, 8-4-4-4-12 hex digits of either case (what PostgreSQL and
    /// every Esteira message write), without Foundation's parser, which goes through
    /// `sscanf` and costs a job several microseconds; any other spelling is handed to
    /// `UUID(uuidString:)`, so what is accepted does not change.
    public init?(text: some StringProtocol) {
        var string = String(text)
        if let parsed = string.withUTF8({ UUID.parseCanonical($0) }) {
            self = parsed
        } else if let parsed = UUID(uuidString: string) {
            self = parsed
        } else {
            return nil
        }
    }

    /// The canonical form in bytes of UTF-8 (`bytes` must be exactly 36 long), or nil.
    public static func parseCanonical(_ bytes: UnsafeBufferPointer<UInt8>) -> UUID? {
        guard bytes.count == 36, bytes[8] == dash, bytes[13] == dash, bytes[18] == dash, bytes[23] == dash else { return nil }
        var value: uuid_t = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        let ok = withUnsafeMutableBytes(of: &value) { out -> Bool in
            var i = 0, o = 0
            while i < 36 {
                if i == 8 || i == 13 || i == 18 || i == 23 { i += 1; continue }
                guard let high = Hex.value(bytes[i]), let low = Hex.value(bytes[i + 1]) else { return false }
                out[o] = high << 4 | low
                o += 1
                i += 2
            }
            return true
        }
        return ok ? UUID(uuid: value) : nil
    }

    /// The canonical form in lowercase (as PostgreSQL writes it), without Foundation's
    /// formatter.
    public var lowercasedText: String {
        withUnsafeBytes(of: uuid) { raw in
            String(unsafeUninitializedCapacity: 36) { out in
                var o = 0
                for (i, byte) in raw.enumerated() {
                    if i == 4 || i == 6 || i == 8 || i == 10 { out[o] = UUID.dash; o += 1 }
                    out[o] = Hex.digits[Int(byte >> 4)]
                    out[o + 1] = Hex.digits[Int(byte & 0x0f)]
                    o += 2
                }
                return o
            }
        }
    }

    private static let dash = UInt8(ascii: "-")
}
