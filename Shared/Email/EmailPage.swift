import EsteiraCore
import EsteiraService
import Foundation
import Hummingbird
import Postgres

/// `/ui/email`: per store, its mailbox's ingest state, its messages per status (the queue),
/// its credits and the breakers of its IMAP server, SMTP server and shop (live, with the
/// email.process events); the newest messages. `/ui/email/{id}/conversation?c=`: one
/// conversation, each message with its class, status and the reply sent.
struct EmailPage {
    let pool: PostgresPool

    func addPages(to dashboard: DashboardRoutes) {
        dashboard.section("Email", "/email")
        dashboard.page("/email") { request, context in
            let scope = context.scope
            let (stores, details, recent) = try await pool.withConnection { c in
                let stores = try EmailStores.stores(scope: scope, on: c)
                let details = try stores.prefix(50).map { store in
                    (try EmailMessages.counts(store: store.id, on: c), try EmailStores.breakers(of: store, on: c))
                }
                let recent = try stores.prefix(20).flatMap { try EmailMessages.list(store: $0.id, status: nil, conversation: nil, limit: 10, scope: scope, on: c) }
                return (stores, details, recent.sorted { $0.receivedAt > $1.receivedAt }.prefix(30))
            }
            let names = Dictionary(stores.map { ($0.id, $0.name) }, uniquingKeysWith: { a, _ in a })
            let cards: [HTML] = zip(stores.prefix(50), details).map { card($0, counts: $1.0, breakers: $1.1) }
            let body: HTML = """
                <div id="email-stores" class="grid" data-region>\(cards.isEmpty ? "<p class=\"empty\">No stores yet (POST /v1/email-stores adds one).</p>" : HTML(cards))</div>
                <h2>Newest messages</h2>
                <div id="email-messages" data-region>\(messageTable(Array(recent), names: names))</div>
                """
            return dashboard.render(DashboardPage(title: "Email", body: body, live: "kind=\(EmailKinds.process)"), request, context)
        }
        dashboard.page("/email/{id}/conversation") { request, context in
            let id = try context.pathID(of: "email store"), scope = context.scope
            guard let conversation = try QueryInput(request: request).string("c", maxLength: 1000) else {
                throw Problem(.badRequest, detail: "is required: the conversation's root Message-ID", field: "c")
            }
            let (store, messages) = try await pool.withConnection { c -> (EmailStoreView?, [EmailMessageView]) in
                guard let store = try EmailStores.store(id, scope: scope, on: c) else { return (nil, []) }
                return (store, try EmailMessages.list(store: id, status: nil, conversation: conversation, limit: 200, scope: scope, on: c))
            }
            guard let store else { throw EmailError.storeNotFound(id) }
            let items: [HTML] = messages.reversed().map { m in
                """
                <article class="card conversation-message" data-status="\(m.status.rawValue)">
                <h3>\(m.subject ?? "(no subject)") \(HTML.badge(m.status.rawValue)) <small>\(m.mailClass ?? "")</small></h3>
                <p><small>\(m.fromAddress ?? "?") · \(HTML.time(m.receivedAt))\(m.orderNumber.map { " · order #\($0)" })</small></p>
                \(m.reason.map { "<p class=\"hint\">\($0)</p>" as HTML })
                \(m.replyText.map { "<pre class=\"reply\">\($0)</pre>" as HTML })
                \(m.jobID.map { "<a href=\"/ui/jobs/\($0)\">job</a>" as HTML })
                </article>
                """
            }
            let body: HTML = """
                <p><a href="/ui/email">← \(store.name)</a> · <span class="mono">\(conversation)</span></p>
                <div id="conversation" data-region>\(items.isEmpty ? "<p class=\"empty\">No messages in this conversation.</p>" : HTML(items))</div>
                """
            return dashboard.render(DashboardPage(title: "Conversation", body: body, live: "kind=\(EmailKinds.process)"), request, context)
        }
    }

    private func card(_ store: EmailStoreView, counts: [String: Int], breakers: [(name: String, state: String)]) -> HTML {
        let ingest = store.ingest
        let queue: [[HTML]] = EmailStatus.allCases.compactMap { s in
            counts[s.rawValue].map { [HTML.badge(s.rawValue), "\(HTML.number($0))"] }
        }
        let breakerRows: [[HTML]] = breakers.map { ["\($0.name)" as HTML, HTML.badge($0.state)] }
        return """
            <article class="card email-store" data-store="\(store.id)">
            <h3>\(store.name) <small>\(store.fromAddress)</small> \(HTML.badge(store.active ? "active" : "paused"))</h3>
            <p>Credits: <strong class="credits">\(HTML.number(store.credits))</strong> left, \(HTML.number(store.creditsUsed)) used</p>
            <p class="ingest">Mailbox \(store.imapUser)@\(store.imapHost) · last round \(HTML.time(ingest.lastRoundAt)) ·
               \(HTML.number(ingest.messagesTotal)) messages, \(HTML.number(ingest.errorsTotal)) errors · UID \(ingest.lastUID)
               \(ingest.lastError.map { "<br><small class=\"error\">\($0)</small>" as HTML })</p>
            \(HTML.table(["Status", "Messages"], queue, empty: "No messages yet."))
            \(HTML.table(["Breaker", "State"], breakerRows, empty: "No breaker has counted a failure."))
            </article>
            """
    }

    private func messageTable(_ messages: [EmailMessageView], names: [UUID: String]) -> HTML {
        let rows: [[HTML]] = messages.map { m in
            let link = "/ui/email/\(m.storeID.uuidString.lowercased())/conversation?c=" + (m.conversationID.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")
            return ["\(names[m.storeID] ?? "?")", "<a href=\"\(link)\">\(m.subject ?? "(no subject)")</a>", "\(m.fromAddress ?? "")",
                    HTML.badge(m.status.rawValue), "\(m.mailClass ?? "")", HTML.time(m.receivedAt)]
        }
        return HTML.table(["Store", "Subject", "From", "Status", "Class", "Received"], rows, empty: "No messages yet.", id: "email-messages-table")
    }
}

extension EmailStores {
    /// The breakers of `store`'s services that have a row (every one that has counted a failure).
    static func breakers(of store: EmailStoreView, on c: PostgresConnection) throws -> [(name: String, state: String)] {
        var names = ["imap:\(store.imapHost)", "smtp:\(store.smtpHost)"]
        if let shop = store.shopDomain { names.append("shop:\(shop)") }
        return try c.query("SELECT name, state FROM circuit_breakers WHERE name = ANY($1::text[]) ORDER BY name", [names]).map {
            (try $0.decode(String.self, at: 0), try $0.decode(String.self, at: 1))
        }
    }
}
