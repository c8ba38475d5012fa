import EsteiraCore
import EsteiraService
import Foundation
import Hummingbird

extension Dashboard {
    static let tokensAdminsOnly = "only admins manage tokens"

    /// `/ui/tokens` (admins): every principal; create one (its token shown once), revoke one.
    func addTokens() {
        routes.page("/tokens") { request, context in
            try context.requireAdmin(Self.tokensAdminsOnly)
            let list = try await principals.list()
            let rows: [[HTML]] = list.map { p in
                ["\(p.name)", "\(p.role.rawValue)", HTML.time(p.createdAt), HTML.time(p.expiresAt),
                 p.revokedAt.map { "\(HTML.badge("revoked")) \(HTML.time($0))" as HTML } ?? HTML.badge("active"),
                 p.revokedAt != nil ? .empty : .form("/ui/tokens/\(p.id)/revoke", context: context, button: "Revoke",
                                                     confirm: "Revoke \(p.name)? Its token stops working at once, for good.", buttonStyle: "danger")]
            }
            let fields: HTML = """
                \(HTML.input("name", label: "Name", value: nil, placeholder: "billing-service", required: true))
                \(HTML.select("role", label: "Role", options: [("user", "user: its own jobs"), ("admin", "admin: everything")], selected: "user"))
                \(HTML.input("expires_in_days", label: "Expires after (days, empty: never)", value: nil, type: "number", extra: " min=\"1\" max=\"3660\""))
                """
            let body: HTML = """
                <div class="card"><h2>New token</h2>\(HTML.form("/ui/tokens", context: context, fields: fields, button: "Create token", style: "filters"))</div>
                \(HTML.table(["Name", "Role", "Created", "Expires", "State", ""], rows, empty: "No principals.", id: "tokens-table"))
                """
            return render(DashboardPage(title: "Tokens", body: body), request, context)
        }

        routes.action("/tokens") { request, context in
            try context.requireAdmin(Self.tokensAdminsOnly)
            let form = try await DashboardRoutes.form(request)
            guard let name = try form.string("name", maxLength: 200) else { throw Problem(.badRequest, detail: "is required", field: "name") }
            guard let role = Principal.Role(rawValue: try form.string("role", maxLength: 20) ?? "user") else {
                throw Problem(.badRequest, detail: "must be admin or user", field: "role")
            }
            let days = try form.int("expires_in_days", in: 1...3660)
            let created: (Principal, token: String)
            do {
                created = try await principals.create(name: name, role: role, createdBy: context.principal!.id,
                                                      expiresAt: days.map { Date().addingTimeInterval(Double($0) * 86400) })
            } catch let error as PrincipalError where error == .nameTaken(name) {
                throw Problem(.conflict, detail: error.description, field: "name")
            }
            context.logger.info("principal created from the dashboard", metadata: ["name": "\(name)", "role": "\(role.rawValue)"])
            // Shown here once, never again: the page is not cached and the token is not stored.
            let body: HTML = """
                <div class="card"><p>The token of <strong>\(created.0.name)</strong> (\(role.rawValue)). Copy it now: it is not shown again.</p>
                <p><code id="new-token">\(created.token)</code></p><p><a href="/ui/tokens">Back to tokens</a></p></div>
                """
            var page = DashboardPage(title: "Token created", body: body)
            page.status = .created
            return render(page, request, context)
        }

        routes.action("/tokens/{id}/revoke") { request, context in
            try context.requireAdmin(Self.tokensAdminsOnly)
            let id = try context.pathID(of: "principal")
            guard let revoked = try await principals.revoke(id) else {
                throw Problem(.notFound, detail: "no principal \(id.uuidString.lowercased())", field: "id")
            }
            context.logger.info("principal revoked from the dashboard", metadata: ["name": "\(revoked.name)"])
            return DashboardRoutes.redirect("/ui/tokens", notice: "Revoked \(revoked.name).")
        }
    }
}
