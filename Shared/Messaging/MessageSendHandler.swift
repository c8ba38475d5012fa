import EsteiraCore
import Foundation
import Logging
import Metrics
import Postgres

/// `envio_mensagem {contato_id, conteudo, instance_id, user_id?, campanha_id?}`: sends one
/// message through the owner's provider instance, within the instance's rate limit (flow
/// control limiter `provider:<instance id>`), and records the provider's message id and
/// `enviada`. The job's message row (made here, or by its campaign's fan-out) is keyed by
/// the job's id, and the provider call carries the message's id as its idempotency key: a
/// redelivered job finds the message sent and does nothing, and one that died after the
/// call but before the record is answered by the provider with the same message.
struct MessageSendHandler: JobHandler {
    let pool: PostgresPool
    let provider: ProviderClient
    let logger: Logger
    /// This process's tokens of the instances' limiters.
    let tokens = TokenBlocks()
    /// Instances (5 s) and campaigns' cancellation (half a second), for campaign sends.
    let instances = ShortLivedCache<UUID, SendingInstance?>(lifetime: .seconds(5))
    let campaigns = ShortLivedCache<UUID, Bool>(lifetime: .milliseconds(500))
    let metrics = SendMetrics()

    init(pool: PostgresPool, provider: ProviderClient, logger: Logger) {
        self.pool = pool
        self.provider = provider
        self.logger = logger
    }
    /// Throttling answers that ask for longer than this end the attempt (a retry later)
    /// instead of holding the processor's place.
    var longestWait: Double = 5

    /// The message to send: a campaign's send carries its message's id and number, and
    /// reads only its instance and whether its campaign was cancelled, each kept a moment for
    /// the sends that follow (a redelivered one is answered by the provider with the message
    /// it sent, and its record changes nothing); any other send reads (or makes) its message.
    private func prepare(_ request: MessageRequest) async throws -> PreparedSend {
        guard let id = request.message, let phone = request.phone, let campaign = request.campaign else {
            return try await pool.withConnection { try MessagingStore.prepareSend(request, on: $0) }
        }
        let instance = try await instances.value(request.instance) { [pool] in
            try await pool.withConnection { try MessagingStore.sendingInstance(request.instance, owner: request.owner, on: $0) }
        }
        guard let instance else { throw JobError.permanent("instance \(request.instance.uuidString.lowercased()) is not the job owner's") }
        let cancelled = try await campaigns.value(campaign) { [pool] in
            try await pool.withConnection { try MessagingStore.campaignCancelled(campaign, owner: request.owner, on: $0) }
        }
        return PreparedSend(id: id, status: .pendente, text: request.text, phone: phone, baseURL: instance.baseURL, token: instance.token,
                            rate: instance.rate, burst: instance.burst, campaignCancelled: cancelled)
    }

    func run(_ job: JobContext) async throws -> JSONValue? {
        let request = try MessageRequest(job)
        let message = try await metrics.prepare.timing { try await prepare(request) }
        if message.campaignCancelled, message.status == .pendente {
            try await pool.withConnection { try MessagingStore.markCancelled(message.id, on: $0) }
            return .object(["mensagem_id": .string(message.id.uuidString.lowercased()), "status": .string(MessageStatus.cancelada.rawValue)])
        }
        guard message.status == .pendente else {
            // Sent (or ended) by an earlier delivery of this job.
            return .object(["mensagem_id": .string(message.id.uuidString.lowercased()), "status": .string(message.status.rawValue)])
        }
        return try await job.recordingFinalFailure({
            let limiter = "provider:\(request.instance.uuidString.lowercased())"
            let limit = KindCatalog.RateLimit(rate: message.rate, burst: message.burst)
            let send = ProviderClient.Send(baseURL: message.baseURL, token: message.token, to: message.phone, text: message.text,
                                           idempotencyKey: message.id.uuidString.lowercased())
            var providerID: String?
            while providerID == nil {
                let before = ContinuousClock.now
                try await metrics.token.timing { try await tokens.take(limiter, limit: limit, pool: pool) }
                if ContinuousClock.now - before > .milliseconds(100) {
                    // Its campaign may have been cancelled while it waited.
                    if let campaign = request.campaign,
                       try await pool.withConnection({ try MessagingStore.cancelIfCampaignCancelled(message.id, campaign: campaign, on: $0) }) {
                        return .object(["mensagem_id": .string(message.id.uuidString.lowercased()), "status": .string(MessageStatus.cancelada.rawValue)])
                    }
                }
                do {
                    providerID = try await metrics.provider.timing { try await provider.send(send) }
                } catch let throttled as ProviderClient.Throttled {
                    metrics.throttled.increment()
                    tokens.drop(limiter)
                    try await pool.withConnection { try RateLimiters.pause(limiter, for: throttled.seconds, on: $0) }
                    if throttled.seconds > longestWait {
                        throw JobError.throttled("the provider answered \(throttled.status)", retryAfter: throttled.seconds)
                    }
                }
            }
            let id = providerID!
            // Recorded with the job's outcome, in its transaction.
            try job.writeWithOutcome(SentMessage(id: message.id, owner: request.owner, providerID: id))
            metrics.sent.increment()
            return .object(["mensagem_id": .string(message.id.uuidString.lowercased()), "provider_message_id": .string(id)])
        }) { error in
            metrics.failed.increment()
            do {
                try await pool.withConnection { try MessagingStore.markFailed(message.id, error: error, on: $0) }
            } catch {
                logger.warning("could not mark a message failed", metadata: ["mensagem": "\(message.id)", "error": "\(error)"])
            }
        }
    }
}

/// A send's metrics, made once per handler: `esteira_messaging_send_step_seconds{step}`,
/// `esteira_messaging_sends_total{outcome}` and `esteira_messaging_throttled_total`.
struct SendMetrics: Sendable {
    let prepare = Timer.step(Self.label, "prepare"), token = Timer.step(Self.label, "token"), provider = Timer.step(Self.label, "provider")
    let sent = Counter(label: "esteira_messaging_sends_total", dimensions: [("outcome", "sent")])
    let failed = Counter(label: "esteira_messaging_sends_total", dimensions: [("outcome", "failed")])
    let throttled = Counter(label: "esteira_messaging_throttled_total")

    private static let label = "esteira_messaging_send_step_seconds"
}

/// An `envio_mensagem` payload, checked.
struct MessageRequest: Sendable {
    var job: UUID
    var owner: UUID
    var contact: UUID
    var instance: UUID
    var text: String
    var campaign: UUID?
    /// A campaign's send: its message (made by the fan-out) and number.
    var message: UUID?
    var phone: String?

    init(_ job: JobContext) throws {
        guard let owner = job.ownerID else {
            throw JobError.permanent("envio_mensagem needs an owner: enqueue it with a user's token")
        }
        let p = job.payload
        func id(_ name: String, required: Bool = true) throws -> UUID? {
            guard let value = p[name], value != .null else {
                if required { throw JobError.permanent("the payload needs \(name) (a UUID)") }
                return nil
            }
            guard let text = value.stringValue, let id = UUID(text: text) else { throw JobError.permanent("\(name) must be a UUID") }
            return id
        }
        if let user = try id("user_id", required: false), user != owner {
            throw JobError.permanent("user_id is not the job's owner: a job sends only its owner's messages")
        }
        guard let text = p["conteudo"]?.stringValue, !text.isEmpty, text.count <= 4096 else {
            throw JobError.permanent("conteudo must be text of 1 to 4096 characters")
        }
        self.job = job.id
        self.owner = owner
        contact = try id("contato_id")!
        instance = try id("instance_id")!
        self.text = text
        campaign = try id("campanha_id", required: false)
        message = try id("mensagem_id", required: false)
        phone = p["telefone"]?.stringValue
    }
}

/// A message the provider took, as its id there: written with its job's outcome.
struct SentMessage: OutcomeWrite {
    var id: UUID
    var owner: UUID
    var providerID: String

    static func write(_ all: [SentMessage], on connection: PostgresConnection) throws {
        try MessagingStore.markSent(all, on: connection)
    }
}

/// What a send needs of its instance.
struct SendingInstance: Sendable {
    var baseURL: String
    var token: String
    var rate: Double
    var burst: Int
}

/// Values kept for `lifetime`, then read again: what many concurrent sends would each read.
final class ShortLivedCache<Key: Hashable & Sendable, Value: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var entries: [Key: (value: Value, until: ContinuousClock.Instant)] = [:]
    let lifetime: Duration

    init(lifetime: Duration) { self.lifetime = lifetime }

    func value(_ key: Key, read: () async throws -> Value) async rethrows -> Value {
        let now = ContinuousClock.now
        if let hit = lock.withLock({ entries[key] }), hit.until > now { return hit.value }
        let value = try await read()
        lock.withLock {
            if entries.count > 10_000 { entries.removeAll() }
            entries[key] = (value, now + lifetime)
        }
        return value
    }
}

/// A message about to be sent, with what its send needs.
struct PreparedSend: Sendable {
    var id: UUID
    var status: MessageStatus
    var text: String
    var phone: String
    var baseURL: String
    var token: String
    var rate: Double
    var burst: Int
    /// Its campaign was cancelled: it is not sent.
    var campaignCancelled: Bool
}

extension MessagingStore {
    /// The message of `request`'s job: made now (`pendente`) unless its campaign or an earlier
    /// delivery made it, with its contact's number and its instance's address and token, both
    /// the owner's.
    /// - Throws: `JobError.permanent` when the contact or the instance is not the owner's.
    static func prepareSend(_ request: MessageRequest, on c: PostgresConnection) throws -> PreparedSend {
        let rows = try c.query(prepareSQL, [request.job, request.owner, request.contact, request.instance, request.text, request.campaign])
        guard let row = rows.first else {
            throw JobError.permanent("contact \(request.contact.uuidString.lowercased()) is not the job owner's")
        }
        guard let baseURL = try row.decode(String?.self, at: 4) else {
            throw JobError.permanent("instance \(request.instance.uuidString.lowercased()) is not the job owner's")
        }
        return PreparedSend(id: try row.decode(UUID.self, at: 0),
                            status: MessageStatus(rawValue: try row.decode(String.self, at: 1)) ?? .falha,
                            text: try row.decode(String.self, at: 2), phone: try row.decode(String.self, at: 3), baseURL: baseURL,
                            token: try row.decode(String.self, at: 5), rate: try row.decode(Double.self, at: 6),
                            burst: try row.decode(Int.self, at: 7), campaignCancelled: try row.decode(Bool?.self, at: 8) ?? false)
    }

    /// The message of job `$1` (owner `$2`), made for contact `$3` through instance `$4` with
    /// text `$5` (campaign `$6`) when it has none, with what its send needs.
    static let prepareSQL = """
        WITH made AS (
            INSERT INTO mensagens (id, owner_id, contato_id, instance_id, campanha_id, job_id, direcao, conteudo)
            SELECT gen_random_uuid(), $2, c.id, $4, $6, $1, 'saida', $5 FROM contatos c WHERE c.id = $3 AND c.owner_id = $2
            ON CONFLICT (job_id) DO NOTHING
            RETURNING id, status, conteudo, contato_id, instance_id, campanha_id
        ), m AS (
            SELECT * FROM made
            UNION ALL SELECT id, status, conteudo, contato_id, instance_id, campanha_id FROM mensagens WHERE job_id = $1 AND owner_id = $2
        )
        SELECT m.id, m.status, m.conteudo, c.telefone, i.base_url, i.token, i.rate_limit, i.burst,
               (SELECT k.cancelada_em IS NOT NULL FROM campanhas k WHERE k.id = m.campanha_id)
        FROM m JOIN contatos c ON c.id = m.contato_id LEFT JOIN instancias i ON i.id = m.instance_id AND i.owner_id = $2
        """

    /// The messages were taken by the provider, each as its provider id (one statement), in
    /// the transaction of their jobs' outcomes: a crash before its commit redelivers the job,
    /// whose send the provider answers with the same message, recorded then. A message marked
    /// `cancelada` meanwhile (its campaign cancelled, seen by another delivery of its job) is
    /// recorded `enviada` all the same: the provider has it.
    static func markSent(_ sent: [SentMessage], on c: PostgresConnection) throws {
        try c.queryPrepared(markSentSQL, [sent.map(\.id), sent.map(\.owner), sent.map(\.providerID)])
    }

    static let markSentSQL = """
        UPDATE mensagens m SET status = 'enviada', provider_message_id = t.provider_id, enviada_em = now(), updated_at = now(), erro = NULL
        FROM unnest($1::uuid[], $2::uuid[], $3::text[]) AS t(id, owner_id, provider_id)
        WHERE m.id = t.id AND m.owner_id = t.owner_id AND m.status IN ('pendente', 'cancelada')
        """

    static func sendingInstance(_ id: UUID, owner: UUID, on c: PostgresConnection) throws -> SendingInstance? {
        try c.query("SELECT base_url, token, rate_limit, burst FROM instancias WHERE id = $1 AND owner_id = $2", [id, owner]).first.map {
            SendingInstance(baseURL: try $0.decode(String.self, at: 0), token: try $0.decode(String.self, at: 1),
                            rate: try $0.decode(Double.self, at: 2), burst: try $0.decode(Int.self, at: 3))
        }
    }

    /// Whether `owner`'s campaign `id` was cancelled (or is not `owner`'s: nothing is sent for it).
    static func campaignCancelled(_ id: UUID, owner: UUID, on c: PostgresConnection) throws -> Bool {
        try c.query("SELECT cancelada_em IS NOT NULL FROM campanhas WHERE id = $1 AND owner_id = $2", [id, owner]).first?.decode(Bool.self, at: 0) ?? true
    }

    /// Message `id` is not sent: its campaign was cancelled.
    static func markCancelled(_ id: UUID, on c: PostgresConnection) throws {
        try c.execute("UPDATE mensagens SET status = 'cancelada', updated_at = now() WHERE id = $1 AND status = 'pendente'", [id])
    }

    /// Marks message `id` cancelled when `campaign` was cancelled; returns whether it was.
    static func cancelIfCampaignCancelled(_ id: UUID, campaign: UUID, on c: PostgresConnection) throws -> Bool {
        try c.execute("""
            UPDATE mensagens SET status = 'cancelada', updated_at = now() WHERE id = $1 AND status = 'pendente'
              AND EXISTS (SELECT 1 FROM campanhas WHERE id = $2 AND cancelada_em IS NOT NULL)
            """, [id, campaign]) == 1
    }

    /// Message `id` could not be sent, for good.
    static func markFailed(_ id: UUID, error: String, on c: PostgresConnection) throws {
        try c.execute("""
            UPDATE mensagens SET status = 'falha', erro = left($2, 2000), updated_at = now() WHERE id = $1 AND status = 'pendente'
            """, [id, error])
    }
}
