import Foundation

/// One environment variable a process reads: its name and what it does, written once and
/// used both for reading it and for the `--help` text that lists it.
public struct Setting: Sendable, Equatable {
    /// The variable, e.g. `ESTEIRA_PROCESSOR_PREFETCH`.
    public var name: String
    /// What it sets, its range and its default, for a person.
    public var help: String
    /// The command-line flag that overrides it, if there is one (`--prefetch`).
    public var flag: String?

    /// A variable `name`, described by `help`, overridden by `flag` when given.
    public init(_ name: String, _ help: String, flag: String? = nil) {
        self.name = name
        self.help = help
        self.flag = flag
    }

    /// The help of its flag: what it sets, and the variable it overrides.
    public var flagHelp: String { "\(help) (env \(name))" }

    /// The `--help` paragraph listing `settings`, one per line.
    public static func helpText(_ settings: [Setting]) -> String {
        "Environment (a flag, where there is one, overrides its variable):\n"
            + settings.map { s in "  \(s.name)\(s.flag.map { " (\($0))" } ?? ""): \(s.help)" }.joined(separator: "\n")
    }
}

/// Reads settings the one way every Esteira process does: a command-line flag when given,
/// else the environment variable (blank counts as unset), else the default; a value out of
/// range is a ``ConfigurationError`` naming the variable and what it accepts.
extension Setting {
    /// The operator's allow-list for URLs that job creators choose (the http kind's, a
    /// messaging instance's base URL).
    public static let httpAllow = Setting("ESTEIRA_HTTP_ALLOW",
                                          "Comma-separated address ranges (CIDR) and host names that URLs and servers chosen by users (http jobs, messaging instances, email stores' mail servers) may reach although not public (default none: loopback, private, link-local, CGNAT, unique-local and multicast addresses are refused).")
}

public struct SettingsReader: Sendable {
    /// The variables, with the flags given laid over them.
    public private(set) var environment: [String: String]

    /// A reader over `environment`.
    public init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.environment = environment
    }

    /// The same reader with `value` standing for `name` (a flag given on the command line).
    public func overriding(_ name: String, with value: String?) -> SettingsReader {
        guard let value else { return self }
        var copy = self
        copy.environment[name] = value
        return copy
    }

    /// The value of `name`, trimmed; nil when unset or blank.
    public func string(_ name: String, flag: String? = nil) -> String? {
        guard let v = (flag ?? environment[name])?.trimmingCharacters(in: .whitespaces), !v.isEmpty else { return nil }
        return v
    }

    /// An integer in `range`.
    public func integer(_ name: String, flag: Int? = nil, default fallback: Int, range: ClosedRange<Int>) throws -> Int {
        guard let raw = string(name, flag: flag.map(String.init)) else { return fallback }
        guard let v = Int(raw), range.contains(v) else {
            throw ConfigurationError(variable: name, value: raw, expected: "an integer in \(range.lowerBound)...\(range.upperBound)")
        }
        return v
    }

    /// A number in `range` (seconds, most often).
    public func double(_ name: String, flag: Double? = nil, default fallback: Double, range: ClosedRange<Double>) throws -> Double {
        guard let raw = string(name, flag: flag.map { "\($0)" }) else { return fallback }
        guard let v = Double(raw), v.isFinite, range.contains(v) else {
            throw ConfigurationError(variable: name, value: raw, expected: "a number in \(Self.format(range.lowerBound))...\(Self.format(range.upperBound))")
        }
        return v
    }

    /// `true`/`false` (also `1`/`0`, `yes`/`no`); a flag that is set wins.
    public func bool(_ name: String, flag: Bool = false, default fallback: Bool) throws -> Bool {
        if flag { return true }
        guard let raw = string(name)?.lowercased() else { return fallback }
        switch raw {
        case "true", "1", "yes": return true
        case "false", "0", "no": return false
        default: throw ConfigurationError(variable: name, value: raw, expected: "true or false")
        }
    }

    /// A comma-separated list, blanks dropped.
    public func list(_ name: String, flag: String? = nil) -> [String] {
        (string(name, flag: flag) ?? "").split(separator: ",")
            .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    /// One of `choices` (compared in lower case).
    public func choice(_ name: String, flag: String? = nil, default fallback: String, among choices: [String]) throws -> String {
        guard let raw = string(name, flag: flag)?.lowercased() else { return fallback }
        guard choices.contains(raw) else {
            throw ConfigurationError(variable: name, value: raw, expected: "one of \(choices.joined(separator: ", "))")
        }
        return raw
    }

    private static func format(_ v: Double) -> String {
        v == v.rounded() && abs(v) < 1e15 ? String(Int(v)) : String(v)
    }
}
