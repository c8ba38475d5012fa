import EsteiraCore
import Foundation
import Postgres
import Testing

/// A context made by hand (a handler's unit test) has no outcome to write with: asking for a
/// write with it is refused, not dropped.
@Suite struct OutcomeWriteContextTests {
    struct Note: OutcomeWrite {
        static func write(_ all: [Note], on connection: PostgresConnection) throws {}
    }

    @Test func aHandMadeContextRefusesAWriteWithTheOutcome() {
        let context = JobContext(id: UUID(), kind: "noop", payloadText: "{}", payload: .object([:]), attempt: 1, maxAttempts: 1,
                                 kindInfo: KindCatalog.Kind(name: "noop", policy: KindPolicy()))
        let error = #expect(throws: JobError.self) { try context.writeWithOutcome(Note()) }
        #expect(error?.errorClass == .permanent)
        #expect(error?.message == "this context records no outcome")
    }
}
