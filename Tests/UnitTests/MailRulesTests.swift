import Email
import Foundation
import Testing

/// The email workload's rule classifier and spam rules.
@Suite struct MailRulesTests {
    static func message(subject: String, text: String, extra: String = "Message-ID: <a@b.com>\nDate: Tue, 1 Dec 2026 10:00:00 +0000\n")
        -> MailMessage {
        MailMessage(raw: Array("From: c@d.com\n\(extra)Subject: \(subject)\nContent-Type: text/plain; charset=utf-8\n\n\(text)".utf8))
    }

    @Test(arguments: [
        ("Pedido", "Olá, onde está meu pedido #1234? Ainda não recebi.", MailClass.orderStatus, "1234"),
        ("Order 5678", "Hi, I would like a refund, the package never came.", .refund, "5678"),
        ("Troca", "Quero trocar, veio tamanho errado. Pedido nº 99812", .exchange, "99812"),
        ("WHERE IS MY ORDER", "Tracking says nothing. order number 4411", .orderStatus, "4411"),
        ("Dúvida", "Vocês têm loja física em Curitiba?", .other, nil),
    ] as [(String, String, MailClass, String?)])
    func classifiesInPortugueseAndEnglish(subject: String, text: String, expected: MailClass, number: String?) {
        let m = Self.message(subject: subject, text: text)
        #expect(MailClass.classify(m) == expected)
        #expect(MailClass.orderNumber(in: m) == number)
    }

    @Test func aRefundWinsATieWithAnOrderStatus() {
        #expect(MailClass.classify(subject: "", text: "where is my order? otherwise I want a refund") == .refund)
    }

    @Test func quotedHistoryDoesNotCount() {
        let text = "Obrigado, recebi!\n\nEm seg., 1 de dez. de 2026, Loja escreveu:\n> onde está meu pedido\n> rastreio"
        #expect(MailClass.classify(subject: "Re: atendimento", text: text) == .other)
        #expect(MailClass.classify(subject: "", text: "> I want a refund\nThanks, all sorted") == .other)
    }

    @Test func spamByPhrasesOrAnUpstreamVerdictAndNotOtherwise() {
        let rules = SpamRules.standard
        let phrases = Self.message(subject: "Oportunidade", text: "Ganhe dinheiro agora! Clique aqui para resgatar seu bônus.")
        #expect(rules.verdict(phrases)?.contains("phrase \"ganhe dinheiro\"") == true)
        let flagged = Self.message(subject: "hello", text: "hi", extra: "Message-ID: <x@y>\nDate: Tue, 1 Dec 2026 10:00:00 +0000\nX-Spam-Flag: YES\n")
        #expect(rules.verdict(flagged) != nil)
        let customer = Self.message(subject: "Pedido 1234", text: "Onde está meu pedido? https://loja.com/pedido/1234")
        #expect(rules.verdict(customer) == nil)
        // Capitals and missing headers alone stay under the threshold.
        let loud = Self.message(subject: "URGENTE PRECISO DE AJUDA", text: "meu pedido", extra: "")
        #expect(rules.score(loud).score == 2.5 && rules.verdict(loud) == nil)
        // Many links add up with a phrase.
        let links = (0..<8).map { "https://x\($0).example/" }.joined(separator: " ")
        #expect(rules.verdict(Self.message(subject: "oferta", text: "make money fast \(links)")) != nil)
        var strict = rules
        strict.threshold = 2
        #expect(strict.verdict(loud) != nil)
    }
}

/// Replies: the templates' text and the message as sent, read back as a customer's client would.
@Suite struct MailReplyTests {
    @Test func linesWithoutTheirValuesAreLeftOut() throws {
        let full = try #require(ReplyTemplates.standard.render(.orderStatus, [
            "greeting": "Olá Maria,", "order_number": "#1234", "order_status": "enviado", "tracking_url": "https://t.example/1",
            "store_name": "Loja",
        ]))
        #expect(full == "Olá Maria,\n\nSeu pedido #1234 está: enviado.\nAcompanhe a entrega em https://t.example/1\n\nEquipe Loja")
        let none = try #require(ReplyTemplates.standard.render(.orderStatus, ["greeting": "Olá,", "order_not_found": "yes", "store_name": "Loja"]))
        #expect(none == "Olá,\n\nNão encontramos um pedido com este e-mail: responda com o número do pedido.\n\nEquipe Loja")
        #expect(ReplyTemplates(templates: [:]).render(.refund, [:]) == nil)
    }

    @Test func aReplyThreadsUnderItsMessageAndReadsBack() throws {
        let original = MailMessage(raw: Array("""
            From: =?UTF-8?B?Sm/Do28=?= <joao@cliente.com>\r
            Message-ID: <m2@cliente.com>\r
            References: <m1@loja.com>\r
            Subject: Onde está meu pedido?\r
            \r
            oi\r

            """.utf8))
        let text = "Olá João,\n\nSeu pedido está a caminho — chega amanhã. Uma linha bem longa para que a codificação quoted-printable precise quebrar a linha em mais de uma."
        let reply = try #require(MailReply(to: original, from: MailAddress(name: "Loja Ótima", address: "suporte@loja.com"), text: text,
                                           idSeed: "job-1", date: Date(timeIntervalSince1970: 1_796_131_230)))
        let bytes = reply.bytes
        #expect(String(decoding: bytes, as: UTF8.self).split(separator: "\r\n").allSatisfy { $0.utf8.count <= 998 })
        let read = MailMessage(raw: bytes)
        #expect(read.subject == "Re: Onde está meu pedido?")
        #expect(read.from == MailAddress(name: "Loja Ótima", address: "suporte@loja.com"))
        #expect(read.to == [MailAddress(name: "João", address: "joao@cliente.com")])
        #expect(read.messageID == "job-1@loja.com" && read.inReplyTo == "m2@cliente.com")
        #expect(read.references == ["m1@loja.com", "m2@cliente.com"])
        #expect(read.conversationID == "m1@loja.com")
        #expect(read.automatedReason == "Auto-Submitted: auto-replied")
        #expect(read.text == text.replacingOccurrences(of: "\n", with: "\r\n") + "\r\n")
        #expect(read.date == Date(timeIntervalSince1970: 1_796_131_230))
    }
}
