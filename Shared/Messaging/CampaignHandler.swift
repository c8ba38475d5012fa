import EsteiraCore
import Foundation
import Logging
import Postgres

/// `envio_campanha {campanha_id, contatos_ids[] | todos_contatos, mensagem, instance_id, user_id?}`:
/// fans the campaign out (once) into one `envio_mensagem` per contact, as a batch: the
/// messages (`pendente`) and the jobs are written in chunks of ``chunk``, a transaction and
/// two statements each, and each chunk's jobs are published as it commits, so the first
/// sends start while the rest are written; the next chunk waits while more than two wait in
/// the sends' queue. The batch is held open until the last chunk is written, and a cancel
/// stops the fan-out at the next chunk. Then it follows the batch, writing the campaign's
/// counters and percent twice a second while they change (up to every 2 s for a campaign so
/// large that counting takes over 50 ms), and ends the campaign when the batch ends:
/// `concluida`, `concluida_com_falhas`, or `cancelada`. A redelivered job goes on with the
/// contacts that have no message yet, or only follows.
struct CampaignHandler: JobHandler {
    let pool: PostgresPool
    let enqueuer: Enqueuer
    let logger: Logger
    /// Messages and jobs written to a transaction: a campaign's first sends start once the
    /// first chunk has committed.
    let chunk: Int
    var tick: Duration = .milliseconds(500)

    func run(_ job: JobContext) async throws -> JSONValue? {
        guard let owner = job.ownerID else { throw JobError.permanent("envio_campanha needs an owner: enqueue it with a user's token") }
        let p = job.payload
        guard let text = p["campanha_id"]?.stringValue, let id = UUID(uuidString: text) else {
            throw JobError.permanent("the payload needs campanha_id (a UUID)")
        }
        if let user = p["user_id"]?.stringValue, UUID(uuidString: user) != owner {
            throw JobError.permanent("user_id is not the job's owner: a campaign sends only its owner's messages")
        }
        guard let campaign = try await pool.withConnection({ try MessagingStore.campaignForRun(id, owner: owner, on: $0) }) else {
            throw JobError.permanent("campaign \(text) is not the job owner's")
        }
        guard let status = CampaignStatus(rawValue: campaign.status), status.isActive else {
            return .object(["status": .string(campaign.status)])
        }
        var batch = campaign.batch
        if batch == nil || !campaign.queued {
            batch = try await fanOut(campaign, owner: owner, payload: p, job: job)
        }
        guard let batch else { return .object(["status": .string(CampaignStatus.concluida.rawValue), "total": .number(0)]) }
        // Follow the batch.
        while true {
            let (progress, next) = try await count(id, batch: batch, job: job)
            if let final = progress.finalStatus {
                logger.info("campaign ended", metadata: ["campanha": "\(id)", "status": "\(final)", "sent": "\(progress.sent)",
                                                         "failed": "\(progress.failed)"])
                return .object(["status": .string(final), "total": .number(Double(progress.total)),
                                "enviadas": .number(Double(progress.sent)), "falhas": .number(Double(progress.failed)),
                                "canceladas": .number(Double(progress.cancelled))])
            }
            try await Task.sleep(for: next)
        }
    }

    /// Counts campaign `id`'s messages into its row (and ends it once `batch` has ended), and
    /// reports them on the job. Returns them, and how long to wait before the next count:
    /// counting a large campaign's messages takes a while (about 100 ms for 100,000 on our
    /// machine), so at most a tenth of the time goes to it, but the counts are never more
    /// than 2 s old.
    private func count(_ id: UUID, batch: UUID, job: JobContext) async throws -> (progress: CampaignProgress, next: Duration) {
        let began = ContinuousClock.now
        let progress = try await pool.withConnection { try MessagingStore.followCampaign(id, batch: batch, on: $0) }
        let counting = ContinuousClock.now - began
        try await job.report(JobProgress(message: "\(progress.done) of \(progress.total) messages",
                                         detail: ["campanha_id": .string(id.uuidString.lowercased()),
                                                  "enviadas": .number(Double(progress.sent)), "falhas": .number(Double(progress.failed))]))
        return (progress, max(tick, min(counting * 10, .seconds(2))))
    }

    /// Writes the campaign's messages and send jobs (a held batch) in chunks, each published
    /// as it commits, then lets go of the batch; returns the batch (nil: no contacts, the
    /// campaign is complete). A campaign begun by an earlier delivery goes on with its
    /// contacts that have no message yet.
    private func fanOut(_ campaign: CampaignRun, owner: UUID, payload p: JSONValue, job: JobContext) async throws -> UUID? {
        let listed: [UUID]?
        if case .bool(true)? = p["todos_contatos"] {
            listed = nil
        } else {
            guard case .array(let list)? = p["contatos_ids"] else {
                throw JobError.permanent("the payload needs contatos_ids (an array of contact ids) or todos_contatos: true")
            }
            let ids = list.compactMap { $0.stringValue.flatMap(UUID.init(uuidString:)) }
            guard ids.count == list.count else { throw JobError.permanent("contatos_ids must hold contact ids (UUIDs)") }
            listed = ids
        }
        let id = campaign.id
        let contacts = try await pool.withConnection {
            try MessagingStore.contactPhones(owner: owner, ids: listed, notIn: campaign.batch == nil ? nil : id, on: $0)
        }
        if let listed, campaign.batch == nil, contacts.count < Set(listed).count {
            logger.warning("campaign contacts not the owner's were left out", metadata: ["count": "\(Set(listed).count - contacts.count)"])
        }
        let batches = Batches(store: enqueuer.store)
        let batch: UUID
        if let begun = campaign.batch {
            batch = begun
        } else {
            let new = UUID(), count = contacts.count
            batch = new
            try await pool.transaction { c in
                try MessagingStore.beginCampaign(id, batch: count == 0 ? nil : new, total: count, on: c)
                if count > 0 {
                    try batches.create(new, owner: owner, description: "campaign \(id.uuidString.lowercased())", onSuccess: nil,
                                       onComplete: nil, jobs: count, held: true, on: c)
                }
            }
            if count == 0 { return nil }
        }
        let start = ContinuousClock.now
        // The same payload for every send but the contact and its message: the text is
        // encoded once. Each send carries its message's id and number, so it needs no read.
        let common = "\"conteudo\":\(JSONValue.string(campaign.message).jsonText),\"instance_id\":\"\(campaign.instance.uuidString.lowercased())\","
            + "\"user_id\":\"\(owner.uuidString.lowercased())\",\"campanha_id\":\"\(id.uuidString.lowercased())\""
        let messages = contacts.map { _ in UUID.timeOrdered() }
        let jobs = zip(contacts, messages).map { contact, message in
            NewJob(kind: MessagingKinds.send, payload: "{\"contato_id\":\"\(contact.id.uuidString.lowercased())\",\"mensagem_id\":\"\(message.uuidString.lowercased())\","
                   + "\"telefone\":\(JSONValue.string(contact.phone).jsonText),\(common)}", ownerID: owner, batchID: batch)
        }
        let queuedBefore = campaign.queuedCount, total = queuedBefore + contacts.count
        let written = try await enqueuer.enqueueInChunks(jobs, size: chunk, before: { c, range in
            try MessagingStore.queueChunk(id, from: queuedBefore + range.lowerBound, count: range.count, on: c)
        }, afterward: { c, range, outcomes in
            try MessagingStore.insertCampaignMessages(campaign, owner: owner, ids: Array(messages[range]), contacts: contacts[range].map(\.id),
                                                      jobs: outcomes.map(\.id), on: c)
        }, committed: { done in
            try await job.report(JobProgress(message: "\(queuedBefore + done) of \(total) messages queued",
                                             detail: ["campanha_id": .string(id.uuidString.lowercased())]))
            // The broker holds a few chunks of sends, not a whole campaign: the next chunk
            // waits while more than two wait in the sends' queue, and the counts follow meanwhile.
            guard done < contacts.count else { return }
            var nextCount = ContinuousClock.now + tick
            while let waiting = await enqueuer.backlog(of: MessagingKinds.send), waiting > 2 * chunk {
                if ContinuousClock.now >= nextCount { nextCount = ContinuousClock.now + (try await count(id, batch: batch, job: job)).next }
                try await Task.sleep(for: .milliseconds(100))
            }
        })
        let settle = try await pool.transaction { c in
            try MessagingStore.endQueueing(id, on: c) && batches.release(batch, on: c)
        }
        if settle { await batches.settleAndPublish(batch, pool: pool, enqueuer: enqueuer) }
        logger.info("campaign fanned out", metadata: ["campanha": "\(id)", "messages": "\(queuedBefore + written.count)",
                                                      "seconds": "\((ContinuousClock.now - start).components.seconds)"])
        return batch
    }
}

/// What a campaign's job reads of it.
struct CampaignRun: Sendable {
    var id: UUID
    var status: String
    var instance: UUID
    var message: String
    var batch: UUID?
    /// Messages written so far, and whether the last of them is.
    var queuedCount: Int
    var queued: Bool
}

/// A campaign's counts, and its final status once its batch has ended.
struct CampaignProgress: Sendable {
    var total: Int
    var sent: Int
    var failed: Int
    var cancelled: Int
    var finalStatus: String?
    var done: Int { sent + failed + cancelled }
}

extension MessagingStore {
    static func campaignForRun(_ id: UUID, owner: UUID, on c: PostgresConnection) throws -> CampaignRun? {
        try c.query("""
            SELECT status, instance_id, mensagem, batch_id, enfileiradas, enfileirada_em IS NOT NULL FROM campanhas WHERE id = $1 AND owner_id = $2
            """, [id, owner]).first.map {
            CampaignRun(id: id, status: try $0.decode(String.self, at: 0), instance: try $0.decode(UUID.self, at: 1),
                        message: try $0.decode(String.self, at: 2), batch: try $0.decode(UUID?.self, at: 3),
                        queuedCount: try $0.decode(Int.self, at: 4), queued: try $0.decode(Bool.self, at: 5))
        }
    }

    /// `owner`'s contacts (`ids` of them, each once; nil: all) with their numbers; with
    /// `campaign`, only those that have no message in it yet.
    static func contactPhones(owner: UUID, ids: [UUID]?, notIn campaign: UUID? = nil, on c: PostgresConnection) throws -> [(id: UUID, phone: String)] {
        try c.query("""
            SELECT id, telefone FROM contatos k WHERE owner_id = $1 AND ($2::uuid[] IS NULL OR id = ANY($2))
              AND ($3::uuid IS NULL OR NOT EXISTS (SELECT 1 FROM mensagens m WHERE m.contato_id = k.id AND m.campanha_id = $3))
            ORDER BY id
            """, [owner, ids, campaign]).map { (try $0.decode(UUID.self, at: 0), try $0.decode(String.self, at: 1)) }
    }

    /// Claims the next chunk of campaign `id`'s fan-out: `count` messages after the `from`
    /// queued so far. False when the campaign was cancelled (the fan-out stops); throws
    /// when another delivery of its job queued messages meanwhile.
    static func queueChunk(_ id: UUID, from: Int, count: Int, on c: PostgresConnection) throws -> Bool {
        let rows = try c.query("""
            UPDATE campanhas SET enfileiradas = enfileiradas + $3, updated_at = now()
            WHERE id = $1 AND enfileiradas = $2 AND cancelada_em IS NULL RETURNING 1
            """, [id, from, count])
        if !rows.isEmpty { return true }
        let cancelled = try c.query("SELECT cancelada_em IS NOT NULL, enfileiradas FROM campanhas WHERE id = $1", [id]).first
        if try cancelled?.decode(Bool.self, at: 0) == true { return false }
        throw JobError.transient("campaign \(id.uuidString.lowercased()) has \(try cancelled?.decode(Int.self, at: 1) ?? -1) messages queued, "
                                 + "not \(from): another delivery of its job is fanning it out")
    }

    /// Campaign `id`'s messages are all written (or its cancel stopped the fan-out): its total
    /// is the messages it has. False when that was recorded before (by another delivery of
    /// its job): its batch was let go of then.
    static func endQueueing(_ id: UUID, on c: PostgresConnection) throws -> Bool {
        try c.execute("""
            UPDATE campanhas SET enfileirada_em = now(), total = enfileiradas, updated_at = now() WHERE id = $1 AND enfileirada_em IS NULL
            """, [id]) == 1
    }

    /// Marks campaign `id` sending with `batch` (nil and no messages: complete), under its row
    /// lock. When another delivery of its job began it (or it ended) meanwhile, throws a
    /// transient error: that delivery may still be writing its chunks, or have died doing so,
    /// and the next attempt reads the campaign again, then goes on with its fan-out or follows it.
    static func beginCampaign(_ id: UUID, batch: UUID?, total: Int, on c: PostgresConnection) throws {
        let row = try c.query("SELECT status, batch_id FROM campanhas WHERE id = $1 FOR UPDATE", [id])[0]
        guard try row.decode(String.self, at: 0) == CampaignStatus.pendente.rawValue, try row.decode(UUID?.self, at: 1) == nil else {
            throw JobError.transient("campaign \(id.uuidString.lowercased()) was begun by another delivery of its job meanwhile")
        }
        try c.execute("""
            UPDATE campanhas SET batch_id = $2, total = $3, started_at = now(), updated_at = now(),
                   status = CASE WHEN $2::uuid IS NULL THEN 'concluida' ELSE 'enviando' END,
                   progresso = CASE WHEN $2::uuid IS NULL THEN 100 ELSE 0 END,
                   finished_at = CASE WHEN $2::uuid IS NULL THEN now() END
            WHERE id = $1
            """, [id, batch, total])
    }

    /// The campaign's messages, one per contact, each keyed by its send job: one statement.
    static func insertCampaignMessages(_ campaign: CampaignRun, owner: UUID, ids: [UUID], contacts: [UUID], jobs: [UUID],
                                       on c: PostgresConnection) throws {
        guard !contacts.isEmpty else { return }
        try c.execute("""
            INSERT INTO mensagens (id, owner_id, contato_id, instance_id, campanha_id, job_id, direcao, conteudo)
            SELECT t.id, $1, t.contato, $2, $3, t.job, 'saida', $4 FROM unnest($5::uuid[], $6::uuid[], $7::uuid[]) AS t(id, contato, job)
            """, [owner, campaign.instance, campaign.id, campaign.message, ids, contacts, jobs])
    }

    /// Counts campaign `$1`'s messages into its row when they changed (or, `$2`, it ends);
    /// its total, the counts and, when written, its status.
    static let followSQL = """
            WITH m AS (
                SELECT (count(*) FILTER (WHERE status IN ('enviada', 'entregue', 'lida')))::int AS e,
                       (count(*) FILTER (WHERE status = 'falha'))::int AS f, (count(*) FILTER (WHERE status = 'cancelada'))::int AS x
                FROM mensagens WHERE campanha_id = $1
            ), u AS (
                UPDATE campanhas k SET enviadas = m.e, falhas = m.f, canceladas = m.x, updated_at = now(),
                       progresso = CASE WHEN k.total = 0 THEN 100 ELSE least(100, round((m.e + m.f + m.x) * 100.0 / k.total, 1)) END,
                       status = CASE WHEN NOT $2 THEN k.status
                                     WHEN k.cancelada_em IS NOT NULL THEN 'cancelada'
                                     WHEN m.f > 0 THEN 'concluida_com_falhas' ELSE 'concluida' END,
                       finished_at = CASE WHEN $2 THEN now() END
                FROM m WHERE k.id = $1 AND ($2 OR (k.enviadas, k.falhas, k.canceladas) IS DISTINCT FROM (m.e, m.f, m.x))
                RETURNING k.status
            )
            SELECT k.total, m.e, m.f, m.x, (SELECT status FROM u) FROM campanhas k, m WHERE k.id = $1
            """

    /// Counts campaign `id`'s messages into its row (written only when they changed: each
    /// write is a feed event); once `batch` has no unfinished job, ends the campaign: messages
    /// of cancelled sends become `cancelada`, those whose send ended without sending `falha`,
    /// and the status is set.
    static func followCampaign(_ id: UUID, batch: UUID, on c: PostgresConnection) throws -> CampaignProgress {
        let ended = try !Batches.hasUnfinishedJobs(batch, on: c)
        return try c.transaction { c in
            if ended {
                try markCancelledSends(campaign: id, on: c)
                try c.execute("""
                    UPDATE mensagens SET status = 'falha', erro = 'its send job ended without sending it', updated_at = now()
                    WHERE campanha_id = $1 AND status = 'pendente'
                    """, [id])
            }
            let row = try c.query(followSQL, [id, ended])[0]
            return CampaignProgress(total: try row.decode(Int.self, at: 0), sent: try row.decode(Int.self, at: 1),
                                    failed: try row.decode(Int.self, at: 2), cancelled: try row.decode(Int.self, at: 3),
                                    finalStatus: ended ? try row.decode(String?.self, at: 4) : nil)
        }
    }
}
