import EsteiraCore
import EsteiraService
import Foundation
import Hummingbird

extension Dashboard {
    /// `/ui/jobs` (filter, search, cursor pages) and `/ui/jobs/{id}` (payload, attempts,
    /// events, progress, result; cancel and retry).
    func addJobs() {
        routes.page("/jobs") { request, context in
            let q = QueryInput(pageQuery: request)
            var filter = try JobFilter.read(q, catalog: catalog)
            let search = try q.string("q", maxLength: 300)
            if let search { filter.payloadEquals = try Self.payloadMatch(search) }
            let scope = context.scope, f = filter
            let page = try await pool.withConnection { try JobQueries.list(f, scope: scope, on: $0) }
            let form: HTML = """
                <form method="get" action="/ui/jobs" class="filters" role="search">
                \(HTML.select("kind", label: "Kind", options: catalog.names.map { ($0, $0) }, selected: filter.kind, any: "any kind"))
                \(HTML.select("status", label: "Status", options: JobStatus.allCases.map { ($0.rawValue, $0.rawValue) }, selected: try q.string("status"), any: "any status"))
                \(HTML.input("created_after", label: "Created from (UTC)", value: try q.string("created_after", maxLength: 40), type: "datetime-local"))
                \(HTML.input("created_before", label: "Created before (UTC)", value: try q.string("created_before", maxLength: 40), type: "datetime-local"))
                \(HTML.input("q", label: "Payload", value: search, placeholder: "payload.customer_id=42"))
                <button type="submit">Filter</button> <a href="/ui/jobs">Clear</a></form>
                """
            let rows: [[HTML]] = page.jobs.map { job in
                ["<a href=\"/ui/jobs/\(job.id)\" class=\"mono\">\(job.id.shortText)</a>",
                 "\(job.kind)", HTML.badge(job.status.rawValue), "\(job.attempts)/\(job.maxAttempts)",
                 HTML.time(job.createdAt), Self.progressBar(job.progress), "<span class=\"hide-narrow\">\(job.lastError.map { String($0.prefix(120)) })</span>"]
            }
            var query: [String: String] = [:]
            for name in ["kind", "status", "created_after", "created_before", "q"] { query[name] = try q.string(name, maxLength: 300) }
            let note: HTML = search == nil ? .empty
                : .note("A payload search looks at \(HTML.number(filter.searchWindow)) jobs of the other filters per page, newest first: “Older” goes on where it stopped.")
            let body: HTML = """
                \(form)\(note)
                <div id="jobs" data-region>\(HTML.table(["Job", "Kind", "Status", "Attempts", "Created", "Progress", "Last error"], rows,
                                                        empty: "No jobs match.", id: "jobs-table"))
                \(HTML.nextPage(page.next?.token, query: query, path: "/ui/jobs"))</div>
                """
            let live = filter.kind.map { "kind=\($0)" } ?? ""
            return render(DashboardPage(title: "Jobs", body: body, live: filter.cursor == nil ? live : nil), request, context)
        }

        routes.page("/jobs/{id}") { request, context in
            let id = try context.jobID(), scope = context.scope
            let found = try await pool.withConnection { c -> (JobRecord, [JobEvent])? in
                guard let job = try JobQueries.job(id, scope: scope, on: c) else { return nil }
                return (job, try JobQueries.events(of: id, on: c))
            }
            guard let (job, events) = found else { throw Problem.jobNotFound(id) }
            let attempts = AttemptView.from(events).map { a -> [HTML] in
                ["\(a.attempt)", HTML.time(a.startedAt), HTML.time(a.endedAt), "\(a.outcome ?? "running")",
                 "\(a.errorClass ?? "")", "<span class=\"mono\">\(a.error)</span>"]
            }
            let timeline: [HTML] = events.map { e in
                "<li>\(HTML.time(e.at)) \(HTML.badge(e.status)) attempt \(e.attempt)\(e.detail.map { " <code>\(String($0.jsonText.prefix(300)))</code>" as HTML })</li>"
            }
            var actions: [HTML] = []
            if JobStatus.cancellable.contains(job.status) {
                actions.append(.form("/ui/jobs/\(job.id)/cancel", context: context, button: "Cancel job", confirm: "Cancel this job?", buttonStyle: "danger"))
            }
            if job.status == .dead {
                actions.append(.form("/ui/jobs/\(job.id)/retry", context: context, button: "Retry", confirm: "Run this job again?"))
            }
            let details: HTML = """
                <dl class="kv">
                <dt>Id</dt><dd class="mono">\(job.id)</dd><dt>Kind</dt><dd>\(job.kind)</dd>
                <dt>Status</dt><dd id="job-status">\(HTML.badge(job.status.rawValue))</dd>
                <dt>Attempts</dt><dd>\(job.attempts) of \(job.maxAttempts)</dd><dt>Priority</dt><dd>\(job.priority)</dd>
                <dt>Created</dt><dd>\(HTML.time(job.createdAt))</dd><dt>Run after</dt><dd>\(HTML.time(job.runAfter))</dd>
                <dt>Started</dt><dd>\(HTML.time(job.startedAt))</dd><dt>Finished</dt><dd>\(HTML.time(job.finishedAt))</dd>
                \(job.idempotencyKey.map { "<dt>Idempotency key</dt><dd class=\"mono\">\($0)</dd>" as HTML })
                \(job.batchID.map { "<dt>Batch</dt><dd class=\"mono\">\($0)</dd>" as HTML })
                \(job.lastError.map { "<dt>Last error</dt><dd class=\"mono\">\($0) (\(job.lastErrorClass ?? "-"))</dd>" as HTML })
                <dt>Progress</dt><dd>\(Self.progressBar(job.progress))</dd>
                </dl>
                """
            let body: HTML = """
                <div id="job" data-region>
                <div class="actions">\(actions)</div>
                <div class="card">\(details)</div>
                \(HTML.json(job.payload, summary: "Payload"))
                \(HTML.json(job.progress, summary: "Progress"))
                \(HTML.json(job.result, summary: "Result"))
                <h2>Attempts</h2>\(HTML.table(["#", "Started", "Ended", "Outcome", "Error class", "Error"], attempts, empty: "No attempt yet."))
                <h2>Events</h2><ol class="timeline" id="events">\(timeline)</ol>
                </div>
                """
            return render(DashboardPage(title: "Job \(job.kind)", body: body, live: "job_id=\(job.id.uuidString.lowercased())"), request, context)
        }

        routes.action("/jobs/{id}/cancel") { request, context in
            let id = try context.jobID()
            switch try await enqueuer.cancel(id, scope: context.scope, by: context.principal!.name) {
            case .cancelled: return DashboardRoutes.redirect("/ui/jobs/\(id.uuidString.lowercased())", notice: "Cancelled.")
            case .notFound: throw Problem.jobNotFound(id)
            case .notCancellable(let status): throw Problem.notCancellable(status)
            }
        }

        routes.action("/jobs/{id}/retry") { request, context in
            let id = try context.jobID()
            let result = try await enqueuer.requeue(DeadLetterSelection(jobIDs: [id], limit: 1), scope: context.scope, by: context.principal!.id)
            guard !result.jobs.isEmpty else {
                throw Problem(.conflict, detail: "job \(id.uuidString.lowercased()) has no dead letter to requeue (not dead, already requeued, or not yours)", field: "id")
            }
            return DashboardRoutes.redirect("/ui/jobs/\(id.uuidString.lowercased())", notice: "Requeued: it runs again.")
        }
    }

    /// `payload.a.b=value`: the path (1 to 5 names of letters, digits, `_` and `-`) and the
    /// value (compared as text), or a 400 naming `q`.
    static func payloadMatch(_ text: String) throws -> PayloadMatch {
        let parts = text.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
        let path = parts[0].trimmingCharacters(in: .whitespaces).split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        let nameOK = { (s: String) in !s.isEmpty && s.count <= 64 && s.unicodeScalars.allSatisfy { CharacterSet.alphanumerics.contains($0) || $0 == "_" || $0 == "-" } }
        guard parts.count == 2, path.first == "payload", (2...6).contains(path.count), path.dropFirst().allSatisfy(nameOK) else {
            throw Problem(.badRequest, detail: "search the payload as payload.key=value (payload.customer.id=42)", field: "q")
        }
        return PayloadMatch(path: Array(path.dropFirst()), value: String(parts[1]).trimmingCharacters(in: .whitespaces))
    }

    /// A job's progress as a bar when it says `done` of `total` (or a `percent`).
    static func progressBar(_ progress: JSONValue?) -> HTML {
        guard let progress else { return .empty }
        if let done = progress["done"]?.doubleValue, let total = progress["total"]?.doubleValue, total > 0 {
            return "<progress value=\"\(String(format: "%.0f", min(done, total)))\" max=\"\(String(format: "%.0f", total))\"></progress> <small>\(HTML.number(Int(done)))/\(HTML.number(Int(total)))</small>"
        }
        if let percent = progress["percent"]?.doubleValue {
            return "<progress value=\"\(String(format: "%.0f", percent))\" max=\"100\"></progress> <small>\(String(format: "%.0f", percent))%</small>"
        }
        return "<code>\(String(progress.jsonText.prefix(80)))</code>"
    }
}
