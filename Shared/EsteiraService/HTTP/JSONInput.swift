import EsteiraCore
import Foundation
import Hummingbird
import HummingbirdCore

/// A JSON request body read field by field, so every problem names the field at fault
/// (`jobs[3].priority`), unlike a Decodable failure.
public struct JSONInput {
    public let object: [String: Any]
    /// Where this object sits in the body ("" for the top level, `jobs[3].` inside a batch).
    public let prefix: String

    public init(object: [String: Any], prefix: String = "") {
        self.object = object
        self.prefix = prefix
    }

    /// Reads the request body (at most `limit` bytes) as a JSON object; with `optional`, an
    /// empty body reads as `{}`.
    public static func read(_ request: Request, limit: Int, optional: Bool = false) async throws -> JSONInput {
        let buffer: ByteBuffer
        do {
            buffer = try await request.body.collect(upTo: limit)
        } catch let error as HTTPError where error.status == .contentTooLarge {
            throw Problem(.contentTooLarge, detail: "the request body is over \(limit) bytes", field: "body")
        }
        if buffer.readableBytes == 0 {
            if optional { return JSONInput(object: [:]) }
            throw Problem(.badRequest, detail: "the request body is empty; send a JSON object", field: "body")
        }
        // Refused before any parser recurses into it (a deep body cost memory and CPU, and a
        // deep payload, once stored, could not be shown again).
        let depth = buffer.readableBytesView.withContiguousStorageIfAvailable { JSONDepth.exceeds($0, limit: JSONDepth.bodyLimit) }
            ?? JSONDepth.exceeds(Array(buffer.readableBytesView), limit: JSONDepth.bodyLimit)
        if depth.exceeded {
            throw Problem(.badRequest, detail: "nests arrays and objects more than \(JSONDepth.bodyLimit - 3) levels deep",
                          field: depth.under ?? "body")
        }
        let value: Any
        do {
            value = try JSONSerialization.jsonObject(with: Data(buffer: buffer), options: [.fragmentsAllowed])
        } catch {
            throw Problem(.badRequest, detail: "the request body is not valid JSON", field: "body")
        }
        guard let object = value as? [String: Any] else {
            throw Problem(.badRequest, detail: "the request body must be a JSON object", field: "body")
        }
        if let field = nulField(in: object, at: "") {
            throw Problem(.badRequest, detail: nulDetail, field: field)
        }
        return JSONInput(object: object)
    }

    public static let nulDetail = "must not contain U+0000 (NUL): PostgreSQL stores neither text nor JSON with it"

    /// Where a string or a member name of `value` holds U+0000 (`payload.a[2]`), if any: the
    /// database cannot store such text, so it is refused at the door rather than failing (or,
    /// for plain text, being cut short) on the way in.
    public static func nulField(in value: Any, at path: String) -> String? {
        func join(_ name: String) -> String { path.isEmpty ? name : path + "." + name }
        switch value {
        case let s as String:
            return s.unicodeScalars.contains("\u{0}") ? (path.isEmpty ? "body" : path) : nil
        case let object as [String: Any]:
            for key in object.keys.sorted() {
                if key.unicodeScalars.contains("\u{0}") { return join(key) }
                if let found = nulField(in: object[key]!, at: join(key)) { return found }
            }
            return nil
        case let array as [Any]:
            for (i, item) in array.enumerated() {
                if let found = nulField(in: item, at: "\(path)[\(i)]") { return found }
            }
            return nil
        default:
            return nil
        }
    }

    public func field(_ name: String) -> String { prefix + name }

    /// JSONSerialization's type for true and false (NSNumber's own for numbers).
    public static let booleanType = type(of: NSNumber(value: true) as Any)

    public func has(_ name: String) -> Bool { object[name] != nil && !(object[name] is NSNull) }

    /// Whether `name` is given; an explicit null is refused (leaving the field out is how to
    /// ask for its default), as the document's types say.
    public func given(_ name: String, _ expected: String) throws -> Bool {
        if object[name] is NSNull {
            throw Problem(.badRequest, detail: "must be \(expected), not null; leave the field out for its default",
                          field: field(name))
        }
        return object[name] != nil
    }

    /// Fails when the object has members other than `names` (a typo should not be ignored).
    public func allowOnly(_ names: Set<String>) throws {
        if let unknown = object.keys.sorted().first(where: { !names.contains($0) }) {
            throw Problem(.badRequest, detail: "unknown field; known fields: \(names.sorted().joined(separator: ", "))",
                          field: field(unknown))
        }
    }

    public func string(_ name: String, required: Bool = false, maxLength: Int = 1000) throws -> String? {
        guard try given(name, "a string") else {
            if required { throw Problem(.badRequest, detail: "is required", field: field(name)) }
            return nil
        }
        guard let s = object[name] as? String else { throw Problem(.badRequest, detail: "must be a string", field: field(name)) }
        // Counted as PostgreSQL's length() counts (code points), not as grapheme clusters: a
        // flag emoji is two, and the column's CHECK must never be what refuses a string.
        guard !s.isEmpty, s.unicodeScalars.count <= maxLength else {
            throw Problem(.badRequest, detail: "must be 1 to \(maxLength) characters", field: field(name))
        }
        return s
    }

    public func int(_ name: String, in range: ClosedRange<Int>) throws -> Int? {
        guard try given(name, "an integer") else { return nil }
        let v = object[name]!
        // An integer is taken as it is: through a Double, one above 2^53 would come out a
        // different number (9007199254740993 as ...992).
        var exact: Int?
        if type(of: v) != JSONInput.booleanType {
            if let i = v as? Int { exact = i } else if let d = v as? Double { exact = Int(exactly: d) }
        }
        guard let i = exact else {
            throw Problem(.badRequest, detail: "must be an integer", field: field(name))
        }
        guard range.contains(i) else {
            throw Problem(.badRequest, detail: "must be \(range.lowerBound)...\(range.upperBound)", field: field(name))
        }
        return i
    }

    public func number(_ name: String, in range: ClosedRange<Double>) throws -> Double? {
        guard try given(name, "a number") else { return nil }
        let v = object[name]!
        guard type(of: v) != JSONInput.booleanType, let n = (v as? NSNumber)?.doubleValue, n.isFinite else {
            throw Problem(.badRequest, detail: "must be a number", field: field(name))
        }
        guard range.contains(n) else {
            throw Problem(.badRequest, detail: "must be \(range.lowerBound)...\(range.upperBound)", field: field(name))
        }
        return n
    }

    public func bool(_ name: String) throws -> Bool? {
        guard try given(name, "true or false") else { return nil }
        guard let v = object[name], type(of: v) == JSONInput.booleanType, let b = v as? Bool else {
            throw Problem(.badRequest, detail: "must be true or false", field: field(name))
        }
        return b
    }

    public func date(_ name: String) throws -> Date? {
        guard let s = try string(name, maxLength: 64) else { return nil }
        return try APIDates.parse(s, field: field(name))
    }

    public func uuids(_ name: String, max: Int) throws -> [UUID]? {
        guard try given(name, "an array of ids") else { return nil }
        guard let items = object[name] as? [Any] else { throw Problem(.badRequest, detail: "must be an array of ids", field: field(name)) }
        guard !items.isEmpty, items.count <= max else {
            throw Problem(.badRequest, detail: "must hold 1 to \(max) ids", field: field(name))
        }
        return try items.enumerated().map { i, item in
            guard let s = item as? String, let id = UUID(uuidString: s) else {
                throw Problem(.badRequest, detail: "is not an id (a UUID)", field: field("\(name)[\(i)]"))
            }
            return id
        }
    }

    /// A JSON value, re-serialized as compact JSON text.
    public func jsonText(_ name: String) throws -> String? {
        guard let value = object[name] else { return nil }
        let data = try JSONSerialization.data(withJSONObject: value, options: [.fragmentsAllowed, .withoutEscapingSlashes])
        return String(decoding: data, as: UTF8.self)
    }
}

/// Times in and out of the api: RFC 3339 / ISO 8601, fractional seconds optional.
public enum APIDates {
    /// A calendar day `YYYY-MM-DD` (years 1900-9999), as a comparable number, or a 400 naming `field`.
    public static func day(_ text: String, field: String) throws -> Int {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        let bad = Problem(.badRequest, detail: "'\(text.prefix(20))' is not a day as YYYY-MM-DD", field: field)
        guard text.count == 10, parts.count == 3, parts[0].count == 4, parts[1].count == 2, parts[2].count == 2,
              parts.allSatisfy({ $0.allSatisfy(\.isASCII) && $0.allSatisfy(\.isNumber) }),
              let y = Int(parts[0]), let m = Int(parts[1]), let d = Int(parts[2]), (1900...9999).contains(y), (1...12).contains(m) else {
            throw bad
        }
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        guard let date = calendar.date(from: DateComponents(year: y, month: m, day: d)),
              calendar.component(.day, from: date) == d, calendar.component(.month, from: date) == m else {
            throw Problem(.badRequest, detail: "'\(text)' is not a day of the calendar", field: field)
        }
        return y * 10_000 + m * 100 + d
    }

    public static func parse(_ text: String, field: String) throws -> Date {
        let plain = ISO8601DateFormatter()
        let fractional = ISO8601DateFormatter()
        fractional.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let d = fractional.date(from: text) ?? plain.date(from: text) { return d }
        throw Problem(.badRequest, detail: "must be an RFC 3339 time such as 2026-01-31T12:00:00Z", field: field)
    }

    /// `2026-01-31T12:00:00.123Z`: UTC, to the millisecond (rounded; the style truncates, so
    /// half a millisecond is added first). A value type: a formatter made for each call cost
    /// about 80 µs here, most of the time of a listing of 50 jobs.
    public static func format(_ date: Date) -> String {
        date.addingTimeInterval(0.0005).formatted(style)
    }

    static let style = Date.ISO8601FormatStyle(includingFractionalSeconds: true)
}

/// Query-string parameters (or an HTML form's fields), checked the same way.
public struct QueryInput {
    public let parameters: Parameters
    /// Read from a browser's form: times may be `datetime-local` values (read as UTC).
    let fromForm: Bool

    /// The query string of `request`.
    public init(request: Request) {
        self.parameters = request.uri.queryParameters
        self.fromForm = false
    }

    /// The fields of an `application/x-www-form-urlencoded` body (`+` is a space there).
    public init(form body: ByteBuffer) {
        self.init(formEncoded: String(buffer: body))
    }

    /// The query of a page's URL as a browser's GET form (or `URLSearchParams`) writes it, `+`
    /// for a space; the api's own query strings keep `+` as it is (a time's offset).
    public init(pageQuery request: Request) {
        self.init(formEncoded: request.uri.query ?? "")
    }

    /// A form sends every field, empty or not: an empty one is read as not given.
    private init(formEncoded text: String) {
        let given = text.split(separator: "&").filter { !$0.hasSuffix("=") && $0.contains("=") }.joined(separator: "&")
        self.parameters = URI("/?" + given.replacingOccurrences(of: "+", with: "%20")).queryParameters
        self.fromForm = true
    }

    /// Every value of `name` (checkboxes of one name), each checked as ``string(_:maxLength:)`` checks one.
    public func strings(_ name: String, maxLength: Int = 200) throws -> [String] {
        try parameters.getAll(name).map { try Self.checked($0, name, maxLength) }
    }

    /// Whether `name` was sent with a value that is not empty (HTML forms send empty fields).
    public func has(_ name: String) -> Bool { !(parameters.get(name) ?? "").isEmpty }

    public func string(_ name: String, maxLength: Int = 200) throws -> String? {
        try parameters.get(name).map { try Self.checked($0, name, maxLength) }
    }

    /// `name` as one of `E`'s cases (a state, a status), or a 400 listing them.
    public func choice<E: RawRepresentable & CaseIterable>(_ name: String, of type: E.Type) throws -> E? where E.RawValue == String {
        guard let s = try string(name, maxLength: 40) else { return nil }
        guard let value = E(rawValue: s) else {
            throw Problem(.badRequest, detail: "must be one of \(E.allCases.map(\.rawValue).joined(separator: ", "))", field: name)
        }
        return value
    }

    /// `s`, the value of `name`, when it is 1 to `maxLength` characters without NUL.
    private static func checked(_ s: String, _ name: String, _ maxLength: Int) throws -> String {
        guard !s.isEmpty, s.count <= maxLength else {
            throw Problem(.badRequest, detail: "must be 1 to \(maxLength) characters", field: name)
        }
        if s.unicodeScalars.contains("\u{0}") { throw Problem(.badRequest, detail: JSONInput.nulDetail, field: name) }
        return String(s)
    }

    public func int(_ name: String, in range: ClosedRange<Int>) throws -> Int? {
        guard let s = parameters.get(name) else { return nil }
        guard let i = Int(s), range.contains(i) else {
            throw Problem(.badRequest, detail: "must be an integer \(range.lowerBound)...\(range.upperBound)", field: name)
        }
        return i
    }

    public func date(_ name: String) throws -> Date? {
        guard var text = try string(name, maxLength: 64) else { return nil }
        // A `datetime-local` field: 2026-12-01T10:30 or with seconds, no zone.
        if fromForm && text.count == 16 { text += ":00" }
        if fromForm && text.count == 19 { text += "Z" }
        return try APIDates.parse(text, field: name)
    }

    public func uuid(_ name: String) throws -> UUID? {
        guard let s = try string(name, maxLength: 64) else { return nil }
        guard let id = UUID(uuidString: s) else { throw Problem(.badRequest, detail: "is not a UUID", field: name) }
        return id
    }
}

/// JSON responses: snake_case keys, RFC 3339 times with milliseconds.
public enum APIJSON {
    public static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.keyEncodingStrategy = .convertToSnakeCase
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        e.dateEncodingStrategy = .custom { date, encoder in
            var c = encoder.singleValueContainer()
            try c.encode(APIDates.format(date))
        }
        return e
    }()

    public static func response<T: Encodable>(_ value: T, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) throws -> Response {
        var headers = headers
        headers[.contentType] = "application/json"
        let data = try encoder.encode(value)
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}

extension Problem {
    /// 409 for cancelling a job that has finished.
    public static func notCancellable(_ status: JobStatus) -> Problem {
        Problem(.conflict, detail: "the job is \(status.rawValue); only jobs that have not finished can be cancelled", field: "status")
    }

    /// 404 for a schedule id that is unknown or not the caller's.
    public static func scheduleNotFound(_ id: UUID) -> Problem {
        Problem(.notFound, detail: "no schedule \(id.uuidString.lowercased())", field: "id")
    }

    /// A schedule the store refused: 409 for a name taken, 422 otherwise, naming the field.
    public init(_ error: ScheduleError) {
        self.init(error.reason == .conflict ? .conflict : .unprocessableContent, detail: error.message, field: error.field)
    }

    /// 404 for a job id that is unknown or not the caller's (the same answer for both, so
    /// ids of other users' jobs cannot be probed).
    public static func jobNotFound(_ id: UUID) -> Problem {
        Problem(.notFound, detail: "no job \(id.uuidString.lowercased())", field: "id")
    }
}

extension APIRequestContext {
    /// The caller's scope: admins everything, users their own jobs.
    public var scope: AccessScope {
        let p = principal!
        return p.role == .admin ? .everything : AccessScope(ownerID: p.id)
    }

    /// Refuses (403 naming `token`) a caller who is not an admin; `detail` says why.
    public func requireAdmin(_ detail: String) throws {
        guard principal?.role == .admin else { throw Problem(.forbidden, detail: detail, field: "token") }
    }

    /// The `{id}` path parameter as a job id, or a 400 naming it.
    public func jobID() throws -> UUID { try pathID(of: "job") }

    /// The `{id}` path parameter as the id of a `what` (`principal`), or a 400 naming it.
    public func pathID(of what: String) throws -> UUID {
        let raw = parameters.get("id") ?? ""
        guard let id = UUID(uuidString: raw) else {
            throw Problem(.badRequest, detail: "'\(raw)' is not a \(what) id (a UUID)", field: "id")
        }
        return id
    }
}
