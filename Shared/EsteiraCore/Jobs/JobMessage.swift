import AMQP
import Foundation
import Postgres

/// What travels through the broker for a job: its id and kind in a small JSON body, the
/// attempt number in a header. The payload stays in PostgreSQL and is read when the attempt
/// starts, so a 1 MiB payload is not carried through every retry tier.
public struct JobMessage: Sendable, Equatable, Codable {
    /// The header holding the attempt this delivery is (1-based).
    public static let attemptHeader = "x-esteira-attempt"
    /// The header a dead-lettered message carries its reason in.
    public static let reasonHeader = "x-esteira-reason"
    /// The header a dead-lettered message carries its error class in.
    public static let errorClassHeader = "x-esteira-error-class"

    public var id: UUID
    public var kind: String
    /// Attempt number of this delivery (header, not body).
    public var attempt: Int

    public init(id: UUID, kind: String, attempt: Int) {
        self.id = id
        self.kind = kind
        self.attempt = attempt
    }

    private enum CodingKeys: String, CodingKey { case id, kind }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decode(UUID.self, forKey: .id)
        kind = try c.decode(String.self, forKey: .kind)
        attempt = 1
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id.uuidString.lowercased(), forKey: .id)
        try c.encode(kind, forKey: .kind)
    }

    /// The message to publish to `exchange` (the work exchange, or a retry tier's).
    public func outgoing(exchange: String = Topology.workExchange, priority: Int) -> AMQPOutgoingMessage {
        // The JSONEncoder's output for this struct, written directly (kind names need no escaping).
        let idText = id.lowercasedText
        let body = Array(#"{"id":"\#(idText)","kind":"\#(kind)"}"#.utf8)
        var properties = AMQPProperties.persistent
        properties.contentType = "application/json"
        properties.messageId = idText
        properties.priority = UInt8(clamping: max(0, min(Topology.maxPriority, priority)))
        properties.headers = [JobMessage.attemptHeader: .int64(Int64(attempt))]
        properties.type = kind
        // Mandatory: a message no queue takes comes back instead of being confirmed and dropped,
        // so its job stays unpublished (the relay publishes it once the queue exists again).
        return AMQPOutgoingMessage(exchange: exchange, routingKey: kind, body: body, properties: properties, mandatory: true)
    }

    /// Why a delivery is not a job message.
    public struct DecodingFailure: Error, Sendable, CustomStringConvertible {
        public var description: String
    }

    private static let quickHead = Array(#"{"id":""#.utf8)
    private static let quickMiddle = Array(#"","kind":""#.utf8)
    private static let quickTail = Array(#""}"#.utf8)

    /// Reads a body exactly as ``outgoing(exchange:priority:)`` writes it,
    /// `{"id":"<uuid>","kind":"<kind>"}`, without a JSON decoder; nil for anything else
    /// (which the JSON decoder then reads or rejects).
    static func quickDecode(_ body: [UInt8]) -> JobMessage? {
        let (head, middle, tail) = (quickHead, quickMiddle, quickTail)
        let idEnd = head.count + 36
        guard body.count > idEnd + middle.count + tail.count, body.starts(with: head),
              body[idEnd..<(idEnd + middle.count)].elementsEqual(middle),
              body[(body.count - tail.count)...].elementsEqual(tail),
              let id = body.withUnsafeBufferPointer({ UUID.parseCanonical(.init(rebasing: $0[head.count..<idEnd])) })
        else { return nil }
        let kindBytes = body[(idEnd + middle.count)..<(body.count - tail.count)]
        guard kindBytes.allSatisfy({ $0 != UInt8(ascii: "\"") && $0 != UInt8(ascii: "\\") && $0 >= 0x20 }) else { return nil }
        return JobMessage(id: id, kind: String(decoding: kindBytes, as: UTF8.self), attempt: 1)
    }

    /// Reads a delivery. Throws ``DecodingFailure`` naming what is wrong (poison).
    public static func decode(_ delivery: AMQPDelivery) throws -> JobMessage {
        var message: JobMessage
        if let quick = quickDecode(delivery.body) {
            message = quick
        } else {
            do {
                message = try JSONDecoder().decode(JobMessage.self, from: Data(delivery.body))
            } catch {
                throw DecodingFailure(description: "body is not a job message ({\"id\": uuid, \"kind\": string})")
            }
        }
        guard message.kind == delivery.routingKey || delivery.routingKey.isEmpty else {
            throw DecodingFailure(description: "body kind \(message.kind) does not match routing key \(delivery.routingKey)")
        }
        switch delivery.properties.headers[attemptHeader] {
        case .int64(let n)?: message.attempt = Int(n)
        case .int32(let n)?: message.attempt = Int(n)
        case nil: message.attempt = 1
        default: throw DecodingFailure(description: "header \(attemptHeader) is not an integer")
        }
        guard message.attempt >= 1 else { throw DecodingFailure(description: "attempt \(message.attempt) < 1") }
        return message
    }
}
