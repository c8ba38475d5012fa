import EsteiraCore
import Foundation
import HTTPClient
import Logging
import Metrics
import Postgres
import ServiceLifecycle

/// The ingestor's rounds over the stores' mailboxes. Every ``Settings/interval`` seconds it
/// leases the active stores that are due (up to ``Settings/storesAtOnce``; a lease keeps every
/// other ingestor off a mailbox), and reads each over IMAP at the same time: `STATUS` for the
/// mailbox's UIDVALIDITY, the UIDs after the last one stored (all of them again when
/// UIDVALIDITY changed), then up to ``Settings/messagesPerRound`` messages by UID. A round's
/// messages, their `email.process` jobs and the mailbox's new position are one transaction:
/// a round cut short stores nothing and is fetched again, and a Message-ID the store already
/// has is skipped, so every message is stored and processed once.
public struct MailIngest: Service {
    public struct Settings: Sendable {
        /// Seconds between a store's rounds.
        public var interval: Double = 30
        /// Stores read at the same time by one ingestor.
        public var storesAtOnce: Int = 10
        /// New messages taken from one store in one round.
        public var messagesPerRound: Int = 50
        public init() {}
    }

    let pool: PostgresPool
    let enqueuer: Enqueuer
    let mail: MailConnections
    let breakers: ServiceBreakers
    let settings: Settings
    let worker: String
    let logger: Logger

    init(pool: PostgresPool, enqueuer: Enqueuer, mail: MailConnections, breakers: ServiceBreakers, settings: Settings, logger: Logger) {
        self.pool = pool
        self.enqueuer = enqueuer
        self.mail = mail
        self.breakers = breakers
        self.settings = settings
        self.logger = logger
        worker = "\(ProcessInfo.processInfo.hostName)-\(ProcessInfo.processInfo.processIdentifier)-\(UUID().uuidString.prefix(8))"
    }

    public func run() async throws {
        // A store's lease outlives any round: IMAP calls time out well within it.
        let lease = max(120, settings.interval * 4)
        // Looks for due stores at least every second, at most every interval.
        let tick = min(1, settings.interval)
        await withGracefulShutdownHandler {
            while !Task.isCancelled && !Task.isShuttingDownGracefully {
                do {
                    let due = try await pool.withConnection { [settings, worker] in
                        try EmailStores.leaseDue(worker: worker, limit: settings.storesAtOnce, interval: settings.interval, lease: lease, on: $0)
                    }
                    await withTaskGroup(of: Void.self) { group in
                        for store in due { group.addTask { await round(store) } }
                    }
                } catch {
                    logger.warning("could not lease mailboxes", metadata: ["error": "\(error)"])
                }
                try? await Task.sleep(for: .milliseconds(Int(tick * 1000)))
            }
        } onGracefulShutdown: {}
    }

    /// One round of one store's mailbox.
    func round(_ lease: MailboxLease) async {
        let store = lease.storeID.uuidString.lowercased()
        let started = ContinuousClock.now
        do {
            let (stored, fetched) = try await breakers.call("imap:\(lease.server.host)", caller: UUID(), probeTimeout: 120,
                                                            counts: { ($0 as? MailError)?.isTransient ?? false }) {
                try await read(lease)
            }
            Counter(label: "esteira_email_ingested_total", dimensions: [("store", store)]).increment(by: stored)
            if fetched > stored {
                Counter(label: "esteira_email_duplicates_total", dimensions: [("store", store)]).increment(by: fetched - stored)
            }
        } catch {
            Counter(label: "esteira_email_ingest_errors_total", dimensions: [("store", store)]).increment()
            logger.warning("mailbox round failed", metadata: ["store": "\(store)", "error": "\(error)"])
            do {
                try await pool.withConnection { [worker] in try EmailStores.roundFailed(lease, error: "\(error)", worker: worker, on: $0) }
            } catch {
                logger.warning("could not record a failed round", metadata: ["store": "\(store)", "error": "\(error)"])
            }
        }
        Timer(label: "esteira_email_ingest_round_seconds", preferredDisplayUnit: .seconds).record(ContinuousClock.now - started)
        Gauge(label: "esteira_email_last_round_timestamp_seconds", dimensions: [("store", store)]).record(Date().timeIntervalSince1970)
    }

    /// Fetches the new messages of `lease`'s mailbox and stores them; returns how many were
    /// new and how many were fetched.
    func read(_ lease: MailboxLease) async throws -> (stored: Int, fetched: Int) {
        let server = lease.server, mailbox = lease.mailbox, limit = settings.messagesPerRound
        let (status, uids, raws) = try await mail.with { c -> (MailConnection.MailboxStatus, [UInt32], [(UInt32, [UInt8])]) in
            let status = try c.status(server, mailbox: mailbox)
            // Another UIDVALIDITY: the UIDs name other messages now; read the mailbox again
            // from its start (the Message-IDs stored keep what was seen from coming twice).
            let after = lease.lastUID(under: status.uidValidity)
            guard status.uidNext > after + 1 else { return (status, [], []) }
            let uids = Array(try c.uids(server, mailbox: mailbox, from: after + 1).filter { $0 > after }.sorted().prefix(limit))
            let raws = try uids.map { ($0, try c.fetch(server, mailbox: mailbox, uid: $0, uidValidity: status.uidValidity)) }
            return (status, uids, raws)
        }
        if status.uidValidity != lease.uidValidity, lease.uidValidity != nil {
            logger.notice("mailbox UIDVALIDITY changed: reading it again from the start",
                          metadata: ["store": "\(lease.storeID)", "was": "\(lease.uidValidity ?? 0)", "now": "\(status.uidValidity)"])
            Counter(label: "esteira_email_uidvalidity_changes_total").increment()
        }
        var seen = Set<String>()
        let messages = raws.compactMap { uid, raw -> FetchedMessage? in
            let m = Self.fetched(uid: uid, raw: raw)
            return seen.insert(m.messageID).inserted ? m : nil
        }
        let lastUID = uids.last ?? lease.lastUID(under: status.uidValidity)
        let owner = lease.ownerID, store = lease.storeID, worker = self.worker
        let jobs = messages.map { m in
            NewJob(kind: EmailKinds.process,
                   payload: JSONValue.object(["store_id": .string(store.uuidString.lowercased()), "message_id": .string(m.messageID),
                                              "conversation": .string(Self.conversationKey(store: store, m.conversationID))]).jsonText,
                   idempotencyKey: "email:\(store.uuidString.lowercased()):\(Self.digest(m.messageID))", ownerID: owner)
        }
        guard !messages.isEmpty else {
            // Nothing new: the round ends where it began (or at the new UIDVALIDITY).
            _ = try await pool.transaction { c in
                try EmailStores.storeRound(lease, messages: [], uidValidity: status.uidValidity, lastUID: lastUID, worker: worker, on: c)
            }
            return (0, 0)
        }
        let outcomes = try await enqueuer.enqueue(jobs, alongside: { c in
            _ = try EmailStores.storeRound(lease, messages: messages, uidValidity: status.uidValidity, lastUID: lastUID, worker: worker, on: c)
        }, afterward: { c, outcomes in
            try EmailStores.recordJobs(store: store, messageIDs: messages.map(\.messageID), jobs: outcomes.map(\.id), on: c)
        })
        // A message is new exactly when its job is (the job's key is its Message-ID's).
        return (outcomes.filter(\.created).count, raws.count)
    }

    /// A fetched message's identity: its Message-ID (or, without one, a digest of its text)
    /// and its thread's root.
    static func fetched(uid: UInt32, raw: [UInt8]) -> FetchedMessage {
        let message = MailMessage(raw: raw)
        let id = message.messageID.map { String($0.prefix(900)) } ?? "sha256:" + HMACSHA256.sha256(raw).map { String(format: "%02x", $0) }.joined()
        return FetchedMessage(uid: uid, messageID: id, conversationID: message.conversationID.map { String($0.prefix(900)) } ?? id,
                              from: message.from?.address, subject: String(message.subject.prefix(1000)), raw: raw)
    }

    /// The per-key lock's key of a conversation: the store and a digest of the thread's root.
    static func conversationKey(store: UUID, _ conversation: String) -> String {
        "\(store.uuidString.lowercased()):\(digest(conversation).prefix(32))"
    }

    static func digest(_ text: String) -> String {
        HMACSHA256.sha256(Array(text.utf8)).map { String(format: "%02x", $0) }.joined()
    }
}
