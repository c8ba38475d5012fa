import EsteiraCore
import EsteiraService
import Foundation
import Hummingbird

extension Dashboard {
    /// `/ui/queues` (admins): per kind, the work queue's depth and consumers (from the
    /// broker, else the jobs waiting in PostgreSQL), running jobs, and pause or resume.
    func addQueues() {
        routes.page("/queues") { request, context in
            try context.requireAdmin("queues hold every principal's jobs: admins only")
            async let broker = broker.queues()
            let snapshot = counts.snapshot(.everything)
            let pauses = try await pool.withConnection { try KindPauses.all(on: $0) }
            let paused = Dictionary(pauses.map { ($0.kind, $0) }, uniquingKeysWith: { a, _ in a })
            let queues = await broker
            var source: HTML
            switch queues {
            case .success: source = .note("Depth and consumers from RabbitMQ's management API.")
            case .failure(let e):
                source = "<div class=\"notice\" role=\"status\">RabbitMQ's management API is not reachable (\(e.reason)): depths are the jobs queued in PostgreSQL, as last counted; consumers are not known.</div>"
            }
            let table = HTML.table(["Kind", "Queue", "Ready", "Unacked", "Consumers", "Running", "State", ""], catalog.names.map { kind in
                let name = Topology.workQueue(kind)
                let q = try? queues.get()[name]
                let pause = paused[kind]
                let action: HTML = pause == nil
                    ? .form("/ui/queues/\(kind)/pause", context: context, button: "Pause", confirm: "Pause \(kind)? Processors stop starting its jobs.", buttonStyle: "secondary")
                    : .form("/ui/queues/\(kind)/resume", context: context, button: "Resume")
                return ["<a href=\"/ui/jobs?kind=\(kind)\">\(kind)</a>", "<code>\(name)</code>",
                        "\(q.map { HTML.number($0.ready) } ?? Self.count(snapshot, kind, .queued))", "\(q.map { HTML.number($0.unacked) } ?? "–")",
                        "\(q.map { HTML.number($0.consumers) } ?? "–")", "\(Self.count(snapshot, kind, .running))",
                        pause.map { "\(HTML.badge("paused")) <small>by \($0.pausedBy)</small>" as HTML } ?? HTML.badge("active"), action]
            }, empty: "No kinds are configured.")
            let body: HTML = "<div id=\"queues\" data-region>\(source)\(table)\(Self.countedAt(snapshot))</div>"
            return render(DashboardPage(title: "Queues", body: body, live: ""), request, context)
        }
        for verb in ["pause", "resume"] {
            routes.action("/queues/{kind}/\(verb)") { request, context in
                try context.requireAdmin("pausing and resuming kinds is for admins")
                let kind = context.parameters.get("kind") ?? ""
                guard catalog[kind] != nil else { throw Problem(.notFound, detail: "unknown kind '\(kind)'", field: "kind") }
                let who = context.principal!.name
                try await pool.withConnection { c in
                    if verb == "pause" { _ = try KindPauses.pause(kind, by: who, reason: "from the dashboard", on: c) } else { _ = try KindPauses.resume(kind, on: c) }
                }
                return DashboardRoutes.redirect("/ui/queues", notice: verb == "pause" ? "Paused \(kind)." : "Resumed \(kind).")
            }
        }
    }
}
