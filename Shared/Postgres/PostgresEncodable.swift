import Foundation

/// A Swift value that can be sent as a statement parameter, in PostgreSQL's text format.
public protocol PostgresEncodable {
    /// The type the server should read the parameter as (`.unknown` lets it infer).
    static var postgresDataType: PostgresDataType { get }
    /// The value in PostgreSQL's text input format, or nil for SQL NULL.
    func postgresText() throws -> String?
}

extension String: PostgresEncodable {
    /// Unknown rather than `text`, so a string can feed any column type (json, enums, ...);
    /// arrays of strings are still sent as `text[]`.
    public static var postgresDataType: PostgresDataType { PostgresDataType(oid: 0, arrayOID: 1009) }
    /// The string itself.
    public func postgresText() -> String? { self }
}

extension Substring: PostgresEncodable {
    /// Same as `String`.
    public static var postgresDataType: PostgresDataType { String.postgresDataType }
    /// The substring itself.
    public func postgresText() -> String? { String(self) }
}

extension Int: PostgresEncodable {
    /// `bigint`.
    public static var postgresDataType: PostgresDataType { .int8 }
    /// Decimal digits.
    public func postgresText() -> String? { String(self) }
}

extension Int64: PostgresEncodable {
    /// `bigint`.
    public static var postgresDataType: PostgresDataType { .int8 }
    /// Decimal digits.
    public func postgresText() -> String? { String(self) }
}

extension Int32: PostgresEncodable {
    /// `integer`.
    public static var postgresDataType: PostgresDataType { .int4 }
    /// Decimal digits.
    public func postgresText() -> String? { String(self) }
}

extension Int16: PostgresEncodable {
    /// `smallint`.
    public static var postgresDataType: PostgresDataType { .int2 }
    /// Decimal digits.
    public func postgresText() -> String? { String(self) }
}

extension UInt8: PostgresEncodable {
    /// `smallint` (PostgreSQL has no unsigned byte); `[UInt8]` itself is sent as `bytea`.
    public static var postgresDataType: PostgresDataType { .int2 }
    /// Decimal digits.
    public func postgresText() -> String? { String(self) }
}

extension Bool: PostgresEncodable {
    /// `boolean`.
    public static var postgresDataType: PostgresDataType { .bool }
    /// `true` or `false`.
    public func postgresText() -> String? { self ? "true" : "false" }
}

extension Double: PostgresEncodable {
    /// `double precision`.
    public static var postgresDataType: PostgresDataType { .float8 }
    /// Shortest round-tripping decimal; PostgreSQL spells infinities and NaN its own way.
    public func postgresText() -> String? {
        if isNaN { return "NaN" }
        if isInfinite { return self < 0 ? "-Infinity" : "Infinity" }
        return description
    }
}

extension Float: PostgresEncodable {
    /// `real`.
    public static var postgresDataType: PostgresDataType { .float4 }
    /// Same spelling rules as `Double`.
    public func postgresText() -> String? { Double(self).postgresText() }
}

extension UUID: PostgresEncodable {
    /// `uuid`.
    public static var postgresDataType: PostgresDataType { .uuid }
    /// The canonical hyphenated form, lowercase.
    public func postgresText() -> String? { lowercasedText }
}

extension Date: PostgresEncodable {
    /// `timestamp with time zone`.
    public static var postgresDataType: PostgresDataType { .timestamptz }
    /// ISO 8601 in UTC with microseconds, independent of the session's DateStyle and TimeZone.
    public func postgresText() -> String? { PostgresTimestamp.format(self) }
}

extension Data: PostgresEncodable {
    /// `bytea`.
    public static var postgresDataType: PostgresDataType { .bytea }
    /// bytea hex format (`\x...`), which carries zero bytes safely in text.
    public func postgresText() -> String? { PostgresBytea.hex(self) }
}

extension Optional: PostgresEncodable where Wrapped: PostgresEncodable {
    /// The wrapped type's.
    public static var postgresDataType: PostgresDataType { Wrapped.postgresDataType }
    /// NULL for nil.
    public func postgresText() throws -> String? {
        switch self {
        case .none: return nil
        case .some(let value): return try value.postgresText()
        }
    }
}

extension Array: PostgresEncodable where Element: PostgresEncodable {
    /// The element type's array type; `[UInt8]` is `bytea`.
    public static var postgresDataType: PostgresDataType {
        if Element.self == UInt8.self { return .bytea }
        return PostgresDataType(oid: Element.postgresDataType.arrayOID ?? 0)
    }

    /// An array literal (`{"a","b",NULL}`), every element quoted; `[UInt8]` as bytea hex.
    public func postgresText() throws -> String? {
        // Compare types, not `self as? [UInt8]`: an empty array of any element type casts.
        if Element.self == UInt8.self { return PostgresBytea.hex(self as! [UInt8]) }
        // Built as UTF-8 bytes: `"` and `\` are single bytes that never occur inside a
        // multi-byte sequence, so escaping byte by byte is escaping character by character.
        var text: [UInt8] = [UInt8(ascii: "{")]
        text.reserveCapacity(2 + count * 40)
        for (index, element) in enumerated() {
            if index > 0 { text.append(UInt8(ascii: ",")) }
            guard let value = try element.postgresText() else {
                text.append(contentsOf: "NULL".utf8)
                continue
            }
            text.append(UInt8(ascii: "\""))
            for byte in value.utf8 {
                if byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") { text.append(UInt8(ascii: "\\")) }
                text.append(byte)
            }
            text.append(UInt8(ascii: "\""))
        }
        text.append(UInt8(ascii: "}"))
        return String(decoding: text, as: UTF8.self)
    }
}

/// A value sent as `jsonb` (encoded with `JSONEncoder`) or read from a json/jsonb column
/// (decoded with `JSONDecoder`).
public struct PostgresJSON<Value> {
    /// The wrapped value.
    public var value: Value
    /// Wraps a value.
    public init(_ value: Value) { self.value = value }
}

extension PostgresJSON: Sendable where Value: Sendable {}

extension PostgresJSON: PostgresEncodable where Value: Encodable {
    /// `jsonb`.
    public static var postgresDataType: PostgresDataType { .jsonb }
    /// The JSON text.
    public func postgresText() throws -> String? {
        do {
            let data = try JSONEncoder().encode(value)
            return String(decoding: data, as: UTF8.self)
        } catch {
            throw PostgresError(.encodingFailed, message: "cannot encode \(Value.self) as JSON: \(error)")
        }
    }
}

/// Hex digits, both ways: for bytea's hex format and UUID text.
enum Hex {
    static let digits = Array("0123456789abcdef".utf8)

    /// The value of a hex digit of either case, or nil.
    @inline(__always)
    static func value(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c &- UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c &- UInt8(ascii: "a") &+ 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c &- UInt8(ascii: "A") &+ 10
        default: return nil
        }
    }
}

/// bytea hex format, both ways.
enum PostgresBytea {

    static func hex<Bytes: Collection>(_ bytes: Bytes) -> String where Bytes.Element == UInt8 {
        var out = [UInt8]()
        out.reserveCapacity(2 + bytes.count * 2)
        out.append(UInt8(ascii: "\\"))
        out.append(UInt8(ascii: "x"))
        for byte in bytes {
            out.append(Hex.digits[Int(byte >> 4)])
            out.append(Hex.digits[Int(byte & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Parses `\x0a1b...`; nil if the text is not hex format.
    static func parse(_ text: String) -> [UInt8]? {
        let utf8 = Array(text.utf8)
        guard utf8.count >= 2, utf8[0] == UInt8(ascii: "\\"), utf8[1] == UInt8(ascii: "x"),
              utf8.count % 2 == 0 else { return nil }
        var bytes = [UInt8]()
        bytes.reserveCapacity((utf8.count - 2) / 2)
        var index = 2
        while index < utf8.count {
            guard let high = Hex.value(utf8[index]), let low = Hex.value(utf8[index + 1]) else { return nil }
            bytes.append(high << 4 | low)
            index += 2
        }
        return bytes
    }
}
