import EsteiraCore
import Foundation
import Testing

/// The kinds file: the README's example is what the code accepts, and bad files are refused
/// with a message naming the kind and the field.
@Suite struct KindsFileTests {
    /// The first ```yaml block of the README's processor section.
    static func readmeExample() throws -> String {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let readme = try String(contentsOf: root.appendingPathComponent("README.md"), encoding: .utf8)
        let section = try #require(readme.range(of: "## The processor"))
        let open = try #require(readme.range(of: "```yaml\n", range: section.upperBound..<readme.endIndex))
        let close = try #require(readme.range(of: "```", range: open.upperBound..<readme.endIndex))
        return String(readme[open.upperBound..<close.lowerBound])
    }

    @Test func readmeExampleLoads() throws {
        var catalog = KindCatalog.builtIn
        try catalog.overlay(yaml: try Self.readmeExample(), source: "README.md")

        let http = try #require(catalog["http"])
        #expect(http.policy.maxAttempts == 8)
        #expect(http.policy.backoffBase == 2)
        #expect(http.policy.timeout == 30, "fields left out keep the built-in kind's value")

        let sync = try #require(catalog["billing.sync"])
        #expect(sync.handler == "http")
        #expect(sync.endpoint == "billing")
        #expect(sync.policy.maxAttempts == 10)
        #expect(sync.policy.backoffBase == 1)
        #expect(sync.policy.backoffFactor == 2)
        #expect(sync.policy.backoffCap == 3600)
        #expect(sync.policy.timeout == 60)
        #expect(sync.policy.priority == 5)
        #expect(sync.policy.concurrency == 16)

        let reports = try #require(catalog["reports.nightly"])
        #expect(reports.handler == "http")
        #expect(reports.endpoint == nil)
        #expect(reports.policy == KindPolicy(), "a new kind with only a handler gets the default policy")

        let billing = try #require(catalog.endpoints["billing"])
        #expect(billing.url == "https://billing.example.com/hooks/sync")
        #expect(billing.secret == "s3cret")
        #expect(catalog.names.contains("noop"), "built-in kinds stay")
    }

    @Test(arguments: [
        ("kinds:\n  a.b: { handler: http, endpoint: nowhere }\n", "kind a.b: endpoint nowhere"),
        ("kinds:\n  a.b: { priority: 10 }\n", "kind a.b: priority must be 0...9"),
        ("kinds:\n  a.b: { backoffBase: 10, backoffCap: 5 }\n", "kind a.b: backoff needs"),
        ("kinds:\n  Billing: { handler: http }\n", "kind Billing: a name of a-z"),
        ("endpoints:\n  x: { url: \"ftp://example.com\" }\n", "endpoint x: an http(s) URL"),
        ("kinds:\n  a.b: { maxAttempts: many }\n", "kinds.a.b.maxAttempts must be Int"),
    ])
    func badFilesAreRefusedNamingTheField(yaml: String, expected: String) throws {
        var catalog = KindCatalog.builtIn
        let error = #expect(throws: ConfigurationError.self) { try catalog.overlay(yaml: yaml, source: "kinds.yaml") }
        #expect(error.map { "\($0)" }?.contains(expected) == true, "\(String(describing: error))")
    }
}

@Suite struct KindsFileSecretTests {
    /// A kinds file that does not parse is described by position and field, never by its
    /// text: the lines around the fault hold endpoint secrets.
    @Test(arguments: [
        "endpoints:\n  billing: { url: \"https://x.example\", secret: \"hunter2-secret\" \n",
        "endpoints:\n  billing: { url: \"https://x.example\", secret: [\"hunter2-secret\"] }\n",
        "endpoints:\n  billing: { secret: \"hunter2-secret\" }\n",
        "kinds:\n\t- hunter2-secret: {\n",
    ])
    func errorsNeverQuoteTheFile(yaml: String) throws {
        var catalog = KindCatalog.builtIn
        let error = #expect(throws: ConfigurationError.self) { try catalog.overlay(yaml: yaml, source: "kinds.yaml") }
        let text = error.map { "\($0)" } ?? ""
        #expect(!text.contains("hunter2"), "\(text)")
        #expect(text.contains("kinds.yaml"))
    }
}

@Suite struct UniqueRuleTests {
    @Test func theKindsFileDeclaresAndChecksIt() throws {
        var catalog = KindCatalog.builtIn
        try catalog.overlay(yaml: "kinds:\n  s.sync: { handler: noop, unique: { keys: [payload.store_id, period.start], states: [queued, running] } }\n")
        let rule = try #require(catalog["s.sync"]?.unique)
        #expect(rule.keys == ["store_id", "period.start"] && rule.states == [.queued, .running])
        try catalog.overlay(yaml: "kinds:\n  t.sync: { unique: { keys: [a] } }\n")
        #expect(catalog["t.sync"]?.unique?.states == KindCatalog.UniqueRule.activeStates)
        for (yaml, says) in [("kinds:\n  x: { unique: { keys: [] } }\n", "kind x: unique.keys"),
                             ("kinds:\n  x: { unique: { keys: [a..b] } }\n", "kind x: unique.keys"),
                             ("kinds:\n  x: { unique: { keys: [a], states: [completed] } }\n", "kind x: unique.states"),
                             ("kinds:\n  x: { unique: { keys: [a], states: [] } }\n", "kind x: unique.states")] {
            let error = #expect(throws: ConfigurationError.self) { try catalog.overlay(yaml: yaml) }
            #expect(error.map { "\($0)" }?.contains(says) == true, "\(yaml): \(String(describing: error))")
        }
    }

    @Test func equalJobsHaveEqualKeys() {
        let rule = KindCatalog.UniqueRule(keys: ["store_id", "period.start"])
        let owner = UUID()
        let a = rule.key(kind: "k", owner: owner, payload: JSONValue.parse(#"{"store_id": 7, "period": {"start": "x", "end": 1}, "n": 1}"#))
        let b = rule.key(kind: "k", owner: owner, payload: JSONValue.parse(#"{"n": 2, "period": {"start": "x"}, "store_id": 7}"#))
        #expect(a == b)
        #expect(a != rule.key(kind: "k", owner: UUID(), payload: JSONValue.parse(#"{"store_id": 7, "period": {"start": "x"}}"#)))
        #expect(a != rule.key(kind: "k", owner: owner, payload: JSONValue.parse(#"{"store_id": "7", "period": {"start": "x"}}"#)))
        #expect(rule.key(kind: "k", owner: nil, payload: nil).hasSuffix("null\u{1F}null"))
    }
}

@Suite struct ConcurrencyLimitFileTests {
    @Test func theKindsFileDeclaresAndChecksIt() throws {
        var catalog = KindCatalog.builtIn
        try catalog.overlay(yaml: """
            kinds:
              a: { handler: noop, globalConcurrency: 3 }
              b: { handler: noop, concurrencyKey: payload.conversation.id }
              c: { handler: noop, globalConcurrency: 10, concurrencyKey: store_id, keyConcurrency: 2 }
            """)
        #expect(catalog["a"]?.limit == KindCatalog.ConcurrencyLimit(global: 3))
        #expect(catalog["b"]?.limit == KindCatalog.ConcurrencyLimit(keyPath: "conversation.id", perKey: 1))
        #expect(catalog["c"]?.limit == KindCatalog.ConcurrencyLimit(global: 10, keyPath: "store_id", perKey: 2))
        #expect(catalog["noop"]?.limit == nil)
        for (yaml, says) in [("kinds:\n  x: { globalConcurrency: 0 }\n", "kind x: globalConcurrency"),
                             ("kinds:\n  x: { concurrencyKey: \"a..b\" }\n", "kind x: concurrencyKey"),
                             ("kinds:\n  x: { keyConcurrency: 2 }\n", "kind x: keyConcurrency needs concurrencyKey"),
                             ("kinds:\n  x: { concurrencyKey: a, keyConcurrency: 0 }\n", "kind x: keyConcurrency"),
                             ("kinds:\n  x: { globalConcurrency: many }\n", "kinds.x.globalConcurrency")] {
            let error = #expect(throws: ConfigurationError.self) { try catalog.overlay(yaml: yaml) }
            #expect(error.map { "\($0)" }?.contains(says) == true, "\(yaml): \(String(describing: error))")
        }
    }

    @Test func limitersAndBreakersAreDeclaredAndChecked() throws {
        var catalog = KindCatalog.builtIn
        try catalog.overlay(yaml: """
            limiters:
              shopify: { rate: 2.5, burst: 40 }
              klaviyo: { rate: 10 }
            breakers:
              smtp: { failures: 4, window: 30, coolDown: 10 }
              llm: {}
            kinds:
              store.sync: { handler: noop, limiter: shopify, breaker: smtp }
            """)
        #expect(catalog.limiters["shopify"] == KindCatalog.RateLimit(rate: 2.5, burst: 40))
        #expect(catalog.limiters["klaviyo"]?.burst == 10)
        #expect(catalog.breakers["smtp"] == KindCatalog.BreakerPolicy(failures: 4, window: 30, coolDown: 10))
        #expect(catalog.breakers["llm"] == KindCatalog.BreakerPolicy())
        #expect(catalog["store.sync"]?.limiter == "shopify" && catalog["store.sync"]?.breaker == "smtp")
        #expect(catalog["store.sync"]?.isGated == true && catalog["noop"]?.isGated == false)
        for (yaml, says) in [("kinds:\n  x: { limiter: nope }\n", "kind x: limiter nope to be defined under limiters"),
                             ("kinds:\n  x: { breaker: nope }\n", "kind x: breaker nope to be defined under breakers"),
                             ("limiters:\n  l: { rate: 0 }\n", "limiter l: rate above 0"),
                             ("limiters:\n  l: { burst: 3 }\n", "limiters.l.rate is missing"),
                             ("breakers:\n  b: { failures: 0 }\n", "breaker b: failures"),
                             ("breakers:\n  b: { coolDown: -1 }\n", "breaker b: failures 1...1000000, window and coolDown")] {
            let error = #expect(throws: ConfigurationError.self) { try catalog.overlay(yaml: yaml) }
            #expect(error.map { "\($0)" }?.contains(says) == true, "\(yaml): \(String(describing: error))")
        }
    }

    @Test func controlMessagesRoundTrip() {
        let id = UUID()
        #expect(ControlChannel.message("cancel:" + id.uuidString.lowercased()) == .cancelled(id))
        #expect(ControlChannel.message("pauses") == .pausesChanged)
        #expect(ControlChannel.message("cancel:not-a-uuid") == nil)
        #expect(ControlChannel.message("") == nil)
    }
}
