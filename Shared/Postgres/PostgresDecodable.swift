import Foundation

/// A Swift type that can be read from a column value in PostgreSQL's text format.
public protocol PostgresDecodable {
    /// Reads the value; throws `PostgresError` with code `decodingFailed` on a type mismatch,
    /// on NULL (unless `Self` is an Optional), or on malformed text.
    static func decode(from cell: PostgresCell) throws -> Self
}

private let integerTypes: [PostgresDataType] = [.int2, .int4, .int8, .oidType]

extension String: PostgresDecodable {
    /// Any column: its text output.
    public static func decode(from cell: PostgresCell) throws -> String {
        try cell.requireText(as: "String")
    }
}

extension Int: PostgresDecodable {
    /// smallint, integer, bigint, oid.
    public static func decode(from cell: PostgresCell) throws -> Int {
        try cell.expect(integerTypes, as: "Int")
        guard let value = Int(try cell.requireText(as: "Int")) else { throw cell.malformed(as: "Int") }
        return value
    }
}

extension Int64: PostgresDecodable {
    /// smallint, integer, bigint, oid.
    public static func decode(from cell: PostgresCell) throws -> Int64 {
        try cell.expect(integerTypes, as: "Int64")
        guard let value = Int64(try cell.requireText(as: "Int64")) else { throw cell.malformed(as: "Int64") }
        return value
    }
}

extension Int32: PostgresDecodable {
    /// smallint and integer only: a bigint might not fit.
    public static func decode(from cell: PostgresCell) throws -> Int32 {
        try cell.expect([.int2, .int4], as: "Int32")
        guard let value = Int32(try cell.requireText(as: "Int32")) else { throw cell.malformed(as: "Int32") }
        return value
    }
}

extension Int16: PostgresDecodable {
    /// smallint only.
    public static func decode(from cell: PostgresCell) throws -> Int16 {
        try cell.expect([.int2], as: "Int16")
        guard let value = Int16(try cell.requireText(as: "Int16")) else { throw cell.malformed(as: "Int16") }
        return value
    }
}

extension UInt8: PostgresDecodable {
    /// smallint holding 0...255.
    public static func decode(from cell: PostgresCell) throws -> UInt8 {
        try cell.expect([.int2], as: "UInt8")
        guard let value = UInt8(try cell.requireText(as: "UInt8")) else { throw cell.malformed(as: "UInt8") }
        return value
    }
}

extension Bool: PostgresDecodable {
    /// boolean (`t`/`f`).
    public static func decode(from cell: PostgresCell) throws -> Bool {
        try cell.expect([.bool], as: "Bool")
        switch try cell.requireText(as: "Bool") {
        case "t": return true
        case "f": return false
        default: throw cell.malformed(as: "Bool")
        }
    }
}

extension Double: PostgresDecodable {
    /// real, double precision, numeric (rounded), and the integer types.
    public static func decode(from cell: PostgresCell) throws -> Double {
        try cell.expect([.float4, .float8, .numeric] + integerTypes, as: "Double")
        guard let value = Double(try cell.requireText(as: "Double")) else { throw cell.malformed(as: "Double") }
        return value
    }
}

extension Float: PostgresDecodable {
    /// real, double precision (rounded), numeric (rounded).
    public static func decode(from cell: PostgresCell) throws -> Float {
        try cell.expect([.float4, .float8, .numeric], as: "Float")
        guard let value = Float(try cell.requireText(as: "Float")) else { throw cell.malformed(as: "Float") }
        return value
    }
}

extension UUID: PostgresDecodable {
    /// uuid, or text holding one.
    public static func decode(from cell: PostgresCell) throws -> UUID {
        try cell.expect([.uuid, .text, .varchar, .bpchar], as: "UUID")
        guard let value = UUID(text: try cell.requireText(as: "UUID")) else { throw cell.malformed(as: "UUID") }
        return value
    }
}

extension Date: PostgresDecodable {
    /// timestamptz, timestamp (read as UTC), date (midnight UTC); with microseconds.
    public static func decode(from cell: PostgresCell) throws -> Date {
        try cell.expect([.timestamptz, .timestamp, .date], as: "Date")
        guard let value = PostgresTimestamp.parse(try cell.requireText(as: "Date")) else {
            throw cell.malformed(as: "Date")
        }
        return value
    }
}

extension Data: PostgresDecodable {
    /// bytea (hex output); json and jsonb as their raw UTF-8 text.
    public static func decode(from cell: PostgresCell) throws -> Data {
        try cell.expect([.bytea, .json, .jsonb], as: "Data")
        let text = try cell.requireText(as: "Data")
        if cell.oid != PostgresDataType.bytea.oid { return Data(text.utf8) }
        guard let bytes = PostgresBytea.parse(text) else { throw cell.malformed(as: "Data") }
        return Data(bytes)
    }
}

extension Optional: PostgresDecodable where Wrapped: PostgresDecodable {
    /// nil for NULL, otherwise the wrapped type's decoding.
    public static func decode(from cell: PostgresCell) throws -> Wrapped? {
        guard cell.text != nil else { return nil }
        return try Wrapped.decode(from: cell)
    }
}

extension Array: PostgresDecodable where Element: PostgresDecodable {
    /// A one-dimensional array of a known element type; `[UInt8]` reads `bytea`.
    public static func decode(from cell: PostgresCell) throws -> [Element] {
        let expected = "[\(Element.self)]"
        if Element.self == UInt8.self {
            try cell.expect([.bytea], as: expected)
            guard let bytes = PostgresBytea.parse(try cell.requireText(as: expected)) else {
                throw cell.malformed(as: expected)
            }
            return bytes as! [Element]
        }
        guard let elementOID = PostgresDataType.elementOIDs[cell.oid] else {
            throw PostgresError.decoding("cannot decode PostgreSQL type OID \(cell.oid) as \(expected)",
                                         column: cell.columnName, expected: expected, oid: cell.oid)
        }
        guard let elements = PostgresArrayLiteral.parse(try cell.requireText(as: expected)) else {
            throw cell.malformed(as: expected + " (only one-dimensional arrays are supported)")
        }
        return try elements.map {
            try Element.decode(from: PostgresCell(text: $0, oid: elementOID, columnName: cell.columnName))
        }
    }
}

extension PostgresJSON: PostgresDecodable where Value: Decodable {
    /// json, jsonb, or text holding JSON, decoded with `JSONDecoder`.
    public static func decode(from cell: PostgresCell) throws -> PostgresJSON<Value> {
        let expected = "JSON \(Value.self)"
        try cell.expect([.json, .jsonb, .text, .varchar], as: expected)
        let text = try cell.requireText(as: expected)
        do {
            return PostgresJSON(try JSONDecoder().decode(Value.self, from: Data(text.utf8)))
        } catch {
            throw PostgresError.decoding("invalid JSON for \(Value.self): \(error)",
                                         column: cell.columnName, expected: expected, oid: cell.oid)
        }
    }
}

/// Parser for the text output of one-dimensional arrays: `{a,"b c",NULL,"NULL"}`.
enum PostgresArrayLiteral {
    /// The elements (nil for NULL), or nil if the text is not a one-dimensional array.
    static func parse(_ text: String) -> [String?]? {
        var bytes = Array(text.utf8)[...]
        // Arrays with non-default bounds print a "[1:3]=" decoration first.
        if bytes.first == UInt8(ascii: "["), let equals = bytes.firstIndex(of: UInt8(ascii: "=")) {
            bytes = bytes[(equals + 1)...]
        }
        guard bytes.first == UInt8(ascii: "{"), bytes.last == UInt8(ascii: "}") else { return nil }
        bytes = bytes.dropFirst().dropLast()
        if bytes.isEmpty { return [] }

        var elements: [String?] = []
        var index = bytes.startIndex
        while true {
            var value = [UInt8]()
            var quoted = false
            if index < bytes.endIndex, bytes[index] == UInt8(ascii: "\"") {
                quoted = true
                index += 1
                while true {
                    guard index < bytes.endIndex else { return nil }
                    let byte = bytes[index]
                    index += 1
                    if byte == UInt8(ascii: "\"") { break }
                    if byte == UInt8(ascii: "\\") {
                        guard index < bytes.endIndex else { return nil }
                        value.append(bytes[index])
                        index += 1
                    } else {
                        value.append(byte)
                    }
                }
            } else {
                while index < bytes.endIndex, bytes[index] != UInt8(ascii: ",") {
                    let byte = bytes[index]
                    if byte == UInt8(ascii: "{") || byte == UInt8(ascii: "\"") { return nil }
                    if byte == UInt8(ascii: "\\"), index + 1 < bytes.endIndex { index += 1 }
                    value.append(bytes[index])
                    index += 1
                }
            }
            let string = String(decoding: value, as: UTF8.self)
            if !quoted && string.uppercased() == "NULL" {
                elements.append(nil)
            } else {
                elements.append(string)
            }
            if index == bytes.endIndex { return elements }
            guard bytes[index] == UInt8(ascii: ",") else { return nil }
            index += 1
        }
    }
}
