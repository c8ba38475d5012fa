import EsteiraCore
import Testing

@Suite struct JSONDepthTests {
    static func nested(_ n: Int) -> String { String(repeating: "[", count: n) + String(repeating: "]", count: n) }

    @Test func countsArraysAndObjectsButNotBracketsInStrings() {
        #expect(!JSONDepth.exceeds(Array(Self.nested(5).utf8), limit: 5).exceeded)
        #expect(JSONDepth.exceeds(Array(Self.nested(6).utf8), limit: 5).exceeded)
        let inString = #"{"a": "[[[[[[[[[[\"{{{{{{{{", "b": {"c": 1}}"#
        #expect(!JSONDepth.exceeds(Array(inString.utf8), limit: 2).exceeded)
        #expect(JSONDepth.exceeds(Array(inString.utf8), limit: 1).exceeded)
    }

    @Test func namesTheOutermostMemberItHappenedUnder() {
        let body = #"{"kind": "noop", "payload": {"x": \#(Self.nested(10))}, "later": [[[[[[[[[[[[]]]]]]]]]]]]}"#
        let r = JSONDepth.exceeds(Array(body.utf8), limit: 8)
        #expect(r.exceeded && r.under == "payload")
        let key = #"{"a\"b": \#(Self.nested(10))}"#
        #expect(JSONDepth.exceeds(Array(key.utf8), limit: 3).under == #"a\"b"#)
        #expect(JSONDepth.exceeds(Array(Self.nested(10).utf8), limit: 3).under == nil)
    }
}
