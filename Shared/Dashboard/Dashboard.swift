import EsteiraCore
import EsteiraService
import Foundation
import Hummingbird
import Postgres

/// The web dashboard the api serves under `/ui` (and `/` for browsers): server-rendered
/// pages over the same stores as the api, for the signed-in principal's scope (admins see
/// everything, users their own jobs and schedules). Workloads add their own pages.
public struct Dashboard: Sendable {
    /// What the dashboard needs beyond the api's stores.
    public struct Settings: Sendable {
        /// RabbitMQ's management API (`http://user:password@host:15672`); queue depths and
        /// consumers come from it, from PostgreSQL when it does not answer.
        public var managementURL: String?
        /// The virtual host of the work queues.
        public var virtualHost = "/"

        public init(managementURL: String? = nil, virtualHost: String = "/") {
            self.managementURL = managementURL
            self.virtualHost = virtualHost
        }

        /// The settings for a broker at `amqpURL`: the management API at `managementURL`
        /// (default: the broker's host on port 15672; of a cluster's list of URLs, the first
        /// node's), with the broker's user and password unless it names its own; the broker
        /// URL's virtual host.
        public init(managementURL configured: String?, amqpURL: String) {
            let first = amqpURL.split(separator: ",").first.map { $0.trimmingCharacters(in: .whitespaces) } ?? amqpURL
            let broker = URLComponents(string: first)
            let vhost = String((broker?.path ?? "").dropFirst()).removingPercentEncoding ?? ""
            self.virtualHost = vhost.isEmpty ? "/" : vhost
            var m: URLComponents
            if let configured {
                guard let c = URLComponents(string: configured) else { managementURL = configured; return }
                m = c
            } else {
                guard let host = broker?.host else { managementURL = nil; return }
                m = URLComponents()
                m.scheme = "http"
                m.host = host
                m.port = 15672
            }
            if m.percentEncodedUser == nil {
                m.percentEncodedUser = broker?.percentEncodedUser ?? "guest"
                m.percentEncodedPassword = broker?.percentEncodedPassword ?? "guest"
            }
            managementURL = m.string
        }
    }

    let routes: DashboardRoutes
    let pool: PostgresPool
    let catalog: KindCatalog
    let enqueuer: Enqueuer
    let principals: PrincipalStore
    let counts: StatusCounts
    let broker: BrokerQueues

    /// Adds every page to `router`, then each workload's (`runtime.workloads`).
    @discardableResult
    public static func addRoutes(to router: Router<APIRequestContext>, runtime: Runtime, enqueuer: Enqueuer, principals: PrincipalStore,
                                 stream: JobEventStream, limits: PrincipalLimits?, settings: Settings) -> DashboardRoutes {
        let feed = stream.feed
        let routes = DashboardRoutes(router: router, sessions: DashboardSessions(pool: runtime.pool), principals: principals,
                                     limits: limits, liveMark: { await feed.freshMark() })
        let counts = StatusCounts(pool: runtime.pool)
        runtime.add(StatusCountsService(counts: counts, logger: runtime.logger))
        let dashboard = Dashboard(routes: routes, pool: runtime.pool, catalog: runtime.catalog, enqueuer: enqueuer,
                                  principals: principals, counts: counts,
                                  broker: BrokerQueues(managementURL: settings.managementURL, virtualHost: settings.virtualHost))
        routes.section("Overview", "/")
        routes.section("Queues", "/queues", adminOnly: true)
        routes.section("Jobs", "/jobs")
        routes.section("Dead letters", "/dead-letters")
        routes.section("Schedules", "/schedules")
        dashboard.addOverview()
        dashboard.addQueues()
        dashboard.addJobs()
        dashboard.addDeadLetters()
        dashboard.addSchedules()
        for workload in runtime.workloads { workload.addPages(to: routes, runtime: runtime) }
        routes.section("Tokens", "/tokens", adminOnly: true)
        dashboard.addTokens()
        routes.page("/events") { request, context in
            // The live pages' stream: the caller's own jobs' events (every job's for admins).
            let q = QueryInput(pageQuery: request)
            let principal = context.principal!
            return try await stream.response(request, principal: principal, kind: try q.string("kind", maxLength: 63), jobID: try q.uuid("job_id"),
                                             ownerID: principal.role == .admin ? nil : principal.id, logger: context.logger)
        }
        return routes
    }

    func render(_ page: DashboardPage, _ request: Request, _ context: APIRequestContext) -> Response {
        routes.render(page, request, context)
    }
}
