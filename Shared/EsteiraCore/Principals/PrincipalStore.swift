import Foundation
import Postgres

/// Reads and writes `api_principals`. Tokens are hashed (SHA-256) in this process before any
/// query: the plain token exists only in the caller's request, never in a statement sent to
/// PostgreSQL (its logs and `pg_stat_activity` see the hash at most).
public struct PrincipalStore: Sendable {
    /// The name of the principal bootstrapped from `ESTEIRA_ADMIN_TOKEN`.
    public static let bootstrapAdminName = "admin"

    private let pool: PostgresPool

    /// Creates a store over `pool`.
    public init(pool: PostgresPool) {
        self.pool = pool
    }

    /// SHA-256 of the token's UTF-8 bytes: what `api_principals.token_hash` holds.
    static func hash(_ token: String) -> [UInt8] { HMACSHA256.sha256(Array(token.utf8)) }

    /// Makes `token` the token of the built-in `admin` principal, creating it if needed.
    /// Called at api start so `ESTEIRA_ADMIN_TOKEN` works, also after it is changed. A revoked
    /// admin stays revoked while the variable holds the same token; a new token (rotation)
    /// makes it live again. Returns the principal and whether it is revoked.
    @discardableResult
    public func bootstrapAdmin(token: String) async throws -> (principal: Principal, revoked: Bool) {
        try Self.validate(token: token)
        return try await pool.withConnection { conn in
            let rows = try conn.query(
                """
                INSERT INTO api_principals (name, role, token_hash)
                VALUES ($1, 'admin', $2)
                ON CONFLICT (name) DO UPDATE
                   SET token_hash = EXCLUDED.token_hash, role = 'admin', expires_at = NULL,
                       revoked_at = CASE WHEN api_principals.token_hash = EXCLUDED.token_hash THEN api_principals.revoked_at END
                RETURNING id, name, role, revoked_at IS NOT NULL AS revoked
                """,
                [Self.bootstrapAdminName, Self.hash(token)]
            )
            guard let row = rows.first else { throw PrincipalError.notStored }
            return (try Self.principal(from: row), try row.decode(Bool.self, named: "revoked"))
        }
    }

    /// Creates a principal with a new random token, returned once (only its hash is kept).
    /// Throws ``PrincipalError/nameTaken`` when the name exists.
    /// With `expiresAt`, the token stops working then.
    public func create(name: String, role: Principal.Role, createdBy: UUID?, expiresAt: Date? = nil) async throws -> (Principal, token: String) {
        var bytes = [UInt8](repeating: 0, count: 24)
        var generator = SystemRandomNumberGenerator()
        for i in bytes.indices { bytes[i] = UInt8.random(in: 0...255, using: &generator) }
        let token = "est_" + bytes.map { String(format: "%02x", $0) }.joined()
        return try await pool.withConnection { conn in
            let rows = try conn.query(
                """
                INSERT INTO api_principals (name, role, token_hash, created_by, expires_at)
                VALUES ($1, $2, $3, $4, $5)
                ON CONFLICT (name) DO NOTHING
                RETURNING id, name, role
                """,
                [name, role.rawValue, Self.hash(token), createdBy, expiresAt]
            )
            guard let row = rows.first else { throw PrincipalError.nameTaken(name) }
            return (try Self.principal(from: row), token)
        }
    }

    /// The live principal holding `token`, or nil when no principal (or a revoked or expired
    /// one) does.
    public func authenticate(token: String) async throws -> Principal? {
        guard (try? Self.validate(token: token)) != nil else { return nil }
        let hash = Self.hash(token)
        return try await pool.withConnection { conn in
            let rows = try conn.query(
                """
                SELECT id, name, role FROM api_principals
                 WHERE token_hash = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())
                """,
                [hash]
            )
            return try rows.first.map(Self.principal(from:))
        }
    }

    /// The signing secret of principal `id` (for its own eyes, and its jobs' requests), with
    /// its name and role; nil when there is none.
    public func signingIdentity(_ id: UUID) async throws -> (name: String, role: Principal.Role, secret: String)? {
        try await pool.withConnection { conn in
            guard let row = try conn.query("SELECT name, role, signing_secret FROM api_principals WHERE id = $1", [id]).first else {
                return nil
            }
            return (try row.decode(String.self, at: 0), Principal.Role(rawValue: try row.decode(String.self, at: 1)) ?? .user,
                    try row.decode(String.self, at: 2))
        }
    }

    /// Every principal (never a token), by name.
    public func list() async throws -> [PrincipalInfo] {
        try await pool.withConnection { conn in
            try conn.query("SELECT \(PrincipalInfo.columns) FROM api_principals ORDER BY name").map(PrincipalInfo.init(row:))
        }
    }

    /// Revokes principal `id`: its token stops working at once, for good. nil when there is
    /// no such principal; the principal as it is otherwise (already revoked: unchanged).
    public func revoke(_ id: UUID) async throws -> PrincipalInfo? {
        try await pool.withConnection { conn in
            _ = try conn.query("UPDATE api_principals SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL", [id])
            return try conn.query("SELECT \(PrincipalInfo.columns) FROM api_principals WHERE id = $1", [id])
                .first.map(PrincipalInfo.init(row:))
        }
    }

    /// Tokens are opaque strings of 16 to 512 visible ASCII characters.
    public static func validate(token: String) throws {
        guard (16...512).contains(token.utf8.count),
              token.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            throw PrincipalError.malformedToken
        }
    }

    private static func principal(from row: PostgresRow) throws -> Principal {
        let role = try row.decode(String.self, named: "role")
        guard let r = Principal.Role(rawValue: role) else { throw PrincipalError.unknownRole(role) }
        return Principal(id: try row.decode(UUID.self, named: "id"),
                         name: try row.decode(String.self, named: "name"),
                         role: r)
    }
}

/// Why a principal could not be stored or read.
public enum PrincipalError: Error, Equatable, CustomStringConvertible {
    /// A token shorter than 16 or longer than 512 characters, or with spaces or control characters.
    case malformedToken
    /// A role in the table this version does not know.
    case unknownRole(String)
    /// The database returned no row where one was expected.
    case notStored
    /// Another principal has this name.
    case nameTaken(String)

    public var description: String {
        switch self {
        case .malformedToken: return "a token must be 16 to 512 visible ASCII characters"
        case .unknownRole(let r): return "unknown principal role '\(r)'"
        case .notStored: return "the principal was not stored"
        case .nameTaken(let n): return "a principal named '\(n)' exists"
        }
    }
}

/// A principal as admins see it: never its token.
public struct PrincipalInfo: Sendable, Equatable, Codable {
    public var id: UUID
    public var name: String
    public var role: Principal.Role
    public var createdAt: Date
    public var createdBy: UUID?
    public var expiresAt: Date?
    public var revokedAt: Date?

    /// What ``init(row:)`` reads.
    static let columns = "id, name, role, created_at, created_by, expires_at, revoked_at"

    init(row: PostgresRow) throws {
        id = try row.decode(UUID.self, named: "id")
        name = try row.decode(String.self, named: "name")
        let role = try row.decode(String.self, named: "role")
        guard let r = Principal.Role(rawValue: role) else { throw PrincipalError.unknownRole(role) }
        self.role = r
        createdAt = try row.decode(Date.self, named: "created_at")
        createdBy = try row.decode(UUID?.self, named: "created_by")
        expiresAt = try row.decode(Date?.self, named: "expires_at")
        revokedAt = try row.decode(Date?.self, named: "revoked_at")
    }
}
