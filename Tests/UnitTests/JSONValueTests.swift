import EsteiraCore
import Foundation
import Testing

/// `JSONValue.parse` reads bytes itself; it must agree with `JSONDecoder` on what is JSON and
/// what it means.
@Suite struct JSONValueTests {
    static func viaDecoder(_ text: String) -> JSONValue? {
        try? JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
    }

    static let valid = [
        "{}", "[]", "null", "true", "false", "0", "-0", "12", "-12.5", "1e3", "1E-3", "2.5e+10", "123456789012345678901234",
        #""""#, #""plain""#, #""a\"b\\c\/d\b\f\n\r\t""#, #""\u00e9\u4e2d\ud83d\ude00""#, #""ação ✓ 😀""#,
        #"{"bench":"x","i":7}"#, #"{"sleep_ms": 0.5, "nested": {"a": [1, 2, {"b": null}]}, "list": [true, false]}"#,
        " \t\r\n{ \"a\" : [ 1 , 2 ] } \n", #"[[[[[[]]]]]]"#, #"{"url":"http://x/y?z=1&w=2","headers":{"X-A":"b"}}"#,
        #"{"a":1,"a":2}"#, String(repeating: "[", count: 100) + String(repeating: "]", count: 100),
    ]

    static let invalid = [
        "", " ", "{", "}", "[1,]", "[,1]", "{\"a\"}", "{\"a\":}", "{\"a\":1,}", "{a:1}", "'a'", "01", "1.", ".5", "-", "+1",
        "1e", "1e+", "0x10", "NaN", "Infinity", "tru", "nul", "truex", "[1] 2", "\"abc", "\"a\\x\"", "\"\\u12\"",
        "\"\\ud800\"", "\"\\udc00\"", "\"\\ud800\\u0041\"", "\"tab\there\"", "\"line\nbreak\"", "1e400", "[1 2]", "{\"a\" 1}",
        String(repeating: "[", count: 600) + String(repeating: "]", count: 600),
    ]

    @Test func readsValidJSONAsTheDecoderDoes() {
        for text in Self.valid {
            let parsed = JSONValue.parse(text)
            #expect(parsed != nil, "\(text.debugDescription) was refused")
            if text != #"{"a":1,"a":2}"# {
                #expect(parsed == Self.viaDecoder(text), "\(text.debugDescription)")
            }
        }
        #expect(JSONValue.parse(#"{"a":1,"a":2}"#) == .object(["a": .number(2)]))
        #expect(JSONValue.parse(#""\u00e9\ud83d\ude00""#) == .string("é😀"))
        #expect(JSONValue.parse(#"{"sleep_ms": 0.5}"#)?["sleep_ms"]?.doubleValue == 0.5)
    }

    @Test func refusesWhatIsNotJSON() {
        for text in Self.invalid {
            #expect(JSONValue.parse(text) == nil, "\(text.debugDescription) was accepted")
        }
    }

    /// Random documents written by the encoder read back the same.
    @Test func readsBackWhatTheEncoderWrites() {
        var generator = SystemRandomNumberGenerator()
        let pieces = ["", "a", "é", "😀", "\"", "\\", "\n", "\u{1}", "/", " ", "中文", "\u{7f}"]
        func random(_ depth: Int) -> JSONValue {
            switch Int.random(in: 0..<(depth > 3 ? 4 : 6), using: &generator) {
            case 0: return .null
            case 1: return .bool(Bool.random(using: &generator))
            case 2: return .number(Bool.random(using: &generator) ? Double(Int.random(in: -1_000_000...1_000_000, using: &generator))
                                                                 : Double.random(in: -1e6...1e6, using: &generator))
            case 3: return .string((0..<Int.random(in: 0...5, using: &generator)).map { _ in pieces.randomElement(using: &generator)! }.joined())
            case 4: return .array((0..<Int.random(in: 0...4, using: &generator)).map { _ in random(depth + 1) })
            default:
                var o: [String: JSONValue] = [:]
                for i in 0..<Int.random(in: 0...4, using: &generator) { o["k\(i)\(pieces.randomElement(using: &generator)!)"] = random(depth + 1) }
                return .object(o)
            }
        }
        for _ in 0..<500 {
            let value = random(0)
            let text = String(decoding: try! JSONEncoder().encode(value), as: UTF8.self)
            #expect(JSONValue.parse(text) == Self.viaDecoder(text), "\(text)")
            #expect(JSONValue.parse(value.jsonText) == value, "\(value.jsonText)")
            // The direct writer gives the encoder's text.
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            let encoded = String(decoding: try! encoder.encode(value), as: UTF8.self)
            #expect(value.jsonText == encoded, "\(value.jsonText) vs \(encoded)")
        }
    }
}
