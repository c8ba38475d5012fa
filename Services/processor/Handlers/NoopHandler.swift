import EsteiraCore

/// `noop`: does nothing and succeeds. For tests, benchmarks and trying things out:
/// `{"sleep_ms": n}` in the payload makes the attempt take n milliseconds (a stand-in for
/// real work, at most 10 min), and `{"steps": k}` (1-100) cuts that time into k steps and
/// reports progress after each. `{"fan_out": n}` (1-1000) first enqueues n more noop jobs
/// (with `{"sleep_ms"}` of its own), into its batch when it has one. `{"limiter": name,
/// "tokens": k}` (1-1000) takes k tokens of that rate limiter first, as a handler calling a
/// limited service k times would. `{"fail": "permanent"}` makes each attempt fail for good (the
/// job goes to the dead letters), `{"fail": "transient"}` makes it fail and be retried: how a
/// dead letter or a retry looks, without a failing service.
struct NoopHandler: JobHandler {
    func run(_ job: JobContext) async throws -> JSONValue? {
        switch job.payload["fail"]?.stringValue {
        case "permanent": throw JobError.permanent("noop asked to fail (payload.fail = permanent)")
        case "transient": throw JobError.transient("noop asked to fail (payload.fail = transient)")
        default: break
        }
        if let limiter = job.payload["limiter"]?.stringValue {
            let tokens = Int(min(max(job.payload["tokens"]?.doubleValue ?? 1, 1), 1000))
            for _ in 0..<tokens { try await job.takeToken(from: limiter) }
        }
        let fanOut = Int(min(max(job.payload["fan_out"]?.doubleValue ?? 0, 0), 1000))
        if fanOut > 0 {
            let payload = JSONValue.object(job.payload["sleep_ms"].map { ["sleep_ms": $0] } ?? [:]).jsonText
            // The same jobs on a second attempt: idempotency keys made from this job's id.
            try await job.enqueue((0..<fanOut).map {
                NewJob(kind: job.kind, payload: payload, idempotencyKey: "fan-out-\(job.id.uuidString.lowercased())-\($0)")
            })
        }
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
