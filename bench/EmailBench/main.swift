// Email benchmark (docs/benchmarks.md, "Email"): STORES stores with MESSAGES messages each
// waiting in Dovecot (put there by IMAP APPEND before the clock starts), an SMTP sink that
// counts, and a Shopify stand-in in this process with each customer's order. Starts one
// ingestor and PROCESSORS processors (the same flags as the noop baseline before it), then
// times the pipeline end to end: IMAP fetch → store → classify → order lookup → SMTP. Prints
// emails per hour, each stage's rate, the time each outside step took (the processors'
// esteira_email_step_seconds) and the CPU seconds each program on the machine used meanwhile.
// Usage: EmailBench <api-base-url> <admin-token> <bin-dir> <database-url> <stores> <messages> <processors> <smtp-port> <imap-port> <imap-password>
import Foundation
import HTTPClient
import Postgres
import StandIns

func now() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
}

let arguments = CommandLine.arguments
guard arguments.count >= 11, let storeCount = Int(arguments[5]), let perStore = Int(arguments[6]), let processorCount = Int(arguments[7]),
      let smtpPort = Int(arguments[8]), let imapPort = Int(arguments[9]) else {
    print("usage: EmailBench <api-base-url> <admin-token> <bin-dir> <database-url> <stores> <messages> <processors> <smtp-port> <imap-port> <imap-password>")
    exit(2)
}
let (api, token, bin, databaseURL, imapPassword) = (arguments[1], arguments[2], arguments[3], arguments[4], arguments[10])
let http = HTTPClient(configuration: .init(timeout: .seconds(60), poolSize: 8))
func call(_ method: HTTPMethod, _ path: String, _ body: String? = nil) async throws -> (Int, [String: Any]) {
    let r = try await http.execute(HTTPRequest(method: method, url: api + path,
                                               headers: HTTPHeaders([("Authorization", "Bearer \(token)"), ("Content-Type", "application/json")]),
                                               body: Array((body ?? "").utf8)))
    return (r.status, ((try? JSONSerialization.jsonObject(with: Data(r.body))) as? [String: Any]) ?? [:])
}
func require(_ ok: Bool, _ what: @autoclosure () -> String) {
    if !ok { print("failed: \(what())"); exit(1) }
}

/// The four kinds of mail a shop gets, in Portuguese and English, each asking about an order.
func message(store: Int, n: Int) -> [UInt8] {
    let customer = "cliente\(n % 500)@loja\(store).example"
    let (subject, text) = [("Onde está meu pedido #\(1000 + n % 500)?", "Olá, ainda não recebi meu pedido. Podem verificar?"),
                           ("Quero reembolso", "Gostaria do reembolso do pedido #\(1000 + n % 500), o produto não serve."),
                           ("Wrong size", "Hi, the shoes came in the wrong size, I would like an exchange."),
                           ("Dúvida", "Vocês entregam no sábado?")][n % 4]
    let lines = ["From: Cliente \(n) <\(customer)>", "To: suporte@loja\(store).example", "Subject: \(subject)",
                 "Date: Thu, 03 Dec 2026 10:00:00 +0000", "Message-ID: <bench-\(store)-\(n)@cliente.example>", "MIME-Version: 1.0",
                 "Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: 8bit", "", text, ""]
    return Array(lines.joined(separator: "\r\n").utf8)
}

/// CPU seconds used so far by each process on the machine: pid → (program, seconds), from
/// /proc/<pid>/stat (utime + stime); children's are not included.
func cpuByProcess() -> [Int: (String, Double)] {
    let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
    var result: [Int: (String, Double)] = [:]
    for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
        guard let pid = Int(entry), let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
              let open = stat.firstIndex(of: "("), let close = stat.lastIndex(of: ")") else { continue }
        let name = String(stat[stat.index(after: open)..<close])
        let fields = stat[stat.index(close, offsetBy: 2)...].split(separator: " ")
        // Fields 14 and 15 of the line; after the name, the third field is number 3.
        guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { continue }
        result[pid] = (name, (user + system) / ticks)
    }
    return result
}

/// The CPU seconds each program used between two readings, the busiest first (processes
/// that started meanwhile count whole; those that ended meanwhile are missed).
func cpuUsed(from start: [Int: (String, Double)], to end: [Int: (String, Double)]) -> [(String, Double)] {
    var byName: [String: Double] = [:]
    for (pid, (name, seconds)) in end {
        let before = start[pid].flatMap { $0.0 == name ? $0.1 : nil } ?? 0
        byName[name, default: 0] += seconds - before
    }
    return byName.filter { $0.value >= 0.5 }.sorted { $0.value > $1.value }
}

let pool = PostgresPool(configuration: try PostgresConfiguration(url: databaseURL), maxConnections: 1)
func counts() async throws -> (stored: Int, answered: Int) {
    try await pool.withConnection { c in
        let r = try c.query("SELECT count(*)::int, (count(*) FILTER (WHERE status <> 'queued'))::int FROM email_messages")[0]
        return (try r.decode(Int.self, at: 0), try r.decode(Int.self, at: 1))
    }
}

do {
    try await StandInHTTPServer.withServer { server in
        let total = storeCount * perStore
        print("filling \(storeCount) mailboxes with \(perStore) messages each (IMAP APPEND)")
        let fillStart = now()
        var shops: [ShopifyShop] = []
        try await withThrowingTaskGroup(of: Void.self) { group in
            for s in 0..<storeCount {
                let shop = ShopifyShop(domain: "loja\(s).myshopify.com", token: "t\(s)", counts: [:], start: Date(), days: 1)
                for n in 0..<500 { shop.addOrder(number: 1000 + n, email: "cliente\(n)@loja\(s).example", firstName: "Cliente", fulfillment: "fulfilled") }
                shop.serve(on: server)
                shops.append(shop)
                group.addTask {
                    let mailbox = MailConnection.Server(host: "127.0.0.1", port: imapPort, security: .none, user: "bench\(s)", password: imapPassword)
                    let c = try MailConnection()
                    for n in 0..<perStore { try c.append(mailbox, message: message(store: s, n: n)) }
                }
                if s % 4 == 3 { try await group.next() }
            }
            try await group.waitForAll()
        }
        print("filled in \(String(format: "%.1f", now() - fillStart)) s")
        // The SMTP side alone, as the processors use it (a MailConnection per thread, sessions
        // kept): the sink's and the client's ceiling, without the pipeline.
        let (threads, each) = (64, 40)
        do {
            let sink = MailConnection.Server(host: "127.0.0.1", port: smtpPort, security: .none, user: "", password: "")
            let reply = message(store: 0, n: 0)
            let latency = Locked(0.0)
            let start = now()
            await withTaskGroup(of: Void.self) { group in
                for _ in 0..<threads {
                    group.addTask {
                        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
                            Thread {
                                var configuration = HTTPClient.Configuration(timeout: .seconds(30), connectTimeout: .seconds(10))
                                configuration.policy = try! OutboundPolicy.publicOnly(allowing: ["127.0.0.1/32"])
                                let c = try! MailConnection(configuration: configuration)
                                for _ in 0..<each {
                                    let t = now()
                                    try! c.send(sink, from: "bench@loja.example", to: ["cliente@loja.example"], message: reply)
                                    let took = now() - t
                                    latency.withLock { $0 += took }
                                }
                                done.resume()
                            }.start()
                        }
                    }
                }
            }
            let seconds = now() - start, sends = threads * each
            print("SMTP alone: \(sends) sends on \(threads) connections in \(String(format: "%.2f", seconds)) s = \(Int(Double(sends) / seconds))/s, "
                  + "mean \(String(format: "%.1f", latency.withLock { $0 } / Double(sends) * 1000)) ms")
        }
        for s in 0..<storeCount {
            let (status, store) = try await call(.post, "/v1/email-stores", """
                {"name": "Loja \(s)", "imap_host": "127.0.0.1", "imap_port": \(imapPort), "imap_security": "none", "imap_user": "bench\(s)",
                 "imap_password": "\(imapPassword)", "smtp_host": "127.0.0.1", "smtp_port": \(smtpPort), "smtp_security": "none",
                 "from_address": "suporte@loja\(s).example", "shop_domain": "loja\(s).myshopify.com", "shop_token": "t\(s)",
                 "credits": \(perStore), "active": false}
                """)
            require(status == 201, "store: \(status) \(store)")
        }
        var children: [Process] = []
        defer { for p in children { p.terminate() } }
        func start(_ name: String, port: Int, _ extra: [String: String] = [:]) throws {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: bin + "/" + name)
            p.arguments = ["run"]
            var env = ProcessInfo.processInfo.environment
            env["ESTEIRA_HTTP_PORT"] = "\(port)"
            env["ESTEIRA_LOG_LEVEL"] = "warning"
            env["ESTEIRA_EMAIL_SHOPIFY_URL"] = server.url("/shopify/{shop}")
            for (k, v) in extra { env[k] = v }
            p.environment = env
            try p.run()
            children.append(p)
        }
        for i in 0..<processorCount { try start("processor", port: 19910 + i) }
        try start("ingestor", port: 19905, ["ESTEIRA_INGESTOR_MAIL_INTERVAL": "0.2"])
        try await Task.sleep(for: .seconds(2))

        print("\(total) emails: \(storeCount) stores × \(perStore); 1 ingestor, \(processorCount) processors; rule classifier, no added latency")
        let t0 = now(), cpuStart = cpuByProcess()
        try await pool.withConnection { try $0.execute("UPDATE email_stores SET active = true") }
        var storedAt: Double?, last = (stored: 0, answered: 0)
        while last.answered < total {
            try await Task.sleep(for: .milliseconds(200))
            last = try await counts()
            if storedAt == nil, last.stored == total { storedAt = now() }
            if now() - t0 > 3600 { print("timed out: \(last)"); exit(1) }
        }
        let t1 = now(), cpuEnd = cpuByProcess()
        let sent = try await pool.withConnection { c in
            try c.query("SELECT status, count(*)::int FROM email_messages GROUP BY status ORDER BY 1").map { "\(try $0.decode(String.self, at: 0))=\(try $0.decode(Int.self, at: 1))" }
        }
        let seconds = t1 - t0, ingest = (storedAt ?? t1) - t0
        let perHour = Double(total) / seconds * 3600
        print("end to end: \(total) emails in \(String(format: "%.1f", seconds)) s = \(Int(perHour)) emails/hour (goal 500000: ratio \(String(format: "%.2f", perHour / 500_000)))")
        print("ingest: all stored after \(String(format: "%.1f", ingest)) s = \(Int(Double(total) / ingest)) emails/s; "
              + "processing: \(Int(Double(total) / seconds)) emails/s overall; outcomes \(sent.joined(separator: ", "))")
        // Where the time goes: the outside steps as the processors timed them.
        for i in 0..<processorCount {
            let text = try await http.execute(HTTPRequest(method: .get, url: "http://127.0.0.1:\(19910 + i)/metrics")).bodyString
            for step in ["shop_token", "shop", "smtp", "smtp_transfer"] {
                func value(_ suffix: String) -> Double {
                    text.split(separator: "\n").first { $0.hasPrefix("esteira_email_step_seconds_\(suffix){step=\"\(step)\"}") }
                        .flatMap { $0.split(separator: " ").last.flatMap { Double($0) } } ?? 0
                }
                let (sum, count) = (value("sum"), value("count"))
                if count > 0 { print("processor \(i + 1) \(step): \(Int(count)) calls, mean \(String(format: "%.2f", sum / count * 1000)) ms") }
            }
        }
        let cpu = cpuUsed(from: cpuStart, to: cpuEnd)
        print("CPU seconds used during the run (of \(String(format: "%.0f", seconds * Double(ProcessInfo.processInfo.activeProcessorCount))) the cores had): "
              + cpu.map { "\($0.0) \(String(format: "%.1f", $0.1))" }.joined(separator: ", "))
        print("RESULT emails=\(total) seconds=\(String(format: "%.2f", seconds)) per_hour=\(Int(perHour)) rate=\(String(format: "%.1f", Double(total) / seconds)) "
              + "ingest_rate=\(String(format: "%.1f", Double(total) / ingest)) smtp_alone_sends=\(threads * each)")
    }
} catch {
    print("email bench failed: \(error)")
    exit(1)
}
