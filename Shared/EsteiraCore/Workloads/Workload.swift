/// A workload's part of the job system: the kinds it brings, with their policies, and the
/// SQL migrations of its tables. Services add workloads to their ``KindCatalog`` and their
/// migrator; the core names none of them.
public struct Workload: Sendable {
    /// Its name, in logs and errors (`lead-migrations`).
    public var name: String
    /// Its kinds; no two workloads (nor the built-in kinds) may share a name.
    public var kinds: [KindCatalog.Kind]
    /// Its migrations, numbered in the one sequence all migrations share (docs/design.md,
    /// "Adding a workload", says which block each workload takes).
    public var migrations: [Migration]

    /// Rows of its tables that the scheduler's retention deletes once they are old enough.
    public var expiring: [ExpiringRows]

    /// A workload named `name` with `kinds` and `migrations`.
    public init(name: String, kinds: [KindCatalog.Kind], migrations: [Migration] = [], expiring: [ExpiringRows] = []) {
        self.name = name
        self.kinds = kinds
        self.migrations = migrations
        self.expiring = expiring
    }
}

/// Rows of a workload's table that go when `column` (a timestamp, indexed) is older than
/// `seconds`: a log kept for a while (a feed's changes), not user data.
public struct ExpiringRows: Sendable {
    public var table: String
    public var column: String
    public var seconds: Double

    public init(table: String, column: String, seconds: Double) {
        self.table = table
        self.column = column
        self.seconds = seconds
    }
}
