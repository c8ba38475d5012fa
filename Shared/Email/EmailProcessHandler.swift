import EsteiraCore
import Foundation
import HTTPClient
import Logging
import Metrics
import Postgres

/// `email.process {store_id, message_id, conversation}`: answers one stored message. It
/// validates it (an address to answer; automatic mail and the store's own replies are
/// skipped), detects spam, classifies it, looks the customer's order up in the store's shop,
/// writes the reply from the class's template and sends it over the store's SMTP server.
///
/// A reply is sent at most once: the store's credit is taken and the message marked
/// `sending` in one transaction before the send; the server's acceptance marks it `replied`;
/// a refusal, or a server never reached, gives the credit back and leaves it `queued` for the
/// retry. An attempt that finds the message `sending` (an earlier one died, or lost the
/// connection, after handing the reply over) does not send again: it marks it `unconfirmed`.
/// A redelivered job of a message already answered does nothing.
struct EmailProcessHandler: JobHandler {
    let pool: PostgresPool
    let mail: MailConnections
    let shop: ShopOrders
    let breakers: ServiceBreakers
    let spam: SpamRules
    let templates: ReplyTemplates
    /// The optional LLM classifier; the rules classify when it is nil, fails or its breaker is open.
    let llm: LLMClassifier?
    /// Each shop's API rate (Shopify's leaky bucket), shared by every processor: the limiter
    /// `shop:<domain>`, taken token by token from this process's blocks.
    let shopLimit: KindCatalog.RateLimit
    let tokens = TokenBlocks()
    let logger: Logger

    func run(_ job: JobContext) async throws -> JSONValue? {
        guard let owner = job.ownerID else { throw JobError.permanent("email.process needs the store's owner") }
        guard let storeText = job.payload["store_id"]?.stringValue, let store = UUID(uuidString: storeText),
              let messageID = job.payload["message_id"]?.stringValue else {
            throw JobError.permanent("the payload needs store_id (a UUID) and message_id")
        }
        guard let row = try await pool.withConnection({ try EmailMessages.toAnswer(store: store, messageID: messageID, owner: owner, on: $0) }) else {
            throw JobError.permanent("no message \(messageID.prefix(200)) of the job owner's store \(storeText)")
        }
        switch row.status {
        case .queued:
            break
        case .sending:
            try await pool.withConnection { try EmailMessages.unconfirmed(row.id, on: $0) }
            Self.count("unconfirmed")
            logger.warning("a reply's send was begun by an earlier attempt that did not learn its outcome: not sent again",
                           metadata: ["message": "\(row.id)"])
            return Self.result(row.id, .unconfirmed)
        default:
            // Answered (or ended) by an earlier delivery of this job.
            return Self.result(row.id, row.status)
        }
        return try await job.recordingFinalFailure({
            try await answer(row, job: job)
        }) { error in
            do {
                try await pool.withConnection { try EmailMessages.end(row.id, as: .failed, reason: error, on: $0) }
            } catch {
                logger.warning("could not mark a message failed", metadata: ["message": "\(row.id)", "error": "\(error)"])
            }
        }
    }

    private func answer(_ row: MessageToAnswer, job: JobContext) async throws -> JSONValue? {
        let message = MailMessage(raw: row.raw)
        // Validate.
        if let reason = message.automatedReason {
            return try await end(row, .skipped, "automatic mail: \(reason)")
        }
        if message.from?.address.lowercased() == row.fromAddress.lowercased()
            || message.messageID?.hasPrefix(Self.replyIDPrefix) == true {
            return try await end(row, .skipped, "one of the store's own replies")
        }
        guard let to = message.replyAddress, to.isDeliverable else {
            try await pool.withConnection { try EmailMessages.end(row.id, as: .invalid, reason: "no address to answer", on: $0) }
            Self.count("invalid")
            throw JobError.permanent("invalid sender address: \(message.replyAddress?.address.prefix(200) ?? "none")")
        }
        // Spam.
        let (score, reasons) = spam.score(message)
        if score >= spam.threshold {
            let reason = "spam (score \(score): \(reasons.joined(separator: ", ")))"
            try await pool.withConnection { try EmailMessages.end(row.id, as: .spam, reason: reason, spamScore: score, on: $0) }
            Self.count("spam")
            throw JobError.permanent(reason)
        }
        // Classify, look the order up.
        let mailClass = await classify(message, job: job)
        let number = MailClass.orderNumber(in: message)
        var order: ShopOrders.Order?
        if let domain = row.shopDomain, let token = row.shopToken {
            order = try await lookUp(shop: domain, token: token, number: number, email: to.address, job: job)
        }
        // Write the reply.
        var values = ["store_name": row.storeName, "greeting": "Olá,"]
        let name = order?.customerName ?? to.name?.split(separator: " ").first.map(String.init)
        if let name, !name.isEmpty {
            values["greeting"] = "Olá \(name),"
            values["customer_name"] = name
        }
        values["order_number"] = order.map { "#\($0.number)" } ?? number.map { "#\($0)" }
        values["order_status"] = order?.status
        values["tracking_url"] = order?.trackingURL
        if order == nil, row.shopDomain != nil { values["order_not_found"] = "yes" }
        guard let text = templates.render(mailClass, values),
              let reply = MailReply(to: message, from: MailAddress(name: row.storeName, address: row.fromAddress), text: text,
                                    idSeed: Self.replyIDPrefix + row.id.uuidString.lowercased()) else {
            throw JobError.permanent("no reply template for class \(mailClass.rawValue)")
        }
        // Take the credit and mark the send begun; then send.
        let began = try await pool.withConnection {
            try EmailMessages.beginSending(row.id, store: row.storeID, reply: reply, mailClass: mailClass.rawValue, orderNumber: order?.number ?? number,
                                           spamScore: score, on: $0)
        }
        guard began else {
            try await pool.withConnection { try EmailMessages.end(row.id, as: .noCredits, reason: "the store has no credits left", mailClass: mailClass.rawValue, on: $0) }
            Self.count("no_credits")
            throw JobError.permanent("the store has no credits left: add credits, then requeue the job from the dead letters")
        }
        guard let smtp = row.smtp else { throw JobError.permanent("the store has no SMTP server") }
        do {
            try await breakers.call("smtp:\(smtp.host)", caller: job.id, probeTimeout: job.kindInfo.policy.timeout, counts: Self.countsAgainstSMTP) {
                let bytes = reply.bytes, from = row.fromAddress, recipient = to.address
                // "smtp": the whole send; "smtp_transfer": the SMTP dialogue alone, once a thread runs it.
                _ = try await Self.timed("smtp") {
                    try await mail.with { c in
                        try Timer.timing("esteira_email_step_seconds", step: "smtp_transfer", blocking: { try c.send(smtp, from: from, to: [recipient], message: bytes) })
                    }
                }
            }
        } catch {
            if Self.certainlyNotSent(error) {
                // Not handed over: the credit back, the message queued for the retry.
                try await pool.withConnection { try EmailMessages.notSent(row.id, store: row.storeID, reason: "\(error)", on: $0) }
                throw Self.jobError(error, what: "the SMTP server")
            }
            try await pool.withConnection { try EmailMessages.unconfirmed(row.id, on: $0) }
            Self.count("unconfirmed")
            logger.warning("a reply's send ended without an answer: not sent again", metadata: ["message": "\(row.id)", "error": "\(error)"])
            return Self.result(row.id, .unconfirmed)
        }
        try await pool.withConnection { try EmailMessages.sent(row.id, on: $0) }
        Self.count("replied")
        return .object(["email_message_id": .string(row.id.uuidString.lowercased()), "status": .string(EmailStatus.replied.rawValue),
                        "class": .string(mailClass.rawValue), "reply_message_id": .string(reply.messageID)])
    }

    /// The customer's order, within the shop's rate: a 429 (or 503 with `Retry-After`) pauses
    /// the shop's limiter for every processor and the lookup waits and asks again, up to 30
    /// s; a longer wait ends the attempt (a retry later).
    private func lookUp(shop domain: String, token: String, number: String?, email: String, job: JobContext) async throws -> ShopOrders.Order? {
        let limiter = "shop:\(domain)"
        var waited = 0.0
        while true {
            try await Self.timed("shop_token") { try await tokens.take(limiter, limit: shopLimit, pool: pool) }
            do {
                return try await breakers.call(limiter, caller: job.id, probeTimeout: job.kindInfo.policy.timeout, counts: Self.countsAgainstShop) {
                    try await Self.timed("shop") { try await shop.find(shop: domain, token: token, number: number, email: email) }
                }
            } catch let throttled as ShopOrders.Throttled {
                Counter(label: "esteira_email_shop_throttled_total").increment()
                tokens.drop(limiter)
                try await pool.withConnection { try RateLimiters.pause(limiter, for: throttled.seconds, on: $0) }
                waited += throttled.seconds
                if throttled.seconds > 5 || waited > 30 {
                    throw JobError.throttled("the shop asked to slow down", retryAfter: throttled.seconds)
                }
            } catch let open as ServiceBreakers.Open {
                throw JobError.transient("\(open)", retryAfter: open.seconds)
            }
        }
    }

    /// The LLM's class when it answers one, else the rule classifier's.
    private func classify(_ message: MailMessage, job: JobContext) async -> MailClass {
        guard let llm else { return MailClass.classify(message) }
        do {
            let mailClass = try await breakers.call(llm.breakerName, caller: job.id, probeTimeout: 30, counts: { _ in true }) {
                try await Self.timed("llm") { try await llm.classify(subject: message.subject, text: QuotedText.stripped(message.text)) }
            }
            Counter(label: "esteira_email_classified_total", dimensions: [("by", "llm")]).increment()
            return mailClass
        } catch {
            Counter(label: "esteira_email_classified_total", dimensions: [("by", "rules")]).increment()
            logger.debug("the LLM did not classify; the rules do", metadata: ["error": "\(error)"])
            return MailClass.classify(message)
        }
    }

    private func end(_ row: MessageToAnswer, _ status: EmailStatus, _ reason: String) async throws -> JSONValue {
        try await pool.withConnection { try EmailMessages.end(row.id, as: status, reason: reason, on: $0) }
        Self.count(status.rawValue)
        return .object(["email_message_id": .string(row.id.uuidString.lowercased()), "status": .string(status.rawValue), "reason": .string(reason)])
    }

    /// A reply's own Message-ID starts with this: the store's replies, read back from its
    /// mailbox, are never answered.
    static let replyIDPrefix = "esteira-reply-"

    static func result(_ id: UUID, _ status: EmailStatus) -> JSONValue {
        .object(["email_message_id": .string(id.uuidString.lowercased()), "status": .string(status.rawValue)])
    }

    static func count(_ outcome: String) {
        Counter(label: "esteira_email_messages_total", dimensions: [("outcome", outcome)]).increment()
    }

    /// Runs one step of a send, timed in `esteira_email_step_seconds{step}`.
    static func timed<T>(_ step: String, _ body: () async throws -> T) async rethrows -> T {
        try await Timer.timing("esteira_email_step_seconds", step: step, body)
    }

    /// Whether the server surely did not take the message: it refused (a reply code), the
    /// login or TLS failed, or it was never reached. A timeout or a lost connection may have
    /// come after the server took it.
    static func certainlyNotSent(_ error: Error) -> Bool {
        if error is ServiceBreakers.Open { return true }
        guard let mail = error as? MailError else { return false }
        switch mail.kind {
        case .login, .refused, .tls, .forbiddenAddress, .invalid, .notFound: return true
        case .transport(let code): return code == .connectionRefused || code == .hostNotFound
        default: return false
        }
    }

    /// SMTP failures that say the server is down: not reached, timeouts, 4xx.
    static func countsAgainstSMTP(_ error: Error) -> Bool {
        (error as? MailError)?.isTransient ?? false
    }

    static func countsAgainstShop(_ error: Error) -> Bool {
        if error is ShopOrders.Throttled { return false }
        return CircuitBreakers.counts((error as? JobError)?.errorClass ?? .transient)
    }

    /// The job's error for a failure of `what`: transient when trying later may work.
    static func jobError(_ error: Error, what: String) -> JobError {
        if let open = error as? ServiceBreakers.Open { return .transient("\(open)", retryAfter: open.seconds) }
        guard let mail = error as? MailError else { return .transient("\(what): \(error)") }
        return mail.isTransient ? .transient("\(what): \(mail)") : .permanent("\(what) refused the reply: \(mail)")
    }
}
