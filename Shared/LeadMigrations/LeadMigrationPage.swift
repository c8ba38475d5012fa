import EsteiraCore
import EsteiraService
import Foundation
import Hummingbird
import Postgres

/// `/ui/lead-migrations`: every migration in the caller's scope with a live progress bar,
/// its counts, and cancel for those not finished.
struct LeadMigrationPage {
    let pool: PostgresPool

    func addPages(to dashboard: DashboardRoutes) {
        dashboard.section("Lead migrations", "/lead-migrations")
        dashboard.page("/lead-migrations") { request, context in
            let scope = context.scope
            let migrations = try await pool.withConnection { try LeadMigrationStore.list(state: nil, limit: 100, scope: scope, on: $0) }
            let rows: [[HTML]] = migrations.map { m in
                ["<span class=\"mono\" title=\"\(m.id)\">\(m.id.shortText)</span>",
                 "run \(m.runID) → funnel \(m.funnelID) / column \(m.columnID)", HTML.badge(m.state.rawValue),
                 "<progress value=\"\(Int(m.percent.rounded()))\" max=\"100\" aria-label=\"Progress\"></progress> <small>\(Int(m.percent.rounded()))%</small>",
                 "<span class=\"num\">\(HTML.number(m.moved))</span> moved, \(HTML.number(m.failed)) failed, \(HTML.number(m.pending)) to go\(m.total.map { " of \(HTML.number($0))" } ?? "")",
                 "\(m.batchesDone)/\(m.batches.map(String.init) ?? "?")", HTML.time(m.createdAt),
                 m.jobID.map { "<a href=\"/ui/jobs/\($0)\">job</a>" as HTML } ?? .empty,
                 m.state.isFinal ? .empty : .form("/ui/lead-migrations/\(m.id)/cancel", context: context, button: "Cancel",
                                                  confirm: "Cancel this migration? Batches not started will not run; moved leads stay moved.",
                                                  buttonStyle: "danger")]
            }
            let body: HTML = """
                <div id="migrations" data-region>\(HTML.table(["Id", "Move", "State", "Progress", "Leads", "Batches", "Created", "", ""], rows,
                                                              empty: "No lead migrations yet (POST /v1/lead-migrations starts one).",
                                                              id: "migrations-table"))</div>
                """
            return dashboard.render(DashboardPage(title: "Lead migrations", body: body, live: ""), request, context)
        }
        dashboard.action("/lead-migrations/{id}/cancel") { request, context in
            let m = try await LeadMigrationController.cancel(try context.pathID(of: "lead migration"), scope: context.scope, pool: pool)
            return DashboardRoutes.redirect("/ui/lead-migrations", notice: "Cancelled: \(HTML.number(m.moved)) leads were moved; the rest stay.")
        }
    }
}
