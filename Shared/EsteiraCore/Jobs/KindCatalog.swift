import Foundation
import Yams

/// The job kinds this deployment knows, each with its policy, and the named HTTP endpoints
/// the `http` kind may call. Built in: `http` and `noop`. Workloads add their kinds through
/// ``add(_:)``; more come from a YAML file (`ESTEIRA_KINDS_FILE`), the same file for every
/// service:
///
/// ```yaml
/// kinds:
///   http: { maxAttempts: 8, backoffBase: 2 }
///   billing.sync: { handler: http, endpoint: billing, timeout: 60 }
/// endpoints:
///   billing: { url: "https://example.com/hooks/billing", secret: "s3cret" }
/// ```
///
/// A kind with `handler: http` runs the `http` handler, against its `endpoint` unless the
/// job names a URL or endpoint itself.
public struct KindCatalog: Sendable {
    /// One kind: its policy, the handler that runs it, and the endpoint for http kinds.
    public struct Kind: Sendable, Equatable {
        public var name: String
        public var policy: KindPolicy
        /// The registered handler that runs this kind (its own name for built-ins).
        public var handler: String
        /// For http kinds: the named endpoint used when the job gives none.
        public var endpoint: String?
        /// Enqueued only by its workload (its own routes and handlers), never directly through
        /// `POST /v1/jobs`: its jobs carry the workload's ids, which a caller could aim at
        /// another owner's data.
        public var isInternal: Bool
        /// Unique while active: no second job equal on these payload fields (per owner) while
        /// one is in these states (kinds file `unique`).
        public var unique: UniqueRule?
        /// Limits on how many of its jobs run at once across every processor (kinds file
        /// `globalConcurrency`, `concurrencyKey`, `keyConcurrency`).
        public var limit: ConcurrencyLimit?
        /// The named rate limiter each of its jobs takes a token of before it runs (kinds
        /// file `limiter`).
        public var limiter: String?
        /// The named circuit breaker of the service its jobs need (kinds file `breaker`).
        public var breaker: String?

        /// Whether its claims pass ``FlowGate`` (a concurrency limit, a rate limiter or a
        /// circuit breaker).
        public var isGated: Bool { limit != nil || limiter != nil || breaker != nil }

        /// A kind `name` run by the handler registered as `handler` (default: its own name).
        public init(name: String, policy: KindPolicy, handler: String? = nil, endpoint: String? = nil, isInternal: Bool = false) {
            self.name = name
            self.policy = policy
            self.handler = handler ?? name
            self.endpoint = endpoint
            self.isInternal = isInternal
        }
    }

    /// Which jobs of a kind count as equal, and while when.
    public struct UniqueRule: Sendable, Equatable {
        /// Payload fields (dotted paths: `store_id`, `period.start`) whose values make a job equal.
        public var keys: [String]
        /// The states in which an equal job blocks a new one.
        public var states: [JobStatus]

        /// The states a job is active in: the default.
        public static let activeStates: [JobStatus] = [.scheduled, .queued, .running, .retrying]

        public init(keys: [String], states: [JobStatus] = UniqueRule.activeStates) {
            self.keys = keys
            self.states = states
        }

        /// The key of a job of `kind`, owned by `owner`, with `payload`: equal jobs have equal keys.
        public func key(kind: String, owner: UUID?, payload: JSONValue?) -> String {
            var parts = [kind, owner?.uuidString.lowercased() ?? "-"]
            for path in keys { parts.append(payload?[path: path]?.jsonText ?? "null") }
            return parts.joined(separator: "\u{1F}")
        }
    }

    /// How many jobs of a kind may run at once across every processor instance: in all
    /// (`global`), and per value of a payload field (`keyPath`, at most `perKey` each; 1 makes
    /// it a lock per key). A delivery over a limit waits, parked, without spending an attempt.
    public struct ConcurrencyLimit: Sendable, Equatable {
        /// Jobs of the kind running at once, in all; nil: no limit in all.
        public var global: Int?
        /// The payload field (dotted path) whose value a per-key limit counts by; nil: none.
        public var keyPath: String?
        /// Jobs running at once per key value (with `keyPath`). Default 1: a lock per key.
        public var perKey: Int

        public init(global: Int? = nil, keyPath: String? = nil, perKey: Int = 1) {
            self.global = global
            self.keyPath = keyPath
            self.perKey = perKey
        }
    }

    /// A token bucket shared by every processor: `rate` tokens a second, up to `burst` at once.
    public struct RateLimit: Sendable, Equatable, Decodable {
        public var rate: Double
        public var burst: Int

        public init(rate: Double, burst: Int? = nil) {
            self.rate = rate
            self.burst = burst ?? max(1, Int(rate.rounded(.up)))
        }

        enum CodingKeys: String, CodingKey { case rate, burst }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            self.init(rate: try c.decode(Double.self, forKey: .rate), burst: try c.decodeIfPresent(Int.self, forKey: .burst))
        }
    }

    /// When a circuit breaker opens and how long it stays open.
    public struct BreakerPolicy: Sendable, Equatable, Decodable {
        /// Failures within `window` seconds that open it. Default 5.
        public var failures: Int = 5
        /// Seconds over which failures are counted. Default 60.
        public var window: Double = 60
        /// Seconds it stays open before one job probes the service. Default 30.
        public var coolDown: Double = 30

        public init(failures: Int = 5, window: Double = 60, coolDown: Double = 30) {
            self.failures = failures
            self.window = window
            self.coolDown = coolDown
        }

        enum CodingKeys: String, CodingKey { case failures, window, coolDown }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            failures = try c.decodeIfPresent(Int.self, forKey: .failures) ?? 5
            window = try c.decodeIfPresent(Double.self, forKey: .window) ?? 60
            coolDown = try c.decodeIfPresent(Double.self, forKey: .coolDown) ?? 30
        }
    }

    /// A named HTTP target: its URL and the secret its requests are signed with.
    public struct Endpoint: Sendable, Equatable, Codable {
        public var url: String
        public var secret: String?
        /// The principals (by name) whose jobs may name this endpoint in their payload; nil:
        /// any. Admins always may.
        public var principals: [String]?
        /// The kinds that may use it; nil: any.
        public var kinds: [String]?

        /// Whether a job of `kind`, owned by `principal` (nil: the system's), may use it.
        /// `principal` is checked only for jobs that name the endpoint themselves.
        public func admits(kind: String, principal: String?, namedInPayload: Bool, admin: Bool) -> Bool {
            if let kinds, !kinds.contains(kind) { return false }
            if namedInPayload, !admin, let principals {
                guard let principal, principals.contains(principal) else { return false }
            }
            return true
        }
    }

    /// Every kind, by name.
    public private(set) var kinds: [String: Kind]
    /// Named endpoints, by name.
    public private(set) var endpoints: [String: Endpoint]
    /// Secret for named endpoints without one of their own (`ESTEIRA_HTTP_SIGNING_SECRET`).
    public var defaultSigningSecret: String?
    /// Named rate limiters (kinds file `limiters`), by name.
    public private(set) var limiters: [String: RateLimit] = [:]
    /// Named circuit breakers (kinds file `breakers`), by name.
    public private(set) var breakers: [String: BreakerPolicy] = [:]

    /// Kind names: lower-case letters, digits, `_`, `.`, `-`, starting with a letter (the
    /// jobs table checks the same).
    public static func isValidName(_ name: String) -> Bool {
        guard let first = name.utf8.first, (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(first),
              name.utf8.count <= 63 else { return false }
        return name.utf8.allSatisfy { c in
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(c) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(c)
                || c == UInt8(ascii: "_") || c == UInt8(ascii: ".") || c == UInt8(ascii: "-")
        }
    }

    /// The built-in kinds with default policies.
    public static var builtIn: KindCatalog {
        var http = KindPolicy()
        http.maxAttempts = 8
        http.timeout = 30
        var noop = KindPolicy()
        noop.timeout = 10
        noop.concurrency = 256
        return KindCatalog(kinds: [
            "http": Kind(name: "http", policy: http, handler: "http", endpoint: nil),
            "noop": Kind(name: "noop", policy: noop, handler: "noop", endpoint: nil),
        ], endpoints: [:], defaultSigningSecret: nil)
    }

    /// The kind named `name`, if known.
    public subscript(name: String) -> Kind? { kinds[name] }

    /// Adds or replaces a kind.
    public mutating func register(_ kind: Kind) { kinds[kind.name] = kind }

    /// Adds the kinds `workload` brings; a name already taken is a programming error, thrown
    /// at start.
    public mutating func add(_ workload: Workload) throws {
        for kind in workload.kinds {
            guard KindCatalog.isValidName(kind.name) else {
                throw ConfigurationError(variable: "workload \(workload.name)", value: kind.name, expected: "a valid kind name")
            }
            guard kinds[kind.name] == nil else {
                throw ConfigurationError(variable: "workload \(workload.name)", value: kind.name,
                                         expected: "a kind name no other workload or built-in kind uses")
            }
            kinds[kind.name] = kind
        }
    }

    /// Every kind's name, sorted.
    public var names: [String] { kinds.keys.sorted() }

    /// The kinds `POST /v1/jobs` takes (not internal), sorted.
    public var enqueueableNames: [String] { kinds.values.filter { !$0.isInternal }.map(\.name).sorted() }

    /// The broker objects for these kinds: a work queue each, with priorities for the kinds
    /// whose policy asks for them.
    public var topology: Topology {
        Topology(kinds: names, prioritized: Set(kinds.values.filter(\.policy.priorities).map(\.name)), queueType: queueType)
    }

    /// The type of the work queues and hold tiers (`ESTEIRA_QUEUE_TYPE`).
    public var queueType: Topology.QueueType = .classic

    /// The built-in kinds and those of `workloads`, overlaid with the YAML file at `path`
    /// (nil: no file).
    public static func load(path: String?, signingSecret: String? = nil, workloads: [Workload] = []) throws -> KindCatalog {
        var catalog = KindCatalog.builtIn
        for workload in workloads { try catalog.add(workload) }
        catalog.defaultSigningSecret = signingSecret
        guard let path else { return catalog }
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ConfigurationError(variable: "ESTEIRA_KINDS_FILE", value: path, expected: "a readable YAML file")
        }
        try catalog.overlay(yaml: text, source: path)
        return catalog
    }

    private struct FileKind: Decodable {
        var handler: String?
        var endpoint: String?
        var maxAttempts: Int?
        var backoffBase: Double?
        var backoffFactor: Double?
        var backoffCap: Double?
        var timeout: Double?
        var priorities: Bool?
        var priority: Int?
        var concurrency: Int?
        var heartbeatTimeout: Double?
        var retention: Double?
        var unique: FileUnique?
        var globalConcurrency: Int?
        var concurrencyKey: String?
        var keyConcurrency: Int?
        var limiter: String?
        var breaker: String?
    }

    private struct FileUnique: Decodable {
        var keys: [String]
        var states: [String]?
    }

    private struct File: Decodable {
        var kinds: [String: FileKind]?
        var endpoints: [String: Endpoint]?
        var limiters: [String: RateLimit]?
        var breakers: [String: BreakerPolicy]?
    }

    /// Where a kinds file is wrong, without its text: the file holds endpoint secrets, and
    /// the YAML library's own messages quote the offending line.
    static func describe(_ error: any Error) -> String {
        switch error {
        case YamlError.scanner(_, let problem, let mark, _), YamlError.parser(_, let problem, let mark, _),
             YamlError.composer(_, let problem, let mark, _):
            return "\(problem) at line \(mark.line), column \(mark.column)"
        case DecodingError.typeMismatch(let type, let context):
            return "\(Self.path(context.codingPath)) must be \(type)"
        case DecodingError.valueNotFound(_, let context):
            return "\(Self.path(context.codingPath)) is missing"
        case DecodingError.keyNotFound(let key, let context):
            return "\(Self.path(context.codingPath + [key])) is missing"
        case DecodingError.dataCorrupted(let context):
            return "\(Self.path(context.codingPath)) is not valid"
        default:
            return "not a kinds file"
        }
    }

    private static func path(_ keys: [any CodingKey]) -> String {
        keys.isEmpty ? "the file" : keys.map(\.stringValue).joined(separator: ".")
    }

    /// Applies a kinds file's contents. Errors name the kind and the field.
    public mutating func overlay(yaml: String, source: String = "kinds file") throws {
        let file: File
        do {
            file = try YAMLDecoder().decode(File.self, from: yaml)
        } catch {
            throw ConfigurationError(variable: "ESTEIRA_KINDS_FILE", value: source, expected: "valid kinds YAML (\(Self.describe(error)))")
        }
        for (name, endpoint) in file.endpoints ?? [:] {
            guard URL(string: endpoint.url)?.scheme.map({ $0 == "http" || $0 == "https" }) == true else {
                throw ConfigurationError(variable: "ESTEIRA_KINDS_FILE", value: source,
                                         expected: "endpoint \(name): an http(s) URL")
            }
            endpoints[name] = endpoint
        }
        for (name, limit) in file.limiters ?? [:] {
            try Self.checkName(name, of: "limiter", source: source)
            guard limit.rate > 0, limit.rate <= 100_000, (1...1_000_000).contains(limit.burst) else {
                throw ConfigurationError(variable: "ESTEIRA_KINDS_FILE", value: source,
                                         expected: "limiter \(name): rate above 0 and at most 100000 a second, burst 1...1000000")
            }
            limiters[name] = limit
        }
        for (name, policy) in file.breakers ?? [:] {
            try Self.checkName(name, of: "breaker", source: source)
            guard (1...1_000_000).contains(policy.failures), policy.window > 0, policy.coolDown > 0 else {
                throw ConfigurationError(variable: "ESTEIRA_KINDS_FILE", value: source,
                                         expected: "breaker \(name): failures 1...1000000, window and coolDown above 0 seconds")
            }
            breakers[name] = policy
        }
        for (name, entry) in file.kinds ?? [:] {
            try Self.checkName(name, of: "kind", source: source)
            var kind = kinds[name] ?? Kind(name: name, policy: KindPolicy(), handler: entry.handler ?? name, endpoint: nil)
            if let h = entry.handler { kind.handler = h }
            /// A name the entry gives in `field`, which must be defined under `section`.
            func reference(_ value: String?, _ field: String, under section: String, _ isDefined: (String) -> Bool) throws -> String? {
                guard let value else { return nil }
                guard isDefined(value) else {
                    throw ConfigurationError(variable: "ESTEIRA_KINDS_FILE", value: source,
                                             expected: "kind \(name): \(field) \(value) to be defined under \(section)")
                }
                return value
            }
            if let e = try reference(entry.endpoint, "endpoint", under: "endpoints", { endpoints[$0] != nil }) { kind.endpoint = e }
            if let u = entry.unique {
                guard (1...8).contains(u.keys.count), u.keys.allSatisfy(Self.isFieldPath) else {
                    throw ConfigurationError(variable: "ESTEIRA_KINDS_FILE", value: source,
                                             expected: "kind \(name): unique.keys: 1 to 8 payload field paths such as store_id or period.start")
                }
                var states = UniqueRule.activeStates
                if let names = u.states {
                    let parsed = names.compactMap { JobStatus(rawValue: $0) }.filter { UniqueRule.activeStates.contains($0) }
                    guard !names.isEmpty, parsed.count == names.count else {
                        throw ConfigurationError(variable: "ESTEIRA_KINDS_FILE", value: source,
                                                 expected: "kind \(name): unique.states: some of scheduled, queued, running, retrying")
                    }
                    states = parsed
                }
                kind.unique = UniqueRule(keys: u.keys.map(Self.payloadPath), states: states)
            }
            if let l = try reference(entry.limiter, "limiter", under: "limiters", { limiters[$0] != nil }) { kind.limiter = l }
            if let b = try reference(entry.breaker, "breaker", under: "breakers", { breakers[$0] != nil }) { kind.breaker = b }
            if entry.globalConcurrency != nil || entry.concurrencyKey != nil || entry.keyConcurrency != nil {
                kind.limit = try Self.limit(of: entry, kind: name, source: source)
            }
            var p = kind.policy
            if let v = entry.maxAttempts { p.maxAttempts = v }
            if let v = entry.backoffBase { p.backoffBase = v }
            if let v = entry.backoffFactor { p.backoffFactor = v }
            if let v = entry.backoffCap { p.backoffCap = v }
            if let v = entry.timeout { p.timeout = v }
            if let v = entry.priorities { p.priorities = v }
            if let v = entry.priority { p.priority = v }
            if let v = entry.concurrency { p.concurrency = v }
            if let v = entry.heartbeatTimeout { p.heartbeatTimeout = v }
            if let v = entry.retention { p.retention = v }
            do {
                try p.validate()
            } catch {
                throw ConfigurationError(variable: "ESTEIRA_KINDS_FILE", value: source, expected: "kind \(name): \(error)")
            }
            kind.policy = p
            kinds[name] = kind
        }
    }

    /// Refuses a kinds-file name (of a kind, limiter or breaker) that is not a valid name.
    private static func checkName(_ name: String, of what: String, source: String) throws {
        guard isValidName(name) else {
            throw ConfigurationError(variable: "ESTEIRA_KINDS_FILE", value: source,
                                     expected: "\(what) \(name): a name of a-z, 0-9, _ . - starting with a letter")
        }
    }

    /// Whether `path` is a dotted payload field path (`store_id`, `period.start`).
    private static func isFieldPath(_ path: String) -> Bool {
        !path.isEmpty && path.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { !$0.isEmpty }
    }

    /// `path` without a leading `payload.`.
    private static func payloadPath(_ path: String) -> String {
        path.hasPrefix("payload.") ? String(path.dropFirst(8)) : path
    }

    /// A kind's concurrency limits from its kinds-file entry; errors name the kind and field.
    private static func limit(of entry: FileKind, kind name: String, source: String) throws -> ConcurrencyLimit {
        func refuse(_ expected: String) -> ConfigurationError {
            ConfigurationError(variable: "ESTEIRA_KINDS_FILE", value: source, expected: "kind \(name): \(expected)")
        }
        if let g = entry.globalConcurrency, !(1...10_000).contains(g) { throw refuse("globalConcurrency: 1...10000") }
        if let k = entry.concurrencyKey, !isFieldPath(k) {
            throw refuse("concurrencyKey: a payload field path such as payload.store_id")
        }
        if let n = entry.keyConcurrency {
            guard entry.concurrencyKey != nil else { throw refuse("keyConcurrency needs concurrencyKey") }
            guard (1...10_000).contains(n) else { throw refuse("keyConcurrency: 1...10000") }
        }
        return ConcurrencyLimit(global: entry.globalConcurrency, keyPath: entry.concurrencyKey.map(payloadPath),
                                perKey: entry.keyConcurrency ?? 1)
    }
}

extension KindCatalog.RateLimit {
    /// A limit given as `rate/burst` (`2/40`) in `setting`; `fallback` when it is not set.
    /// - Throws: ``ConfigurationError`` naming the setting.
    public static func parse(_ setting: Setting, _ value: String?, default fallback: KindCatalog.RateLimit) throws -> KindCatalog.RateLimit {
        guard let value, !value.isEmpty else { return fallback }
        let parts = value.split(separator: "/").map { Double($0) }
        guard parts.count == 2, let rate = parts[0], let burst = parts[1], rate > 0, burst >= 1, burst <= 100_000 else {
            throw ConfigurationError(variable: setting.name, value: value, expected: "rate/burst, e.g. 2/40")
        }
        return KindCatalog.RateLimit(rate: rate, burst: Int(burst))
    }
}
