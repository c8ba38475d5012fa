import EsteiraCore
import Foundation
import HTTPTypes
import Hummingbird

/// One dashboard page: its title and body inside the shared layout (navigation, who is
/// signed in, sign-out, the live-update controls).
public struct DashboardPage: Sendable {
    public var title: String
    public var body: HTML
    public var status: HTTPResponse.Status = .ok
    /// The job events that refresh this page's live regions (`data-region`): a query of
    /// `/ui/events` (`""` for every event the caller may see, `job_id=…`); nil: not live.
    public var live: String?
    /// Another stream for the live updates than the job events (`/ui/feeds/...`, whose
    /// events are named `change`), and the id it resumes after (read before the page's data).
    public var liveSource: (path: String, from: Int64)?
    /// A message for the top of the page (an action's outcome).
    public var notice: String?

    public init(title: String, body: HTML, live: String? = nil) {
        self.title = title
        self.body = body
        self.live = live
    }

    /// The page as an HTML response; `sections` are the navigation's entries the caller may
    /// use, `liveFrom` the newest event id when the page was rendered (its stream resumes there).
    public func response(context: APIRequestContext, sections: [DashboardRoutes.Section], liveFrom: Int64? = nil) -> Response {
        let principal = context.principal
        let nav: [HTML] = sections.map { "<a href=\"\($0.path)\">\($0.title)</a>" }
        let who: HTML = principal.map { p in
            """
            <div class="who"><span title="\(p.id)">\(p.name) <small>(\(p.role.rawValue))</small></span>
            <form method="post" action="/ui/sign-out"><input type="hidden" name="csrf" value="\(context.csrfToken ?? "")">\
            <button type="submit" class="link">Sign out</button></form></div>
            """
        } ?? .empty
        let liveBar: HTML = live == nil ? .empty : """
            <div class="live-bar" role="group" aria-label="Live update controls">
              <label><input type="checkbox" id="live-toggle" checked> Live updates</label>
              <label>every <select id="live-interval" aria-label="Refresh interval">
                <option value="1">1 s</option><option value="2" selected>2 s</option><option value="5">5 s</option>
                <option value="15">15 s</option><option value="60">60 s</option></select></label>
              <span id="live-state" aria-live="polite"></span>
            </div>
            """
        var liveAttributes: HTML = live.map { "data-live=\"\($0)\" data-live-from=\"\(liveSource?.from ?? liveFrom ?? -1)\"" as HTML } ?? .empty
        if live != nil, let source = liveSource { liveAttributes = "\(liveAttributes) data-live-source=\"\(source.path)\"" }
        let page: HTML = """
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <meta name="csrf-token" content="\(context.csrfToken ?? "")">
            <title>\(title) · Esteira</title><link rel="icon" href="data:,">
            <link rel="stylesheet" href="/ui/assets/app.css"><script src="/ui/assets/app.js" defer></script>
            </head><body \(liveAttributes)>
            <header class="top"><a class="brand" href="/ui/">Esteira</a>
            <nav aria-label="Sections">\(nav)</nav>\(who)</header>
            <main id="main"><div class="title-row"><h1>\(title)</h1>\(liveBar)</div>
            \(notice.map { "<div class=\"notice\" role=\"status\" id=\"notice\">\($0)</div>" as HTML })
            \(body)
            </main></body></html>
            """
        var headers: HTTPFields = [.contentType: "text/html; charset=utf-8"]
        Self.secure(&headers)
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: page.text)))
    }

    /// Headers every dashboard response carries: no framing, scripts and styles from the
    /// api only (no inline script can run), no caching of pages with data in them.
    static func secure(_ headers: inout HTTPFields) {
        headers[HTTPField.Name("Content-Security-Policy")!] =
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
        headers[HTTPField.Name("X-Frame-Options")!] = "DENY"
        headers[HTTPField.Name("X-Content-Type-Options")!] = "nosniff"
        headers[HTTPField.Name("Referrer-Policy")!] = "same-origin"
        if headers[.cacheControl] == nil { headers[.cacheControl] = "no-store" }
    }
}

extension DashboardRoutes {
    /// `page` in the layout, with the navigation `context`'s principal may use and the
    /// notice an action's redirect left for it (shown once).
    public func render(_ page: DashboardPage, _ request: Request, _ context: APIRequestContext) -> Response {
        var page = page
        let notice = DashboardSessionMiddleware.cookie(Self.noticeCookie, in: request)
        if page.notice == nil, let notice { page.notice = notice.removingPercentEncoding.map { String($0.prefix(300)) } }
        let admin = context.principal?.role == .admin
        var response = page.response(context: context, sections: sections.filter { admin || !$0.adminOnly },
                                     liveFrom: page.live == nil ? nil : Self.pageMark ?? -1)
        if notice != nil {
            response.headers[values: .setCookie] = ["\(Self.noticeCookie)=; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=0"]
        }
        return response
    }
}

// Pieces the pages are built of.
extension HTML {
    /// A POST form with the session's CSRF token; `confirm` asks before it is sent.
    public static func form(_ action: String, context: APIRequestContext, fields: HTML = .empty, button: String,
                            confirm: String? = nil, style: String = "inline", buttonStyle: String = "") -> HTML {
        """
        <form method="post" action="\(action)" class="\(style)"\(confirm.map { " data-confirm=\"\($0)\"" as HTML })>\
        <input type="hidden" name="csrf" value="\(context.csrfToken ?? "")">\(fields)\
        <button type="submit"\(buttonStyle.isEmpty ? "" : " class=\"\(buttonStyle)\"" as HTML)>\(button)</button></form>
        """
    }

    /// A job status as a coloured badge.
    public static func badge(_ status: String) -> HTML { "<span class=\"badge s-\(status)\">\(status)</span>" }

    /// A table with a header row; `empty` stands in for no rows.
    public static func table(_ headers: [String], _ rows: [[HTML]], empty: String, id: String? = nil) -> HTML {
        guard !rows.isEmpty else { return "<p class=\"empty\"\(id.map { " id=\"\($0)\"" as HTML })>\(empty)</p>" }
        let head: [HTML] = headers.map { "<th scope=\"col\">\($0)</th>" }
        let body: [HTML] = rows.map { cells in "<tr>\(cells.map { "<td>\($0)</td>" as HTML })</tr>" }
        return "<div class=\"scroll\"><table\(id.map { " id=\"\($0)\"" as HTML })><thead><tr>\(head)</tr></thead><tbody>\(body)</tbody></table></div>"
    }

    /// A labelled `<select>`; `""` is the "any" choice when `any` is given.
    public static func select(_ name: String, label: String, options: [(value: String, label: String)], selected: String?,
                              any: String? = nil) -> HTML {
        let choices = (any.map { [("", $0)] } ?? []) + options
        let items: [HTML] = choices.map { "<option value=\"\($0.0)\"\($0.0 == (selected ?? "") ? " selected" : "")>\($0.1)</option>" }
        return "<label>\(label) <select name=\"\(name)\">\(items)</select></label>"
    }

    /// A labelled text input.
    public static func input(_ name: String, label: String, value: String?, type: String = "text", placeholder: String = "",
                             required: Bool = false, extra: HTML = .empty) -> HTML {
        """
        <label>\(label) <input name="\(name)" type="\(type)" value="\(value ?? "")" placeholder="\(placeholder)"\
        \(required ? " required" : "")\(extra)></label>
        """
    }

    /// JSON, pretty-printed, in a collapsible block (open unless it is long).
    public static func json(_ value: JSONValue?, summary: String) -> HTML {
        guard let value else { return "<p class=\"empty\">no \(summary.lowercased())</p>" }
        let text = value.prettyText
        return "<details\(text.utf8.count < 4000 ? " open" : "")><summary>\(summary)</summary><pre class=\"json\">\(text)</pre></details>"
    }

    /// "Next page" for a cursor-paged list: `path` with the query `query` and `cursor` set.
    public static func nextPage(_ cursor: String?, query: [String: String], path: String) -> HTML {
        guard let cursor else { return .empty }
        var q = query
        q["cursor"] = cursor
        var c = URLComponents()
        c.queryItems = q.sorted { $0.key < $1.key }.filter { !$0.value.isEmpty }.map { URLQueryItem(name: $0.key, value: $0.value) }
        return "<nav class=\"pager\" aria-label=\"Pages\"><a href=\"\(path)?\(c.percentEncodedQuery ?? "")\" rel=\"next\">Older →</a></nav>"
    }

    /// A short notice for what a role may not do here.
    public static func note(_ text: String) -> HTML { "<p class=\"hint\">\(text)</p>" }
}
