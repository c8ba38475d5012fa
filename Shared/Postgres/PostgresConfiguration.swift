import Foundation

/// Where and how to connect: a `postgres://user:password@host:port/database?params` URL plus
/// the settings Esteira always wants to control.
///
/// libpq parses the URL itself (so every libpq parameter in the query string works); the URL is
/// parsed here too, only to validate it and to describe it without its password.
public struct PostgresConfiguration: Sendable, CustomStringConvertible {
    /// The URL exactly as given; never printed, as it may carry a password.
    let url: String
    /// The password from the URL (percent-decoded), kept to scrub it from error messages.
    let password: String?
    /// The password as written in the URL (still percent-encoded), scrubbed too.
    let encodedPassword: String?

    /// The host from the URL, if any (libpq defaults to the local socket).
    public let host: String?
    /// The port from the URL, if any (libpq defaults to 5432).
    public let port: Int?
    /// The user from the URL, if any.
    public let user: String?
    /// The database from the URL, if any (libpq defaults to the user name).
    public let database: String?

    /// Shown in `pg_stat_activity.application_name`; overrides one given in the URL. Default: none.
    public var applicationName: String?
    /// How long opening a connection may take before `connectionFailed`. Default: 10 seconds.
    public var connectTimeout: Duration = .seconds(10)

    /// Parses a `postgres://` or `postgresql://` URL.
    ///
    /// - Throws: `PostgresError` with code `invalidConfiguration`; its message never repeats the URL.
    public init(url: String, applicationName: String? = nil) throws {
        guard let components = URLComponents(string: url),
              let scheme = components.scheme?.lowercased(),
              scheme == "postgres" || scheme == "postgresql"
        else {
            throw PostgresError(.invalidConfiguration,
                                message: "not a postgres:// or postgresql:// URL")
        }
        self.url = url
        self.password = components.password
        self.encodedPassword = components.percentEncodedPassword
        self.host = components.host.flatMap { $0.isEmpty ? nil : $0 }
        self.port = components.port
        self.user = components.user.flatMap { $0.isEmpty ? nil : $0 }
        let path = components.path.hasPrefix("/") ? String(components.path.dropFirst()) : components.path
        self.database = path.isEmpty ? nil : path
        self.applicationName = applicationName
    }

    /// The URL with the password replaced by `***` and without query parameters.
    public var description: String {
        var text = "postgres://"
        if let user {
            text += user
            if password != nil { text += ":***" }
            text += "@"
        }
        text += host ?? ""
        if let port { text += ":\(port)" }
        text += "/" + (database ?? "")
        return text
    }

    /// Replaces the password (in both spellings) and the raw URL wherever they appear in `text`.
    func redact(_ text: String) -> String {
        var result = text.replacingOccurrences(of: url, with: description)
        for secret in [password, encodedPassword].compactMap({ $0 }) where !secret.isEmpty {
            result = result.replacingOccurrences(of: secret, with: "***")
        }
        return result
    }
}
