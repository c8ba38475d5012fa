// Messaging benchmark (docs/benchmarks.md, "Messaging"): a campaign to CONTACTS contacts
// through a provider stand-in in this process that answers at once; the processors already
// running send it. Prints how long the fan-out took (the campaign's messages and send jobs
// written) and the messages sent a second from the request to the campaign's end, checking
// that the stand-in got each message once.
// Usage: MessagingBench <api-base-url> <admin-token> <contacts>
import Foundation
import HTTPClient
import StandIns

func now() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
}

let arguments = CommandLine.arguments
guard arguments.count >= 4, let contactCount = Int(arguments[3]) else {
    print("usage: MessagingBench <api-base-url> <admin-token> <contacts>")
    exit(2)
}
let (api, adminToken) = (arguments[1], arguments[2])
let http = HTTPClient(configuration: .init(timeout: .seconds(300), poolSize: 16))
func call(_ method: HTTPMethod, _ path: String, _ body: String? = nil, token: String) async throws -> (Int, [String: Any]) {
    let r = try await http.execute(HTTPRequest(method: method, url: api + path,
                                               headers: HTTPHeaders([("Authorization", "Bearer \(token)"), ("Content-Type", "application/json")]),
                                               body: Array((body ?? "").utf8)))
    return (r.status, ((try? JSONSerialization.jsonObject(with: Data(r.body))) as? [String: Any]) ?? [:])
}
func require(_ ok: Bool, _ what: @autoclosure () -> String) {
    if !ok { print("failed: \(what())"); exit(1) }
}

do {
    try await StandInHTTPServer.withServer { server in
        let (s, t) = try await call(.post, "/v1/tokens", #"{"name": "bench-messaging"}"#, token: adminToken)
        require(s == 201, "token: \(s) \(t)")
        let token = t["token"] as! String
        let provider = MessagingProvider()
        provider.serve(on: server)
        let (si, instance) = try await call(.post, "/v1/instances", #"""
            {"nome": "bench", "base_url": "\#(server.url(provider.basePath))", "token": "\#(provider.token)", "rate_limit": 10000, "burst": 10000}
            """#, token: token)
        require(si == 201, "instance: \(si) \(instance)")
        let instanceID = (instance["instance"] as! [String: Any])["id"] as! String
        var made = 0
        while made < contactCount {
            let n = min(10_000, contactCount - made)
            let items = (made..<(made + n)).map { #"{"nome": "c\#($0)", "telefone": "+5511\#(String(format: "%09d", $0))"}"# }
            let (sc, r) = try await call(.post, "/v1/contacts/bulk", #"{"contatos": [\#(items.joined(separator: ","))]}"#, token: token)
            require(sc == 201, "contacts: \(sc) \(r)")
            made += n
        }
        print("\(contactCount) contacts made")
        let start = now()
        let wallStart = Date().timeIntervalSince1970
        let (sp, started) = try await call(.post, "/v1/campaigns", #"""
            {"nome": "bench", "mensagem": "Oferta de hoje: 20% em tudo", "instance_id": "\#(instanceID)", "todos_contatos": true}
            """#, token: token)
        require(sp == 202, "campaign: \(sp) \(started)")
        let id = (started["campaign"] as! [String: Any])["id"] as! String
        var fannedOut: Double?, sentByThen = 0
        var last: [String: Any] = [:]
        while true {
            let (_, c) = try await call(.get, "/v1/campaigns/\(id)", token: token)
            last = c
            let status = c["status"] as? String ?? ""
            // Fanned out: its last message written (the first are sent meanwhile).
            if fannedOut == nil, c["enfileirada_em"] is String { fannedOut = now() - start; sentByThen = provider.sent.count }
            if ["concluida", "concluida_com_falhas", "cancelada", "falha"].contains(status) { break }
            if now() - start > 1800 { print("failed: the campaign did not end in 30 minutes: \(c)"); exit(1) }
            try await Task.sleep(for: .milliseconds(50))
        }
        let seconds = now() - start
        // For bench/cpu.py: the campaign's wall-clock window.
        print(String(format: "WINDOW start=%.3f end=%.3f", wallStart, Date().timeIntervalSince1970))
        require(last["status"] as? String == "concluida" && last["enviadas"] as? Int == contactCount, "campaign ended: \(last)")
        require(provider.sent.count == contactCount && Set(provider.sent.map(\.key)).count == contactCount, "sent \(provider.sent.count) for \(contactCount)")
        let rate = Double(contactCount) / seconds
        print(String(format: "campaign of %d: fanned out in %.2f s (%d sent by then), ended in %.2f s: %.0f messages/s; the provider got each once",
                     contactCount, fannedOut ?? 0, sentByThen, seconds, rate))
        print(String(format: "RESULT rate=%.0f fanout=%.2f seconds=%.2f", rate, fannedOut ?? 0, seconds))
    }
} catch {
    print("failed: \(error)")
    exit(1)
}
