@testable import Email
import EsteiraCore
import Foundation
import HTTPClient
import Testing

/// The email workload's settings and identities, without servers.
@Suite struct EmailSettingsTests {
    @Test func aRulesFileReplacesTheSpamRulesAndTheTemplatesItNames() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("rules-\(UUID().uuidString).json")
        defer { try? FileManager.default.removeItem(at: file) }
        try Data(#"{"templates": {"refund": "{greeting}\nReembolso em análise."}, "spam": {"phrases": ["oferta"], "phraseScore": 5, "maxLinks": 3, "linkScore": 1, "shoutingSubjectScore": 0, "missingHeaderScore": 0, "upstreamVerdictScore": 5, "threshold": 5}}"#.utf8).write(to: file)
        let (spam, templates) = try Email.rules(file.path)
        #expect(spam.phrases == ["oferta"] && spam.threshold == 5)
        #expect(templates.render(.refund, ["greeting": "Olá,"]) == "Olá,\nReembolso em análise.")
        #expect(templates.templates[MailClass.other.rawValue] == ReplyTemplates.standard.templates[MailClass.other.rawValue], "the others stay")

        try Data(#"{"templates": {"complaint": "x"}}"#.utf8).write(to: file)
        #expect(throws: ConfigurationError.self) { try Email.rules(file.path) }
        try Data("not json".utf8).write(to: file)
        let error = #expect(throws: ConfigurationError.self) { try Email.rules(file.path) }
        #expect(error?.variable == "ESTEIRA_EMAIL_RULES_FILE")
        #expect(throws: ConfigurationError.self) { try Email.rules("/nonexistent/rules.json") }
    }

    @Test func theBreakerSettingIsFailuresWindowAndCoolDown() throws {
        let policy = try ServiceBreakers.policy(Email.breakerSetting, "3/30/10")
        #expect(policy == KindCatalog.BreakerPolicy(failures: 3, window: 30, coolDown: 10))
        #expect(try ServiceBreakers.policy(Email.breakerSetting, nil) == KindCatalog.BreakerPolicy())
        for bad in ["3/30", "0/30/10", "2.5/30/10", "3/-1/10", "a/b/c"] {
            let error = #expect(throws: ConfigurationError.self) { try ServiceBreakers.policy(Email.breakerSetting, bad) }
            #expect(error?.variable == "ESTEIRA_EMAIL_BREAKER", "\(bad)")
        }
    }

    /// A message's identity in the mailbox: its Message-ID, else a digest of its text; its
    /// conversation's lock key the same for every message of a thread.
    @Test func messagesAreKnownByMessageIDOrADigestAndThreadsShareOneKey() {
        func raw(_ headers: String) -> [UInt8] { Array("From: a@b.com\r\nSubject: s\r\n\(headers)\r\nhello\r\n".utf8) }
        let root = MailIngest.fetched(uid: 1, raw: raw("Message-ID: <root@x.com>\r\n"))
        let reply = MailIngest.fetched(uid: 2, raw: raw("Message-ID: <r1@x.com>\r\nIn-Reply-To: <root@x.com>\r\nReferences: <root@x.com>\r\n"))
        #expect(root.messageID == "root@x.com" && reply.messageID == "r1@x.com")
        #expect(root.conversationID == "root@x.com" && reply.conversationID == "root@x.com")
        let store = UUID()
        #expect(MailIngest.conversationKey(store: store, root.conversationID) == MailIngest.conversationKey(store: store, reply.conversationID))
        #expect(MailIngest.conversationKey(store: UUID(), root.conversationID) != MailIngest.conversationKey(store: store, root.conversationID),
                "a thread's key is its store's")
        let anonymous = MailIngest.fetched(uid: 3, raw: raw(""))
        #expect(anonymous.messageID.hasPrefix("sha256:") && anonymous.messageID.count == 71)
        #expect(MailIngest.fetched(uid: 4, raw: raw("")).messageID == anonymous.messageID, "the same text, the same id")
    }

    /// Which SMTP failures surely left the reply unsent (the credit back, a retry) and which
    /// may have come after the server took it (never sent again).
    @Test func onlyFailuresBeforeTheServerTookTheReplyAreSentAgain() {
        #expect(EmailProcessHandler.certainlyNotSent(MailError(kind: .refused, replyCode: 550, message: "no such user")))
        #expect(EmailProcessHandler.certainlyNotSent(MailError(kind: .transport(.connectionRefused), message: "refused")))
        #expect(EmailProcessHandler.certainlyNotSent(ServiceBreakers.Open(breaker: "smtp:x", seconds: 3)))
        #expect(!EmailProcessHandler.certainlyNotSent(MailError(kind: .transport(.timeout), message: "timeout")))
        #expect(!EmailProcessHandler.certainlyNotSent(MailError(kind: .transport(.connectionLost), message: "lost")))
        #expect(EmailProcessHandler.jobError(MailError(kind: .refused, replyCode: 451, message: "later"), what: "smtp").errorClass == .transient)
        #expect(EmailProcessHandler.jobError(MailError(kind: .refused, replyCode: 550, message: "no"), what: "smtp").errorClass == .permanent)
    }
}
