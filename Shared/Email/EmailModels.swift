import EsteiraCore
import Foundation
import HTTPClient
import Postgres

/// The email workload's kind.
public enum EmailKinds {
    /// Answers one stored message: validate, spam, classify, order lookup, reply over SMTP,
    /// the store's credit.
    public static let process = "email.process"
}

/// A store as the api shows it: its settings without the passwords and the shop token, its
/// credits and its mailbox's ingest state.
public struct EmailStoreView: Sendable, Encodable {
    public var id: UUID
    public var ownerID: UUID
    public var name: String
    public var active: Bool
    public var imapHost: String
    public var imapPort: Int
    public var imapSecurity: String
    public var imapUser: String
    public var imapMailbox: String
    public var smtpHost: String
    public var smtpPort: Int
    public var smtpSecurity: String
    public var smtpUser: String?
    public var fromAddress: String
    public var shopDomain: String?
    public var credits: Int
    public var creditsUsed: Int
    public var ingest: Ingest
    public var createdAt: Date
    public var updatedAt: Date

    /// Where the ingestor left the store's mailbox.
    public struct Ingest: Sendable, Encodable {
        public var uidValidity: Int?
        public var lastUID: Int
        public var leasedBy: String?
        public var leasedUntil: Date?
        public var lastRoundAt: Date?
        public var lastRoundMessages: Int
        public var lastError: String?
        public var messagesTotal: Int
        public var errorsTotal: Int

        enum CodingKeys: String, CodingKey {
            case uidValidity = "uid_validity", lastUID = "last_uid", leasedBy = "leased_by", leasedUntil = "leased_until"
            case lastRoundAt = "last_round_at", lastRoundMessages = "last_round_messages", lastError = "last_error"
            case messagesTotal = "messages_total", errorsTotal = "errors_total"
        }
    }

    enum CodingKeys: String, CodingKey {
        case id, name, active, credits, ingest
        case ownerID = "owner_id", imapHost = "imap_host", imapPort = "imap_port", imapSecurity = "imap_security"
        case imapUser = "imap_user", imapMailbox = "imap_mailbox", smtpHost = "smtp_host", smtpPort = "smtp_port"
        case smtpSecurity = "smtp_security", smtpUser = "smtp_user", fromAddress = "from_address", shopDomain = "shop_domain"
        case creditsUsed = "credits_used", createdAt = "created_at", updatedAt = "updated_at"
    }

    static let columns = """
        s.id, s.owner_id, s.name, s.active, s.imap_host, s.imap_port, s.imap_security, s.imap_user, s.imap_mailbox, s.smtp_host,
        s.smtp_port, s.smtp_security, s.smtp_user, s.from_address, s.shop_domain, s.credits, s.credits_used, s.uid_validity,
        s.last_uid, s.leased_by, s.leased_until, s.last_round_at, s.last_round_messages, s.last_error, s.messages_total,
        s.errors_total, s.created_at, s.updated_at
        """

    init(row: PostgresRow) throws {
        id = try row.decode(UUID.self, named: "id")
        ownerID = try row.decode(UUID.self, named: "owner_id")
        name = try row.decode(String.self, named: "name")
        active = try row.decode(Bool.self, named: "active")
        imapHost = try row.decode(String.self, named: "imap_host")
        imapPort = try row.decode(Int.self, named: "imap_port")
        imapSecurity = try row.decode(String.self, named: "imap_security")
        imapUser = try row.decode(String.self, named: "imap_user")
        imapMailbox = try row.decode(String.self, named: "imap_mailbox")
        smtpHost = try row.decode(String.self, named: "smtp_host")
        smtpPort = try row.decode(Int.self, named: "smtp_port")
        smtpSecurity = try row.decode(String.self, named: "smtp_security")
        smtpUser = try row.decode(String?.self, named: "smtp_user")
        fromAddress = try row.decode(String.self, named: "from_address")
        shopDomain = try row.decode(String?.self, named: "shop_domain")
        credits = try row.decode(Int.self, named: "credits")
        creditsUsed = try row.decode(Int.self, named: "credits_used")
        ingest = Ingest(uidValidity: try row.decode(Int?.self, named: "uid_validity"), lastUID: try row.decode(Int.self, named: "last_uid"),
                        leasedBy: try row.decode(String?.self, named: "leased_by"), leasedUntil: try row.decode(Date?.self, named: "leased_until"),
                        lastRoundAt: try row.decode(Date?.self, named: "last_round_at"),
                        lastRoundMessages: try row.decode(Int.self, named: "last_round_messages"),
                        lastError: try row.decode(String?.self, named: "last_error"),
                        messagesTotal: try row.decode(Int.self, named: "messages_total"),
                        errorsTotal: try row.decode(Int.self, named: "errors_total"))
        createdAt = try row.decode(Date.self, named: "created_at")
        updatedAt = try row.decode(Date.self, named: "updated_at")
    }
}

/// What became of a stored message.
public enum EmailStatus: String, Sendable, Codable, CaseIterable {
    /// Stored, its job queued or running.
    case queued
    /// A reply is being sent (the store's credit taken): a retry that finds this did not
    /// learn the send's outcome.
    case sending
    case replied
    /// The send's outcome was never learnt (the connection died after the message was
    /// handed over): not sent again, so never twice; shown for a person to check.
    case unconfirmed
    case spam
    /// No address to answer, or the address cannot take mail.
    case invalid
    /// Not answered on purpose: an automatic message (auto-reply, bounce, list), or one of
    /// the store's own replies.
    case skipped
    /// The store had no credits left.
    case noCredits = "no_credits"
    /// Failed for good (a permanent error, or the last attempt spent).
    case failed
}

/// A stored message as the api shows it (without its raw text).
public struct EmailMessageView: Sendable, Encodable {
    public var id: UUID
    public var storeID: UUID
    public var messageID: String
    public var conversationID: String
    public var fromAddress: String?
    public var subject: String?
    public var status: EmailStatus
    public var mailClass: String?
    public var orderNumber: String?
    public var spamScore: Double?
    public var reason: String?
    public var replyMessageID: String?
    public var replyText: String?
    public var receivedAt: Date
    public var repliedAt: Date?
    public var jobID: UUID?
    public var updatedAt: Date

    enum CodingKeys: String, CodingKey {
        case id, subject, status, reason
        case storeID = "store_id", messageID = "message_id", conversationID = "conversation_id", fromAddress = "from_address"
        case mailClass = "class", orderNumber = "order_number", spamScore = "spam_score", replyMessageID = "reply_message_id"
        case replyText = "reply_text", receivedAt = "received_at", repliedAt = "replied_at", jobID = "job_id", updatedAt = "updated_at"
    }

    static let columns = """
        m.id, m.store_id, m.message_id, m.conversation_id, m.from_address, m.subject, m.status, m.class, m.order_number,
        m.spam_score, m.reason, m.reply_message_id, m.reply_text, m.received_at, m.replied_at, m.job_id, m.updated_at
        """

    init(row: PostgresRow) throws {
        id = try row.decode(UUID.self, named: "id")
        storeID = try row.decode(UUID.self, named: "store_id")
        messageID = try row.decode(String.self, named: "message_id")
        conversationID = try row.decode(String.self, named: "conversation_id")
        fromAddress = try row.decode(String?.self, named: "from_address")
        subject = try row.decode(String?.self, named: "subject")
        status = EmailStatus(rawValue: try row.decode(String.self, named: "status")) ?? .failed
        mailClass = try row.decode(String?.self, named: "class")
        orderNumber = try row.decode(String?.self, named: "order_number")
        spamScore = try row.decode(Double?.self, named: "spam_score")
        reason = try row.decode(String?.self, named: "reason")
        replyMessageID = try row.decode(String?.self, named: "reply_message_id")
        replyText = try row.decode(String?.self, named: "reply_text")
        receivedAt = try row.decode(Date.self, named: "received_at")
        repliedAt = try row.decode(Date?.self, named: "replied_at")
        jobID = try row.decode(UUID?.self, named: "job_id")
        updatedAt = try row.decode(Date.self, named: "updated_at")
    }
}

/// A store's mailbox leased to one ingestor for a round.
struct MailboxLease: Sendable {
    var storeID: UUID
    var ownerID: UUID
    var server: MailConnection.Server
    var mailbox: String
    var uidValidity: UInt32?
    var lastUID: UInt32

    /// The last UID stored, as a UID of a mailbox whose UIDVALIDITY is `uidValidity`: 0 when
    /// that is not the one it was stored under (the mailbox is read from its start).
    func lastUID(under uidValidity: UInt32) -> UInt32 {
        uidValidity == self.uidValidity ? lastUID : 0
    }
}

/// A message fetched in a round, ready to store.
struct FetchedMessage: Sendable {
    var uid: UInt32
    var messageID: String
    var conversationID: String
    var from: String?
    var subject: String
    var raw: [UInt8]
}

/// What a message's processing needs: the message and its store's mail and shop settings.
struct MessageToAnswer: Sendable {
    var id: UUID
    var storeID: UUID
    var status: EmailStatus
    var raw: [UInt8]
    var storeName: String
    var smtp: MailConnection.Server?
    var fromAddress: String
    var shopDomain: String?
    var shopToken: String?
    var replyMessageID: String?
}

/// Why an email api request was refused; each names its field.
public enum EmailError: Error, Sendable, Equatable {
    case storeNotFound(UUID)
    case messageNotFound(UUID)
}
