import EsteiraCore
import Foundation
import HTTPClient
import Postgres
import StandIns
import Testing

/// An api, an ingestor and processors against make test's Dovecot, an SMTP sink and a
/// Shopify stand-in, with helpers to make a user's store and put mail in its mailbox.
final class EmailRig {
    let stack: JobStack
    let api: StackAPI
    let server: StandInHTTPServer
    let sink: SMTPSink
    let shop: ShopifyShop
    /// What every executable of the rig runs with: Dovecot and the sink are on 127.0.0.1,
    /// the stand-ins on 127.0.0.2; retries and breakers on a short time scale.
    let environment: [String: String]
    let ingestorPort: Int

    private init(stack: JobStack, api: StackAPI, server: StandInHTTPServer, sink: SMTPSink, shop: ShopifyShop, environment: [String: String],
                 ingestorPort: Int) {
        self.ingestorPort = ingestorPort
        self.stack = stack
        self.api = api
        self.server = server
        self.sink = sink
        self.shop = shop
        self.environment = environment
    }

    /// Retries after 1, 2, 4 s (the policy's doubling on a seconds scale), four attempts.
    static let kinds = "kinds:\n  email.process: { backoffBase: 1, backoffFactor: 2, maxAttempts: 4, heartbeatTimeout: 4 }\n"

    static func with(processors: Int = 1, breaker: String = "3/60/2", processorEnvironment: @escaping (StandInHTTPServer) -> [String: String] = { _ in [:] },
                     _ body: (EmailRig) async throws -> Void) async throws {
        let stack = try await JobStack(kinds: kinds)
        let api = try await StackAPI(stack: stack)
        let sink = try SMTPSink()
        defer { sink.stop() }
        try await StandInHTTPServer.withServer { server in
            let shop = ShopifyShop(domain: "loja-\(UUID().uuidString.prefix(6).lowercased()).myshopify.com", token: "shpat_test", start: Date(), days: 1)
            shop.serve(on: server)
            let environment = ["ESTEIRA_HTTP_ALLOW": "127.0.0.1/32,\(StandInHTTPServer.host)/32",
                               "ESTEIRA_EMAIL_SHOPIFY_URL": server.url("/shopify/{shop}"),
                               "ESTEIRA_EMAIL_BREAKER": breaker,
                               "ESTEIRA_INGESTOR_MAIL_INTERVAL": "0.3"]
            let port = freePort()
            try await stack.startExecutable("ingestor", environment: environment.merging(["ESTEIRA_HTTP_PORT": "\(port)"]) { a, _ in a })
            for _ in 0..<processors {
                try await stack.startProcessor(environment: environment.merging(processorEnvironment(server)) { _, b in b })
            }
            try await body(EmailRig(stack: stack, api: api, server: server, sink: sink, shop: shop, environment: environment, ingestorPort: port))
        }
    }

    /// A store of `token`'s user reading a new Dovecot mailbox and sending to the sink;
    /// returns its id and its mailbox's login.
    func store(as token: String, credits: Int = 100, shop withShop: Bool = true, active: Bool = true) async throws -> (id: String, mailbox: MailConnection.Server) {
        let mailbox = try TestIMAP.newUser()
        let shopFields = withShop ? #", "shop_domain": "\#(shop.domain)", "shop_token": "\#(shop.token)""# : ""
        let r = try await api.post("/v1/email-stores", #"""
            {"name": "Loja Teste", "imap_host": "127.0.0.1", "imap_port": \#(mailbox.port), "imap_security": "none",
             "imap_user": "\#(mailbox.user)", "imap_password": "\#(mailbox.password)",
             "smtp_host": "127.0.0.1", "smtp_port": \#(sink.port), "smtp_security": "none",
             "from_address": "suporte@loja.example", "credits": \#(credits), "active": \#(active)\#(shopFields)}
            """#, as: token)
        #expect(r.status == 201, "store: \(r.text)")
        #expect(!r.text.contains(mailbox.password) && !r.text.contains(shop.token), "secrets are never returned")
        return (try #require(r.json["id"] as? String), mailbox)
    }

    /// Puts a message into `mailbox` by IMAP APPEND.
    func deliver(_ mailbox: MailConnection.Server, from: String = "Maria Souza <maria@cliente.example>", subject: String, text: String,
                 messageID: String = "<\(UUID().uuidString)@cliente.example>", extraHeaders: [String] = []) throws {
        let lines = ["From: \(from)", "To: suporte@loja.example", "Subject: \(subject)", "Date: Thu, 03 Dec 2026 10:00:00 +0000",
                     "Message-ID: \(messageID)", "MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8",
                     "Content-Transfer-Encoding: 8bit"] + extraHeaders + ["", text, ""]
        try MailConnection().append(mailbox, message: Array(lines.joined(separator: "\r\n").utf8))
    }

    func messages(_ store: String, as token: String) async throws -> [[String: Any]] {
        let r = try await api.get("/v1/email-stores/\(store)/messages?limit=500", as: token)
        #expect(r.status == 200, "messages: \(r.text)")
        return r.json["email_messages"] as? [[String: Any]] ?? []
    }

    /// Waits until `store`'s messages satisfy `done` (every one out of `queued`, say).
    @discardableResult
    func waitForMessages(_ store: String, as token: String, timeout: Duration = .seconds(60), _ done: ([[String: Any]]) -> Bool) async throws -> [[String: Any]] {
        let deadline = ContinuousClock.now + timeout
        var last: [[String: Any]] = []
        while ContinuousClock.now < deadline {
            last = try await messages(store, as: token)
            if done(last) { return last }
            try await Task.sleep(for: .milliseconds(200))
        }
        let logs = stack.processors.map { $0.text.split(separator: "\n").filter { $0.contains("warning") || $0.contains("error") }.suffix(5).joined(separator: "\n") }
        Issue.record("messages never reached the state: \(last.map { "\($0["subject"] ?? "") \($0["status"] ?? "")" }); warnings: \(logs)")
        return last
    }

    func storeView(_ store: String, as token: String) async throws -> [String: Any] {
        let r = try await api.get("/v1/email-stores/\(store)", as: token)
        #expect(r.status == 200, "store: \(r.text)")
        return r.json
    }

    static func statuses(_ messages: [[String: Any]]) -> [String: String] {
        Dictionary(messages.map { ($0["subject"] as? String ?? "", $0["status"] as? String ?? "") }, uniquingKeysWith: { a, _ in a })
    }
}

@Suite(.serialized) struct EmailTests {
    /// Settings are the owner's: secrets never returned, another user's store is not found,
    /// bad input names its field.
    @Test func storeSettingsAreOwnedAndTheirSecretsNeverShown() async throws {
        try await EmailRig.with { rig in
            let alice = try await rig.api.userToken(), bob = try await rig.api.userToken()
            let (store, mailbox) = try await rig.store(as: alice, active: false)
            let list = try await rig.api.get("/v1/email-stores", as: alice)
            #expect((list.json["email_stores"] as? [[String: Any]])?.map { $0["id"] as? String } == [store])
            #expect(!list.text.contains(mailbox.password) && !list.text.contains("shpat_test"))
            #expect(try await rig.api.get("/v1/email-stores/\(store)", as: bob).status == 404)
            #expect(try await rig.api.get("/v1/email-stores/\(store)/messages", as: bob).status == 404)
            #expect((try await rig.api.get("/v1/email-stores", as: bob).json["email_stores"] as? [Any])?.isEmpty == true)
            let patch = try await rig.api.call(.patch, "/v1/email-stores/\(store)", token: bob, body: #"{"credits": 5}"#)
            #expect(patch.status == 404, "another's store cannot be changed")
            let changed = try await rig.api.call(.patch, "/v1/email-stores/\(store)", token: alice, body: #"{"credits": 7, "imap_password": "new-secret"}"#)
            #expect(changed.status == 200 && changed.json["credits"] as? Int == 7 && !changed.text.contains("new-secret"), "\(changed.text)")
            for (body, field) in [(#"{"credits": -1}"#, "credits"), (#"{"shop_domain": "x.myshopify.com"}"#, "shop_token"),
                                  (#"{"imap_security": "ssl3"}"#, "imap_security"), (#"{"from_address": "nobody"}"#, "from_address"),
                                  (#"{"imap_port": 0}"#, "imap_port"), (#"{}"#, "body"), (#"{"smtp_host": "a/b"}"#, "smtp_host"),
                                  (#"{"colour": 1}"#, "colour")] {
                let r = try await rig.api.call(.patch, "/v1/email-stores/\(store)", token: alice, body: body)
                #expect(r.status == 400 && r.field == field, "\(body): \(r.status) \(r.text)")
            }
            let missing = try await rig.api.post("/v1/email-stores", #"{"name": "x", "imap_host": "h", "imap_port": 993}"#, as: alice)
            #expect(missing.status == 400 && missing.field == "imap_user", "\(missing.text)")
            // The database kept the secret as given.
            let kept: String = try await rig.stack.scalar("SELECT imap_password FROM email_stores WHERE id = $1", [UUID(uuidString: store)!])
            #expect(kept == "new-secret")
        }
    }

    /// The pipeline end to end: each message stored once (a second copy of a Message-ID is
    /// skipped), answered with its order, threaded, one credit per reply; automatic mail
    /// skipped; spam and an address that cannot be answered dead at once.
    @Test func mailIsStoredOnceClassifiedLookedUpAndAnswered() async throws {
        try await EmailRig.with { rig in
            let user = try await rig.api.userToken()
            let (store, mailbox) = try await rig.store(as: user, credits: 10)
            rig.shop.addOrder(number: 1042, email: "maria@cliente.example", firstName: "Maria", fulfillment: "fulfilled",
                              trackingURL: "https://rastreio.example/AB123")
            let asked = "<pedido-1042@cliente.example>"
            try rig.deliver(mailbox, subject: "Onde está meu pedido #1042?", text: "Olá, ainda não recebi meu pedido.", messageID: asked)
            try rig.deliver(mailbox, subject: "Onde está meu pedido #1042?", text: "a copy of the same message", messageID: asked)
            try rig.deliver(mailbox, from: "João <joao@cliente.example>", subject: "Quero reembolso", text: "Quero o reembolso do pedido, por favor.")
            try rig.deliver(mailbox, subject: "Fora do escritório", text: "Estou de férias.", extraHeaders: ["Auto-Submitted: auto-replied"])
            try rig.deliver(mailbox, from: "Promo <promo@spam.example>", subject: "GANHE DINHEIRO AGORA MESMO",
                            text: "Ganhe dinheiro com o online casino, clique aqui para resgatar o premio garantido")
            try rig.deliver(mailbox, from: "sem endereço <not-an-address>", subject: "Sem remetente", text: "Onde está meu pedido?")
            let final: Set<String> = ["replied", "skipped", "spam", "invalid"]
            let messages = try await rig.waitForMessages(store, as: user) { list in
                list.count == 5 && list.allSatisfy { final.contains($0["status"] as? String ?? "") }
            }
            let byStatus = EmailRig.statuses(messages)
            #expect(byStatus["Onde está meu pedido #1042?"] == "replied")
            #expect(byStatus["Quero reembolso"] == "replied")
            #expect(byStatus["Fora do escritório"] == "skipped")
            #expect(byStatus["GANHE DINHEIRO AGORA MESMO"] == "spam")
            #expect(byStatus["Sem remetente"] == "invalid")
            // Two replies sent, threaded under their messages, the order's state in the first.
            let sent = rig.sink.messages()
            #expect(sent.count == 2, "replies sent: \(sent.count)")
            let orderReply = try #require(sent.map { String(decoding: $0.data, as: UTF8.self) }.first { $0.contains("In-Reply-To: \(asked)") })
            let replyText = try #require(messages.first { "<\($0["message_id"] as? String ?? "")>" == asked }?["reply_text"] as? String)
            #expect(replyText.contains("#1042") && replyText.contains("enviado") && replyText.contains("https://rastreio.example/AB123")
                    && replyText.contains("Olá Maria"), "\(replyText)")
            #expect(orderReply.contains("Auto-Submitted: auto-replied") && orderReply.contains("References: \(asked)"))
            #expect(sent.allSatisfy { $0.mailFrom == "suporte@loja.example" })
            #expect(Set(sent.flatMap(\.recipients)) == ["maria@cliente.example", "joao@cliente.example"])
            // One credit per reply; the mailbox's position and counters.
            let view = try await rig.storeView(store, as: user)
            #expect(view["credits"] as? Int == 8 && view["credits_used"] as? Int == 2, "\(view)")
            let ingest = try #require(view["ingest"] as? [String: Any])
            #expect(ingest["last_uid"] as? Int == 6 && ingest["messages_total"] as? Int == 5, "\(ingest)")
            // Spam and the bad address are dead with their reasons; the others completed.
            let dead: Int = try await rig.stack.scalar("SELECT count(*)::int FROM jobs WHERE kind = 'email.process' AND status = 'dead'")
            let completed: Int = try await rig.stack.scalar("SELECT count(*)::int FROM jobs WHERE kind = 'email.process' AND status = 'completed'")
            #expect(dead == 2 && completed == 3, "dead \(dead), completed \(completed)")
            let spamAttempts: Int = try await rig.stack.scalar("""
                SELECT j.attempts FROM jobs j JOIN email_messages m ON m.job_id = j.id WHERE m.status = 'spam'
                """)
            #expect(spamAttempts == 1, "spam is not retried")
            // The ingestor's metrics, per store.
            let metrics = try await HTTPClient().execute(HTTPRequest(method: .get, url: "http://127.0.0.1:\(rig.ingestorPort)/metrics")).bodyString
            #expect(metrics.contains(#"esteira_email_ingested_total{store="\#(store.lowercased())"} 5"#), "\(metrics.split(separator: "\n").filter { $0.contains("email") })")
            #expect(metrics.contains(#"esteira_email_duplicates_total{store="\#(store.lowercased())"} 1"#))
        }
    }

    /// A changed UIDVALIDITY makes the next round read the mailbox from its start: what was
    /// stored is fetched again and skipped by its Message-ID, only new mail is stored.
    @Test func aChangedUIDValidityReadsTheMailboxAgainWithoutDuplicates() async throws {
        try await EmailRig.with { rig in
            let user = try await rig.api.userToken()
            let (store, mailbox) = try await rig.store(as: user)
            try rig.deliver(mailbox, subject: "Primeira", text: "Onde está meu pedido?")
            try rig.deliver(mailbox, subject: "Segunda", text: "Quero trocar o tamanho.")
            try await rig.waitForMessages(store, as: user) { $0.count == 2 && $0.allSatisfy { $0["status"] as? String == "replied" } }
            let id = UUID(uuidString: store)!
            let validity: Int = try await rig.stack.scalar("SELECT uid_validity::int FROM email_stores WHERE id = $1", [id])
            // As if the server had renumbered the mailbox: the stored UIDVALIDITY is not the server's any more.
            try await rig.stack.pool.withConnection { try $0.execute("UPDATE email_stores SET uid_validity = uid_validity + 7 WHERE id = $1", [id]) }
            try rig.deliver(mailbox, subject: "Terceira", text: "Quero reembolso.")
            try await rig.waitForMessages(store, as: user) { $0.count == 3 && $0.allSatisfy { $0["status"] as? String == "replied" } }
            try await Task.sleep(for: .seconds(1))
            let jobs: Int = try await rig.stack.scalar("SELECT count(*)::int FROM jobs WHERE kind = 'email.process'")
            #expect(jobs == 3, "one job per message")
            #expect(rig.sink.messages().count == 3, "one reply per message")
            let now: Int = try await rig.stack.scalar("SELECT uid_validity::int FROM email_stores WHERE id = $1", [id])
            let last: Int = try await rig.stack.scalar("SELECT last_uid::int FROM email_stores WHERE id = $1", [id])
            #expect(now == validity && last == 3)
        }
    }

    /// 550 is permanent (dead at once, the credit given back); 451 retries after 1, 2 and 4 s
    /// (the policy on a short scale) until the attempts are spent.
    @Test func smtpRefusalsDieOrRetryOnThePolicysSchedule() async throws {
        try await EmailRig.with(breaker: "100/60/2") { rig in
            let user = try await rig.api.userToken()
            let (store, mailbox) = try await rig.store(as: user, credits: 5)
            try rig.sink.refuse(at: .rcpt, with: "550 5.1.1 no such user")
            try rig.deliver(mailbox, subject: "Primeira", text: "Onde está meu pedido?")
            try await rig.waitForMessages(store, as: user) { $0.first?["status"] as? String == "failed" }
            let dead: String = try await rig.stack.scalar("SELECT status || ' ' || attempts FROM jobs WHERE kind = 'email.process'")
            #expect(dead == "dead 1")
            try rig.sink.refuse(at: .rcpt, with: "451 4.3.0 try again later")
            try rig.deliver(mailbox, subject: "Segunda", text: "Onde está meu pedido?")
            let messages = try await rig.waitForMessages(store, as: user) { list in list.contains { $0["subject"] as? String == "Segunda" && $0["status"] as? String == "failed" } }
            let job = try #require(UUID(uuidString: messages.first { $0["subject"] as? String == "Segunda" }?["job_id"] as? String ?? ""))
            let record = try await rig.stack.job(job)
            #expect(record.status == .dead && record.attempts == 4, "\(record.status) \(record.attempts)")
            let starts: [Double] = try await rig.stack.pool.withConnection {
                try $0.query("SELECT extract(epoch FROM at)::float8 FROM job_events WHERE job_id = $1 AND status = 'running' ORDER BY id", [job])
                    .map { try $0.decode(Double.self, at: 0) }
            }
            #expect(starts.count == 4)
            let gaps = zip(starts.dropFirst(), starts).map { $0 - $1 }
            for (gap, wanted) in zip(gaps, [1.0, 2.0, 4.0]) {
                #expect(gap >= wanted - 0.05 && gap < wanted + 2, "retry after \(gaps), wanted 1, 2, 4 s")
            }
            #expect(rig.sink.messages().isEmpty, "nothing was accepted")
            let view = try await rig.storeView(store, as: user)
            #expect(view["credits"] as? Int == 5 && view["credits_used"] as? Int == 0, "credits given back: \(view)")
        }
    }

    /// An SMTP server answering 421 opens its breaker (3 failures); once it accepts again a
    /// probe closes the breaker and every message is answered.
    @Test func anSMTPOutageOpensItsBreakerAndARecoveryClosesIt() async throws {
        try await EmailRig.with(breaker: "3/60/2") { rig in
            let user = try await rig.api.userToken()
            let (store, mailbox) = try await rig.store(as: user)
            try rig.sink.refuse(at: .rcpt, with: "421 4.3.2 service shutting down")
            for n in 1...3 { try rig.deliver(mailbox, subject: "Mensagem \(n)", text: "Onde está meu pedido?") }
            let breaker = "smtp:127.0.0.1"
            let deadline = ContinuousClock.now + .seconds(30)
            var state = ""
            while ContinuousClock.now < deadline {
                state = try await rig.stack.pool.withConnection {
                    try $0.query("SELECT state FROM circuit_breakers WHERE name = $1", [breaker]).first?.decode(String.self, at: 0)
                } ?? ""
                if state == "open" { break }
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(state == "open", "the breaker opened")
            try rig.sink.refuse(at: .rcpt, with: nil)
            try await rig.waitForMessages(store, as: user) { $0.count == 3 && $0.allSatisfy { $0["status"] as? String == "replied" } }
            let events: [String] = try await rig.stack.pool.withConnection {
                try $0.query("SELECT state FROM circuit_breaker_events WHERE name = $1 ORDER BY id", [breaker]).map { try $0.decode(String.self, at: 0) }
            }
            #expect(events.first == "open" && events.suffix(2) == ["half_open", "closed"], "\(events)")
            #expect(rig.sink.messages().count == 3)
        }
    }

    /// A burst of replies in one thread, two processors: never two of the conversation at once.
    @Test func oneConversationIsNeverProcessedByTwoWorkersAtOnce() async throws {
        try await EmailRig.with(processors: 2) { rig in
            let user = try await rig.api.userToken()
            let (store, mailbox) = try await rig.store(as: user)
            // Each send takes half a second.
            try rig.sink.refuse(at: .data, with: "hold 0.5")
            let root = "<thread-root-\(UUID().uuidString)@cliente.example>"
            try rig.deliver(mailbox, subject: "Pedido atrasado", text: "Onde está meu pedido?", messageID: root)
            for n in 1...5 {
                try rig.deliver(mailbox, subject: "Re: Pedido atrasado \(n)", text: "Alguma novidade? \(n)",
                                extraHeaders: ["In-Reply-To: \(root)", "References: \(root)"])
            }
            try rig.deliver(mailbox, from: "Outra <outra@cliente.example>", subject: "Outra conversa", text: "Onde está meu pedido?")
            let messages = try await rig.waitForMessages(store, as: user) { $0.count == 7 && $0.allSatisfy { $0["status"] as? String == "replied" } }
            let thread = messages.filter { $0["conversation_id"] as? String == String(root.dropFirst().dropLast()) }
            #expect(thread.count == 6)
            var spans: [(Double, Double)] = []
            for m in thread {
                let job = try #require(UUID(uuidString: m["job_id"] as? String ?? ""))
                let span: [Double] = try await rig.stack.pool.withConnection {
                    try $0.query("""
                        SELECT extract(epoch FROM min(at) FILTER (WHERE status = 'running'))::float8,
                               extract(epoch FROM max(at) FILTER (WHERE status = 'completed'))::float8
                        FROM job_events WHERE job_id = $1
                        """, [job]).map { [try $0.decode(Double.self, at: 0), try $0.decode(Double.self, at: 1)] }[0]
                }
                spans.append((span[0], span[1]))
            }
            spans.sort { $0.0 < $1.0 }
            for (a, b) in zip(spans, spans.dropFirst()) {
                #expect(b.0 >= a.1 - 0.001, "two jobs of one conversation overlapped: \(spans)")
            }
        }
    }

    /// kill -9 of the processor while the SMTP server holds the reply it took: the job runs
    /// again elsewhere, finds the send begun and unanswered, and neither sends nor debits again.
    @Test func aProcessorKilledBetweenTheSendAndTheAckNeitherSendsNorDebitsTwice() async throws {
        try await EmailRig.with { rig in
            let user = try await rig.api.userToken()
            let (store, mailbox) = try await rig.store(as: user, credits: 3)
            try rig.sink.refuse(at: .data, with: "hold 30")
            try rig.deliver(mailbox, subject: "Onde está?", text: "Onde está meu pedido?")
            let deadline = ContinuousClock.now + .seconds(30)
            while rig.sink.messages().isEmpty, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
            #expect(rig.sink.messages().count == 1, "the server took the reply")
            let processor = rig.stack.processors[1]
            processor.signal(SIGKILL)
            _ = await processor.waitForExit(timeout: .seconds(10))
            try rig.sink.refuse(at: .data, with: nil)
            try await rig.stack.startProcessor(environment: rig.environment)
            try await rig.stack.startScheduler(environment: rig.environment)
            let messages = try await rig.waitForMessages(store, as: user, timeout: .seconds(90)) { $0.first?["status"] as? String == "unconfirmed" }
            let job = try #require(UUID(uuidString: messages.first?["job_id"] as? String ?? ""))
            _ = try await rig.stack.waitFor(job, .completed)
            try await Task.sleep(for: .seconds(2))
            #expect(rig.sink.messages().count == 1, "not sent twice")
            let view = try await rig.storeView(store, as: user)
            #expect(view["credits"] as? Int == 2 && view["credits_used"] as? Int == 1, "debited once: \(view)")
        }
    }

    /// With an LLM endpoint set, its class is used; when it fails the rules classify, and
    /// after 3 failures its breaker opens and it is not asked until the probe.
    @Test func theLLMClassifiesAndTheRulesStandInWhenItFails() async throws {
        let failing = Locked(false), asked = Locked(0)
        // A 30 s cool-down: the breaker stays open for the rest of the test.
        try await EmailRig.with(breaker: "3/60/30", processorEnvironment: { server in
            server.on("POST", "/llm/v1/chat/completions") { request in
                asked.withLock { $0 += 1 }
                guard request.header("Authorization") == "Bearer llm-key",
                      String(decoding: request.body, as: UTF8.self).contains("\"model\":\"test-model\"") else {
                    return .json(#"{"error":"bad request"}"#, status: 400)
                }
                if failing.withLock({ $0 }) { return .json(#"{"error":"overloaded"}"#, status: 500) }
                return .json(#"{"choices":[{"index":0,"message":{"role":"assistant","content":"refund"}}]}"#)
            }
            return ["ESTEIRA_EMAIL_LLM_URL": server.url("/llm/v1/chat/completions"), "ESTEIRA_EMAIL_LLM_KEY": "llm-key",
                    "ESTEIRA_EMAIL_LLM_MODEL": "test-model"]
        }) { rig in
            let user = try await rig.api.userToken()
            let (store, mailbox) = try await rig.store(as: user, shop: false)
            try rig.deliver(mailbox, subject: "Dúvida", text: "Vocês entregam no sábado?")
            var messages = try await rig.waitForMessages(store, as: user) { $0.first?["status"] as? String == "replied" }
            #expect(messages.first?["class"] as? String == "refund", "the LLM's class, not the rules' (other)")
            failing.withLock { $0 = true }
            for n in 1...5 { try rig.deliver(mailbox, subject: "Pedido \(n)", text: "Onde está meu pedido? Ainda não chegou.") }
            messages = try await rig.waitForMessages(store, as: user) { $0.count == 6 && $0.allSatisfy { $0["status"] as? String == "replied" } }
            #expect(messages.filter { ($0["subject"] as? String)?.hasPrefix("Pedido") == true }.allSatisfy { $0["class"] as? String == "order_status" },
                    "the rules classified while the LLM failed")
            let state: String = try await rig.stack.scalar("SELECT state FROM circuit_breakers WHERE name = $1", ["llm:\(StandInHTTPServer.host)"])
            #expect(state == "open", "three failures opened the LLM's breaker")
            // Open, it is not asked: the rules classify at once.
            let before = asked.withLock { $0 }
            for n in 1...2 { try rig.deliver(mailbox, subject: "Troca \(n)", text: "Quero trocar, veio o tamanho errado.") }
            messages = try await rig.waitForMessages(store, as: user) { $0.count == 8 && $0.allSatisfy { $0["status"] as? String == "replied" } }
            #expect(messages.filter { ($0["subject"] as? String)?.hasPrefix("Troca") == true }.allSatisfy { $0["class"] as? String == "exchange" })
            #expect(asked.withLock { $0 } == before, "not asked while its breaker is open")
        }
    }
}
