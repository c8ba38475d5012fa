import AMQP
@testable import EsteiraCore
import Foundation
import Testing

/// The job message body: written without an encoder, read back by the quick path, and any
/// other valid JSON form still read by the JSON decoder.
@Suite struct JobMessageTests {
    func delivery(_ body: String, routingKey: String = "noop", headers: AMQPTable = [:]) -> AMQPDelivery {
        var properties = AMQPProperties()
        properties.headers = headers
        return AMQPDelivery(deliveryTag: 1, redelivered: false, exchange: "esteira.work", routingKey: routingKey,
                            body: Array(body.utf8), properties: properties)
    }

    @Test func theWrittenBodyIsJSONAndReadsBack() throws {
        let id = UUID()
        let outgoing = JobMessage(id: id, kind: "lead-migration.batch", attempt: 3).outgoing(priority: 0)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(outgoing.body)) as? [String: String])
        #expect(json == ["id": id.uuidString.lowercased(), "kind": "lead-migration.batch"])
        #expect(JobMessage.quickDecode(outgoing.body) == JobMessage(id: id, kind: "lead-migration.batch", attempt: 1))
        var d = delivery(String(decoding: outgoing.body, as: UTF8.self), routingKey: "lead-migration.batch")
        d.properties.headers = outgoing.properties.headers
        #expect(try JobMessage.decode(d) == JobMessage(id: id, kind: "lead-migration.batch", attempt: 3))
    }

    @Test func otherJSONFormsGoThroughTheDecoderAndBadOnesArePoison() throws {
        let id = UUID()
        let spaced = #"{ "kind": "noop", "id": "\#(id.uuidString)" }"#
        #expect(JobMessage.quickDecode(Array(spaced.utf8)) == nil)
        #expect(try JobMessage.decode(delivery(spaced)).id == id)
        // Escapes in the kind are left to the decoder (and then fail the routing-key check).
        let escaped = #"{"id":"\#(id.uuidString.lowercased())","kind":"no\"op"}"#
        #expect(JobMessage.quickDecode(Array(escaped.utf8)) == nil)
        #expect(throws: JobMessage.DecodingFailure.self) { try JobMessage.decode(delivery(escaped)) }
        for bad in [#"{"id":"not-a-uuid","kind":"noop"}"#, "", "[]", #"{"id":"\#(id.uuidString.lowercased())"}"#] {
            #expect(throws: JobMessage.DecodingFailure.self, "\(bad)") { try JobMessage.decode(delivery(bad)) }
        }
    }
}
