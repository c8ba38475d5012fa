import CRabbitMQ

/// A value in an AMQP field table: queue arguments (`x-message-ttl`, ...) and message headers.
///
/// Integers the broker sends in narrower C types come back as `.int32`/`.int64`, floats as
/// `.double`, decimals as `.double`.
public enum AMQPFieldValue: Equatable, Hashable, Sendable {
    /// A UTF-8 string (`S`).
    case string(String)
    /// A boolean (`t`).
    case bool(Bool)
    /// A signed 32-bit integer (`I`).
    case int32(Int32)
    /// A signed 64-bit integer (`l`); RabbitMQ uses it for `x-death` counts.
    case int64(Int64)
    /// A double (`d`).
    case double(Double)
    /// Raw bytes (`x`).
    case bytes([UInt8])
    /// Seconds since 1970 (`T`); AMQP timestamps have one-second resolution.
    case timestamp(UInt64)
    /// A nested table (`F`), e.g. an `x-death` entry.
    case table(AMQPTable)
    /// An array (`A`), e.g. `x-death`.
    case array([AMQPFieldValue])
    /// No value (`V`).
    case void
}

/// An AMQP field table: string keys to `AMQPFieldValue`s. Order is not kept (AMQP gives it no meaning).
public struct AMQPTable: Equatable, Hashable, Sendable, ExpressibleByDictionaryLiteral, Sequence {
    /// The entries.
    public var entries: [String: AMQPFieldValue]

    /// Makes a table from a dictionary.
    public init(_ entries: [String: AMQPFieldValue] = [:]) { self.entries = entries }

    /// Makes a table from a literal: `["x-message-ttl": .int32(1000)]`.
    public init(dictionaryLiteral elements: (String, AMQPFieldValue)...) {
        self.entries = Dictionary(elements, uniquingKeysWith: { _, last in last })
    }

    /// The value for a key, nil when absent.
    public subscript(key: String) -> AMQPFieldValue? {
        get { entries[key] }
        set { entries[key] = newValue }
    }

    /// Whether the table has no entries.
    public var isEmpty: Bool { entries.isEmpty }
    /// The number of entries.
    public var count: Int { entries.count }

    /// Iterates over the entries.
    public func makeIterator() -> Dictionary<String, AMQPFieldValue>.Iterator { entries.makeIterator() }
}

// MARK: - To and from C

extension AMQPTable {
    /// The C form, its memory in `arena`; the empty table costs nothing.
    func cTable(in arena: CArena) -> amqp_table_t {
        guard !entries.isEmpty else { return amqp_empty_table }
        let cEntries = arena.allocate(amqp_table_entry_t.self, count: entries.count)
        var index = 0
        for (key, value) in entries {
            (cEntries + index).initialize(to: amqp_table_entry_t(key: arena.bytes(key), value: value.cValue(in: arena)))
            index += 1
        }
        return amqp_table_t(num_entries: Int32(entries.count), entries: cEntries)
    }

    /// Copies a C table (whose memory rabbitmq-c owns) into Swift values.
    init(_ table: amqp_table_t) {
        var entries: [String: AMQPFieldValue] = [:]
        if table.num_entries > 0, let cEntries = table.entries {
            entries.reserveCapacity(Int(table.num_entries))
            for index in 0..<Int(table.num_entries) {
                let entry = cEntries[index]
                entries[String(amqpBytes: entry.key)] = AMQPFieldValue(entry.value)
            }
        }
        self.entries = entries
    }
}

extension AMQPFieldValue {
    func cValue(in arena: CArena) -> amqp_field_value_t {
        var value = amqp_field_value_t()
        switch self {
        case .string(let string):
            value.kind = UInt8(ascii: "S")
            value.value.bytes = arena.bytes(string)
        case .bool(let bool):
            value.kind = UInt8(ascii: "t")
            value.value.boolean = bool ? 1 : 0
        case .int32(let int):
            value.kind = UInt8(ascii: "I")
            value.value.i32 = int
        case .int64(let int):
            value.kind = UInt8(ascii: "l")
            value.value.i64 = int
        case .double(let double):
            value.kind = UInt8(ascii: "d")
            value.value.f64 = double
        case .bytes(let bytes):
            value.kind = UInt8(ascii: "x")
            value.value.bytes = bytes.withUnsafeBytes { arena.bytes($0) }
        case .timestamp(let seconds):
            value.kind = UInt8(ascii: "T")
            value.value.u64 = seconds
        case .table(let table):
            value.kind = UInt8(ascii: "F")
            value.value.table = table.cTable(in: arena)
        case .array(let array):
            value.kind = UInt8(ascii: "A")
            let cEntries = arena.allocate(amqp_field_value_t.self, count: max(array.count, 1))
            for (index, element) in array.enumerated() {
                (cEntries + index).initialize(to: element.cValue(in: arena))
            }
            value.value.array = amqp_array_t(num_entries: Int32(array.count), entries: cEntries)
        case .void:
            value.kind = UInt8(ascii: "V")
        }
        return value
    }

    init(_ value: amqp_field_value_t) {
        switch value.kind {
        case UInt8(ascii: "S"): self = .string(String(amqpBytes: value.value.bytes))
        case UInt8(ascii: "x"): self = .bytes([UInt8](amqpBytes: value.value.bytes))
        case UInt8(ascii: "t"): self = .bool(value.value.boolean != 0)
        case UInt8(ascii: "b"): self = .int32(Int32(value.value.i8))
        case UInt8(ascii: "B"): self = .int32(Int32(value.value.u8))
        case UInt8(ascii: "s"): self = .int32(Int32(value.value.i16))
        case UInt8(ascii: "u"): self = .int32(Int32(value.value.u16))
        case UInt8(ascii: "I"): self = .int32(value.value.i32)
        case UInt8(ascii: "i"): self = .int64(Int64(value.value.u32))
        case UInt8(ascii: "l"): self = .int64(value.value.i64)
        case UInt8(ascii: "L"): self = .int64(Int64(bitPattern: value.value.u64))
        case UInt8(ascii: "f"): self = .double(Double(value.value.f32))
        case UInt8(ascii: "d"): self = .double(value.value.f64)
        case UInt8(ascii: "D"):
            var scaled = Double(value.value.decimal.value)
            for _ in 0..<value.value.decimal.decimals { scaled /= 10 }
            self = .double(scaled)
        case UInt8(ascii: "T"): self = .timestamp(value.value.u64)
        case UInt8(ascii: "F"): self = .table(AMQPTable(value.value.table))
        case UInt8(ascii: "A"):
            var array: [AMQPFieldValue] = []
            let cArray = value.value.array
            if cArray.num_entries > 0, let entries = cArray.entries {
                array.reserveCapacity(Int(cArray.num_entries))
                for index in 0..<Int(cArray.num_entries) { array.append(AMQPFieldValue(entries[index])) }
            }
            self = .array(array)
        default: self = .void
        }
    }
}
