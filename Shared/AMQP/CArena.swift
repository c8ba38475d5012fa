import CRabbitMQ

/// Memory for the C structures of one library call (strings, table entries), kept alive until
/// `reset()` after the call returns. Chunks are reused, so steady-state calls allocate nothing.
/// Pointers handed out never leave the module.
final class CArena {
    private static let chunkSize = 4096
    private var chunks: [(pointer: UnsafeMutableRawPointer, capacity: Int)] = []
    private var current = 0
    private var offset = 0

    deinit {
        for chunk in chunks { chunk.pointer.deallocate() }
    }

    /// Invalidates everything handed out since the last reset; keeps the chunks for reuse.
    func reset() {
        // Oversized one-off chunks are freed so one big table does not pin memory forever.
        if chunks.count > 1 {
            for chunk in chunks.dropFirst() where chunk.capacity > Self.chunkSize { chunk.pointer.deallocate() }
            chunks = [chunks[0]] + chunks.dropFirst().filter { $0.capacity <= Self.chunkSize }
        }
        current = 0
        offset = 0
    }

    func allocate(byteCount: Int, alignment: Int) -> UnsafeMutableRawPointer {
        let size = max(byteCount, 1)
        while current < chunks.count {
            let aligned = (offset + alignment - 1) & ~(alignment - 1)
            if aligned + size <= chunks[current].capacity {
                offset = aligned + size
                return chunks[current].pointer + aligned
            }
            current += 1
            offset = 0
        }
        let capacity = max(Self.chunkSize, size)
        let pointer = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 16)
        chunks.append((pointer, capacity))
        current = chunks.count - 1
        offset = size
        return pointer
    }

    func allocate<T>(_ type: T.Type, count: Int) -> UnsafeMutablePointer<T> {
        allocate(byteCount: MemoryLayout<T>.stride * count, alignment: MemoryLayout<T>.alignment)
            .bindMemory(to: T.self, capacity: count)
    }

    /// Copies a string's UTF-8 bytes (no terminator: amqp_bytes_t carries a length).
    func bytes(_ string: String) -> amqp_bytes_t {
        var string = string
        return string.withUTF8 { bytes(UnsafeRawBufferPointer($0)) }
    }

    func bytes(_ buffer: UnsafeRawBufferPointer) -> amqp_bytes_t {
        guard buffer.count > 0, let base = buffer.baseAddress else { return amqp_bytes_t(len: 0, bytes: nil) }
        let pointer = allocate(byteCount: buffer.count, alignment: 1)
        pointer.copyMemory(from: base, byteCount: buffer.count)
        return amqp_bytes_t(len: buffer.count, bytes: pointer)
    }

    /// NUL-terminated copy, for the few rabbitmq-c calls that take `const char *`.
    func cString(_ string: String) -> UnsafePointer<CChar> {
        var string = string
        return string.withUTF8 { utf8 in
            let pointer = allocate(byteCount: utf8.count + 1, alignment: 1)
            if let base = utf8.baseAddress { pointer.copyMemory(from: base, byteCount: utf8.count) }
            pointer.storeBytes(of: 0, toByteOffset: utf8.count, as: UInt8.self)
            return UnsafePointer(pointer.assumingMemoryBound(to: CChar.self))
        }
    }
}

extension String {
    /// Copies C bytes (not NUL-terminated) into a Swift string.
    init(amqpBytes: amqp_bytes_t) {
        guard amqpBytes.len > 0, let base = amqpBytes.bytes else { self = ""; return }
        self = String(decoding: UnsafeRawBufferPointer(start: base, count: amqpBytes.len), as: UTF8.self)
    }
}

extension Array where Element == UInt8 {
    init(amqpBytes: amqp_bytes_t) {
        guard amqpBytes.len > 0, let base = amqpBytes.bytes else { self = []; return }
        self = Array(UnsafeRawBufferPointer(start: base, count: amqpBytes.len))
    }
}
