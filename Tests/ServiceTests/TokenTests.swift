import EsteiraCore
import Foundation
import HTTPClient
import Testing

/// The tokens' lifecycle: list, revoke, expiry, and the admin token from the environment.
@Suite struct TokenTests {
    @Test func tokensAreListedRevokedAndExpire() async throws {
        let stack = try await JobStack()
        let api = try await StackAPI(stack: stack)
        let created = try await api.post("/v1/tokens", #"{"name": "temp", "expires_in_seconds": 3600}"#)
        #expect(created.status == 201 && created.json["expires_at"] is String, "\(created.text)")
        let temp = try #require(created.json["token"] as? String), tempID = try #require(created.json["id"] as? String)
        let alice = try await api.userToken("alice"), bob = try await api.userToken("bob")
        #expect(try await api.call(.get, "/v1/whoami", token: temp).status == 200)

        // Listing: admins only, and never a token.
        let list = try await api.call(.get, "/v1/tokens")
        #expect(list.status == 200)
        let names = ((list.json["tokens"] as? [[String: Any]]) ?? []).compactMap { $0["name"] as? String }
        #expect(Set(names).isSuperset(of: ["admin", "temp", "alice", "bob"]))
        #expect(!list.text.contains(temp) && !list.text.contains("token_hash") && !list.text.contains(alice))
        #expect(try await api.call(.get, "/v1/tokens", token: alice).status == 403)

        // Expired: refused like a wrong token.
        _ = try await stack.scalar("UPDATE api_principals SET expires_at = now() - interval '1 second' WHERE name = 'temp' RETURNING 1",
                                   as: Int.self)
        #expect(try await api.call(.get, "/v1/whoami", token: temp).status == 401)

        // Users revoke only themselves; another's id is a 404 to them.
        let aliceID = try #require(try await api.call(.get, "/v1/whoami", token: alice).json["id"] as? String)
        #expect(try await api.call(.post, "/v1/tokens/\(aliceID)/revoke", token: bob).status == 404)
        #expect(try await api.call(.get, "/v1/whoami", token: alice).status == 200)
        let selfRevoked = try await api.call(.post, "/v1/tokens/\(aliceID)/revoke", token: alice)
        #expect(selfRevoked.status == 200 && selfRevoked.json["revoked_at"] is String, "\(selfRevoked.text)")
        #expect(try await api.call(.get, "/v1/whoami", token: alice).status == 401)
        // Admins revoke anyone.
        #expect(try await api.call(.post, "/v1/tokens/\(tempID)/revoke").status == 200)
        #expect(try await api.call(.post, "/v1/tokens/\(UUID())/revoke").status == 404)
        #expect(try await api.call(.post, "/v1/tokens/nope/revoke").field == "id")
    }

    /// The admin token from the environment: revoked stays revoked across restarts while the
    /// variable holds the same token; a new token restores the admin.
    @Test func aRevokedAdminStaysRevokedUntilItsTokenChanges() async throws {
        let stack = try await JobStack()
        let token = "est_admin_" + UUID().uuidString.replacingOccurrences(of: "-", with: "")
        do {
            let api = try await StackAPI(stack: stack, adminToken: token)
            let me = try #require(try await api.call(.get, "/v1/whoami").json["id"] as? String)
            #expect(try await api.call(.post, "/v1/tokens/\(me)/revoke").status == 200)
            #expect(try await api.call(.get, "/v1/whoami").status == 401)
        }
        let again = try await StackAPI(stack: stack, adminToken: token)
        #expect(try await again.call(.get, "/v1/whoami").status == 401, "restarting with the same token does not undo a revoke")
        let rotated = try await StackAPI(stack: stack, adminToken: token + "-rotated")
        #expect(try await rotated.call(.get, "/v1/whoami").status == 200)
        #expect(try await rotated.call(.get, "/v1/whoami", token: token).status == 401)
    }

    /// The token never reaches PostgreSQL: statements carry its hash.
    @Test func theStoredHashIsTheTokensSHA256() async throws {
        let stack = try await JobStack()
        let api = try await StackAPI(stack: stack)
        let token = try await api.userToken("carol")
        let stored = try await stack.scalar("SELECT encode(token_hash, 'hex') FROM api_principals WHERE name = 'carol'", as: String.self)
        #expect(stored == HMACSHA256.sha256(Array(token.utf8)).map { String(format: "%02x", $0) }.joined())
    }
}

/// Per-principal limits in one api instance: the request rate (429 with Retry-After) and the
/// open event streams.
@Suite struct PrincipalLimitTests {
    @Test func aPrincipalOverItsRateOrStreamsGetsA429AndOthersDoNot() async throws {
        let stack = try await JobStack()
        let api = try await StackAPI(stack: stack, environment: ["ESTEIRA_API_RATE": "1", "ESTEIRA_API_BURST": "3",
                                                                 "ESTEIRA_API_MAX_STREAMS": "1",
                                                                 "ESTEIRA_API_SSE_KEEPALIVE": "1"])
        let alice = try await api.userToken("alice")
        var statuses: [Int] = []
        var over: StackAPI.Reply?
        // Until the bucket is empty: on a loaded machine a request may take as long as a
        // token takes to come back, so the fourth is not always the one refused.
        for _ in 0..<30 where over == nil {
            let r = try await api.call(.get, "/v1/whoami", token: alice)
            statuses.append(r.status)
            if r.status == 429 { over = r }
        }
        #expect(statuses.prefix(3) == [200, 200, 200] && statuses.last == 429, "\(statuses)")
        let refused = try #require(over)
        #expect(Int(refused.headers["retry-after"] ?? "") ?? 0 >= 1)
        #expect(refused.headers["content-type"]?.hasPrefix("application/problem+json") == true)
        // Another principal has a bucket of its own; open routes are not limited.
        #expect(try await api.call(.get, "/v1/whoami").status == 200)
        #expect(try await api.call(.get, "/healthz", anonymous: true).status == 200)

        // One stream at a time for the admin here.
        let first = try EventStreamClient(url: api.base + "/v1/events", token: api.adminToken)
        try await first.waitUntilOpen()
        try await Task.sleep(for: .seconds(1.1))
        let second = try await api.call(.get, "/v1/events")
        #expect(second.status == 429, "\(second.text)")
        first.close()
    }
}
