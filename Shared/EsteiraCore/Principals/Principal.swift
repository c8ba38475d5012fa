import Foundation

/// A caller of the api, identified by a bearer token.
public struct Principal: Sendable, Equatable, Codable {
    /// Stable identifier; jobs record it as their owner.
    public var id: UUID
    /// A human-readable name, unique.
    public var name: String
    /// What the principal may do.
    public var role: Role

    /// Admins see and control everything; users only what they created.
    public enum Role: String, Sendable, Codable, CaseIterable {
        case admin, user
    }

    /// Creates a principal value.
    public init(id: UUID, name: String, role: Role) {
        self.id = id
        self.name = name
        self.role = role
    }
}
