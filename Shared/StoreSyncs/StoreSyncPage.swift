import EsteiraCore
import EsteiraService
import Foundation
import Hummingbird
import Postgres

/// `/ui/store-syncs`: per store, the cache's freshness per data type and a "sync now" form;
/// the newest syncs with their states (live); the queue stats per status.
struct StoreSyncPage {
    let enqueuer: Enqueuer
    let pool: PostgresPool
    let freshness: [StoreDataType: Double]

    func addPages(to dashboard: DashboardRoutes) {
        dashboard.section("Store syncs", "/store-syncs")
        dashboard.page("/store-syncs") { request, context in
            let scope = context.scope
            let (stores, caches, syncs, stats) = try await pool.withConnection { c in
                let stores = try StoreSyncStore.stores(scope: scope, on: c)
                let caches = try stores.prefix(50).map { try StoreSyncStore.cacheSummary($0.id, on: c) }
                return (stores, caches, try StoreSyncStore.syncs(store: nil, status: nil, limit: 30, scope: scope, on: c),
                        try StoreSyncStore.stats(scope: scope, on: c))
            }
            let names = Dictionary(stores.map { ($0.id, $0.name) }, uniquingKeysWith: { a, _ in a })
            let cards: [HTML] = zip(stores.prefix(50), caches).map { store, cache in card(store, cache: cache, context: context) }
            let body: HTML = """
                <div id="store-cards" class="grid" data-region>\(cards.isEmpty ? "<p class=\"empty\">No stores yet (POST /v1/stores adds one).</p>" : HTML(cards))</div>
                <h2>Syncs</h2>
                <div id="store-syncs" data-region>\(syncTable(syncs, names: names))</div>
                <h2>Queue</h2>
                <div id="store-sync-stats" data-region>\(statsTable(stats))</div>
                """
            return dashboard.render(DashboardPage(title: "Store syncs", body: body, live: "kind=\(StoreSyncKinds.run)"), request, context)
        }
        dashboard.action("/store-syncs/{id}/sync") { request, context in
            let id = try context.pathID(of: "store")
            let form = try await DashboardRoutes.form(request)
            let (start, end) = try StoreSyncController.period(try form.string("period_start", maxLength: 10), try form.string("period_end", maxLength: 10))
            let outcome = try await StoreSyncController.submit(id, start: start, end: end, types: nil, priority: 0, force: form.has("force"),
                                                               context: context, enqueuer: enqueuer, pool: pool, freshness: freshness)
            let notice: String
            switch outcome {
            case .cached: notice = "Fresh in the cache: nothing to sync."
            case .sync(_, let joined, _): notice = joined ? "Joined the identical sync already under way." : "Sync queued."
            }
            return DashboardRoutes.redirect("/ui/store-syncs", notice: notice)
        }
    }

    private func card(_ store: Store, cache: [(type: String, start: String, end: String, syncedAt: Date, items: Int)], context: APIRequestContext) -> HTML {
        let id = store.id.uuidString.lowercased()
        let rows: [[HTML]] = cache.map { e in
            let fresh = StoreDataType(rawValue: e.type).map { -e.syncedAt.timeIntervalSinceNow <= freshness[$0] ?? 3600 } ?? false
            return ["\(e.type)", "\(e.start) → \(e.end)", HTML.time(e.syncedAt), HTML.badge(fresh ? "fresh" : "stale"), "\(HTML.number(e.items))"]
        }
        let today = String(ISO8601DateFormatter.string(from: Date(), timeZone: TimeZone(identifier: "UTC")!, formatOptions: [.withFullDate]))
        let monthAgo = String(ISO8601DateFormatter.string(from: Date().addingTimeInterval(-30 * 86_400), timeZone: TimeZone(identifier: "UTC")!,
                                                          formatOptions: [.withFullDate]))
        let fields: HTML = """
            \(HTML.input("period_start", label: "From", value: monthAgo, type: "date", required: true))
            \(HTML.input("period_end", label: "To", value: today, type: "date", required: true))
            <label><input type="checkbox" name="force" value="1"> skip the cache</label>
            """
        return """
            <article class="card store-card" data-store="\(id)">
            <h3>\(store.name) <small>\(store.shopifyDomain ?? "")</small></h3>
            \(HTML.table(["Data", "Period", "Synced", "", "Items"], rows, empty: "Nothing cached yet."))
            \(HTML.form("/ui/store-syncs/\(id)/sync", context: context, fields: fields, button: "Sync now", style: "filters"))
            </article>
            """
    }

    private func syncTable(_ syncs: [StoreSync], names: [UUID: String]) -> HTML {
        let rows: [[HTML]] = syncs.map { s in
            ["<span class=\"mono\" title=\"\(s.id)\">\(s.id.shortText)</span>", "\(names[s.storeID] ?? "?")",
             "\(s.periodStart) → \(s.periodEnd)", HTML.badge(s.status.rawValue), "\(s.pages)", "\(s.joined)", HTML.time(s.createdAt),
             s.jobID.map { "<a href=\"/ui/jobs/\($0)\">job</a>" as HTML } ?? .empty, s.error.map { "<small>\($0)</small>" as HTML } ?? .empty]
        }
        return HTML.table(["Id", "Store", "Period", "Status", "Pages", "Joined", "Created", "", "Error"], rows,
                          empty: "No syncs yet.", id: "store-syncs-table")
    }

    private func statsTable(_ stats: [StoreSyncStore.StatusStats]) -> HTML {
        let rows: [[HTML]] = stats.map { s in
            [HTML.badge(s.status), "\(HTML.number(s.count))", "\(HTML.duration(s.averageWaitSeconds))", "\(HTML.duration(s.averageRunSeconds))"]
        }
        return HTML.table(["Status", "Syncs", "Average wait", "Average run"], rows, empty: "No syncs yet.")
    }
}
