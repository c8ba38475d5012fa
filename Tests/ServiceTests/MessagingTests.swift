import EsteiraCore
import Foundation
import HTTPClient
import Postgres
import StandIns
import Testing

/// An api, a processor, an ingestor and a provider stand-in, with helpers to make a user's
/// instance and contacts.
final class MessagingRig {
    let stack: JobStack
    let api: StackAPI
    let server: StandInHTTPServer
    let ingestorPort: Int

    private init(stack: JobStack, api: StackAPI, server: StandInHTTPServer, ingestorPort: Int) {
        self.stack = stack
        self.api = api
        self.server = server
        self.ingestorPort = ingestorPort
    }

    /// Fast retries for the send kind unless `kinds` says otherwise.
    static func with(kinds: String = "kinds:\n  envio_mensagem: { backoffBase: 0.2, backoffFactor: 1 }\n  processamento_webhook: { backoffBase: 0.2, backoffFactor: 1 }\n",
                     processorEnvironment: [String: String] = [:], _ body: (MessagingRig) async throws -> Void) async throws {
        let stack = try await JobStack(kinds: kinds)
        let api = try await StackAPI(stack: stack)
        let port = freePort()
        try await stack.startExecutable("ingestor", environment: ["ESTEIRA_HTTP_PORT": "\(port)"])
        try await stack.startProcessor(environment: processorEnvironment)
        try await StandInHTTPServer.withServer { server in
            try await body(MessagingRig(stack: stack, api: api, server: server, ingestorPort: port))
        }
    }

    /// A provider instance of `token`'s user served by a new stand-in; returns its id, webhook secret and the stand-in.
    func instance(as token: String, rate: Double = 1000) async throws -> (id: String, secret: String, provider: MessagingProvider) {
        let provider = MessagingProvider()
        provider.serve(on: server)
        let r = try await api.post("/v1/instances", #"""
            {"nome": "numero 1", "base_url": "\#(server.url(provider.basePath))", "token": "\#(provider.token)", "rate_limit": \#(rate), "burst": \#(Int(rate))}
            """#, as: token)
        #expect(r.status == 201, "instance: \(r.text)")
        #expect(!r.text.contains(provider.token), "the token is never returned")
        let instance = try #require(r.json["instance"] as? [String: Any]), webhook = try #require(r.json["webhook"] as? [String: Any])
        return (try #require(instance["id"] as? String), try #require(webhook["webhook_secret"] as? String), provider)
    }

    /// `count` contacts of `token`'s user numbered from `first`; returns their ids by number.
    func contacts(_ count: Int, first: Int = 0, as token: String) async throws -> [String: String] {
        let items = (0..<count).map { #"{"nome": "Cliente \#(first + $0)", "telefone": "+55119\#(String(format: "%08d", first + $0))"}"# }
        let r = try await api.post("/v1/contacts/bulk", #"{"contatos": [\#(items.joined(separator: ","))]}"#, as: token)
        #expect(r.status == 201 && r.json["created"] as? Int == count, "contacts: \(r.text.prefix(300))")
        var out: [String: String] = [:]
        var after = ""
        while true {
            let page = try await api.get("/v1/contacts?limit=1000\(after)", as: token)
            let list = page.json["contacts"] as? [[String: Any]] ?? []
            for c in list { out[c["telefone"] as! String] = c["id"] as? String }
            guard list.count == 1000, let last = list.last?["id"] as? String else { break }
            after = "&after=\(last)"
        }
        return out
    }

    static func phone(_ n: Int) -> String { "+55119\(String(format: "%08d", n))" }

    var webhookBase: String { "http://127.0.0.1:\(ingestorPort)/v1/webhooks/messaging" }

    func messages(of contact: String, as token: String) async throws -> [[String: Any]] {
        try await api.get("/v1/contacts/\(contact)/messages", as: token).json["messages"] as? [[String: Any]] ?? []
    }

    func waitFor(_ what: String, timeout: Duration = .seconds(60), _ check: () async throws -> Bool) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if try await check() { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        Issue.record("not true after \(timeout): \(what)\nprocessor: \(stack.processors.map(\.text).joined(separator: "\n---\n").suffix(3000))")
        throw CancellationError()
    }

    func campaign(_ id: String, as token: String) async throws -> [String: Any] {
        try await api.get("/v1/campaigns/\(id)", as: token).json
    }
}

@Suite struct MessagingTests {
    @Test func aMessageIsSentOnceThroughRetriesAndItsReceiptsMoveItForward() async throws {
        try await MessagingRig.with(processorEnvironment: ["ESTEIRA_MESSAGING_PROVIDER_TIMEOUT": "3"]) { rig in
            let alice = try await rig.api.userToken(), bob = try await rig.api.userToken()
            let (instance, secret, provider) = try await rig.instance(as: alice)
            let contacts = try await rig.contacts(3, as: alice)
            let contact = try #require(contacts[MessagingRig.phone(0)])
            // Bad input, each naming its field; Bob sees nothing of Alice's.
            let badPhone = try await rig.api.post("/v1/contacts", #"{"nome": "x", "telefone": "12"}"#, as: alice)
            #expect(badPhone.status == 400 && badPhone.field == "telefone", "\(badPhone.text)")
            let dup = try await rig.api.post("/v1/contacts", #"{"nome": "x", "telefone": "\#(MessagingRig.phone(0))"}"#, as: alice)
            #expect(dup.status == 409 && dup.field == "telefone", "\(dup.text)")
            let badURL = try await rig.api.post("/v1/instances", #"{"nome": "x", "base_url": "ftp://x", "token": "t"}"#, as: alice)
            #expect(badURL.status == 400 && badURL.field == "base_url")
            #expect(try await rig.api.get("/v1/contacts/\(contact)", as: bob).status == 404)
            #expect(try await rig.api.get("/v1/contacts/\(contact)/messages", as: bob).status == 404)
            let theirs = try await rig.api.post("/v1/messages", #"{"contato_id": "\#(contact)", "conteudo": "oi", "instance_id": "\#(instance)"}"#, as: bob)
            #expect(theirs.status == 404 && theirs.field == "contato_id", "\(theirs.text)")

            // 429 (Retry-After 1: waited within the attempt), a 5xx, a timeout, then a send
            // whose answer is lost after the provider sent it: retried with the same key.
            provider.faults.failNext([.tooManyRequests(retryAfter: 1), StandInResponse.json(#"{"error":"unavailable"}"#, status: 502),
                                      StandInResponse.json(#"{"id":"late"}"#).delayed(by: .seconds(6))])
            provider.dropAfterSending(1)
            let r = try await rig.api.post("/v1/messages", #"{"contato_id": "\#(contact)", "conteudo": "Olá, seu pedido saiu!", "instance_id": "\#(instance)"}"#, as: alice)
            #expect(r.status == 202, "\(r.text)")
            let job = try #require(UUID(uuidString: r.json["job_id"] as? String ?? ""))
            let done = try await rig.stack.waitFor(job, .completed)
            #expect(done.attempts == 4, "the 502, the timeout and the lost answer each cost an attempt; the 429 did not")
            #expect(provider.sent.count == 1 && provider.repeats == 1, "sent once: \(provider.sent), repeats \(provider.repeats)")
            var messages = try await rig.messages(of: contact, as: alice)
            #expect(messages.count == 1)
            let message = try #require(messages.first)
            #expect(message["status"] as? String == "enviada" && message["provider_message_id"] as? String == provider.sent[0].id, "\(message)")
            #expect(provider.sent[0].key == (message["id"] as? String), "the idempotency key is the message's id")
            #expect(provider.sent[0].to == MessagingRig.phone(0) && provider.sent[0].text == "Olá, seu pedido saiu!")

            // Receipts through the ingestor: delivered, read; a repeat is stored once; an old
            // receipt never moves the message back.
            let url = "\(rig.webhookBase)/\(instance)"
            #expect(try await provider.postReceipts([provider.sent[0].id], status: "delivered", to: url, secret: secret) == [202])
            try await rig.waitFor("entregue") { try await rig.messages(of: contact, as: alice).first?["status"] as? String == "entregue" }
            #expect(try await provider.postReceipts([provider.sent[0].id], status: "read", to: url, secret: secret) == [202])
            try await rig.waitFor("lida") { try await rig.messages(of: contact, as: alice).first?["status"] as? String == "lida" }
            #expect(try await provider.postReceipts([provider.sent[0].id], status: "delivered", to: url, secret: secret) == [202])
            #expect(try await rig.stack.scalar("SELECT count(*)::int FROM webhook_eventos", as: Int.self) == 2, "the repeated receipt is stored once")
            try await Task.sleep(for: .milliseconds(500))
            messages = try await rig.messages(of: contact, as: alice)
            #expect(messages.first?["status"] as? String == "lida" && messages.first?["lida_em"] is String)

            // An invalid number fails at once, for good, with the provider's reason.
            provider.refuse(MessagingRig.phone(1))
            let invalid = try await rig.api.post("/v1/messages", #"{"contato_id": "\#(contacts[MessagingRig.phone(1)]!)", "conteudo": "oi", "instance_id": "\#(instance)"}"#, as: alice)
            let dead = try await rig.stack.waitFor(try #require(UUID(uuidString: invalid.json["job_id"] as? String ?? "")), .dead)
            #expect(dead.attempts == 1 && (dead.lastError ?? "").contains("invalid_number"), "\(dead.lastError ?? "")")
            let failed = try await rig.messages(of: contacts[MessagingRig.phone(1)]!, as: alice).first
            #expect(failed?["status"] as? String == "falha" && (failed?["erro"] as? String ?? "").contains("invalid_number"))

            // Through POST /v1/jobs: Bob's job naming Alice's contact sends nothing.
            let bobs = try await rig.api.enqueue(#"{"kind": "envio_mensagem", "payload": {"contato_id": "\#(contacts[MessagingRig.phone(2)]!)", "conteudo": "x", "instance_id": "\#(instance)"}}"#, as: bob)
            let refused = try await rig.stack.waitFor(bobs, .dead)
            #expect((refused.lastError ?? "").contains("not the job owner's"), "\(refused.lastError ?? "")")
            #expect(provider.sent.count == 1)
        }
    }

    @Test func webhooksAreCheckedStoredOnceAndIncomingMessagesLand() async throws {
        try await MessagingRig.with { rig in
            let alice = try await rig.api.userToken()
            let (instance, secret, provider) = try await rig.instance(as: alice)
            let url = "\(rig.webhookBase)/\(instance)"
            let http = HTTPClient()
            func post(_ body: String, signature: String?, to target: String? = nil) async throws -> (Int, [String: Any]) {
                var headers = [("Content-Type", "application/json")]
                if let signature { headers.append(("X-Esteira-Signature", signature)) }
                let r = try await http.execute(HTTPRequest(method: .post, url: target ?? url, headers: HTTPHeaders(headers), body: Array(body.utf8)))
                return (r.status, ((try? JSONSerialization.jsonObject(with: Data(r.body))) as? [String: Any]) ?? [:])
            }
            func sign(_ body: String) -> String { "sha256=" + HMACSHA256.hex(key: secret, message: Array(body.utf8)) }
            let body = #"{"event_id": "e1", "type": "message.received", "message_id": "in-1", "from": "+5521999990000", "text": "Quero cancelar"}"#
            // Unsigned, badly signed, unknown instance, not JSON, no event id: refused, nothing stored.
            #expect(try await post(body, signature: nil).0 == 401)
            let wrong = try await post(body, signature: "sha256=" + String(repeating: "0", count: 64))
            #expect(wrong.0 == 401 && wrong.1["field"] as? String == "X-Esteira-Signature")
            #expect(try await post(body, signature: sign(body), to: "\(rig.webhookBase)/\(UUID())").0 == 404)
            let notJSON = try await post("nope", signature: sign("nope"))
            #expect(notJSON.0 == 400 && notJSON.1["field"] as? String == "body")
            let noID = #"{"type": "message.status"}"#
            let missing = try await post(noID, signature: sign(noID))
            #expect(missing.0 == 400 && missing.1["field"] as? String == "event_id")
            #expect(try await rig.stack.scalar("SELECT count(*)::int FROM webhook_eventos", as: Int.self) == 0)
            // The same event three times: stored once, one job, applied once.
            let started = ContinuousClock.now
            let first = try await post(body, signature: sign(body))
            let answered = ContinuousClock.now - started
            #expect(first.0 == 202 && first.1["duplicate"] as? Bool == false, "\(first)")
            #expect(answered < .seconds(1), "a webhook is answered at once: \(answered)")
            for _ in 0..<2 {
                let again = try await post(body, signature: sign(body))
                #expect(again.0 == 202 && again.1["duplicate"] as? Bool == true && again.1["job_id"] as? String == first.1["job_id"] as? String)
            }
            let job = try #require(UUID(uuidString: first.1["job_id"] as? String ?? ""))
            _ = try await rig.stack.waitFor(job, .completed)
            #expect(try await rig.stack.scalar("SELECT count(*)::int FROM webhook_eventos WHERE processed_at IS NOT NULL", as: Int.self) == 1)
            #expect(try await rig.stack.scalar("SELECT count(*)::int FROM jobs WHERE kind = 'processamento_webhook'", as: Int.self) == 1)
            // The contact was made from the number; the message is hers, incoming.
            let contacts = try await rig.api.get("/v1/contacts", as: alice).json["contacts"] as? [[String: Any]] ?? []
            let contact = try #require(contacts.first { $0["telefone"] as? String == "+5521999990000" }?["id"] as? String)
            let messages = try await rig.messages(of: contact, as: alice)
            #expect(messages.count == 1 && messages[0]["direcao"] as? String == "entrada" && messages[0]["status"] as? String == "recebida"
                    && messages[0]["conteudo"] as? String == "Quero cancelar", "\(messages)")
            // The stand-in's own incoming post lands the same way.
            #expect(try await provider.postIncoming(from: "+5521999990000", text: "Obrigado", to: url, secret: secret) == 202)
            try await rig.waitFor("second incoming message") { try await rig.messages(of: contact, as: alice).count == 2 }
            // A receipt for a message that does not exist yet is retried, then given up.
            let early = #"{"event_id": "e2", "type": "message.status", "message_id": "never", "status": "delivered"}"#
            let earlyJob = try #require(UUID(uuidString: (try await post(early, signature: sign(early))).1["job_id"] as? String ?? ""))
            let dead = try await rig.stack.waitFor(earlyJob, .dead)
            #expect(dead.attempts == 8 && (dead.lastError ?? "").contains("no message never"), "\(dead.attempts) \(dead.lastError ?? "")")
        }
    }

    /// The fan-out writes chunks of 100 here: ten transactions, each a feed event.
    @Test func aCampaignOfAThousandContactsEndsWithTheRightCountsAndItsFeedFollowsIt() async throws {
        try await MessagingRig.with(processorEnvironment: ["ESTEIRA_MESSAGING_FANOUT_CHUNK": "100"]) { rig in
            let alice = try await rig.api.userToken(), bob = try await rig.api.userToken()
            let (instance, _, provider) = try await rig.instance(as: alice)
            let contacts = try await rig.contacts(1000, as: alice)
            #expect(contacts.count == 1000)
            let invalid = stride(from: 7, to: 1000, by: 100).map(MessagingRig.phone)
            for n in invalid { provider.refuse(n) }
            // Bad input: unknown contacts (Bob's are not Alice's), both or neither selection, no such instance.
            let bobsContacts = try await rig.contacts(2, first: 5000, as: bob)
            let foreign = try await rig.api.post("/v1/campaigns", #"{"nome": "x", "mensagem": "m", "instance_id": "\#(instance)", "contatos_ids": ["\#(bobsContacts.values.first!)"]}"#, as: alice)
            #expect(foreign.status == 422 && foreign.field == "contatos_ids", "\(foreign.text)")
            let neither = try await rig.api.post("/v1/campaigns", #"{"nome": "x", "mensagem": "m", "instance_id": "\#(instance)"}"#, as: alice)
            #expect(neither.status == 400 && neither.field == "contatos_ids")
            let noInstance = try await rig.api.post("/v1/campaigns", #"{"nome": "x", "mensagem": "m", "instance_id": "\#(UUID())", "todos_contatos": true}"#, as: alice)
            #expect(noInstance.status == 404 && noInstance.field == "instance_id")
            let notBobs = try await rig.api.post("/v1/campaigns", #"{"nome": "x", "mensagem": "m", "instance_id": "\#(instance)", "todos_contatos": true}"#, as: bob)
            #expect(notBobs.status == 404 && notBobs.field == "instance_id", "Bob cannot send through Alice's instance")

            let feed = try EventStreamClient(url: rig.api.base + "/v1/feeds/campaigns", token: alice)
            defer { feed.close() }
            try await feed.waitUntilOpen()
            let bobFeed = try EventStreamClient(url: rig.api.base + "/v1/feeds/campaigns", token: bob)
            defer { bobFeed.close() }
            try await bobFeed.waitUntilOpen()
            let r = try await rig.api.post("/v1/campaigns", #"{"nome": "Black Friday", "mensagem": "Descontos de até 70%", "instance_id": "\#(instance)", "todos_contatos": true}"#, as: alice)
            #expect(r.status == 202, "\(r.text)")
            let id = try #require((r.json["campaign"] as? [String: Any])?["id"] as? String)
            try await rig.waitFor("campaign ended", timeout: .seconds(120)) {
                ["concluida", "concluida_com_falhas"].contains(try await rig.campaign(id, as: alice)["status"] as? String ?? "")
            }
            let campaign = try await rig.campaign(id, as: alice)
            #expect(campaign["status"] as? String == "concluida_com_falhas" && campaign["total"] as? Int == 1000
                    && campaign["enviadas"] as? Int == 990 && campaign["falhas"] as? Int == 10 && campaign["progresso"] as? Double == 100,
                    "\(campaign)")
            #expect(provider.sent.count == 990 && Set(provider.sent.map(\.key)).count == 990 && provider.repeats == 0)
            #expect(Set(provider.sent.map(\.to)).isDisjoint(with: invalid))
            #expect(try await rig.stack.scalar("SELECT count(*)::int FROM mensagens WHERE campanha_id = $1 AND status = 'falha'", [UUID(uuidString: id)!], as: Int.self) == 10)
            // The feed: the INSERT, progress UPDATEs in order, the last one final; Bob's feed saw none of it.
            let events = try await feed.waitFor { $0.last?.data["row"].flatMap { ($0 as? [String: Any])?["status"] as? String } == "concluida_com_falhas" }
            #expect(events.first?.data["op"] as? String == "INSERT" && events.allSatisfy { $0.name == "change" && $0.data["table"] as? String == "campanhas" })
            #expect(events.map(\.id) == events.map(\.id).sorted() && Set(events.map(\.id)).count == events.count)
            let percents = events.compactMap { (($0.data["row"] as? [String: Any])?["progresso"] as? NSNumber)?.doubleValue }
            #expect(percents == percents.sorted() && percents.last == 100 && percents.count >= 3, "\(percents)")
            // Each chunk of the fan-out committed on its own, in order.
            let queued = events.compactMap { ($0.data["row"] as? [String: Any])?["enfileiradas"] as? Int }
            var steps: [Int] = []
            for q in queued where steps.last != q { steps.append(q) }
            #expect(steps == Array(stride(from: 0, through: 1000, by: 100)), "\(queued)")
            #expect(campaign["enfileiradas"] as? Int == 1000 && campaign["enfileirada_em"] is String, "\(campaign)")
            #expect(bobFeed.events.isEmpty, "\(bobFeed.child.text.suffix(500))")
            // The job api's figures for the kinds.
            let stats = try await rig.api.get("/v1/stats", as: alice)
            #expect(stats.status == 200 && stats.text.contains("envio_mensagem"), "\(stats.text.prefix(500))")
        }
    }

    /// A processor killed mid-fan-out: the campaign's next attempt writes the contacts that
    /// have no message yet, once each, and the campaign ends with every contact sent to once.
    @Test func aFanOutCutShortByAKilledProcessorGoesOnWhereItStopped() async throws {
        let kinds = """
            kinds:
              envio_mensagem: { backoffBase: 0.2, backoffFactor: 1, heartbeatTimeout: 3 }
              envio_campanha: { heartbeatTimeout: 3 }
            """
        try await MessagingRig.with(kinds: kinds, processorEnvironment: ["ESTEIRA_MESSAGING_FANOUT_CHUNK": "20"]) { rig in
            _ = try await rig.stack.startScheduler(arguments: ["--rescue-interval", "0.5"])
            let alice = try await rig.api.userToken()
            let (instance, _, provider) = try await rig.instance(as: alice)
            _ = try await rig.contacts(4000, as: alice)
            let r = try await rig.api.post("/v1/campaigns", #"{"nome": "Interrompida", "mensagem": "oi", "instance_id": "\#(instance)", "todos_contatos": true}"#, as: alice)
            let id = try #require(UUID(uuidString: (r.json["campaign"] as? [String: Any])?["id"] as? String ?? ""))
            // 200 chunks: stop the processor once a few are written, then kill it.
            let first = try #require(rig.stack.processors.first)
            try await rig.waitFor("the first chunks written", timeout: .seconds(60)) {
                try await rig.stack.scalar("SELECT enfileiradas FROM campanhas WHERE id = $1", [id], as: Int.self) >= 100
            }
            first.signal(SIGSTOP)
            let state = try await rig.stack.pool.withConnection { c in
                try c.query("""
                    SELECT enfileiradas, enfileirada_em IS NOT NULL, (SELECT count(*)::int FROM mensagens WHERE campanha_id = $1)
                    FROM campanhas WHERE id = $1
                    """, [id])[0]
            }
            let queued = try state.decode(Int.self, at: 0)
            try #require(try !state.decode(Bool.self, at: 1) && queued < 4000, "the fan-out ended before the processor was stopped (\(queued) queued)")
            #expect(try state.decode(Int.self, at: 2) == queued, "each chunk's messages and count commit together")
            first.signal(SIGKILL)
            _ = await first.waitForExit(timeout: .seconds(5))
            try await rig.stack.startProcessor(environment: ["ESTEIRA_MESSAGING_FANOUT_CHUNK": "20"])
            try await rig.waitFor("campaign ended", timeout: .seconds(180)) {
                try await rig.campaign(id.uuidString.lowercased(), as: alice)["status"] as? String == "concluida"
            }
            let campaign = try await rig.campaign(id.uuidString.lowercased(), as: alice)
            #expect(campaign["total"] as? Int == 4000 && campaign["enviadas"] as? Int == 4000 && campaign["enfileiradas"] as? Int == 4000,
                    "\(campaign)")
            let counts = try await rig.stack.pool.withConnection { c in
                try c.query("SELECT count(*)::int, count(DISTINCT contato_id)::int FROM mensagens WHERE campanha_id = $1", [id])[0]
            }
            #expect(try counts.decode(Int.self, at: 0) == 4000 && counts.decode(Int.self, at: 1) == 4000, "one message a contact")
            #expect(provider.sent.count == 4000 && Set(provider.sent.map(\.to)).count == 4000, "each contact was sent to once")
        }
    }

    /// The fan-out paces its chunks by the sends' queue: with sends limited to 20 a second,
    /// it waits while more than two chunks wait there. A cancel during the fan-out stops it at
    /// its next chunk: the campaign ends with the messages written so far as its total.
    @Test func aFanOutWaitsForItsSendsAndACancelStopsIt() async throws {
        try await MessagingRig.with(processorEnvironment: ["ESTEIRA_MESSAGING_FANOUT_CHUNK": "10"]) { rig in
            let alice = try await rig.api.userToken()
            let (instance, _, provider) = try await rig.instance(as: alice, rate: 20)
            _ = try await rig.contacts(3000, as: alice)
            let r = try await rig.api.post("/v1/campaigns", #"{"nome": "Breve", "mensagem": "oi", "instance_id": "\#(instance)", "todos_contatos": true}"#, as: alice)
            let id = try #require((r.json["campaign"] as? [String: Any])?["id"] as? String)
            try await rig.waitFor("the first chunks written") { try await rig.campaign(id, as: alice)["enfileiradas"] as? Int ?? 0 >= 10 }
            // 3 s: about 60 sent, at most 200 taken by the processor, 20 waiting in the queue,
            // a chunk being published. Without pacing, all 3,000 would be written by now.
            try await Task.sleep(for: .seconds(3))
            let early = try await rig.campaign(id, as: alice)
            #expect(early["enfileiradas"] as? Int ?? 3000 < 1000 && early["enfileirada_em"] is NSNull, "\(early)")
            #expect(try await rig.api.post("/v1/campaigns/\(id)/cancel", "", as: alice).status == 202)
            try await rig.waitFor("campaign cancelled", timeout: .seconds(120)) { try await rig.campaign(id, as: alice)["status"] as? String == "cancelada" }
            let sentAtEnd = provider.sent.count
            try await Task.sleep(for: .seconds(2))
            #expect(provider.sent.count == sentAtEnd, "nothing is sent after the campaign ended")
            let campaign = try await rig.campaign(id, as: alice)
            let total = campaign["total"] as? Int ?? -1, sent = campaign["enviadas"] as? Int ?? -1
            #expect(total == campaign["enfileiradas"] as? Int && total < 3000 && campaign["enfileirada_em"] is String, "\(campaign)")
            #expect(sent == sentAtEnd && sent + (campaign["canceladas"] as? Int ?? 0) + (campaign["falhas"] as? Int ?? 0) == total, "\(campaign)")
            #expect(try await rig.stack.scalar("SELECT count(*)::int FROM mensagens WHERE campanha_id = $1", [UUID(uuidString: id)!], as: Int.self) == total)
            #expect(try await rig.stack.scalar("SELECT count(*)::int FROM jobs WHERE kind = 'envio_mensagem' AND status NOT IN ('completed', 'cancelled', 'dead')",
                                               as: Int.self) == 0, "no send job is left open")
        }
    }

    /// Two deliveries of a campaign's job at once (a running attempt whose heartbeat went
    /// stale): one begins the campaign while the other reads its contacts, then dies before
    /// writing a chunk. The other's attempt ends as retryable, and its next attempt writes the
    /// whole fan-out and lets go of the batch, so the campaign completes.
    @Test func aCampaignBegunByADeliveryThatDiedIsFannedOutByTheNextAttempt() async throws {
        let kinds = "kinds:\n  envio_campanha: { backoffBase: 0.2, backoffFactor: 1 }\n"
        try await MessagingRig.with(kinds: kinds) { rig in
            let alice = try await rig.api.userToken()
            let (instance, _, provider) = try await rig.instance(as: alice)
            _ = try await rig.contacts(50, as: alice)
            // The campaign is made while the processor is stopped, and its row locked before it goes on.
            let processor = try #require(rig.stack.processors.first)
            processor.signal(SIGSTOP)
            let r = try await rig.api.post("/v1/campaigns", #"{"nome": "Dupla", "mensagem": "oi", "instance_id": "\#(instance)", "todos_contatos": true}"#, as: alice)
            let id = try #require(UUID(uuidString: (r.json["campaign"] as? [String: Any])?["id"] as? String ?? ""))
            let other = try rig.stack.database.connect()
            defer { other.close() }
            _ = try other.execute("BEGIN")
            let locked = try other.query("SELECT owner_id, batch_id FROM campanhas WHERE id = $1 FOR UPDATE", [id])[0]
            let owner = try locked.decode(UUID.self, at: 0)
            try #require(try locked.decode(UUID?.self, at: 1) == nil, "the job began the campaign before its row was locked")
            processor.signal(SIGCONT)
            try await rig.waitFor("the job waits for the campaign's row") {
                try await rig.stack.scalar("""
                    SELECT count(*)::int FROM pg_stat_activity
                    WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE 'SELECT status, batch_id FROM campanhas%'
                    """, as: Int.self) == 1
            }
            // The other delivery begins the campaign with its held batch, and dies before its first chunk.
            let batch = UUID()
            try Batches(store: rig.stack.enqueuer.store).create(batch, owner: owner, description: "campaign", onSuccess: nil, onComplete: nil,
                                                                jobs: 50, held: true, on: other)
            _ = try other.execute("UPDATE campanhas SET batch_id = $2, total = 50, status = 'enviando', started_at = now() WHERE id = $1", [id, batch])
            _ = try other.execute("COMMIT")
            try await rig.waitFor("campaign ended") {
                try await rig.campaign(id.uuidString.lowercased(), as: alice)["status"] as? String == "concluida"
            }
            let campaign = try await rig.campaign(id.uuidString.lowercased(), as: alice)
            #expect(campaign["total"] as? Int == 50 && campaign["enviadas"] as? Int == 50 && campaign["enfileiradas"] as? Int == 50, "\(campaign)")
            #expect(provider.sent.count == 50 && Set(provider.sent.map(\.to)).count == 50, "each contact was sent to once")
            #expect(try await rig.stack.scalar("SELECT attempts FROM jobs WHERE kind = 'envio_campanha'", as: Int.self) == 2,
                    "the attempt that found the campaign begun ended as retryable")
            #expect(try await rig.stack.scalar("SELECT open_jobs FROM batches WHERE id = $1", [batch], as: Int.self) == 0)
        }
    }

    @Test func cancellingACampaignMidwayStopsTheSendsNotMadeYet() async throws {
        try await MessagingRig.with { rig in
            let alice = try await rig.api.userToken()
            // 20 sends a second: 300 contacts take 15 s.
            let (instance, _, provider) = try await rig.instance(as: alice, rate: 20)
            _ = try await rig.contacts(300, as: alice)
            let r = try await rig.api.post("/v1/campaigns", #"{"nome": "Lenta", "mensagem": "oi", "instance_id": "\#(instance)", "todos_contatos": true}"#, as: alice)
            let id = try #require((r.json["campaign"] as? [String: Any])?["id"] as? String)
            try await rig.waitFor("some sent") { provider.sent.count >= 20 }
            let cancel = try await rig.api.post("/v1/campaigns/\(id)/cancel", "", as: alice)
            #expect(cancel.status == 202, "\(cancel.text)")
            try await rig.waitFor("campaign cancelled") { try await rig.campaign(id, as: alice)["status"] as? String == "cancelada" }
            let sentAtEnd = provider.sent.count
            try await Task.sleep(for: .seconds(2))
            #expect(provider.sent.count == sentAtEnd, "nothing is sent after the campaign ended")
            let campaign = try await rig.campaign(id, as: alice)
            let sent = campaign["enviadas"] as? Int ?? -1, cancelled = campaign["canceladas"] as? Int ?? -1
            #expect(sent == sentAtEnd && cancelled > 100 && sent + cancelled + (campaign["falhas"] as? Int ?? 0) == 300, "sent at end \(sentAtEnd): \(campaign)")
            #expect(try await rig.stack.scalar("SELECT count(*)::int FROM mensagens WHERE campanha_id = $1 AND status = 'cancelada'", [UUID(uuidString: id)!], as: Int.self) == cancelled)
            let again = try await rig.api.post("/v1/campaigns/\(id)/cancel", "", as: alice)
            #expect(again.status == 409 && again.field == "id")
            #expect(try await rig.api.post("/v1/campaigns/\(UUID())/cancel", "", as: alice).status == 404)
        }
    }

    @Test func aFeedClientThatMissesFiftyChangesGetsExactlyThoseOnReconnectAlsoAfterAnAPIRestart() async throws {
        try await MessagingRig.with { rig in
            let alice = try await rig.api.userToken(), bob = try await rig.api.userToken()
            let contacts = try await rig.contacts(2, as: alice)
            let contact = contacts[MessagingRig.phone(0)]!, other = contacts[MessagingRig.phone(1)]!
            let owner = try await rig.stack.scalar("SELECT owner_id FROM contatos WHERE id = $1", [UUID(uuidString: contact)!], as: UUID.self)
            // Bob cannot subscribe to Alice's contact; a bad Last-Event-ID is named.
            let theirs = try await rig.api.get("/v1/feeds/contacts/\(contact)/messages", as: bob)
            #expect(theirs.status == 404 && theirs.field == "id")
            let badID = try await rig.api.call(.get, "/v1/feeds/contacts/\(contact)/messages", token: alice, headers: [("Last-Event-ID", "x")])
            #expect(badID.status == 400 && badID.field == "Last-Event-ID")
            let badQuery = try await rig.api.call(.get, "/v1/feeds/contacts/\(contact)/messages?last_event_id=x", token: alice,
                                                  headers: [("Last-Event-ID", "0")])
            #expect(badQuery.status == 400 && badQuery.field == "last_event_id", "a bad query is refused even beside a good header")
            func change(_ sql: String, _ n: Int) async throws {
                for i in 0..<n {
                    try await rig.stack.pool.withConnection { c in
                        try c.execute(sql, [owner, UUID(uuidString: contact)!, "m\(i)", UUID(uuidString: other)!])
                    }
                }
            }
            let insert = "INSERT INTO mensagens (id, owner_id, contato_id, direcao, conteudo, status) SELECT gen_random_uuid(), $1, c, 'entrada', $3, 'recebida' FROM unnest(ARRAY[$2::uuid, $4::uuid]) c"
            let client = try EventStreamClient(url: rig.api.base + "/v1/feeds/contacts/\(contact)/messages", token: alice)
            try await client.waitUntilOpen()
            try await change(insert, 10)
            let seen = try await client.waitFor { $0.count >= 10 }
            #expect(seen.count == 10 && seen.allSatisfy { $0.data["op"] as? String == "INSERT" && ($0.data["row"] as? [String: Any])?["contato_id"] as? String == contact })
            client.close()
            let lastSeen = seen.last!.id
            // 50 changes it misses (20 inserts, 25 updates, 5 deletes), the other contact's
            // too, and the api restarts meanwhile.
            try await change(insert, 20)
            try await change("UPDATE mensagens SET status = 'lida', updated_at = now() WHERE id = (SELECT id FROM mensagens WHERE contato_id = $2 AND status = 'recebida' AND $1::uuid IS NOT NULL AND $3::text IS NOT NULL AND $4::uuid IS NOT NULL ORDER BY created_at, id LIMIT 1)", 25)
            try await change("DELETE FROM mensagens WHERE id = (SELECT id FROM mensagens WHERE contato_id = $2 AND $1::uuid IS NOT NULL AND $3::text IS NOT NULL AND $4::uuid IS NOT NULL ORDER BY created_at DESC, id LIMIT 1)", 5)
            rig.api.child.signal(SIGTERM)
            _ = await rig.api.child.waitForExit(timeout: .seconds(30))
            let restarted = try await StackAPI(stack: rig.stack, adminToken: rig.api.adminToken)
            let again = try EventStreamClient(url: restarted.base + "/v1/feeds/contacts/\(contact)/messages", token: alice, lastEventID: lastSeen)
            defer { again.close() }
            let missed = try await again.waitFor { $0.count >= 50 }
            try await Task.sleep(for: .milliseconds(500))
            let all = again.events
            #expect(all.count == 50, "exactly the 50 missed: \(all.count)")
            #expect(all.map { $0.data["op"] as? String ?? "" } == Array(repeating: "INSERT", count: 20) + Array(repeating: "UPDATE", count: 25) + Array(repeating: "DELETE", count: 5))
            #expect(all.map(\.id) == all.map(\.id).sorted() && all.first!.id > lastSeen)
            #expect(missed.allSatisfy { ($0.data["row"] as? [String: Any])?["contato_id"] as? String == contact })
            // And it goes on live.
            try await change(insert, 1)
            _ = try await again.waitFor { $0.count == 51 }
        }
    }
}
