import EsteiraCore
import Foundation
import HTTPClient
import Postgres

/// Reads and writes of email stores: their settings, their credits and their mailboxes'
/// leases and positions.
enum EmailStores {
    /// The columns a store is made or changed with, by api field name.
    static let settingColumns = ["name", "active", "imap_host", "imap_port", "imap_security", "imap_user", "imap_password", "imap_mailbox",
                                 "smtp_host", "smtp_port", "smtp_security", "smtp_user", "smtp_password", "from_address",
                                 "shop_domain", "shop_token", "credits"]

    /// Makes a store of `owner` with `values` (api field name to value; every required one given).
    static func create(owner: UUID, values: [String: PostgresEncodable?], on c: PostgresConnection) throws -> EmailStoreView {
        let names = settingColumns.filter { values.keys.contains($0) }
        let placeholders = names.indices.map { "$\($0 + 3)" }.joined(separator: ", ")
        return try c.query("""
            INSERT INTO email_stores AS s (id, owner_id, \(names.joined(separator: ", "))) VALUES ($1, $2, \(placeholders))
            RETURNING \(EmailStoreView.columns)
            """, [UUID(), owner] + names.map { values[$0]! }).map(EmailStoreView.init(row:))[0]
    }

    /// Changes `values` of store `id` in `scope`; nil when there is no such store there.
    static func update(_ id: UUID, values: [String: PostgresEncodable?], scope: AccessScope, on c: PostgresConnection) throws -> EmailStoreView? {
        let names = settingColumns.filter { values.keys.contains($0) }
        let sets = names.enumerated().map { "\($0.element) = $\($0.offset + 3)" } + ["updated_at = now()"]
        return try c.query("""
            UPDATE email_stores s SET \(sets.joined(separator: ", ")) WHERE s.id = $1 AND ($2::uuid IS NULL OR s.owner_id = $2)
            RETURNING \(EmailStoreView.columns)
            """, [id, scope.ownerID] + names.map { values[$0]! }).first.map(EmailStoreView.init(row:))
    }

    /// Store `id` in `scope` (another's answers like a missing one).
    static func store(_ id: UUID, scope: AccessScope, on c: PostgresConnection) throws -> EmailStoreView? {
        try c.query("SELECT \(EmailStoreView.columns) FROM email_stores s WHERE s.id = $1 AND ($2::uuid IS NULL OR s.owner_id = $2)",
                    [id, scope.ownerID]).first.map(EmailStoreView.init(row:))
    }

    static func stores(scope: AccessScope, on c: PostgresConnection) throws -> [EmailStoreView] {
        try c.query("""
            SELECT \(EmailStoreView.columns) FROM email_stores s WHERE $1::uuid IS NULL OR s.owner_id = $1 ORDER BY s.created_at DESC LIMIT 500
            """, [scope.ownerID]).map(EmailStoreView.init(row:))
    }

    // MARK: - Rounds

    /// Leases up to `limit` active stores due for a round (none in the last `interval`
    /// seconds, and not leased by another ingestor) to `worker` for `lease` seconds.
    static func leaseDue(worker: String, limit: Int, interval: Double, lease: Double, on c: PostgresConnection) throws -> [MailboxLease] {
        try c.query(leaseDueSQL, [worker, limit, lease, interval]).map { r in
            MailboxLease(storeID: try r.decode(UUID.self, at: 0), ownerID: try r.decode(UUID.self, at: 1),
                         server: MailConnection.Server(host: try r.decode(String.self, at: 2), port: try r.decode(Int.self, at: 3),
                                                       security: MailConnection.Security(rawValue: try r.decode(String.self, at: 4)) ?? .none,
                                                       user: try r.decode(String.self, at: 5), password: try r.decode(String.self, at: 6)),
                         mailbox: try r.decode(String.self, at: 7), uidValidity: try r.decode(Int?.self, at: 8).map { UInt32(truncatingIfNeeded: $0) },
                         lastUID: UInt32(truncatingIfNeeded: try r.decode(Int.self, at: 9)))
        }
    }

    /// Stores due for a round leased to worker `$1` (at most `$2`, for `$3` seconds; due: no
    /// round in the last `$4` seconds).
    static let leaseDueSQL = """
        UPDATE email_stores s SET leased_by = $1, leased_until = now() + make_interval(secs => $3)
        WHERE s.id IN (
            SELECT id FROM email_stores
            WHERE active AND (leased_until IS NULL OR leased_until < now() OR leased_by = $1)
              AND (last_round_at IS NULL OR last_round_at <= now() - make_interval(secs => $4))
            ORDER BY last_round_at NULLS FIRST LIMIT $2 FOR UPDATE SKIP LOCKED)
        RETURNING s.id, s.owner_id, s.imap_host, s.imap_port, s.imap_security, s.imap_user, s.imap_password, s.imap_mailbox,
                  s.uid_validity, s.last_uid
        """

    /// The store's mailbox was not the lease holder's any more: the round's writes are undone.
    struct LeaseLost: Error, CustomStringConvertible {
        var description: String { "the mailbox's lease passed to another ingestor" }
    }

    /// Stores `messages` fetched from `lease`'s mailbox (each once: a Message-ID the store
    /// has is skipped), and moves the mailbox to `uidValidity`/`lastUID`, ending the round;
    /// in the transaction of their jobs. Throws ``LeaseLost`` (undoing it all) when `worker`
    /// no longer holds the lease. Returns how many messages were new.
    static func storeRound(_ lease: MailboxLease, messages: [FetchedMessage], uidValidity: UInt32, lastUID: UInt32,
                           worker: String, on c: PostgresConnection) throws -> Int {
        var stored = 0
        if !messages.isEmpty {
            stored = try c.query("""
                INSERT INTO email_messages (id, store_id, owner_id, message_id, conversation_id, uid_validity, uid, from_address, subject, raw)
                SELECT gen_random_uuid(), $1, $2, t.message_id, t.conversation_id, $3, t.uid, t.from_address, t.subject, t.raw
                FROM unnest($4::text[], $5::text[], $6::bigint[], $7::text[], $8::text[], $9::bytea[])
                     AS t(message_id, conversation_id, uid, from_address, subject, raw)
                ON CONFLICT (store_id, message_id) DO NOTHING
                RETURNING 1
                """, [lease.storeID, lease.ownerID, Int(uidValidity), messages.map(\.messageID), messages.map(\.conversationID),
                      messages.map { Int($0.uid) }, messages.map(\.from), messages.map(\.subject), messages.map(\.raw)]).count
        }
        let moved = try c.execute("""
            UPDATE email_stores SET uid_validity = $3, last_uid = $4, last_round_at = now(), last_round_messages = $5,
                   messages_total = messages_total + $5, last_error = NULL, leased_until = now()
            WHERE id = $1 AND leased_by = $2
            """, [lease.storeID, worker, Int(uidValidity), Int(lastUID), stored])
        guard moved == 1 else { throw LeaseLost() }
        return stored
    }

    /// Records the jobs of the messages of a round (each message's own job: the first one
    /// made for its Message-ID).
    static func recordJobs(store: UUID, messageIDs: [String], jobs: [UUID], on c: PostgresConnection) throws {
        try c.execute("""
            UPDATE email_messages m SET job_id = t.job_id FROM unnest($2::text[], $3::uuid[]) AS t(message_id, job_id)
            WHERE m.store_id = $1 AND m.message_id = t.message_id AND m.job_id IS NULL
            """, [store, messageIDs, jobs])
    }

    /// A round of `lease`'s store failed with `error`: counted, and the mailbox left where it was.
    static func roundFailed(_ lease: MailboxLease, error: String, worker: String, on c: PostgresConnection) throws {
        try c.execute("""
            UPDATE email_stores SET last_round_at = now(), last_round_messages = 0, last_error = left($3, 2000),
                   errors_total = errors_total + 1, leased_until = now()
            WHERE id = $1 AND leased_by = $2
            """, [lease.storeID, worker, error])
    }
}

/// Reads and writes of stored messages and of what their processing did.
enum EmailMessages {
    static func list(store: UUID, status: EmailStatus?, conversation: String?, limit: Int, scope: AccessScope,
                     on c: PostgresConnection) throws -> [EmailMessageView] {
        try c.query(listSQL, [store, scope.ownerID, status?.rawValue, conversation, limit]).map(EmailMessageView.init(row:))
    }

    /// Store `$1`'s messages (owner `$2` unless NULL; status `$3`, conversation `$4` when
    /// given), newest first, `$5` at most.
    static let listSQL = """
        SELECT \(EmailMessageView.columns) FROM email_messages m
        WHERE m.store_id = $1 AND ($2::uuid IS NULL OR m.owner_id = $2) AND ($3::text IS NULL OR m.status = $3)
          AND ($4::text IS NULL OR m.conversation_id = $4)
        ORDER BY m.received_at DESC, m.id LIMIT $5
        """

    static func message(_ id: UUID, scope: AccessScope, on c: PostgresConnection) throws -> EmailMessageView? {
        try c.query("SELECT \(EmailMessageView.columns) FROM email_messages m WHERE m.id = $1 AND ($2::uuid IS NULL OR m.owner_id = $2)",
                    [id, scope.ownerID]).first.map(EmailMessageView.init(row:))
    }

    /// How many of a store's messages are in each status.
    static func counts(store: UUID, on c: PostgresConnection) throws -> [String: Int] {
        var out: [String: Int] = [:]
        for r in try c.query("SELECT status, count(*) FROM email_messages WHERE store_id = $1 GROUP BY status", [store]) {
            out[try r.decode(String.self, at: 0)] = try r.decode(Int.self, at: 1)
        }
        return out
    }

    /// Message `messageID` of `owner`'s store `store`, with what answering it needs.
    static func toAnswer(store: UUID, messageID: String, owner: UUID, on c: PostgresConnection) throws -> MessageToAnswer? {
        try c.query(toAnswerSQL, [store, messageID, owner]).first.map { r in
            MessageToAnswer(id: try r.decode(UUID.self, at: 0), storeID: store,
                            status: EmailStatus(rawValue: try r.decode(String.self, at: 1)) ?? .failed,
                            raw: try r.decode([UInt8].self, at: 2), storeName: try r.decode(String.self, at: 3),
                            smtp: MailConnection.Server(host: try r.decode(String.self, at: 4), port: try r.decode(Int.self, at: 5),
                                                        security: MailConnection.Security(rawValue: try r.decode(String.self, at: 6)) ?? .none,
                                                        user: try r.decode(String?.self, at: 7) ?? "", password: try r.decode(String?.self, at: 8) ?? ""),
                            fromAddress: try r.decode(String.self, at: 9), shopDomain: try r.decode(String?.self, at: 10),
                            shopToken: try r.decode(String?.self, at: 11), replyMessageID: try r.decode(String?.self, at: 12))
        }
    }

    /// Message `$2` of store `$1`, both owner `$3`'s, with its store's mail and shop settings.
    static let toAnswerSQL = """
        SELECT m.id, m.status, m.raw, s.name, s.smtp_host, s.smtp_port, s.smtp_security, s.smtp_user, s.smtp_password,
               s.from_address, s.shop_domain, s.shop_token, m.reply_message_id
        FROM email_messages m JOIN email_stores s ON s.id = m.store_id
        WHERE m.store_id = $1 AND m.message_id = $2 AND m.owner_id = $3 AND s.owner_id = $3
        """

    /// Message `id` ends, not answered, as `status` with `reason` (only from `queued`).
    static func end(_ id: UUID, as status: EmailStatus, reason: String?, mailClass: String? = nil, spamScore: Double? = nil,
                    on c: PostgresConnection) throws {
        try c.execute("""
            UPDATE email_messages SET status = $2, reason = left($3, 2000), class = coalesce($4, class),
                   spam_score = coalesce($5, spam_score), updated_at = now()
            WHERE id = $1 AND status = 'queued'
            """, [id, status.rawValue, reason, mailClass, spamScore])
    }

    /// Before a reply is sent: takes one of the store's credits and marks the message
    /// `sending` with the reply, in one transaction. False (nothing changed) when the store
    /// has no credit left; throws when the message is no longer `queued`.
    static func beginSending(_ id: UUID, store: UUID, reply: MailReply, mailClass: String, orderNumber: String?, spamScore: Double,
                             on c: PostgresConnection) throws -> Bool {
        try c.transaction { c in
            let debited = try c.execute("""
                UPDATE email_stores SET credits = credits - 1, credits_used = credits_used + 1 WHERE id = $1 AND credits > 0
                """, [store])
            guard debited == 1 else { return false }
            let marked = try c.execute("""
                UPDATE email_messages SET status = 'sending', sending_at = now(), reply_message_id = $2, reply_text = $3, class = $4,
                       order_number = $5, spam_score = $6, updated_at = now()
                WHERE id = $1 AND status = 'queued'
                """, [id, reply.messageID, reply.text, mailClass, orderNumber, spamScore])
            guard marked == 1 else { throw JobError.permanent("the message is no longer queued: another attempt answered it") }
            return true
        }
    }

    /// The server took the reply: `replied` (the credit was taken when the send began).
    static func sent(_ id: UUID, on c: PostgresConnection) throws {
        try c.execute("UPDATE email_messages SET status = 'replied', replied_at = now(), reason = NULL, updated_at = now() WHERE id = $1 AND status = 'sending'", [id])
    }

    /// The server did not take the reply (refused, or never reached): the message is
    /// `queued` again and the store gets its credit back, in one transaction.
    static func notSent(_ id: UUID, store: UUID, reason: String, on c: PostgresConnection) throws {
        try c.transaction { c in
            let back = try c.execute("""
                UPDATE email_messages SET status = 'queued', sending_at = NULL, reason = left($2, 2000), updated_at = now()
                WHERE id = $1 AND status = 'sending'
                """, [id, reason])
            if back == 1 {
                try c.execute("UPDATE email_stores SET credits = credits + 1, credits_used = credits_used - 1 WHERE id = $1", [store])
            }
        }
    }

    /// An earlier attempt began a send and never learnt its outcome: `unconfirmed` (not sent
    /// again; the credit stays taken).
    static func unconfirmed(_ id: UUID, on c: PostgresConnection) throws {
        try c.execute("""
            UPDATE email_messages SET status = 'unconfirmed', reason = 'an earlier attempt began the send and did not learn whether the server took it: not sent again',
                   updated_at = now()
            WHERE id = $1 AND status = 'sending'
            """, [id])
    }
}
