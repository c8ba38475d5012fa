import Foundation
import Postgres

/// Reads and writes `api_principals`. Tokens are hashed by PostgreSQL's `sha256()`, so the
/// plain token only ever exists in the caller's request and in this call's parameters.
public struct PrincipalStore: Sendable {
    /// The name of the principal bootstrapped from `ESTEIRA_ADMIN_TOKEN`.
    public static let bootstrapAdminName = "admin"

    private let pool: PostgresPool

    /// Creates a store over `pool`.
    public init(pool: PostgresPool) {
        self.pool = pool
    }

    /// Makes `token` the token of the built-in `admin` principal, creating it if needed.
    /// Called at api start so `ESTEIRA_ADMIN_TOKEN` always works, also after it is changed.
    @discardableResult
    public func bootstrapAdmin(token: String) async throws -> Principal {
        try Self.validate(token: token)
        return try await pool.withConnection { conn in
            let rows = try conn.query(
                """
                INSERT INTO api_principals (name, role, token_hash)
                VALUES ($1, 'admin', sha256(convert_to($2, 'UTF8')))
                ON CONFLICT (name) DO UPDATE
                   SET token_hash = EXCLUDED.token_hash, role = 'admin', revoked_at = NULL
                RETURNING id, name, role
                """,
                [Self.bootstrapAdminName, token]
            )
            guard let row = rows.first else { throw PrincipalError.notStored }
            return try Self.principal(from: row)
        }
    }

    /// Creates a principal with a new random token, returned once (only its hash is kept).
    /// Throws ``PrincipalError/nameTaken`` when the name exists.
    public func create(name: String, role: Principal.Role, createdBy: UUID?) async throws -> (Principal, token: String) {
        var bytes = [UInt8](repeating: 0, count: 24)
        var generator = SystemRandomNumberGenerator()
        for i in bytes.indices { bytes[i] = UInt8.random(in: 0...255, using: &generator) }
        let token = "est_" + bytes.map { String(format: "%02x", $0) }.joined()
        return try await pool.withConnection { conn in
            let rows = try conn.query(
                """
                INSERT INTO api_principals (name, role, token_hash, created_by)
                VALUES ($1, $2, sha256(convert_to($3, 'UTF8')), $4)
                ON CONFLICT (name) DO NOTHING
                RETURNING id, name, role
                """,
                [name, role.rawValue, token, createdBy]
            )
            guard let row = rows.first else { throw PrincipalError.nameTaken(name) }
            return (try Self.principal(from: row), token)
        }
    }

    /// The live principal holding `token`, or nil when no principal (or a revoked one) does.
    public func authenticate(token: String) async throws -> Principal? {
        guard (try? Self.validate(token: token)) != nil else { return nil }
        return try await pool.withConnection { conn in
            let rows = try conn.query(
                """
                SELECT id, name, role FROM api_principals
                 WHERE token_hash = sha256(convert_to($1, 'UTF8')) AND revoked_at IS NULL
                """,
                [token]
            )
            return try rows.first.map(Self.principal(from:))
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
