import Foundation
import Postgres

/// A signed-in browser: who it is and the token its forms must echo.
public struct DashboardSession: Sendable, Equatable {
    public var principal: Principal
    /// Sent back in every form and script request that changes something (CSRF).
    public var csrfToken: String
    public var expiresAt: Date
}

/// Dashboard sign-ins: a token pasted once becomes a session cookie (only its hash is kept).
/// A session lasts ``lifetime`` at most and ends with its principal's revocation or expiry.
public struct DashboardSessions: Sendable {
    public let pool: PostgresPool
    /// How long a sign-in lasts.
    public var lifetime: TimeInterval

    public init(pool: PostgresPool, lifetime: TimeInterval = 12 * 3600) {
        self.pool = pool
        self.lifetime = lifetime
    }

    /// Signs `principal` in: the new session's cookie value (returned once) and the session.
    /// Expired sessions of anyone are deleted on the way.
    public func create(for principal: Principal) async throws -> (cookie: String, session: DashboardSession) {
        let cookie = Self.randomHex(32), csrf = Self.randomHex(32)
        let expires = Date().addingTimeInterval(lifetime)
        try await pool.withConnection { c in
            _ = try c.query("DELETE FROM dashboard_sessions WHERE expires_at < now()")
            _ = try c.query("INSERT INTO dashboard_sessions (id_hash, principal_id, csrf_token, expires_at) VALUES ($1, $2, $3, $4)",
                            [Self.hash(cookie), principal.id, csrf, expires])
        }
        return (cookie, DashboardSession(principal: principal, csrfToken: csrf, expiresAt: expires))
    }

    /// The live session of `cookie`: nil when there is none, it expired, or its principal was
    /// revoked or expired.
    public func session(cookie: String) async throws -> DashboardSession? {
        guard cookie.utf8.count == 64, cookie.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }) else {
            return nil
        }
        return try await pool.withConnection { c in
            guard let row = try c.query("""
                SELECT p.id, p.name, p.role, s.csrf_token, s.expires_at
                  FROM dashboard_sessions s JOIN api_principals p ON p.id = s.principal_id
                 WHERE s.id_hash = $1 AND s.expires_at > now()
                   AND p.revoked_at IS NULL AND (p.expires_at IS NULL OR p.expires_at > now())
                """, [Self.hash(cookie)]).first else { return nil }
            let role = Principal.Role(rawValue: try row.decode(String.self, at: 2)) ?? .user
            return DashboardSession(principal: Principal(id: try row.decode(UUID.self, at: 0), name: try row.decode(String.self, at: 1), role: role),
                                    csrfToken: try row.decode(String.self, at: 3), expiresAt: try row.decode(Date.self, at: 4))
        }
    }

    /// Signs the session of `cookie` out (nothing when there is none).
    public func delete(cookie: String) async throws {
        try await pool.withConnection { c in _ = try c.query("DELETE FROM dashboard_sessions WHERE id_hash = $1", [Self.hash(cookie)]) }
    }

    /// Equal tokens, compared in time that does not depend on where they differ.
    public static func sameToken(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        guard x.count == y.count else { return false }
        var diff: UInt8 = 0
        for i in x.indices { diff |= x[i] ^ y[i] }
        return diff == 0
    }

    static func hash(_ cookie: String) -> [UInt8] { HMACSHA256.sha256(Array(cookie.utf8)) }

    static func randomHex(_ bytes: Int) -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<bytes).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }.joined()
    }
}
