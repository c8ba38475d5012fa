/// An ordered list of HTTP header fields.
///
/// Order is kept and a name may repeat (`Set-Cookie`, `Link`), because both matter on the wire;
/// lookups by name ignore case, as HTTP field names are case-insensitive.
public struct HTTPHeaders: Sendable, Hashable, CustomStringConvertible {
    /// One header field, with its name spelled as it was given or received.
    public struct Field: Sendable, Hashable {
        /// The field name, e.g. `"Content-Type"`.
        public var name: String
        /// The field value, without surrounding whitespace.
        public var value: String

        /// Creates a field.
        public init(name: String, value: String) {
            self.name = name
            self.value = value
        }
    }

    /// The fields, in order.
    public private(set) var fields: [Field]

    /// Creates a list of fields, in the order given.
    public init(_ fields: [(String, String)] = []) {
        self.fields = fields.map { Field(name: $0.0, value: $0.1) }
    }

    /// Appends a field, keeping any field with the same name.
    public mutating func add(name: String, value: String) {
        fields.append(Field(name: name, value: value))
    }

    /// Replaces every field with this name by one field with this value.
    public mutating func replaceOrAdd(name: String, value: String) {
        remove(name: name)
        add(name: name, value: value)
    }

    /// Removes every field with this name.
    public mutating func remove(name: String) {
        fields.removeAll { $0.name.caseInsensitiveEquals(name) }
    }

    /// The first value of the field with this name, or nil; e.g. `headers["retry-after"]`.
    public subscript(name: String) -> String? {
        fields.first { $0.name.caseInsensitiveEquals(name) }?.value
    }

    /// Every value of the fields with this name, in order.
    public func values(for name: String) -> [String] {
        fields.filter { $0.name.caseInsensitiveEquals(name) }.map(\.value)
    }

    /// Whether a field with this name is present.
    public func contains(_ name: String) -> Bool {
        self[name] != nil
    }

    /// Replaces the last field; for folded header lines, which continue the field before them.
    mutating func replaceLast(with field: Field) {
        fields[fields.count - 1] = field
    }

    /// The number of fields.
    public var count: Int { fields.count }

    /// Field names only: values may be credentials (`Authorization`), so they are never printed.
    public var description: String {
        "[" + fields.map(\.name).joined(separator: ", ") + "]"
    }
}

extension HTTPHeaders: ExpressibleByDictionaryLiteral {
    /// Creates fields from a literal; unlike a `Dictionary` literal, a name may repeat.
    public init(dictionaryLiteral elements: (String, String)...) {
        self.init(elements)
    }
}

extension HTTPHeaders: Sequence {
    /// Iterates the fields in order.
    public func makeIterator() -> IndexingIterator<[Field]> {
        fields.makeIterator()
    }
}

extension String {
    /// ASCII case-insensitive comparison, which is what HTTP field names need; cheaper than
    /// lowercasing both sides and independent of locale.
    func caseInsensitiveEquals(_ other: String) -> Bool {
        let a = utf8, b = other.utf8
        guard a.count == b.count else { return false }
        return zip(a, b).allSatisfy { x, y in
            x == y || (x | 0x20 == y | 0x20 && (x | 0x20) >= 0x61 && (x | 0x20) <= 0x7A)
        }
    }
}
