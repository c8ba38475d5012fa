import Foundation
import Postgres

/// Circuit breakers per external service, shared by every processor instance: a row of
/// `circuit_breakers` each, changed only inside transactions that lock it. Closed, a breaker
/// counts the failures of the jobs that need its service; `failures` of them within `window`
/// seconds open it. Open, those jobs are held back (``FlowGate``) until the cool-down ends,
/// spending no attempt; then it is half-open and one job (the probe) runs: its success closes
/// the breaker, its failure opens it again. Every change is a row of `circuit_breaker_events`.
public enum CircuitBreakers {
    public enum State: String, Sendable, Codable {
        case closed, open
        case halfOpen = "half_open"

        /// For the `esteira_breaker_state` gauge: 0 closed, 1 half-open, 2 open.
        public var gaugeValue: Int { switch self { case .closed: 0; case .halfOpen: 1; case .open: 2 } }
    }

    /// A change of state, for events and metrics.
    public struct Transition: Sendable, Equatable {
        public var breaker: String
        public var state: State

        public init(breaker: String, state: State) {
            self.breaker = breaker
            self.state = state
        }
    }

    /// Which failures count against a breaker: the service did not answer, or answered that
    /// it is failing. A permanent failure (a 4xx) means the service works.
    public static func counts(_ errorClass: ErrorClass?) -> Bool {
        errorClass == .transient || errorClass == .timeout
    }

    static let upsertSQL = """
        INSERT INTO circuit_breakers (name) VALUES ($1) ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name
        RETURNING state, failures, extract(epoch FROM window_started_at)::float8, extract(epoch FROM opened_at)::float8,
                  probe_job, extract(epoch FROM probe_started_at)::float8, extract(epoch FROM now())::float8
        """

    /// A breaker read and locked by a claim: says which jobs may run.
    struct Gate {
        let name: String
        let policy: KindCatalog.BreakerPolicy
        let now: Double
        private(set) var state: State
        let openedAt: Double?
        private var probe: UUID?
        private var probeStartedAt: Double?
        private var changed = false
        /// Whether this claim moved it from open to half-open.
        private var opened = false

        static func read(_ name: String, policy: KindCatalog.BreakerPolicy, on connection: PostgresConnection) throws -> Gate {
            let r = try connection.query(upsertSQL, [name])[0]
            return Gate(name: name, policy: policy, now: try r.decode(Double.self, at: 6),
                        state: State(rawValue: try r.decode(String.self, at: 0)) ?? .closed, openedAt: try r.decode(Double?.self, at: 3),
                        probe: try r.decode(UUID?.self, at: 4), probeStartedAt: try r.decode(Double?.self, at: 5))
        }

        /// nil when job `id` may run now; else the seconds it waits. A probe that has not
        /// ended after `probeTimeout` seconds (its processor died, or it waits elsewhere) is
        /// replaced.
        mutating func admit(_ id: UUID, probeTimeout: Double) -> Double? {
            switch state {
            case .closed:
                return nil
            case .open:
                let retryAt = (openedAt ?? now) + policy.coolDown
                if now < retryAt { return retryAt - now }
                state = .halfOpen
                opened = true
            case .halfOpen:
                if probe == id { return nil }
                if let started = probeStartedAt, now - started < probeTimeout { return max(1, min(policy.coolDown, 5)) }
            }
            probe = id
            probeStartedAt = now
            changed = true
            return nil
        }

        /// Writes a new probe (and the move to half-open, with its event); returns the move.
        func save(on connection: PostgresConnection) throws -> Transition? {
            guard changed else { return nil }
            try connection.execute("""
                UPDATE circuit_breakers SET state = $2, probe_job = $3, probe_started_at = to_timestamp($4), updated_at = now()
                WHERE name = $1
                """, [name, state.rawValue, probe, probeStartedAt])
            // A new probe in place of one that never ended is not a change of state.
            guard opened else { return nil }
            try CircuitBreakers.event(name, .halfOpen, detail: ["probe_job": .string(probe?.uuidString.lowercased() ?? "")], on: connection)
            return Transition(breaker: name, state: .halfOpen)
        }
    }

    /// Whether job `job` may call the service of breaker `name` now (nil), else the seconds
    /// until it may: for a handler that guards each of several services itself. A closed
    /// breaker is only read; an open one past its cool-down lets this job be the probe.
    public static func admit(_ name: String, policy: KindCatalog.BreakerPolicy, job: UUID, probeTimeout: Double,
                             on connection: PostgresConnection) throws -> Double? {
        let state = try connection.query("SELECT state FROM circuit_breakers WHERE name = $1", [name]).first?.decode(String.self, at: 0)
        if state == nil || state == State.closed.rawValue { return nil }
        return try connection.transaction { c in
            var gate = try Gate.read(name, policy: policy, on: c)
            let wait = gate.admit(job, probeTimeout: probeTimeout)
            _ = try gate.save(on: c)
            return wait
        }
    }

    /// Records how a job that needs breaker `name` ended: `failed` (a failure that counts)
    /// with `error`, or not. Returns the change of state, if any.
    public static func record(_ name: String, policy: KindCatalog.BreakerPolicy, failed: Bool, error: String?,
                              on connection: PostgresConnection) throws -> Transition? {
        if !failed {
            // The common case, a success while closed with nothing counted, changes nothing:
            // read without locking or writing the row every job shares.
            let row = try connection.query("SELECT state = 'closed' AND failures = 0 FROM circuit_breakers WHERE name = $1", [name]).first
            if try row?.decode(Bool.self, at: 0) ?? true { return nil }
        }
        return try connection.transaction { c in
            let r = try c.query(upsertSQL, [name])[0]
            let state = State(rawValue: try r.decode(String.self, at: 0)) ?? .closed
            var failures = try r.decode(Int.self, at: 1)
            let windowStart = try r.decode(Double?.self, at: 2), now = try r.decode(Double.self, at: 6)
            let detail: [String: JSONValue] = error.map { ["error": .string(String($0.prefix(500)))] } ?? [:]
            guard failed else {
                guard state != .closed || failures > 0 else { return nil }
                try c.execute("""
                    UPDATE circuit_breakers SET state = 'closed', failures = 0, window_started_at = NULL, opened_at = NULL,
                           probe_job = NULL, probe_started_at = NULL, updated_at = now() WHERE name = $1
                    """, [name])
                guard state != .closed else { return nil }
                try event(name, .closed, detail: [:], on: c)
                return Transition(breaker: name, state: .closed)
            }
            switch state {
            case .open:
                try c.execute("UPDATE circuit_breakers SET last_error = $2, updated_at = now() WHERE name = $1", [name, error])
                return nil
            case .halfOpen:
                try open(name, failures: failures, error: error, on: c)
                try event(name, .open, detail: detail.merging(["probe_failed": .bool(true)]) { a, _ in a }, on: c)
                return Transition(breaker: name, state: .open)
            case .closed:
                let fresh = windowStart.map { now - $0 <= policy.window } ?? false
                failures = fresh ? failures + 1 : 1
                if failures >= policy.failures {
                    try open(name, failures: failures, error: error, on: c)
                    try event(name, .open, detail: detail.merging(["failures": .number(Double(failures))]) { a, _ in a }, on: c)
                    return Transition(breaker: name, state: .open)
                }
                try c.execute("""
                    UPDATE circuit_breakers SET failures = $2, last_error = $3, updated_at = now(),
                           window_started_at = CASE WHEN $4 THEN window_started_at ELSE now() END
                    WHERE name = $1
                    """, [name, failures, error, fresh])
                return nil
            }
        }
    }

    private static func open(_ name: String, failures: Int, error: String?, on connection: PostgresConnection) throws {
        try connection.execute("""
            UPDATE circuit_breakers SET state = 'open', failures = $2, last_error = $3, opened_at = now(),
                   probe_job = NULL, probe_started_at = NULL, updated_at = now()
            WHERE name = $1
            """, [name, failures, error])
    }

    static func event(_ name: String, _ state: State, detail: [String: JSONValue], on connection: PostgresConnection) throws {
        try connection.execute("INSERT INTO circuit_breaker_events (name, state, detail) VALUES ($1, $2, $3::jsonb)",
                               [name, state.rawValue, JSONValue.object(detail).jsonText])
    }

    /// Closes breaker `name` at once (an admin knows the service is back).
    public static func reset(_ name: String, by principal: String, on connection: PostgresConnection) throws {
        try connection.transaction { c in
            _ = try c.query(upsertSQL, [name])
            try c.execute("""
                UPDATE circuit_breakers SET state = 'closed', failures = 0, window_started_at = NULL, opened_at = NULL,
                       probe_job = NULL, probe_started_at = NULL, updated_at = now() WHERE name = $1
                """, [name])
            try event(name, .closed, detail: ["reset_by": .string(principal)], on: c)
        }
    }

    /// A breaker as the api shows it.
    public struct View: Sendable, Encodable {
        public var name: String
        public var state: State
        public var failures: Int
        public var threshold: Int
        public var windowSeconds: Double
        public var coolDownSeconds: Double
        public var openedAt: Date?
        /// While open: when a probe may run.
        public var retryAt: Date?
        public var lastError: String?
        public var events: [EventView]?

        enum CodingKeys: String, CodingKey {
            case name, state, failures, threshold, events
            case windowSeconds = "window_seconds", coolDownSeconds = "cool_down_seconds", openedAt = "opened_at"
            case retryAt = "retry_at", lastError = "last_error"
        }
    }

    /// One change of a breaker's state.
    public struct EventView: Sendable, Encodable {
        public var state: State
        public var at: Date
        public var detail: JSONValue?
    }

    /// The breakers of `catalog` (only `only`, with its last 50 events, when given).
    public static func views(catalog: KindCatalog, only: String? = nil, on connection: PostgresConnection) throws -> [View] {
        var rows: [String: PostgresRow] = [:]
        let all = try connection.query("SELECT name, state, failures, opened_at, last_error FROM circuit_breakers")
        for row in all { rows[try row.decode(String.self, at: 0)] = row }
        return try catalog.breakers.keys.sorted().filter { only == nil || $0 == only }.map { name in
            let policy = catalog.breakers[name]!
            var view = View(name: name, state: .closed, failures: 0, threshold: policy.failures, windowSeconds: policy.window,
                            coolDownSeconds: policy.coolDown)
            if let row = rows[name] {
                view.state = State(rawValue: try row.decode(String.self, at: 1)) ?? .closed
                view.failures = try row.decode(Int.self, at: 2)
                view.openedAt = try row.decode(Date?.self, at: 3)
                view.lastError = try row.decode(String?.self, at: 4)
                if view.state == .open, let opened = view.openedAt { view.retryAt = opened.addingTimeInterval(policy.coolDown) }
            }
            if only != nil {
                view.events = try connection.query("""
                    SELECT state, at, detail::text FROM circuit_breaker_events WHERE name = $1 ORDER BY id DESC LIMIT 50
                    """, [name]).map { r in
                    EventView(state: State(rawValue: try r.decode(String.self, at: 0)) ?? .closed, at: try r.decode(Date.self, at: 1),
                              detail: try r.decode(String?.self, at: 2).flatMap(JSONValue.parse))
                }.reversed()
            }
            return view
        }
    }
}
