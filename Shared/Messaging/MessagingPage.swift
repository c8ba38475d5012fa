import EsteiraCore
import EsteiraService
import Foundation
import Hummingbird
import Postgres

/// `/ui/messaging`: the caller's campaigns with live progress bars (cancel the active ones),
/// a form to start a campaign to all of one's contacts, the contacts and the instances;
/// `/ui/messaging/contacts/{id}`: a contact's conversation, updating live, with a form to
/// send a message. Both pages follow their messaging feed (`/ui/feeds/...`).
struct MessagingPage {
    let enqueuer: Enqueuer
    let pool: PostgresPool
    let feed: MessagingFeed

    func addPages(to dashboard: DashboardRoutes) {
        dashboard.section("Messaging", "/messaging")
        dashboard.page("/messaging") { request, context in
            let owner = context.principal!.id, scope = context.scope
            let from = await feed.freshMark()
            let (campaigns, contacts, instances) = try await pool.withConnection { c in
                (try MessagingStore.campaigns(scope: scope, status: nil, limit: 50, on: c).compactMap(JSONValue.parse),
                 try MessagingStore.contacts(scope: AccessScope(ownerID: owner), after: nil, limit: 100, on: c).compactMap(JSONValue.parse),
                 try MessagingStore.instances(scope: AccessScope(ownerID: owner), on: c).compactMap(JSONValue.parse))
            }
            let body: HTML = """
                \(campaignForm(instances: instances, context: context))
                <h2>Campaigns</h2>
                <div id="campaigns" data-region>\(campaignTable(campaigns, context: context))</div>
                <h2>Contacts</h2>
                \(contactTable(contacts))
                <h2>Instances</h2>
                \(instanceTable(instances))
                """
            var page = DashboardPage(title: "Messaging", body: body, live: "")
            page.liveSource = ("/ui/feeds/campaigns", from)
            return dashboard.render(page, request, context)
        }
        dashboard.page("/messaging/contacts/{id}") { request, context in
            let id = try context.pathID(of: "contact"), owner = context.principal!.id, scope = context.scope
            let from = await feed.freshMark()
            let (contact, messages, instances) = try await pool.withConnection { c -> (JSONValue, [JSONValue], [JSONValue]) in
                guard let contact = try MessagingStore.contact(id, scope: scope, on: c).flatMap(JSONValue.parse) else {
                    throw MessagingError.contactNotFound(id)
                }
                return (contact, try MessagingStore.conversation(id, limit: 200, on: c).compactMap(JSONValue.parse),
                        try MessagingStore.instances(scope: AccessScope(ownerID: owner), on: c).compactMap(JSONValue.parse))
            }
            let name = contact["nome"]?.stringValue ?? "", phone = contact["telefone"]?.stringValue ?? ""
            let body: HTML = """
                <p>\(phone) · <a href="/ui/messaging">all contacts</a></p>
                <div id="conversation" data-region>\(conversation(messages))</div>
                \(sendForm(contact: id, instances: instances, context: context))
                """
            var page = DashboardPage(title: "Conversation with \(name)", body: body, live: "")
            page.liveSource = ("/ui/feeds/contacts/\(id.uuidString.lowercased())/messages", from)
            return dashboard.render(page, request, context)
        }
        dashboard.page("/feeds/campaigns") { request, context in
            let principal = context.principal!
            return try await feed.response(request, topic: FeedTopic(owner: principal.id, contact: nil), principal: principal.id, limits: dashboard.limits)
        }
        dashboard.page("/feeds/contacts/{id}/messages") { request, context in
            let id = try context.pathID(of: "contact"), principal = context.principal!
            let owner = try await MessagingController.contactOwner(id, scope: context.scope, pool: pool)
            return try await feed.response(request, topic: FeedTopic(owner: owner, contact: id), principal: principal.id, limits: dashboard.limits)
        }
        dashboard.action("/messaging/campaigns") { request, context in
            let form = try await DashboardRoutes.form(request)
            guard let name = try form.string("nome", maxLength: 200), !name.isEmpty else { throw Problem(.badRequest, detail: "is required", field: "nome") }
            guard let message = try form.string("mensagem", maxLength: 4096), !message.isEmpty else {
                throw Problem(.badRequest, detail: "is required", field: "mensagem")
            }
            guard let instance = try form.uuid("instance_id") else { throw Problem(.badRequest, detail: "is required", field: "instance_id") }
            let (json, _) = try await MessagingController.startCampaign(name: name, message: message, instance: instance, contacts: nil,
                                                                      owner: context.principal!.id, enqueuer: enqueuer, pool: pool)
            let total = JSONValue.parse(json)?["total"]?.doubleValue.map { Int($0) } ?? 0
            return DashboardRoutes.redirect("/ui/messaging", notice: "Campaign \(name) started: \(HTML.number(total)) contacts.")
        }
        dashboard.action("/messaging/campaigns/{id}/cancel") { request, context in
            let id = try context.pathID(of: "campaign")
            try await MessagingController.cancel(id, scope: context.scope, by: context.principal!.name, enqueuer: enqueuer, pool: pool)
            return DashboardRoutes.redirect("/ui/messaging", notice: "Campaign cancelled: sends not made yet will not be made.")
        }
        dashboard.action("/messaging/contacts/{id}/send") { request, context in
            let id = try context.pathID(of: "contact")
            let form = try await DashboardRoutes.form(request)
            guard let text = try form.string("conteudo", maxLength: 4096), !text.isEmpty else {
                throw Problem(.badRequest, detail: "is required", field: "conteudo")
            }
            guard let instance = try form.uuid("instance_id") else { throw Problem(.badRequest, detail: "is required", field: "instance_id") }
            _ = try await MessagingController.send(text, to: id, through: instance, owner: context.principal!.id, enqueuer: enqueuer, pool: pool)
            return DashboardRoutes.redirect("/ui/messaging/contacts/\(id.uuidString.lowercased())", notice: "Message queued.")
        }
    }

    private func instanceOptions(_ instances: [JSONValue]) -> [(value: String, label: String)] {
        instances.compactMap { i in i["id"]?.stringValue.map { ($0, i["nome"]?.stringValue ?? $0) } }
    }

    private func campaignForm(instances: [JSONValue], context: APIRequestContext) -> HTML {
        guard !instances.isEmpty else { return HTML.note("No provider instance yet: POST /v1/instances connects one.") }
        let fields: HTML = """
            \(HTML.input("nome", label: "Name", value: nil, required: true))
            \(HTML.input("mensagem", label: "Message", value: nil, required: true))
            \(HTML.select("instance_id", label: "Instance", options: instanceOptions(instances), selected: nil))
            """
        return "<section class=\"card\"><h2>New campaign to all your contacts</h2>\(HTML.form("/ui/messaging/campaigns", context: context, fields: fields, button: "Start campaign", style: "filters"))</section>"
    }

    private func campaignTable(_ campaigns: [JSONValue], context: APIRequestContext) -> HTML {
        func n(_ v: JSONValue, _ key: String) -> String { HTML.number(Int(v[key]?.doubleValue ?? 0)) }
        let rows: [[HTML]] = campaigns.map { k in
            let id = k["id"]?.stringValue ?? "", status = k["status"]?.stringValue ?? ""
            let percent = k["progresso"]?.doubleValue ?? 0
            let active = CampaignStatus(rawValue: status)?.isActive == true
            return ["\(k["nome"]?.stringValue ?? "")", HTML.badge(status),
                    "<progress value=\"\(Int(percent))\" max=\"100\" aria-label=\"Progress\"></progress> <span class=\"num percent\">\(String(format: "%.1f", percent))%</span>",
                    "<span class=\"num\">\(n(k, "total"))</span>", "<span class=\"num sent\">\(n(k, "enviadas"))</span>",
                    "<span class=\"num failed\">\(n(k, "falhas"))</span>", "<span class=\"num\">\(n(k, "canceladas"))</span>",
                    active ? .form("/ui/messaging/campaigns/\(id)/cancel", context: context, button: "Cancel",
                                   confirm: "Cancel this campaign? Messages not sent yet will not be sent.", buttonStyle: "danger") : .empty]
        }
        return HTML.table(["Name", "Status", "Progress", "Total", "Sent", "Failed", "Cancelled", ""], rows,
                          empty: "No campaigns yet.", id: "campaigns-table")
    }

    private func contactTable(_ contacts: [JSONValue]) -> HTML {
        let rows: [[HTML]] = contacts.map { c in
            let id = c["id"]?.stringValue ?? ""
            return ["<a href=\"/ui/messaging/contacts/\(id)\">\(c["nome"]?.stringValue ?? id)</a>", "\(c["telefone"]?.stringValue ?? "")"]
        }
        return HTML.table(["Name", "Phone"], rows, empty: "No contacts yet (POST /v1/contacts).", id: "contacts-table")
    }

    private func instanceTable(_ instances: [JSONValue]) -> HTML {
        let rows: [[HTML]] = instances.map { i in
            ["\(i["nome"]?.stringValue ?? "")", "<span class=\"mono\">\(i["base_url"]?.stringValue ?? "")</span>",
             "\(String(format: "%g", i["rate_limit"]?.doubleValue ?? 0))/s, burst \(Int(i["burst"]?.doubleValue ?? 0))"]
        }
        return HTML.table(["Name", "Base URL", "Rate"], rows, empty: "No instances yet.", id: "instances-table")
    }

    private func conversation(_ messages: [JSONValue]) -> HTML {
        let rows: [[HTML]] = messages.map { m in
            let incoming = m["direcao"]?.stringValue == "entrada"
            return [incoming ? "←" : "→", "<span class=\"message\">\(m["conteudo"]?.stringValue ?? "")</span>",
                    HTML.badge(m["status"]?.stringValue ?? ""), "\(m["created_at"]?.stringValue ?? "")",
                    m["erro"]?.stringValue.map { "<small>\($0)</small>" as HTML } ?? .empty]
        }
        return HTML.table(["", "Message", "Status", "At", "Error"], rows, empty: "No messages yet.", id: "messages-table")
    }

    private func sendForm(contact: UUID, instances: [JSONValue], context: APIRequestContext) -> HTML {
        guard !instances.isEmpty else { return HTML.note("No provider instance yet: POST /v1/instances connects one.") }
        let fields: HTML = """
            \(HTML.input("conteudo", label: "Message", value: nil, required: true))
            \(HTML.select("instance_id", label: "Instance", options: instanceOptions(instances), selected: nil))
            """
        return "<section class=\"card\"><h2>Send</h2>\(HTML.form("/ui/messaging/contacts/\(contact.uuidString.lowercased())/send", context: context, fields: fields, button: "Send", style: "filters"))</section>"
    }
}
