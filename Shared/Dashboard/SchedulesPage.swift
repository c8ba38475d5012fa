import EsteiraCore
import EsteiraService
import Foundation
import Hummingbird

extension Dashboard {
    var scheduleStore: ScheduleStore { ScheduleStore(catalog: catalog) }

    /// `/ui/schedules`: the list with next and last runs, enable and disable, create and edit
    /// with a preview of the next five times the expression fires in its time zone.
    func addSchedules() {
        routes.page("/schedules") { request, context in
            let scope = context.scope, store = scheduleStore
            let schedules = try await pool.withConnection { try store.list(kind: nil, limit: 500, scope: scope, on: $0) }
            let rows: [[HTML]] = schedules.map { s in
                ["<a href=\"/ui/schedules/\(s.id)/edit\">\(s.name)</a>", "<code>\(s.cron)</code>", "\(s.timeZone)", "\(s.kind)",
                 HTML.badge(s.enabled ? "enabled" : "disabled"), HTML.time(s.nextRunAt),
                 s.lastJobId.map { "\(HTML.time(s.lastRunAt)) <a href=\"/ui/jobs/\($0)\">job</a>" as HTML } ?? HTML.time(s.lastRunAt),
                 .form("/ui/schedules/\(s.id)/toggle", context: context, button: s.enabled ? "Disable" : "Enable", buttonStyle: "secondary")]
            }
            let body: HTML = """
                <div class="actions"><a href="/ui/schedules/new">New schedule</a></div>
                <div id="schedules" data-region>\(HTML.table(["Name", "Cron", "Time zone", "Kind", "State", "Next run", "Last run", ""], rows,
                                                             empty: "No schedules yet.", id: "schedules-table"))</div>
                """
            return render(DashboardPage(title: "Schedules", body: body, live: ""), request, context)
        }

        routes.page("/schedules/new") { request, context in
            render(DashboardPage(title: "New schedule", body: scheduleForm(nil, context: context)), request, context)
        }

        routes.page("/schedules/{id}/edit") { request, context in
            let schedule = try await findSchedule(context)
            let body: HTML = """
                \(scheduleForm(schedule, context: context))
                <div class="card">\(HTML.form("/ui/schedules/\(schedule.id)/delete", context: context, button: "Delete schedule",
                                              confirm: "Delete \(schedule.name)? Jobs it enqueued stay.", buttonStyle: "danger"))</div>
                """
            return render(DashboardPage(title: "Schedule \(schedule.name)", body: body), request, context)
        }

        routes.page("/schedules/preview") { request, _ in
            let q = QueryInput(pageQuery: request)
            let html = Self.preview(cron: (try? q.string("cron", maxLength: 200)) ?? nil, timeZone: (try? q.string("time_zone", maxLength: 64)) ?? nil)
            return Response(status: .ok, headers: [.contentType: "text/html; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: html.text)))
        }

        routes.action("/schedules") { request, context in
            let input = try await scheduleInput(request)
            let owner = context.principal!.id, store = scheduleStore
            let s = try await pool.withConnection { try store.create(input, ownerID: owner, on: $0) }
            return DashboardRoutes.redirect("/ui/schedules", notice: "Created \(s.name).")
        }

        routes.action("/schedules/{id}") { request, context in
            let id = try context.pathID(of: "schedule")
            var input = try await scheduleInput(request)
            input.enabled = input.enabled ?? false  // an unticked box sends nothing
            let scope = context.scope, store = scheduleStore, changes = input
            guard let s = try await pool.transaction({ try store.update(id, changes, scope: scope, on: $0) }) else { throw Problem.scheduleNotFound(id) }
            return DashboardRoutes.redirect("/ui/schedules", notice: "Saved \(s.name).")
        }

        routes.action("/schedules/{id}/toggle") { request, context in
            let schedule = try await findSchedule(context)
            let scope = context.scope, store = scheduleStore
            let s = try await pool.transaction { try store.update(schedule.id, ScheduleInput(enabled: !schedule.enabled), scope: scope, on: $0) }
            return DashboardRoutes.redirect("/ui/schedules", notice: "\(s?.enabled == true ? "Enabled" : "Disabled") \(schedule.name).")
        }

        routes.action("/schedules/{id}/delete") { request, context in
            let schedule = try await findSchedule(context)
            let scope = context.scope, store = scheduleStore
            _ = try await pool.withConnection { try store.delete(schedule.id, scope: scope, on: $0) }
            return DashboardRoutes.redirect("/ui/schedules", notice: "Deleted \(schedule.name).")
        }
    }

    func findSchedule(_ context: APIRequestContext) async throws -> Schedule {
        let id = try context.pathID(of: "schedule"), scope = context.scope, store = scheduleStore
        guard let s = try await pool.withConnection({ try store.get(id, scope: scope, on: $0) }) else { throw Problem.scheduleNotFound(id) }
        return s
    }

    /// The form's fields: name, cron, time zone, kind, payload (a JSON object), enabled.
    func scheduleInput(_ request: Request) async throws -> ScheduleInput {
        let form = try await DashboardRoutes.form(request)
        var input = ScheduleInput()
        input.name = try form.string("name", maxLength: 200)
        input.cron = try form.string("cron", maxLength: 200)
        input.timeZone = try form.string("time_zone", maxLength: 64)
        input.kind = try form.string("kind", maxLength: 63)
        for (field, value) in [("name", input.name), ("cron", input.cron), ("kind", input.kind)] where value == nil {
            throw Problem(.badRequest, detail: "is required", field: field)
        }
        if let text = try form.string("payload", maxLength: 1 << 20), !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
            guard case .object = JSONValue.parse(text) else { throw Problem(.badRequest, detail: "must be a JSON object", field: "payload") }
            input.payload = text
        }
        if form.has("enabled") { input.enabled = true }
        return input
    }

    func scheduleForm(_ s: Schedule?, context: APIRequestContext) -> HTML {
        // A schedule keeps its kind when edited, even one that can no longer be scheduled
        // (saving then says why).
        let names = catalog.enqueueableNames
        let kinds = (s.map { names.contains($0.kind) ? names : [$0.kind] + names } ?? names).map { ($0, $0) }
        let action = s.map { "/ui/schedules/\($0.id.uuidString.lowercased())" } ?? "/ui/schedules"
        let payload = s.map { $0.payload.prettyText } ?? "{}"
        let fields: HTML = """
            \(HTML.input("name", label: "Name", value: s?.name, required: true))
            \(HTML.input("cron", label: "Cron expression (minute hour day month weekday)", value: s?.cron, placeholder: "*/15 * * * *",
                         required: true, extra: " data-cron-preview"))
            \(HTML.input("time_zone", label: "Time zone (IANA)", value: s?.timeZone ?? "UTC", placeholder: "Europe/Lisbon", required: true))
            \(HTML.select("kind", label: "Kind", options: kinds, selected: s?.kind))
            <label>Payload (JSON object) <textarea name="payload" spellcheck="false">\(payload)</textarea></label>
            <label class="check"><input type="checkbox" name="enabled" value="1"\(s?.enabled ?? true ? " checked" : "")> Enabled</label>
            <div class="card"><strong>Next five runs</strong><div id="cron-preview" aria-live="polite">\(Self.preview(cron: s?.cron, timeZone: s?.timeZone))</div></div>
            """
        return HTML.form(action, context: context, fields: fields, button: s == nil ? "Create schedule" : "Save", style: "stack")
    }

    /// The next five times `cron` fires in `timeZone`, or why it cannot say.
    static func preview(cron: String?, timeZone: String?) -> HTML {
        guard let cron, !cron.isEmpty else { return "<p class=\"hint\">Type a cron expression to see when it runs.</p>" }
        let expression: CronExpression
        do { expression = try CronExpression(cron) } catch { return "<p class=\"notice error\" id=\"cron-error\">\(error.description)</p>" }
        let zoneName = timeZone ?? "UTC"
        guard let zone = TimeZone(identifier: zoneName) else {
            return "<p class=\"notice error\" id=\"cron-error\">unknown time zone '\(zoneName)' (an IANA name such as Europe/Lisbon)</p>"
        }
        var times: [Date] = [], after = Date()
        while times.count < 5, let next = expression.next(after: after, in: zone) { times.append(next); after = next }
        guard !times.isEmpty else { return "<p class=\"notice error\" id=\"cron-error\">'\(cron)' never fires</p>" }
        let style = Date.ISO8601FormatStyle(dateTimeSeparator: .space, timeZone: zone)
        let items: [HTML] = times.map { "<li>\($0.formatted(style)) \(zoneName)</li>" }
        return "<ol class=\"next-runs\">\(items)</ol>"
    }
}
