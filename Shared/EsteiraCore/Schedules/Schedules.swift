import Foundation
import Logging
import Postgres

/// A cron schedule: every tick of `cron` (in `timeZone`) enqueues one job of `kind`.
public struct Schedule: Sendable, Equatable, Codable {
    public var id: UUID
    public var name: String
    public var cron: String
    public var timeZone: String
    public var kind: String
    public var payload: JSONValue
    public var enabled: Bool
    public var ownerId: UUID?
    /// The next tick to enqueue; nil while disabled.
    public var nextRunAt: Date?
    public var lastRunAt: Date?
    public var lastJobId: UUID?
    public var createdAt: Date
    public var updatedAt: Date

    static let columns = """
        id, name, cron, time_zone, kind, payload::text AS payload, enabled, owner_id, next_run_at, last_run_at, \
        last_job_id, created_at, updated_at
        """

    init(row: PostgresRow) throws {
        id = try row.decode(UUID.self, at: 0)
        name = try row.decode(String.self, at: 1)
        cron = try row.decode(String.self, at: 2)
        timeZone = try row.decode(String.self, at: 3)
        kind = try row.decode(String.self, at: 4)
        payload = JSONValue.parse(try row.decode(String.self, at: 5)) ?? .null
        enabled = try row.decode(Bool.self, at: 6)
        ownerId = try row.decode(UUID?.self, at: 7)
        nextRunAt = try row.decode(Date?.self, at: 8)
        lastRunAt = try row.decode(Date?.self, at: 9)
        lastJobId = try row.decode(UUID?.self, at: 10)
        createdAt = try row.decode(Date.self, at: 11)
        updatedAt = try row.decode(Date.self, at: 12)
    }
}

/// A schedule that cannot be stored: `field` names the input at fault.
public struct ScheduleError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Reason: Sendable, Equatable { case invalid, conflict }
    public var field: String
    public var message: String
    public var reason: Reason
    public var description: String { "\(field): \(message)" }

    public init(field: String, message: String, reason: Reason = .invalid) {
        self.field = field
        self.message = message
        self.reason = reason
    }
}

/// The fields of a new schedule, or the changes to one (nil: unchanged).
public struct ScheduleInput: Sendable, Equatable {
    public var name: String?
    public var cron: String?
    public var timeZone: String?
    public var kind: String?
    /// JSON text.
    public var payload: String?
    public var enabled: Bool?

    public init(name: String? = nil, cron: String? = nil, timeZone: String? = nil, kind: String? = nil,
                payload: String? = nil, enabled: Bool? = nil) {
        self.name = name
        self.cron = cron
        self.timeZone = timeZone
        self.kind = kind
        self.payload = payload
        self.enabled = enabled
    }
}

/// Schedules in PostgreSQL: what the api manages and what the leading scheduler ticks.
public struct ScheduleStore: Sendable {
    public let catalog: KindCatalog

    public init(catalog: KindCatalog) { self.catalog = catalog }

    /// The parsed expression and zone, or an error naming the field.
    public func check(cron: String, timeZone: String, kind: String) throws(ScheduleError) -> (CronExpression, TimeZone) {
        let expression: CronExpression
        do {
            expression = try CronExpression(cron)
        } catch {
            throw ScheduleError(field: "cron", message: "invalid cron expression: \(error.description)")
        }
        guard let zone = TimeZone(identifier: timeZone) else {
            throw ScheduleError(field: "time_zone", message: "unknown time zone '\(timeZone)' (an IANA name such as Europe/Lisbon)")
        }
        // A schedule enqueues as its owner would: internal kinds are their workload's alone.
        guard let known = catalog[kind], !known.isInternal else {
            throw ScheduleError(field: "kind", message: (catalog[kind] == nil ? "unknown kind '\(kind)'" : "kind '\(kind)' cannot be scheduled")
                                    + "; kinds: \(catalog.enqueueableNames.joined(separator: ", "))")
        }
        guard expression.next(after: Date(), in: zone) != nil else {
            throw ScheduleError(field: "cron", message: "'\(cron)' never fires")
        }
        return (expression, zone)
    }

    /// Stores a new schedule, its first tick computed from now.
    public func create(_ input: ScheduleInput, ownerID: UUID?, on connection: PostgresConnection, now: Date = Date()) throws -> Schedule {
        guard let name = input.name else { throw ScheduleError(field: "name", message: "is required") }
        guard let cron = input.cron else { throw ScheduleError(field: "cron", message: "is required") }
        guard let kind = input.kind else { throw ScheduleError(field: "kind", message: "is required") }
        let timeZone = input.timeZone ?? "UTC"
        let (expression, zone) = try check(cron: cron, timeZone: timeZone, kind: kind)
        let enabled = input.enabled ?? true
        let next = enabled ? expression.next(after: now, in: zone) : nil
        do {
            let rows = try connection.query("""
                INSERT INTO schedules (id, name, cron, time_zone, kind, payload, enabled, owner_id, next_run_at)
                VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8, $9)
                RETURNING \(Schedule.columns)
                """, [UUID(), name, cron, timeZone, kind, input.payload ?? "{}", enabled, ownerID, next])
            return try Schedule(row: rows[0])
        } catch let error as PostgresError where error.sqlState == "23505" {
            throw ScheduleError(field: "name", message: "a schedule named '\(name)' exists", reason: .conflict)
        }
    }

    public func get(_ id: UUID, scope: AccessScope, on connection: PostgresConnection) throws -> Schedule? {
        var sql = "SELECT \(Schedule.columns) FROM schedules WHERE id = $1"
        var parameters: [PostgresEncodable?] = [id]
        if let owner = scope.ownerID { sql += " AND owner_id = $2"; parameters.append(owner) }
        return try connection.query(sql, parameters).first.map(Schedule.init(row:))
    }

    /// Schedules by name (then id), optionally of one kind.
    public func list(kind: String?, limit: Int, scope: AccessScope, on connection: PostgresConnection) throws -> [Schedule] {
        try connection.query("""
            SELECT \(Schedule.columns) FROM schedules
            WHERE ($1::text IS NULL OR kind = $1) AND ($2::uuid IS NULL OR owner_id = $2)
            ORDER BY name, id LIMIT $3
            """, [kind, scope.ownerID, limit]).map(Schedule.init(row:))
    }

    /// Applies `changes`; a new expression, zone or enabling computes the next tick again
    /// from now (missed ticks are not made up). nil: no such schedule in scope.
    public func update(_ id: UUID, _ changes: ScheduleInput, scope: AccessScope, on connection: PostgresConnection,
                       now: Date = Date()) throws -> Schedule? {
        var sql = "SELECT \(Schedule.columns) FROM schedules WHERE id = $1"
        var parameters: [PostgresEncodable?] = [id]
        if let owner = scope.ownerID { sql += " AND owner_id = $2"; parameters.append(owner) }
        guard let current = try connection.query(sql + " FOR UPDATE", parameters).first.map(Schedule.init(row:)) else { return nil }
        let cron = changes.cron ?? current.cron, timeZone = changes.timeZone ?? current.timeZone, kind = changes.kind ?? current.kind
        let (expression, zone) = try check(cron: cron, timeZone: timeZone, kind: kind)
        let enabled = changes.enabled ?? current.enabled
        let timingChanged = cron != current.cron || timeZone != current.timeZone || enabled != current.enabled
        let next: Date? = !enabled ? nil : (timingChanged || current.nextRunAt == nil) ? expression.next(after: now, in: zone) : current.nextRunAt
        do {
            let rows = try connection.query("""
                UPDATE schedules SET name = $2, cron = $3, time_zone = $4, kind = $5, payload = coalesce($6::jsonb, payload),
                       enabled = $7, next_run_at = $8, updated_at = now()
                WHERE id = $1
                RETURNING \(Schedule.columns)
                """, [id, changes.name ?? current.name, cron, timeZone, kind, changes.payload, enabled, next])
            return try Schedule(row: rows[0])
        } catch let error as PostgresError where error.sqlState == "23505" {
            throw ScheduleError(field: "name", message: "a schedule named '\(changes.name ?? "")' exists", reason: .conflict)
        }
    }

    /// Deletes a schedule (jobs it enqueued stay). False: no such schedule in scope.
    public func delete(_ id: UUID, scope: AccessScope, on connection: PostgresConnection) throws -> Bool {
        let rows = try connection.query("""
            DELETE FROM schedules WHERE id = $1 AND ($2::uuid IS NULL OR owner_id = $2) RETURNING id
            """, [id, scope.ownerID])
        return !rows.isEmpty
    }

    /// The idempotency key of a schedule's tick: the same tick is the same job, whichever
    /// scheduler enqueues it and however often.
    public static func tickKey(_ id: UUID, _ tick: Date) -> String {
        "schedule:\(id.uuidString.lowercased()):\(Int64((tick.timeIntervalSince1970 * 1000).rounded()))"
    }

    /// The latest tick at or before `now`, `first` being a due tick: searched backwards from
    /// now in doubling windows, so a long outage of an every-second schedule costs a few steps.
    public static func latestTick(_ expression: CronExpression, zone: TimeZone, first: Date, now: Date) -> Date {
        var start = first, delta = 1.0
        while now.addingTimeInterval(-delta) > first {
            if let c = expression.next(after: now.addingTimeInterval(-delta), in: zone), c <= now { start = c; break }
            delta *= 2
        }
        var tick = start
        while let n = expression.next(after: tick, in: zone), n <= now { tick = n }
        return tick
    }

    /// The due schedules, locked: `$1` now, `$2` the most per pass.
    public static let dueSQL = """
        SELECT \(Schedule.columns) FROM schedules
        WHERE enabled AND next_run_at <= $1
        ORDER BY next_run_at LIMIT $2
        FOR UPDATE SKIP LOCKED
        """

    /// One pass of the leader: every enabled schedule whose tick is due enqueues one job for
    /// its latest due tick (ticks missed while no scheduler ran collapse into that one) and
    /// moves to its next tick after now, all in the caller's transaction. Returns the
    /// enqueue outcomes, to publish after commit.
    public func tick(store: JobStore, now: Date = Date(), limit: Int = 500, on connection: PostgresConnection,
                     logger: Logger) throws -> [EnqueueOutcome] {
        let due = try connection.query(ScheduleStore.dueSQL, [now, limit]).map(Schedule.init(row:))
        var outcomes: [EnqueueOutcome] = []
        for schedule in due {
            guard let expression = try? CronExpression(schedule.cron), let zone = TimeZone(identifier: schedule.timeZone),
                  let first = schedule.nextRunAt else {
                try connection.execute("UPDATE schedules SET enabled = false, next_run_at = NULL, updated_at = now() WHERE id = $1", [schedule.id])
                logger.error("schedule disabled: its expression or time zone no longer parses",
                             metadata: ["schedule": "\(schedule.id)", "cron": "\(schedule.cron)", "time_zone": "\(schedule.timeZone)"])
                continue
            }
            // The latest tick at or before now: one job for everything missed.
            let tick = ScheduleStore.latestTick(expression, zone: zone, first: first, now: now)
            let next = expression.next(after: now, in: zone)
            guard catalog[schedule.kind] != nil else {
                try connection.execute("UPDATE schedules SET next_run_at = $2, updated_at = now() WHERE id = $1", [schedule.id, next])
                logger.error("schedule skipped a tick: its kind is not in this scheduler's kinds file",
                             metadata: ["schedule": "\(schedule.id)", "kind": "\(schedule.kind)"])
                continue
            }
            let job = NewJob(kind: schedule.kind, payload: schedule.payload.jsonText,
                             idempotencyKey: ScheduleStore.tickKey(schedule.id, tick), ownerID: schedule.ownerId)
            let outcome = try store.insert([job], on: connection)[0]
            try connection.execute("""
                UPDATE schedules SET last_run_at = $2, last_job_id = $3, next_run_at = $4, updated_at = now() WHERE id = $1
                """, [schedule.id, tick, outcome.id, next])
            outcomes.append(outcome)
            if tick != first {
                logger.info("schedule missed ticks; enqueued the latest once",
                            metadata: ["schedule": "\(schedule.name)", "first_missed": "\(first)", "tick": "\(tick)"])
            }
        }
        return outcomes
    }
}
