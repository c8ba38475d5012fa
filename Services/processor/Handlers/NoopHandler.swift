import EsteiraCore

/// `noop`: does nothing and succeeds. For tests and benchmarks; `{"sleep_ms": n}` in the
/// payload makes the attempt take n milliseconds (a stand-in for real work, at most 10 min).
struct NoopHandler: JobHandler {
    init() {}

    func run(_ job: JobContext) async throws -> JSONValue? {
        if let ms = job.payload["sleep_ms"]?.doubleValue, ms > 0 {
            try await Task.sleep(for: .milliseconds(Int(min(ms, 600_000))))
        }
        return nil
    }
}
