/// How deeply a JSON text nests, read without parsing it: the api refuses bodies nested past
/// a limit before any parser recurses into them, and a stored payload that nests too deeply
/// to encode again is shown as text instead of failing a listing.
public enum JSONDepth {
    /// The most nesting the api takes in a body: a batch's envelope (3 levels) and a payload
    /// of 64.
    public static let bodyLimit = 67
    /// The most nesting a stored payload is shown with as JSON.
    public static let storedLimit = 100

    /// Whether `text` nests deeper than `limit` arrays and objects; if so, the member of the
    /// outermost object it happened under (nil when it was not inside one).
    public static func exceeds(_ text: some Collection<UInt8>, limit: Int) -> (exceeded: Bool, under: String?) {
        var depth = 0, inString = false, escaped = false
        var key: [UInt8] = [], readingKey = false, topKey: String?
        var outerIsObject = false, expectingKey = false
        for byte in text {
            if inString {
                // A member name is kept as written, escapes included.
                if escaped { escaped = false }
                else if byte == UInt8(ascii: "\\") { escaped = true }
                else if byte == UInt8(ascii: "\"") {
                    inString = false
                    if readingKey { readingKey = false; topKey = String(decoding: key, as: UTF8.self) }
                    continue
                }
                if readingKey { key.append(byte) }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""):
                inString = true
                // A string at depth 1 that follows `{` or `,` is a member name of the outermost object.
                readingKey = depth == 1 && expectingKey
                key = []
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                depth += 1
                if depth > limit { return (true, topKey) }
                if depth == 1 {
                    outerIsObject = byte == UInt8(ascii: "{")
                    expectingKey = outerIsObject
                }
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                depth -= 1
            case UInt8(ascii: ","):
                if depth == 1 { expectingKey = outerIsObject }
            case UInt8(ascii: ":"):
                if depth == 1 { expectingKey = false }
            default:
                break
            }
        }
        return (false, nil)
    }
}
