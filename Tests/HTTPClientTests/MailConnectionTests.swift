import Foundation
import HTTPClient
import StandIns
import Testing

/// IMAP against make test's Dovecot and SMTP against an aiosmtpd sink, through libcurl.
@Suite struct MailConnectionTests {
    static func message(_ n: Int, id: String? = nil) -> [UInt8] {
        Array("From: Customer \(n) <c\(n)@example.com>\r\nTo: shop@example.com\r\nMessage-ID: <\(id ?? "m\(n)")@example.com>\r\nSubject: order \(n)\r\n\r\nWhere is order \(n)?\r\n".utf8)
    }

    @Test func aMailboxIsReadByUIDFromWhereTheLastRoundStopped() throws {
        let server = try TestIMAP.newUser()
        let mail = try MailConnection()
        let empty = try mail.status(server)
        #expect(empty.messages == 0 && empty.uidNext == 1)
        for n in 1...3 { try mail.append(server, message: Self.message(n)) }
        let status = try mail.status(server)
        #expect(status.messages == 3 && status.uidNext == 4 && status.uidValidity == empty.uidValidity)
        let all = try mail.uids(server, from: 1), last = try mail.uids(server, from: 3), none = try mail.uids(server, from: 4)
        #expect(all == [1, 2, 3])
        #expect(last == [3])
        // `4:*` names the highest UID when none is that high: nothing new.
        #expect(none == [])
        #expect(try mail.fetch(server, uid: 2, uidValidity: status.uidValidity) == Self.message(2))
        // A UIDVALIDITY that is not the mailbox's: the UIDs no longer name those messages.
        let stale = #expect(throws: MailError.self) { try mail.fetch(server, uid: 2, uidValidity: status.uidValidity &+ 1) }
        #expect(stale?.kind == .notFound, "\(String(describing: stale))")
        let gone = #expect(throws: MailError.self) { try mail.fetch(server, uid: 9, uidValidity: status.uidValidity) }
        #expect(gone?.kind == .notFound, "\(String(describing: gone))")
    }

    @Test func aWrongPasswordIsALoginRefusal() throws {
        var server = try TestIMAP.newUser()
        server.password = "wrong"
        let error = #expect(throws: MailError.self) { try MailConnection().status(server) }
        #expect(error?.kind == .login && error?.isTransient == false, "\(String(describing: error))")
    }

    @Test func noServerIsATransientFailure() throws {
        var server = try TestIMAP.newUser()
        server.port = 1
        let error = #expect(throws: MailError.self) { try MailConnection().status(server) }
        #expect(error?.kind == .transport(.connectionRefused) && error?.isTransient == true, "\(String(describing: error))")
    }

    @Test func theOutboundPolicyHoldsForMailServersToo() throws {
        var configuration = HTTPClient.Configuration()
        configuration.policy = try .publicOnly()
        let error = #expect(throws: MailError.self) { try MailConnection(configuration: configuration).status(try TestIMAP.newUser()) }
        #expect(error?.kind == .forbiddenAddress, "\(String(describing: error))")
        // The operator's allow-list admits it.
        configuration.policy = try .publicOnly(allowing: ["127.0.0.1"])
        #expect(try MailConnection(configuration: configuration).status(try TestIMAP.newUser()).messages == 0)
    }

    @Test func smtpSendsWithItsEnvelopeAndReportsRefusalsWithTheirCodes() throws {
        let sink = try SMTPSink()
        let server = MailConnection.Server(host: "127.0.0.1", port: sink.port, security: .startTLSIfOffered, user: "", password: "")
        let mail = try MailConnection()
        let accepted = try mail.send(server, from: "shop@example.com", to: ["c1@example.com"], message: Self.message(1))
        #expect(accepted.code == 250)
        let received = sink.messages()
        #expect(received.count == 1)
        #expect(received.first?.mailFrom == "shop@example.com" && received.first?.recipients == ["c1@example.com"])
        #expect(received.first.map { String(decoding: $0.data, as: UTF8.self).contains("Where is order 1?") } == true)

        try sink.refuse(at: .rcpt, with: "550 5.1.1 no such user")
        let permanent = #expect(throws: MailError.self) { try mail.send(server, from: "shop@example.com", to: ["x@example.com"], message: Self.message(2)) }
        #expect(permanent?.kind == .refused && permanent?.replyCode == 550 && permanent?.isTransient == false, "\(String(describing: permanent))")
        try sink.refuse(at: .data, with: "451 4.3.0 try later")
        let later = #expect(throws: MailError.self) { try mail.send(server, from: "shop@example.com", to: ["x@example.com"], message: Self.message(3)) }
        #expect(later?.kind == .refused && later?.replyCode == 451 && later?.isTransient == true, "\(String(describing: later))")
        try sink.refuse(at: .data, with: "drop")
        let dropped = #expect(throws: MailError.self) { try mail.send(server, from: "shop@example.com", to: ["x@example.com"], message: Self.message(4)) }
        #expect(dropped?.isTransient == true, "\(String(describing: dropped))")
        try sink.refuse(at: .data, with: nil)
        try mail.send(server, from: "shop@example.com", to: ["c5@example.com"], message: Self.message(5))
        #expect(sink.messages().map(\.recipients) == [["c1@example.com"], ["c5@example.com"]])
        // A line break in an address would add commands of its own.
        let injected = #expect(throws: MailError.self) { try mail.send(server, from: "a@b.com>\r\nRCPT TO:<x@y.com", to: ["c@d.com"], message: Self.message(6)) }
        #expect(injected?.kind == .invalid)
    }
}
