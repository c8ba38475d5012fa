import EsteiraCore
import EsteiraService
import Foundation
import Hummingbird

extension Dashboard {
    /// The most dead letters one requeue by filter moves (the api's own limit).
    static let requeueCap = 10_000

    /// The filter of a dead-letter page or requeue (`kind`, `error_class`), or a 400 naming the field.
    static func deadLetterFilter(_ q: QueryInput) throws -> DeadLetterSelection {
        var selection = DeadLetterSelection()
        selection.kind = try q.string("kind", maxLength: 63)
        try DeadLetterSelection.checkKind(selection.kind, field: "kind")
        selection.errorClass = try q.string("error_class", maxLength: 20)
        try DeadLetterSelection.checkErrorClass(selection.errorClass, field: "error_class")
        return selection
    }

    /// The filter as hidden form fields, for the forms that act on what it matches.
    static func filterFields(_ selection: DeadLetterSelection) -> HTML {
        "\(selection.kind.map { "<input type=\"hidden\" name=\"kind\" value=\"\($0)\">" as HTML })\(selection.errorClass.map { "<input type=\"hidden\" name=\"error_class\" value=\"\($0)\">" as HTML })"
    }

    /// `/ui/dead-letters`: filter, select and requeue; requeue everything a filter matches
    /// after a count and a confirmation; the audit list of past requeues.
    func addDeadLetters() {
        routes.page("/dead-letters") { request, context in
            let q = QueryInput(pageQuery: request)
            var selection = try Self.deadLetterFilter(q)
            selection.limit = 50
            if let cursor = try q.string("cursor", maxLength: 40) {
                guard let id = Int64(cursor), id > 0 else { throw Problem(.badRequest, detail: "not a cursor this page made", field: "cursor") }
                selection.beforeID = id
            }
            let scope = context.scope, s = selection
            let (page, audit) = try await pool.withConnection { c in
                (try DeadLetterStore.list(s, scope: scope, on: c), try DeadLetterStore.requeues(scope: scope, limit: 20, on: c))
            }
            let filters: HTML = """
                <form method="get" action="/ui/dead-letters" class="filters" role="search">
                \(HTML.select("kind", label: "Kind", options: catalog.names.map { ($0, $0) }, selected: selection.kind, any: "any kind"))
                \(HTML.select("error_class", label: "Error class", options: DeadLetterSelection.errorClasses.map { ($0, $0) }, selected: selection.errorClass, any: "any class"))
                <button type="submit">Filter</button> <a href="/ui/dead-letters">Clear</a></form>
                """
            let rows: [[HTML]] = page.letters.map { d in
                [d.jobID.map { "<input type=\"checkbox\" name=\"job_id\" value=\"\($0)\" aria-label=\"Select job \($0)\">" as HTML } ?? .empty,
                 d.jobID.map { "<a href=\"/ui/jobs/\($0)\" class=\"mono\">\($0.shortText)</a>" as HTML } ?? "poison message",
                 "\(d.kind ?? "–")", HTML.badge(d.errorClass), "\(d.attempts)", HTML.time(d.deadAt), "<span class=\"mono\">\(String(d.reason.prefix(200)))</span>"]
            }
            let table = HTML.table(["", "Job", "Kind", "Class", "Attempts", "Dead at", "Reason"],
                                   rows, empty: "No dead letters match.", id: "dead-table")
            var query: [String: String] = [:]
            query["kind"] = selection.kind
            query["error_class"] = selection.errorClass
            let auditRows: [[HTML]] = audit.map { r in
                ["\(r.id)", HTML.time(r.at), "\(r.by ?? "–")", "<code>\(r.selection.jsonText)</code>", "\(HTML.number(r.jobCount))"]
            }
            let body: HTML = """
                \(filters)
                <div id="dead" data-region>
                <form method="post" action="/ui/dead-letters/requeue" id="requeue-selected">
                <input type="hidden" name="csrf" value="\(context.csrfToken ?? "")">
                <div class="actions"><label class="check"><input type="checkbox" data-select-all="job_id"> Select all on this page</label>
                <button type="submit">Requeue selected</button></div>
                \(table)</form>
                \(HTML.nextPage(page.nextBeforeID.map(String.init), query: query, path: "/ui/dead-letters"))
                </div>
                <div class="card"><h2>Requeue everything matching this filter</h2>
                \(HTML.form("/ui/dead-letters/requeue-matching", context: context, fields: Self.filterFields(selection), button: "Count and confirm…", buttonStyle: "secondary"))
                <p class="hint">Shows how many dead letters match before anything moves (at most \(HTML.number(Self.requeueCap)) per requeue).</p></div>
                <h2>Past requeues</h2>
                <div id="audit" data-region>\(HTML.table(["#", "When", "Who", "Selection", "Jobs"], auditRows, empty: "No requeues yet.", id: "audit-table"))</div>
                """
            return render(DashboardPage(title: "Dead letters", body: body, live: ""), request, context)
        }

        routes.action("/dead-letters/requeue") { request, context in
            let form = try await DashboardRoutes.form(request)
            let ids = try form.strings("job_id", maxLength: 64)
            guard !ids.isEmpty else { throw Problem(.badRequest, detail: "select at least one dead letter", field: "job_id") }
            guard ids.count <= 500 else { throw Problem(.badRequest, detail: "select at most 500 at once", field: "job_id") }
            let jobIDs = try ids.map { s -> UUID in
                guard let id = UUID(uuidString: s) else { throw Problem(.badRequest, detail: "'\(s)' is not a job id", field: "job_id") }
                return id
            }
            let result = try await enqueuer.requeue(DeadLetterSelection(jobIDs: jobIDs, limit: jobIDs.count), scope: context.scope,
                                                    by: context.principal!.id)
            context.logger.info("requeued dead letters from the dashboard", metadata: ["count": "\(result.jobs.count)"])
            return DashboardRoutes.redirect("/ui/dead-letters", notice: "Requeued \(result.jobs.count) of \(jobIDs.count) selected.")
        }

        routes.action("/dead-letters/requeue-matching") { request, context in
            let form = try await DashboardRoutes.form(request)
            var selection = try Self.deadLetterFilter(form)
            selection.limit = Self.requeueCap
            let scope = context.scope, s = selection
            guard form.has("confirmed") else {
                // The dry run: how many would move, and a form that moves them.
                let n = try await pool.withConnection { try DeadLetterStore.count(s, scope: scope, cap: Self.requeueCap, on: $0) }
                let what = [selection.kind.map { "kind \($0)" }, selection.errorClass.map { "error class \($0)" }].compactMap { $0 }
                let described = what.isEmpty ? "every dead letter you can see" : "dead letters of " + what.joined(separator: " and ")
                let shown = n > Self.requeueCap ? "more than \(HTML.number(Self.requeueCap)) (the first \(HTML.number(Self.requeueCap)) move now)" : HTML.number(n)
                let fields: HTML = "<input type=\"hidden\" name=\"confirmed\" value=\"1\">\(Self.filterFields(selection))"
                let body: HTML = """
                    <div class="card" id="dry-run"><p><strong id="dry-run-count">\(shown)</strong> \(described) would be requeued.</p>
                    <div class="actions">\(n == 0 ? .empty : HTML.form("/ui/dead-letters/requeue-matching", context: context, fields: fields, button: "Requeue them"))
                    <a href="/ui/dead-letters">Cancel</a></div></div>
                    """
                return render(DashboardPage(title: "Requeue dead letters?", body: body), request, context)
            }
            let result = try await enqueuer.requeue(s, scope: scope, by: context.principal!.id)
            context.logger.info("requeued dead letters by filter from the dashboard", metadata: ["count": "\(result.jobs.count)"])
            return DashboardRoutes.redirect("/ui/dead-letters", notice: "Requeued \(result.jobs.count) dead letters.")
        }
    }
}
