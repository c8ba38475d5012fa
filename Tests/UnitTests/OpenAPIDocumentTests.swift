import EsteiraService
import Foundation
import Testing

@Suite struct OpenAPIDocumentTests {
    static let base = OpenAPIPart(name: "api", json: Array("""
        {"openapi": "3.1.0", "info": {"title": "t", "version": "1"},
         "paths": {"/v1/jobs": {"get": {"responses": {}}, "post": {"responses": {}}}},
         "components": {"schemas": {"Kind": {"type": "string"}, "Problem": {"type": "object"}},
                        "responses": {"NotFound": {"description": "no"}}}}
        """.utf8))

    static func part(_ path: String, schema: String) -> OpenAPIPart {
        OpenAPIPart(name: "w", json: Array("""
            {"paths": {"\(path)": {"get": {"responses": {"404": {"$ref": "#/components/responses/NotFound"}}}}},
             "components": {"schemas": {"\(schema)": {"type": "object"}}}}
            """.utf8))
    }

    @Test func partsAreMergedAndTheKindsListed() throws {
        let doc = try OpenAPIDocument.assemble(base: Self.base, parts: [Self.part("/v1/things", schema: "Thing")],
                                               kinds: ["a.b", "noop"])
        let ops = Set(doc.operations.map { "\($0.method) \($0.path)" })
        #expect(ops == ["get /v1/jobs", "post /v1/jobs", "get /v1/things"])
        let root = try #require(try JSONSerialization.jsonObject(with: doc.data) as? [String: Any])
        let schemas = try #require((root["components"] as? [String: Any])?["schemas"] as? [String: Any])
        #expect(Set(schemas.keys) == ["Kind", "Problem", "Thing"])
        #expect((schemas["Kind"] as? [String: Any])?["enum"] as? [String] == ["a.b", "noop"])
        #expect((root["components"] as? [String: Any])?["responses"] != nil)
    }

    @Test func aPathOrComponentDefinedTwiceIsRefused() {
        #expect(throws: OpenAPIAssemblyError.self) {
            try OpenAPIDocument.assemble(base: Self.base, parts: [Self.part("/v1/jobs", schema: "Other")], kinds: [])
        }
        #expect(throws: OpenAPIAssemblyError.self) {
            try OpenAPIDocument.assemble(base: Self.base, parts: [Self.part("/v1/x", schema: "Problem")], kinds: [])
        }
        #expect(throws: OpenAPIAssemblyError.self) {
            try OpenAPIDocument.assemble(base: Self.base, parts: [OpenAPIPart(name: "bad", json: Array("[1]".utf8))], kinds: [])
        }
    }
}

@testable import EsteiraService

@Suite struct ProbeCacheTests {
    final class Counter: @unchecked Sendable {
        var n = 0
    }

    @Test func anOutcomeIsReusedWhileFreshThenProbedAgain() async throws {
        let cache = ProbeCache(ttl: .milliseconds(300))
        let count = Counter()
        for _ in 0..<5 { try await cache.outcome { count.n += 1 } }
        #expect(count.n == 1)
        try await Task.sleep(for: .milliseconds(350))
        await #expect(throws: ProbeCache.Failed.self) { try await cache.outcome { count.n += 1; throw CancellationError() } }
        #expect(count.n == 2)
        // The failure is kept too, without a new probe.
        await #expect(throws: ProbeCache.Failed.self) { try await cache.outcome { count.n += 1 } }
        #expect(count.n == 2)
    }
}

@Suite struct PrincipalLimitsTests {
    @Test func aBucketRefillsAtItsRateUpToItsBurst() {
        var c = PrincipalLimits.Configuration()
        c.rate = 10
        c.burst = 2
        let limits = PrincipalLimits(configuration: c)
        let p = UUID(), other = UUID(), t0 = ContinuousClock.now
        #expect(limits.admit(p, now: t0) == nil && limits.admit(p, now: t0) == nil)
        let wait = limits.admit(p, now: t0)
        #expect(wait != nil && abs(wait! - 0.1) < 0.001)
        #expect(limits.admit(other, now: t0) == nil, "a bucket per principal")
        #expect(limits.admit(p, now: t0 + .milliseconds(100)) == nil)
        #expect(limits.admit(p, now: t0 + .seconds(60)) == nil && limits.admit(p, now: t0 + .seconds(60)) == nil)
        #expect(limits.admit(p, now: t0 + .seconds(60)) != nil, "no more than the burst after a quiet spell")
        c.rate = 0
        #expect(PrincipalLimits(configuration: c).admit(p) == nil, "0: no limit")
    }

    @Test func streamsAreCountedAndFreed() {
        var c = PrincipalLimits.Configuration()
        c.streams = 2
        let limits = PrincipalLimits(configuration: c)
        let p = UUID()
        #expect(limits.openStream(p) && limits.openStream(p))
        #expect(!limits.openStream(p))
        limits.closeStream(p)
        #expect(limits.openStream(p))
        #expect(limits.openStream(UUID()))
    }
}
