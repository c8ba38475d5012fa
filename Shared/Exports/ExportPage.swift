import EsteiraCore
import EsteiraService
import Foundation
import Hummingbird
import Postgres

/// `/ui/exports`: a form to start an export (the two dates, batch size, target), a live
/// progress card per active export (bar, processed, exported, errors, the day being
/// processed; pause with a reason, resume, cancel), the last ten exports with their states,
/// and, for admins, the targets.
struct ExportPage {
    let enqueuer: Enqueuer
    let pool: PostgresPool

    func addPages(to dashboard: DashboardRoutes) {
        dashboard.section("Exports", "/exports")
        dashboard.page("/exports") { request, context in
            let scope = context.scope
            let (targets, active, history) = try await pool.withConnection { c in
                (try ExportStore.targets(on: c),
                 try ExportStore.list(statuses: Export.Status.allCases.filter(\.isActive), limit: 50, scope: scope, on: c),
                 try ExportStore.list(limit: 10, scope: scope, on: c))
            }
            let body: HTML = """
                \(newExportForm(targets: targets, context: context))
                <h2>Active</h2>
                <div id="export-cards" data-region class="grid">\(active.isEmpty ? "<p class=\"empty\">No export is active.</p>" : HTML(active.map { card($0, context: context) }))</div>
                <h2>Last ten</h2>
                <div id="export-history" data-region>\(historyTable(history, context: context))</div>
                \(context.principal?.role == .admin ? targetsTable(targets) : .empty)
                """
            return dashboard.render(DashboardPage(title: "Exports", body: body, live: "kind=\(ExportKinds.run)"), request, context)
        }
        dashboard.action("/exports") { request, context in
            let form = try await DashboardRoutes.form(request)
            let new = try ExportController.check(startDate: try form.string("start_date", maxLength: 10),
                                                 endDate: try form.string("end_date", maxLength: 10),
                                                 batchSize: try form.int("batch_size", in: 1...10_000),
                                                 target: try form.string("target", maxLength: 63))
            let export = try await ExportController.create(new, context: context, enqueuer: enqueuer, pool: pool)
            return DashboardRoutes.redirect("/ui/exports", notice: "Export to \(export.target) started: \(new.startDate) back to \(new.endDate ?? "the first lead").")
        }
        for (path, done) in [("pause", "Paused"), ("resume", "Resumed"), ("cancel", "Cancelled")] {
            dashboard.action("/exports/{id}/\(path)") { request, context in
                let id = try context.pathID(of: "export")
                let form = try await DashboardRoutes.form(request)
                let action: ExportController.Action
                switch path {
                case "pause": action = .pause(reason: try form.string("reason", maxLength: 500))
                case "resume": action = .resume
                default: action = .cancel
                }
                let export = try await ExportController.act(action, on: id, scope: context.scope, enqueuer: enqueuer, pool: pool)
                return DashboardRoutes.redirect("/ui/exports", notice: "\(done): \(HTML.number(export.exportedLeads)) leads exported so far.")
            }
        }
    }

    private func newExportForm(targets: [ExportTarget], context: APIRequestContext) -> HTML {
        let usable = targets.filter { $0.active && $0.syncEnabled }
        guard !usable.isEmpty else {
            return HTML.note("No export target is active. An admin adds one with POST /v1/export-targets (or activates one).")
        }
        let today = String(ISO8601DateFormatter.string(from: Date(), timeZone: TimeZone(identifier: "UTC")!, formatOptions: [.withFullDate]))
        let fields: HTML = """
            \(HTML.input("start_date", label: "Newest day", value: today, type: "date", required: true))
            \(HTML.input("end_date", label: "Oldest day (empty: all history)", value: nil, type: "date"))
            \(HTML.input("batch_size", label: "Batch size", value: "100", type: "number", extra: " min=\"1\" max=\"10000\""))
            \(HTML.select("target", label: "Target", options: usable.map { ($0.name, $0.name) }, selected: usable.first?.name))
            """
        return "<section class=\"card\"><h2>New export</h2>\(HTML.form("/ui/exports", context: context, fields: fields, button: "Start export", style: "filters"))</section>"
    }

    private func card(_ e: Export, context: APIRequestContext) -> HTML {
        let id = e.id.uuidString.lowercased()
        let processed = e.exportedLeads + e.errorLeads
        var buttons: [HTML] = []
        if e.status == .running || e.status == .pending {
            buttons.append(.form("/ui/exports/\(id)/pause", context: context,
                                 fields: HTML.input("reason", label: "Reason", value: nil, placeholder: "optional"), button: "Pause"))
        }
        if e.status == .paused { buttons.append(.form("/ui/exports/\(id)/resume", context: context, button: "Resume")) }
        buttons.append(.form("/ui/exports/\(id)/cancel", context: context, button: "Cancel",
                             confirm: "Cancel this export? Nothing more is sent; what was exported stays.", buttonStyle: "danger"))
        return """
            <article class="card export-card" data-export="\(id)">
            <h3>\(e.target) \(HTML.badge(e.status.rawValue))</h3>
            <p><progress value="\(Int(e.percent.rounded(.down)))" max="100" aria-label="Progress"></progress> <strong>\(String(format: "%.1f", e.percent))%</strong></p>
            <p><span class="num">\(HTML.number(processed))</span> processed of \(e.totalLeads.map(HTML.number) ?? "?") ·
               <span class="num exported">\(HTML.number(e.exportedLeads))</span> exported ·
               <span class="num errors">\(HTML.number(e.errorLeads))</span> errors</p>
            <p>Day: <strong class="processing-date">\(e.processingDate ?? "—")</strong> · last done \(e.lastCompletedDate ?? "—") ·
               \(e.startDate) back to \(e.endDate ?? "the first lead") · batches of \(e.batchSize)</p>
            \(e.pauseReason.map { "<p class=\"hint\">Paused: \($0)</p>" as HTML } ?? .empty)
            <p>\(HTML(buttons)) \(e.jobID.map { "<a href=\"/ui/jobs/\($0)\">job</a>" as HTML } ?? .empty)</p>
            </article>
            """
    }

    private func historyTable(_ exports: [Export], context: APIRequestContext) -> HTML {
        let rows: [[HTML]] = exports.map { e in
            ["<span class=\"mono\" title=\"\(e.id)\">\(e.id.shortText)</span>", "\(e.target)",
             HTML.badge(e.status.rawValue), "\(e.startDate) → \(e.endDate ?? "start")",
             "<span class=\"num\">\(HTML.number(e.exportedLeads))</span>", "<span class=\"num\">\(HTML.number(e.errorLeads))</span>",
             "\(String(format: "%.1f", e.percent))%", "\(e.createdBy)", HTML.time(e.createdAt),
             e.error.map { "<small>\($0)</small>" as HTML } ?? .empty,
             e.status == .failed ? .form("/ui/exports/\(e.id.uuidString.lowercased())/resume", context: context, button: "Resume") : .empty]
        }
        return HTML.table(["Id", "Target", "Status", "Days", "Exported", "Errors", "Done", "By", "Created", "Error", ""], rows,
                          empty: "No exports yet.", id: "exports-table")
    }

    private func targetsTable(_ targets: [ExportTarget]) -> HTML {
        let rows: [[HTML]] = targets.map { t in
            ["\(t.name)", "<span class=\"mono\">\(t.baseURL)</span>", t.active ? "yes" : "no", t.syncEnabled ? "yes" : "no",
             t.rateLimit.map { "\(String(format: "%g", $0))/s" as HTML } ?? "only when it says so", "\(t.direction)"]
        }
        return """
            <h2>Targets</h2>
            \(HTML.table(["Name", "Base URL", "Active", "Sync", "Rate", "Direction"], rows,
                         empty: "No targets (POST /v1/export-targets adds one).", id: "targets-table"))
            """
    }
}
