import Foundation

/// One part of the api's OpenAPI 3.1 document, as JSON: the api's own (info, servers,
/// security and the shared components) or a workload's (its paths and the components they
/// alone use).
public struct OpenAPIPart: Sendable {
    /// Who contributes it, named in errors.
    public var name: String
    /// The JSON text: an object with `paths` and `components` (and, for the base, the rest
    /// of an OpenAPI document).
    public var json: [UInt8]

    /// A part named `name` made of `json`.
    public init(name: String, json: [UInt8]) {
        self.name = name
        self.json = json
    }
}

/// The document the api serves at `/openapi.json`: its own part with every workload's part
/// merged in. At start the api compares it with the routes it serves and refuses to run
/// when they differ.
public struct OpenAPIDocument: Sendable {
    /// The JSON served.
    public let data: Data
    /// Every documented operation.
    public let operations: [(method: String, path: String)]

    /// `base` with `parts` merged in (their `paths` and each section of their `components`),
    /// the `Kind` schema, when there is one, listing `kinds`, and `EnqueueKind` listing
    /// `enqueueable` (default: `kinds`).
    ///
    /// - Throws: ``OpenAPIAssemblyError`` for a part that is not a JSON object, or a path or
    ///   component two parts define.
    public static func assemble(base: OpenAPIPart, parts: [OpenAPIPart], kinds: [String],
                                enqueueable: [String]? = nil) throws -> OpenAPIDocument {
        var root = try object(base)
        var paths = root["paths"] as? [String: Any] ?? [:]
        var components = root["components"] as? [String: Any] ?? [:]
        for part in parts {
            let piece = try object(part)
            for (path, item) in piece["paths"] as? [String: Any] ?? [:] {
                guard paths[path] == nil else { throw OpenAPIAssemblyError(part: part.name, detail: "path \(path) is defined twice") }
                paths[path] = item
            }
            for (section, entries) in piece["components"] as? [String: Any] ?? [:] {
                var merged = components[section] as? [String: Any] ?? [:]
                for (name, value) in entries as? [String: Any] ?? [:] {
                    guard merged[name] == nil else {
                        throw OpenAPIAssemblyError(part: part.name, detail: "components.\(section).\(name) is defined twice")
                    }
                    merged[name] = value
                }
                components[section] = merged
            }
        }
        if var schemas = components["schemas"] as? [String: Any] {
            for (name, list) in [("Kind", kinds), ("EnqueueKind", enqueueable ?? kinds)] {
                guard var schema = schemas[name] as? [String: Any] else { continue }
                schema["enum"] = list
                schemas[name] = schema
            }
            components["schemas"] = schemas
        }
        // Every operation behind a token may be refused for the principal's request rate.
        if (components["responses"] as? [String: Any])?["TooManyRequests"] != nil {
            for (path, item) in paths where path.hasPrefix("/v1/") {
                guard var operations = item as? [String: Any] else { continue }
                for (method, operation) in operations {
                    guard var op = operation as? [String: Any], var responses = op["responses"] as? [String: Any],
                          responses["429"] == nil else { continue }
                    responses["429"] = ["$ref": "#/components/responses/TooManyRequests"]
                    op["responses"] = responses
                    operations[method] = op
                }
                paths[path] = operations
            }
        }
        root["paths"] = paths
        root["components"] = components
        let data = try JSONSerialization.data(withJSONObject: root, options: [.sortedKeys, .withoutEscapingSlashes])
        var operations: [(String, String)] = []
        for (path, item) in paths {
            for method in ((item as? [String: Any]) ?? [:]).keys where ["get", "post", "put", "patch", "delete"].contains(method) {
                operations.append((method, path))
            }
        }
        return OpenAPIDocument(data: data, operations: operations)
    }

    private static func object(_ part: OpenAPIPart) throws -> [String: Any] {
        guard let value = try? JSONSerialization.jsonObject(with: Data(part.json)) as? [String: Any] else {
            throw OpenAPIAssemblyError(part: part.name, detail: "not a JSON object")
        }
        return value
    }
}

/// The parts of the OpenAPI document do not fit together: a programming error caught at start.
public struct OpenAPIAssemblyError: Error, CustomStringConvertible {
    /// The part at fault.
    public var part: String
    /// What is wrong with it.
    public var detail: String
    public var description: String { "OpenAPI part \(part): \(detail)" }
}

/// The routes and /openapi.json disagree: a programming error caught at start.
public struct OpenAPIDriftError: Error, CustomStringConvertible {
    /// Served but not documented.
    public var undocumented: [String]
    /// Documented but not served.
    public var unserved: [String]
    public var description: String {
        "/openapi.json and the routes differ: served but not documented \(undocumented), documented but not served \(unserved)"
    }
}
