import Foundation

/// A value behind a lock, for state the server's request handlers and the test share.
public final class Locked<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value

    public init(_ value: Value) {
        self.value = value
    }

    public func withLock<T>(_ body: (inout Value) throws -> T) rethrows -> T {
        try lock.withLock { try body(&value) }
    }
}

/// A value that arrives once, awaited by one task: the bound port, or why the server failed.
final class OneShot<Value: Sendable>: @unchecked Sendable {
    private let state = Locked<(result: Result<Value, Error>?, waiter: CheckedContinuation<Value, Error>?)>((nil, nil))

    func complete(_ result: Result<Value, Error>) {
        let waiter: CheckedContinuation<Value, Error>? = state.withLock { state in
            guard state.result == nil else { return nil }
            state.result = result
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(with: result)
    }

    var value: Value {
        get async throws {
            try await withCheckedThrowingContinuation { continuation in
                let ready: Result<Value, Error>? = state.withLock {
                    if let result = $0.result { return result }
                    $0.waiter = continuation
                    return nil
                }
                if let ready { continuation.resume(with: ready) }
            }
        }
    }
}
