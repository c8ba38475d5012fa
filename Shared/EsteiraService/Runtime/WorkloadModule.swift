import EsteiraCore
import Hummingbird

/// A workload module's entry point: what it brings to each kind of executable. The api
/// serves its routes, the processor (or the workload's own executable) runs its handlers,
/// and every executable knows its kinds and applies its migrations.
public protocol WorkloadModule {
    /// Its kinds, with their policies, and its migrations.
    static var workload: Workload { get }
    /// Its part of the api's OpenAPI document (nil: no routes).
    static var openAPI: OpenAPIPart? { get }
    /// Its entries in the api's index (`GET /`): name to path.
    static var links: [String: String] { get }
    /// Adds its routes to the api; each must be documented in ``openAPI``.
    /// - Throws: ``ConfigurationError`` for one of its ``apiSettings`` out of range.
    static func addRoutes(to routes: RouteRecorder, runtime: Runtime) throws
    /// The settings its routes read (for the api's `--help`).
    static var apiSettings: [Setting] { get }
    /// Adds its dashboard pages (and their navigation entries) to the api.
    static func addPages(to dashboard: DashboardRoutes, runtime: Runtime)
    /// The executable that runs its kinds (`processor` unless it has one of its own).
    static var executable: String { get }
    /// The settings its handlers read (for that executable's `--help`).
    static var settings: [Setting] { get }
    /// The handlers of its kinds, by handler name, for ``executable``.
    /// - Throws: ``ConfigurationError`` for a setting out of range.
    static func handlers(runtime: Runtime) throws -> [String: any JobHandler]
    /// Adds the routes the ingestor serves for it: what outside services post in (webhooks),
    /// without bearer tokens; each route checks its sender itself (a signature).
    static func addIntakeRoutes(to router: Router<BasicRequestContext>, runtime: Runtime)
    /// Adds the services the ingestor runs for it: what it fetches itself (mailboxes).
    /// - Throws: ``ConfigurationError`` for one of its ``intakeSettings`` out of range.
    static func addIntakeServices(to runtime: Runtime) throws
    /// The settings its intake routes and services read (for the ingestor's `--help`).
    static var intakeSettings: [Setting] { get }
}

extension WorkloadModule {
    public static var openAPI: OpenAPIPart? { nil }
    public static var links: [String: String] { [:] }
    public static func addRoutes(to routes: RouteRecorder, runtime: Runtime) throws {}
    public static var apiSettings: [Setting] { [] }
    public static func addPages(to dashboard: DashboardRoutes, runtime: Runtime) {}
    public static var executable: String { "processor" }
    public static var settings: [Setting] { [] }
    public static func handlers(runtime: Runtime) throws -> [String: any JobHandler] { [:] }
    public static func addIntakeRoutes(to router: Router<BasicRequestContext>, runtime: Runtime) {}
    public static func addIntakeServices(to runtime: Runtime) throws {}
    public static var intakeSettings: [Setting] { [] }
}

/// What an executable tells the runtime about itself.
public struct ExecutableIdentity: Sendable {
    /// `api`, `processor`, `scheduler`, ...: in logs, metrics, connection names.
    public var name: String
    /// Its HTTP port when `ESTEIRA_HTTP_PORT` is not set.
    public var defaultPort: Int
    /// Every workload of the deployment: their kinds make one catalog for all executables
    /// (the same kinds and queues everywhere), and their migrations are applied by any
    /// executable's `migrate`.
    public var workloads: [any WorkloadModule.Type]

    public init(name: String, defaultPort: Int, workloads: [any WorkloadModule.Type]) {
        self.name = name
        self.defaultPort = defaultPort
        self.workloads = workloads
    }
}

extension ExecutableIdentity {
    /// The settings of the workloads whose kinds this executable runs, each once (for `--help`).
    public var workloadSettings: [Setting] {
        var seen = Set<String>()
        return workloads.filter { $0.executable == name }.flatMap { $0.settings }.filter { seen.insert($0.name).inserted }
    }
}

/// An executable's `@main` type: gives the runtime its identity (and so `migrate`).
public protocol EsteiraExecutable {
    static var identity: ExecutableIdentity { get }
}
