import EsteiraCore
import EsteiraService
import Foundation
import HTTPClient

/// Email support: the stores' mailboxes read over IMAP by the `ingestor` (each message
/// stored once, with its `email.process` job in the same transaction), and each message
/// answered by the processor: validated, checked for spam, classified, its order looked up
/// in the store's shop, replied to over the store's SMTP server, one conversation at a time,
/// the store's credit taken once per reply sent.
public enum Email: WorkloadModule {
    public static let workload: Workload = {
        // Retries wait 2, 4, 8, 16, 32 minutes, then the job is dead.
        var process = KindPolicy()
        process.maxAttempts = 6
        process.backoffBase = 120
        process.backoffFactor = 2
        process.backoffCap = 1920
        process.timeout = 120
        process.heartbeatTimeout = 120
        var kind = KindCatalog.Kind(name: EmailKinds.process, policy: process, isInternal: true)
        // One conversation at a time, across every processor.
        kind.limit = KindCatalog.ConcurrencyLimit(keyPath: "conversation", perKey: 1)
        return Workload(name: "email", kinds: [kind],
                        // This workload's migrations take 0500-0599.
                        migrations: [try! Migration(fileName: "0500_email.sql", bytes: PackageResources._500_email_sql)])
    }()

    public static var openAPI: OpenAPIPart? {
        OpenAPIPart(name: workload.name, json: PackageResources.email_openapi_json)
    }

    public static var links: [String: String] { ["email_stores": "/v1/email-stores"] }

    static let shopifySetting = Setting("ESTEIRA_EMAIL_SHOPIFY_URL", "Shopify's base URL for order lookups, {shop} for the store's shop domain (default https://{shop}).")
    static let shopRateSetting = Setting("ESTEIRA_EMAIL_SHOPIFY_RATE", "Order lookups a second to one shop, and the burst, as rate/burst, shared by every processor (default 2/40: Shopify's leaky bucket).")
    static let rulesSetting = Setting("ESTEIRA_EMAIL_RULES_FILE",
                                      "A JSON file with the spam rules (\"spam\": phrases, phraseScore, maxLinks, linkScore, shoutingSubjectScore, missingHeaderScore, upstreamVerdictScore, threshold) and reply templates per class (\"templates\": {\"order_status\": ..., \"refund\": ..., \"exchange\": ..., \"other\": ...}); either may be left out (default: the built-in rules and Portuguese templates).")
    static let breakerSetting = Setting("ESTEIRA_EMAIL_BREAKER",
                                        "The circuit breakers of each IMAP server, SMTP server and shop: failures/window/cool-down, e.g. 5/60/30 (the default): that many failures within the window open it, and a probe goes through after the cool-down.")
    static let llmURLSetting = Setting("ESTEIRA_EMAIL_LLM_URL", "An OpenAI-compatible chat completions URL that classifies messages (e.g. https://api.openai.com/v1/chat/completions); unset: the rule classifier alone. The rules classify whenever it fails or its breaker (llm:<host>) is open.")
    static let llmKeySetting = Setting("ESTEIRA_EMAIL_LLM_KEY", "The LLM endpoint's key, sent as a bearer token (default none).")
    static let llmModelSetting = Setting("ESTEIRA_EMAIL_LLM_MODEL", "The model named in each request (default gpt-4o-mini).")
    static let mailTimeoutSetting = Setting("ESTEIRA_EMAIL_MAIL_TIMEOUT", "Seconds one IMAP or SMTP command may take, 1-300 (default 30).")
    static let intervalSetting = Setting("ESTEIRA_INGESTOR_MAIL_INTERVAL", "Seconds between rounds of one store's mailbox, 0.1-86400 (default 30).")
    static let storesSetting = Setting("ESTEIRA_INGESTOR_MAIL_STORES", "Stores one ingestor reads at the same time, 1-100 (default 10).")
    static let perRoundSetting = Setting("ESTEIRA_INGESTOR_MAIL_BATCH", "New messages taken from one store per round, 1-1000 (default 50).")

    public static var settings: [Setting] {
        [shopifySetting, shopRateSetting, rulesSetting, llmURLSetting, llmKeySetting, llmModelSetting, breakerSetting, mailTimeoutSetting, .httpAllow]
    }
    public static var intakeSettings: [Setting] { [intervalSetting, storesSetting, perRoundSetting, breakerSetting, mailTimeoutSetting, .httpAllow] }

    public static func addRoutes(to routes: RouteRecorder, runtime: Runtime) throws {
        EmailController(pool: runtime.pool).addRoutes(to: routes)
    }

    /// Mail connections with the outbound policy: the stores' servers are chosen by their
    /// owners, so only public addresses and those of `ESTEIRA_HTTP_ALLOW` are reached.
    public static func addPages(to dashboard: DashboardRoutes, runtime: Runtime) {
        EmailPage(pool: runtime.pool).addPages(to: dashboard)
    }

    /// `keep`: idle connections kept for the next caller (0: a new login every time).
    static func mailConnections(_ runtime: Runtime, keep: Int) throws -> MailConnections {
        let timeout = try runtime.settings.double(mailTimeoutSetting.name, default: 30, range: 1...300)
        var configuration = HTTPClient.Configuration(timeout: .milliseconds(Int(timeout * 1000)), connectTimeout: .seconds(min(10, Int(timeout.rounded(.up)))))
        configuration.policy = try OutboundPolicy.publicOnly(allowing: runtime.settings.list(Setting.httpAllow.name))
        return MailConnections(configuration: configuration, keep: keep)
    }

    static func breakers(_ runtime: Runtime) throws -> ServiceBreakers {
        ServiceBreakers(pool: runtime.pool, policy: try ServiceBreakers.policy(breakerSetting, runtime.settings.string(breakerSetting.name)))
    }

    public static func handlers(runtime: Runtime) throws -> [String: any JobHandler] {
        let s = runtime.settings
        var spam = SpamRules.standard, templates = ReplyTemplates.standard
        if let path = s.string(rulesSetting.name), !path.isEmpty {
            (spam, templates) = try rules(path)
        }
        var shopConfiguration = HTTPClient.Configuration(timeout: .seconds(20), connectTimeout: .seconds(10), poolSize: 64)
        shopConfiguration.maxResponseBytes = 4 << 20
        let shop = ShopOrders(http: HTTPClient(configuration: shopConfiguration),
                              baseURL: s.string(shopifySetting.name).flatMap { $0.isEmpty ? nil : $0 } ?? "https://{shop}")
        var llm: LLMClassifier?
        if let url = s.string(llmURLSetting.name), !url.isEmpty {
            guard let parsed = URL(string: url), ["http", "https"].contains(parsed.scheme?.lowercased() ?? ""), parsed.host != nil else {
                throw ConfigurationError(variable: llmURLSetting.name, value: url, expected: "an http or https URL")
            }
            llm = LLMClassifier(http: HTTPClient(configuration: .init(timeout: .seconds(20), connectTimeout: .seconds(5), poolSize: 16)), url: url,
                                key: s.string(llmKeySetting.name).flatMap { $0.isEmpty ? nil : $0 },
                                model: s.string(llmModelSetting.name).flatMap { $0.isEmpty ? nil : $0 } ?? "gpt-4o-mini")
        }
        return [EmailKinds.process: EmailProcessHandler(pool: runtime.pool, mail: try mailConnections(runtime, keep: 64), shop: shop,
                                                        breakers: try breakers(runtime), spam: spam, templates: templates, llm: llm,
                                                        shopLimit: try .parse(shopRateSetting, s.string(shopRateSetting.name),
                                                                              default: KindCatalog.RateLimit(rate: 2, burst: 40)),
                                                        logger: runtime.logger)]
    }

    public static func addIntakeServices(to runtime: Runtime) throws {
        let s = runtime.settings
        var settings = MailIngest.Settings()
        settings.interval = try s.double(intervalSetting.name, default: settings.interval, range: 0.1...86_400)
        settings.storesAtOnce = try s.integer(storesSetting.name, default: settings.storesAtOnce, range: 1...100)
        settings.messagesPerRound = try s.integer(perRoundSetting.name, default: settings.messagesPerRound, range: 1...1000)
        // A new IMAP session every round: a session that has the mailbox selected may answer
        // STATUS from what it saw last (RFC 3501 6.3.10), missing new mail.
        runtime.add(MailIngest(pool: runtime.pool, enqueuer: runtime.enqueuer, mail: try mailConnections(runtime, keep: 0),
                               breakers: try breakers(runtime), settings: settings, logger: runtime.logger))
    }

    /// The spam rules and templates of the file at `path`, each the built-in one when left out.
    static func rules(_ path: String) throws -> (SpamRules, ReplyTemplates) {
        struct File: Decodable {
            var spam: SpamRules?
            var templates: [String: String]?
        }
        let bad = { (why: String) in ConfigurationError(variable: rulesSetting.name, value: path, expected: why) }
        guard let data = FileManager.default.contents(atPath: path) else { throw bad("a readable JSON file") }
        let file: File
        do { file = try JSONDecoder().decode(File.self, from: data) } catch { throw bad("JSON with \"spam\" and \"templates\" as documented") }
        var templates = ReplyTemplates.standard
        for (name, text) in file.templates ?? [:] {
            guard MailClass(rawValue: name) != nil else { throw bad("templates named by class: \(MailClass.allCases.map(\.rawValue).joined(separator: ", "))") }
            templates.templates[name] = text
        }
        return (file.spam ?? .standard, templates)
    }
}
