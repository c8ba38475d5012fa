import Foundation
import Postgres

/// A write a handler asks to be made in the transaction that records its attempt's outcome
/// (``JobContext/writeWithOutcome(_:)``): both commit or neither, and the writes of a whole
/// group of outcomes are made with one call per type, so a handler's record of what it did
/// (a message sent, with the provider's id) costs no transaction of its own. The writes are
/// made whatever the outcome (completed, retrying, dead), and not for an attempt whose
/// outcome is not recorded (cancelled, or no longer this processor's); the outcome statement
/// leaves a job alone when its attempt is no longer the running one, so a write must be
/// harmless when made again (a redelivered attempt's) or late.
public protocol OutcomeWrite: Sendable {
    /// Writes `all` (from the outcomes of one group) on `connection`, in the outcomes'
    /// transaction.
    static func write(_ all: [Self], on connection: PostgresConnection) throws
}

/// The writes one attempt's handler asked for.
final class OutcomeWrites: @unchecked Sendable {
    private let lock = NSLock()
    private var writes: [any OutcomeWrite] = []

    func append(_ write: any OutcomeWrite) { lock.withLock { writes.append(write) } }
    var all: [any OutcomeWrite] { lock.withLock { writes } }

    /// Makes `writes` on `connection`, grouped by type (one ``OutcomeWrite/write(_:on:)``
    /// each, in the order the types first appear).
    static func make(_ writes: [any OutcomeWrite], on connection: PostgresConnection) throws {
        var order: [ObjectIdentifier] = []
        var groups: [ObjectIdentifier: [any OutcomeWrite]] = [:]
        for write in writes {
            let type = ObjectIdentifier(Swift.type(of: write))
            if groups[type] == nil { order.append(type) }
            groups[type, default: []].append(write)
        }
        for type in order {
            let group = groups[type]!
            try make(group[0], group, on: connection)
        }
    }

    private static func make<W: OutcomeWrite>(_ first: W, _ group: [any OutcomeWrite], on connection: PostgresConnection) throws {
        try W.write(group.map { $0 as! W }, on: connection)
    }
}
