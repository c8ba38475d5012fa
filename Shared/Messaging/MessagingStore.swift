import EsteiraCore
import Foundation
import Postgres

/// The messaging tables: every read is scoped to an owner (an admin's scope sees all), every
/// write names the owner it writes for.
public enum MessagingStore {
    // MARK: Instances

    /// Makes an instance; returns it (as JSON, without secrets) and its webhook secret.
    static func createInstance(owner: UUID, name: String, baseURL: String, token: String, rate: Double, burst: Int,
                               on c: PostgresConnection) throws -> (json: String, secret: String) {
        let secret = (0..<2).map { _ in UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased() }.joined()
        let rows = try c.query("""
            INSERT INTO instancias AS i (id, owner_id, nome, base_url, token, webhook_secret, rate_limit, burst)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING \(MessagingJSON.instance)
            """, [UUID(), owner, name, baseURL, token, secret, rate, burst])
        return (try rows[0].decode(String.self, at: 0), secret)
    }

    static func instances(scope: AccessScope, on c: PostgresConnection) throws -> [String] {
        try c.query("""
            SELECT \(MessagingJSON.instance) FROM instancias i WHERE ($1::uuid IS NULL OR owner_id = $1) ORDER BY created_at DESC LIMIT 500
            """, [scope.ownerID]).map { try $0.decode(String.self, at: 0) }
    }

    /// Whether instance `id` is visible in `scope`.
    static func hasInstance(_ id: UUID, scope: AccessScope, on c: PostgresConnection) throws -> Bool {
        try !c.query("SELECT 1 FROM instancias WHERE id = $1 AND ($2::uuid IS NULL OR owner_id = $2)", [id, scope.ownerID]).isEmpty
    }

    /// What the ingestor needs of instance `id` to check a webhook: its owner and secret.
    static func webhookKey(_ id: UUID, on c: PostgresConnection) throws -> (owner: UUID, secret: String)? {
        try c.query("SELECT owner_id, webhook_secret FROM instancias WHERE id = $1", [id]).first.map {
            (try $0.decode(UUID.self, at: 0), try $0.decode(String.self, at: 1))
        }
    }

    // MARK: Contacts

    static func createContact(owner: UUID, name: String, phone: String, on c: PostgresConnection) throws -> String {
        let rows = try c.query("""
            INSERT INTO contatos AS c (id, owner_id, nome, telefone) VALUES ($1, $2, $3, $4)
            ON CONFLICT (owner_id, telefone) DO NOTHING RETURNING \(MessagingJSON.contact)
            """, [UUID(), owner, name, phone])
        guard let row = rows.first else { throw MessagingError.duplicatePhone(phone) }
        return try row.decode(String.self, at: 0)
    }

    /// Makes many contacts at once (one statement); numbers the owner has already are skipped.
    /// Returns how many were made.
    static func createContacts(owner: UUID, names: [String], phones: [String], on c: PostgresConnection) throws -> Int {
        try c.execute("""
            INSERT INTO contatos (id, owner_id, nome, telefone)
            SELECT gen_random_uuid(), $1, n, p FROM unnest($2::text[], $3::text[]) AS t(n, p)
            ON CONFLICT (owner_id, telefone) DO NOTHING
            """, [owner, names, phones])
    }

    /// Contacts in `scope` by id, after `after`, at most `limit`.
    static func contacts(scope: AccessScope, after: UUID?, limit: Int, on c: PostgresConnection) throws -> [String] {
        try c.query("""
            SELECT \(MessagingJSON.contact) FROM contatos c WHERE ($1::uuid IS NULL OR owner_id = $1) AND ($2::uuid IS NULL OR id > $2)
            ORDER BY \(scope.ownerID == nil ? "id" : "owner_id, id") LIMIT $3
            """, [scope.ownerID, after, limit]).map { try $0.decode(String.self, at: 0) }
    }

    static func contact(_ id: UUID, scope: AccessScope, on c: PostgresConnection) throws -> String? {
        try c.query("SELECT \(MessagingJSON.contact) FROM contatos c WHERE id = $1 AND ($2::uuid IS NULL OR owner_id = $2)",
                    [id, scope.ownerID]).first?.decode(String.self, at: 0)
    }

    /// A contact's messages, oldest first, the last `limit`.
    static func conversation(_ contact: UUID, limit: Int, on c: PostgresConnection) throws -> [String] {
        try c.query("""
            SELECT j FROM (SELECT \(MessagingJSON.message) AS j, m.created_at, m.id FROM mensagens m WHERE contato_id = $1
                           ORDER BY created_at DESC, id DESC LIMIT $2) t ORDER BY created_at, id
            """, [contact, limit]).map { try $0.decode(String.self, at: 0) }
    }

    /// Of `ids`, those that are not `owner`'s contacts.
    static func unknownContacts(_ ids: [UUID], owner: UUID, on c: PostgresConnection) throws -> [UUID] {
        try c.query("""
            SELECT t.id FROM unnest($1::uuid[]) AS t(id) WHERE NOT EXISTS (SELECT 1 FROM contatos c WHERE c.id = t.id AND c.owner_id = $2)
            """, [ids, owner]).map { try $0.decode(UUID.self, at: 0) }
    }

    // MARK: Campaigns

    static func createCampaign(_ id: UUID, owner: UUID, instance: UUID, name: String, message: String, total: Int,
                               on c: PostgresConnection) throws {
        try c.execute("""
            INSERT INTO campanhas (id, owner_id, instance_id, nome, mensagem, total) VALUES ($1, $2, $3, $4, $5, $6)
            """, [id, owner, instance, name, message, total])
    }

    static func campaigns(scope: AccessScope, status: CampaignStatus?, limit: Int, on c: PostgresConnection) throws -> [String] {
        try c.query("""
            SELECT \(MessagingJSON.campaign) FROM campanhas k WHERE ($1::uuid IS NULL OR owner_id = $1) AND ($2::text IS NULL OR status = $2)
            ORDER BY created_at DESC LIMIT $3
            """, [scope.ownerID, status?.rawValue, limit]).map { try $0.decode(String.self, at: 0) }
    }

    static func campaign(_ id: UUID, scope: AccessScope, on c: PostgresConnection) throws -> String? {
        try c.query("SELECT \(MessagingJSON.campaign) FROM campanhas k WHERE id = $1 AND ($2::uuid IS NULL OR owner_id = $2)",
                    [id, scope.ownerID]).first?.decode(String.self, at: 0)
    }

    /// Cancels campaign `id` in `scope`: a pending one is marked cancelled (its job then stops
    /// at once); a sending one is marked to be cancelled: its batch's jobs not started are
    /// cancelled, and those started do not send (their messages become `cancelada`); its
    /// job marks it cancelled when the batch ends.
    /// Returns the campaign's job and batch, to cancel and settle.
    static func cancelCampaign(_ id: UUID, scope: AccessScope, on c: PostgresConnection) throws -> (job: UUID?, batch: UUID?) {
        let rows = try c.query("""
            SELECT status, job_id, batch_id FROM campanhas WHERE id = $1 AND ($2::uuid IS NULL OR owner_id = $2) FOR UPDATE
            """, [id, scope.ownerID])
        guard let row = rows.first else { throw MessagingError.campaignNotFound(id) }
        let status = try row.decode(String.self, at: 0)
        guard CampaignStatus(rawValue: status)?.isActive == true else { throw MessagingError.campaignEnded(status) }
        let batch = try row.decode(UUID?.self, at: 2)
        try c.execute("""
            UPDATE campanhas SET cancelada_em = now(), updated_at = now(),
                   status = CASE WHEN batch_id IS NULL THEN 'cancelada' ELSE status END,
                   finished_at = CASE WHEN batch_id IS NULL THEN now() END
            WHERE id = $1
            """, [id])
        return (try row.decode(UUID?.self, at: 1), batch)
    }

    /// Messages of campaign `id` whose send jobs were cancelled (with the batch) become `cancelada`.
    static func markCancelledSends(campaign id: UUID, on c: PostgresConnection) throws {
        try c.execute("""
            UPDATE mensagens m SET status = 'cancelada', updated_at = now() FROM jobs j
            WHERE m.campanha_id = $1 AND m.status = 'pendente' AND j.id = m.job_id AND j.status = 'cancelled'
            """, [id])
    }

    // MARK: Webhooks

    /// Stores webhook `eventID` of `instance` once; false when it was stored before.
    static func storeWebhook(instance: UUID, owner: UUID, eventID: String, type: String, payload: String,
                             on c: PostgresConnection) throws -> Bool {
        try c.execute("""
            INSERT INTO webhook_eventos (id, instance_id, owner_id, event_id, tipo, payload) VALUES ($1, $2, $3, $4, $5, $6::jsonb)
            ON CONFLICT (instance_id, event_id) DO NOTHING
            """, [UUID(), instance, owner, eventID, type, payload]) == 1
    }
}
