import EsteiraCore

/// `noop`: does nothing and succeeds. For tests, benchmarks and trying things out:
/// `{"sleep_ms": n}` in the payload makes the attempt take n milliseconds (a stand-in for
/// real work, at most 10 min), and `{"steps": k}` (1-100) cuts that time into k steps and
/// reports progress after each.
struct NoopHandler: JobHandler {
    func run(_ job: JobContext) async throws -> JSONValue? {
        let ms = min(max(job.payload["sleep_ms"]?.doubleValue ?? 0, 0), 600_000)
        let steps = Int(min(max(job.payload["steps"]?.doubleValue ?? 0, 0), 100))
        guard steps > 0 else {
            if ms > 0 { try await Task.sleep(for: .milliseconds(Int(ms))) }
            return nil
        }
        for step in 1...steps {
            if ms > 0 { try await Task.sleep(for: .milliseconds(Int(ms) / steps)) }
            try await job.report(JobProgress(percent: Double(step) * 100 / Double(steps), done: step, total: steps,
                                             message: "step \(step) of \(steps)"))
        }
        return .object(["steps": .number(Double(steps))])
    }
}
