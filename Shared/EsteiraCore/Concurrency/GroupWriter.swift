import Synchronization

/// Writes what concurrent callers submit in groups, one write at a time: a caller that finds
/// no write under way writes everything gathered so far (its own item and those that came
/// while the last write ran) and goes on while more has gathered; the others wait for the
/// write that carries theirs. Each write is one statement and one commit for the group, so
/// callers that each have a row to record (a message sent) share a commit, and so the disk's
/// flush, instead of queueing for one each.
public final class GroupWriter<Item: Sendable>: Sendable {
    private final class Waiter: Sendable {
        let item: Item
        let done = OneShotSignal()
        let outcome = Mutex<Result<Void, any Error>?>(nil)
        init(_ item: Item) { self.item = item }
    }
    private struct State {
        var pending: [Waiter] = []
        var writing = false
    }
    private let state = Mutex(State())
    private let maxGroup: Int
    private let write: @Sendable ([Item]) async throws -> Void

    /// `write` records a group (at most `maxGroup` items) or throws; every item of a group
    /// that failed gets its error.
    public init(maxGroup: Int = 1000, write: @escaping @Sendable ([Item]) async throws -> Void) {
        self.maxGroup = maxGroup
        self.write = write
    }

    /// Returns once `item` is written (in a group), or throws the group's error.
    public func submit(_ item: Item) async throws {
        let waiter = Waiter(item)
        let leads = state.withLock { s -> Bool in
            s.pending.append(waiter)
            if s.writing { return false }
            s.writing = true
            return true
        }
        if leads {
            while true {
                let group = state.withLock { s -> [Waiter] in
                    let n = min(maxGroup, s.pending.count)
                    let out = Array(s.pending.prefix(n))
                    s.pending.removeFirst(n)
                    if out.isEmpty { s.writing = false }
                    return out
                }
                if group.isEmpty { break }
                let result: Result<Void, any Error>
                do { try await write(group.map(\.item)); result = .success(()) } catch { result = .failure(error) }
                for w in group {
                    w.outcome.withLock { $0 = result }
                    w.done.fire()
                }
            }
        }
        await waiter.done.wait()
        guard let outcome = waiter.outcome.withLock({ $0 }) else { throw CancellationError() }
        try outcome.get()
    }
}
