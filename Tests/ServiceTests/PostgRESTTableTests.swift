import Foundation
import HTTPClient
import StandIns
import Testing

/// The PostgREST stand-in that export tests and benchmarks send to: it must answer as the
/// real one does, and keep what arrived where a test can read it.
@Suite struct PostgRESTTableTests {
    @Test func itUpsertsRowsAndAnswersAsPostgRESTDoes() async throws {
        let database = try await ScratchDatabase.migrated()
        let table = try PostgRESTTable(databaseURL: database.url, apiKey: "sb-key")
        try await StandInHTTPServer.withServer { server in
            table.serve(on: server)
            let http = HTTPClient()
            func post(_ body: String, key: String = "sb-key", prefer: [String] = ["resolution=merge-duplicates"]) async throws -> (Int, [String: Any], HTTPResponse) {
                var headers: [(String, String)] = [("apikey", key), ("Authorization", "Bearer \(key)"), ("Content-Type", "application/json")]
                headers += prefer.map { ("Prefer", $0) }
                let r = try await http.execute(HTTPRequest(method: .post, url: server.url("/rest/v1/fichas?on_conflict=id"),
                                                           headers: HTTPHeaders(headers), body: body))
                return (r.status, ((try? JSONSerialization.jsonObject(with: Data(r.body))) as? [String: Any]) ?? [:], r)
            }
            // A wrong key: 401, nothing written.
            let (unauthorized, denied, _) = try await post(#"[{"id": 1}]"#, key: "nope")
            #expect(unauthorized == 401 && denied["code"] as? String == "PGRST301")
            // An upsert: written once each, then again for the ids seen before.
            let (created, _, first) = try await post(#"[{"id": 1, "name": "Ana"}, {"id": 2}, {"id": 3}]"#)
            #expect(created == 201 && first.headers["Preference-Applied"] == "resolution=merge-duplicates")
            _ = try await post(#"[{"id": 2, "name": "Bea"}, {"id": 3}, {"id": 4}]"#)
            #expect(try table.writes() == [1: 1, 2: 2, 3: 2, 4: 1])
            #expect(try table.row(2) == #"{"id": 2, "name": "Bea"}"#)
            // Without merge-duplicates, a duplicate is a 409.
            let (conflict, duplicate, _) = try await post(#"[{"id": 4}]"#, prefer: [])
            #expect(conflict == 409 && duplicate["code"] as? String == "23505")
            // A rejected row fails its whole request and names itself.
            table.reject(ids: [7])
            let (rejected, check, _) = try await post(#"[{"id": 6}, {"id": 7}]"#)
            #expect(rejected == 400 && check["code"] as? String == "23514" && (check["details"] as? String)?.hasPrefix("Failing row contains (7, ") == true)
            #expect(try table.writes()[6] == nil)
            table.reject(ids: [])
            // Not rows with an integer id: 400.
            for bad in [#"{"name": "x"}"#, #"[{"id": 2.5}]"#, "[]", "nope"] {
                let (status, problem, _) = try await post(bad)
                #expect(status == 400 && problem["code"] as? String == "PGRST102", "\(bad)")
            }
            // Scripted faults come first, in order.
            table.failNext([.tooManyRequests(retryAfter: 3), .json("{}", status: 503)])
            let (throttled, _, slow) = try await post(#"[{"id": 8}]"#)
            #expect(throttled == 429 && slow.headers["Retry-After"] == "3")
            #expect(try await post(#"[{"id": 8}]"#).0 == 503)
            // The rows back, when asked for.
            let (represented, _, answer) = try await post(#"[{"id": 8, "name": "Cy"}]"#, prefer: ["return=representation", "resolution=merge-duplicates"])
            #expect(represented == 201 && String(decoding: answer.body, as: UTF8.self) == #"[{"id": 8, "name": "Cy"}]"#)
            #expect(try table.writes()[8] == 1)
        }
    }
}
