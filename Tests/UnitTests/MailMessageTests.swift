import Email
import Foundation
import Testing

/// The email workload's reading of messages as customers' clients write them.
@Suite struct MailMessageTests {
    static func message(_ text: String, lineEnd: String = "\r\n") -> MailMessage {
        MailMessage(raw: Array(text.replacingOccurrences(of: "\n", with: lineEnd).utf8))
    }

    static func latin1(_ text: String) -> [UInt8] { Array(text.data(using: .isoLatin1)!) }

    @Test(arguments: ["\r\n", "\n"]) func headersUnfoldedAndDecoded(lineEnd: String) {
        let m = Self.message("""
            From: =?UTF-8?B?Sm/Do28gU2lsdmE=?= <Joao@Exemplo.COM.br>
            To: "Loja, Atendimento" <suporte@loja.com>, outra@loja.com (Outra)
            Subject: =?ISO-8859-1?Q?Onde_est=E1_o_meu?=
             =?ISO-8859-1?Q?_pedido=3F?= #1234
            Message-ID: <abc@mail.exemplo.com.br>
            In-Reply-To: <root@loja.com>
            References: <root@loja.com>
             <second@loja.com>
            Date: Tue, 1 Dec 2026 10:20:30 -0300

            Olá
            """, lineEnd: lineEnd)
        #expect(m.from == MailAddress(name: "João Silva", address: "Joao@exemplo.com.br"))
        #expect(m.to == [MailAddress(name: "Loja, Atendimento", address: "suporte@loja.com"), MailAddress(name: "Outra", address: "outra@loja.com")])
        #expect(m.subject == "Onde está o meu pedido? #1234")
        #expect(m.messageID == "abc@mail.exemplo.com.br")
        #expect(m.inReplyTo == "root@loja.com")
        #expect(m.references == ["root@loja.com", "second@loja.com"])
        #expect(m.conversationID == "root@loja.com")
        #expect(m.date == Date(timeIntervalSince1970: 1_796_131_230))
        #expect(m.text == "Olá")
        #expect(m.automatedReason == nil)
    }

    @Test func aMessageWithoutReferencesIsItsOwnConversation() {
        let m = Self.message("Message-ID: <only@x.com>\nFrom: a@b.com\n\nhi")
        #expect(m.conversationID == "only@x.com")
        #expect(m.replyAddress == MailAddress(address: "a@b.com"))
    }

    @Test func multipartAlternativeQuotedPrintableLatin1WithAnAttachment() {
        var raw = Array("""
            From: cliente@exemplo.com\r
            Reply-To: Cliente <responder@exemplo.com>\r
            Content-Type: multipart/mixed; boundary="outer"\r
            \r
            preamble\r
            --outer\r
            Content-Type: multipart/alternative; boundary=inner\r
            \r
            --inner\r
            Content-Type: text/plain; charset=ISO-8859-1\r
            Content-Transfer-Encoding: quoted-printable\r
            \r

            """.utf8)
        raw += Self.latin1("Ol=E1, quero trocar o tamanho da cal=E7a. Um texto longo que quebra =\r\nem duas linhas.   \r\nObrigado")
        raw += Array("""
            \r
            --inner\r
            Content-Type: text/html; charset=utf-8\r
            Content-Transfer-Encoding: base64\r
            \r
            PHA+T2zDoTwvcD4=\r
            --inner--\r
            --outer\r
            Content-Type: application/pdf; name="nota.pdf"\r
            Content-Disposition: attachment; filename*=utf-8''nota%20fiscal%C3%A7.pdf\r
            Content-Transfer-Encoding: base64\r
            \r
            JVBERi0xLjQK\r
            --outer--\r
            epilogue\r

            """.utf8)
        let m = MailMessage(raw: raw)
        #expect(m.text == "Olá, quero trocar o tamanho da calça. Um texto longo que quebra em duas linhas.\r\nObrigado")
        #expect(m.attachments == [MailMessage.Attachment(filename: "nota fiscalç.pdf", contentType: "application/pdf", size: 9)])
        #expect(m.replyAddress == MailAddress(name: "Cliente", address: "responder@exemplo.com"))
    }

    @Test func anHTMLOnlyMessageIsReadAsText() {
        let m = Self.message("""
            Content-Type: text/html; charset="windows-1252"

            <html><head><style>p { color: red }</style></head><body><p>Where is my <b>order</b>&nbsp;#55?</p><p>Thanks &amp; regards</p></body></html>
            """)
        #expect(m.text == "Where is my order #55?\n\nThanks & regards")
        // Markup across CR LF lines.
        let folded = Self.message("Content-Type: text/html\n\n<div>Where is\n   my order?</div>\n<div>Thanks</div>")
        #expect(folded.text == "Where is my order?\n\nThanks")
    }

    @Test func latin1BytesInAMessageSayingNothingAreRead() {
        var raw = Array("Subject: teste\r\n\r\n".utf8)
        raw += Self.latin1("não chegou")
        #expect(MailMessage(raw: raw).text == "não chegou")
    }

    @Test func aMissingClosingBoundaryKeepsTheLastPart() {
        let m = Self.message("""
            Content-Type: multipart/mixed; boundary=b

            --b
            Content-Type: text/plain; charset=utf-8

            cut short
            """)
        #expect(m.text == "cut short")
    }

    @Test(arguments: [
        ("Auto-Submitted: auto-replied", "Auto-Submitted: auto-replied"),
        ("Precedence: bulk", "Precedence: bulk"),
        ("X-Autoreply: yes", "X-Autoreply present"),
        ("List-Id: <news.loja.com>", "List-Id present"),
        ("Content-Type: multipart/report; report-type=delivery-status; boundary=x", "a delivery report"),
        ("Return-Path: <>", "an empty Return-Path (a bounce)"),
    ]) func automatedMailIsRecognised(header: String, reason: String) {
        #expect(Self.message("From: a@b.com\n\(header)\n\nbody").automatedReason == reason)
    }

    @Test func autoSubmittedNoIsAPerson() {
        #expect(Self.message("Auto-Submitted: no\n\nhi").automatedReason == nil)
    }

    @Test func addressesAndTheirDeliverability() {
        let list = MailAddress.list(#"team: a@x.com, "Doe, J." <j@Y.ORG>;, bare@z.io, <angle@q.net>"#)
        #expect(list.map(\.address) == ["a@x.com", "j@y.org", "bare@z.io", "angle@q.net"])
        #expect(list[1].name == "Doe, J.")
        #expect(MailAddress(address: "ok@shop.com.br").isDeliverable)
        for bad in ["no-at-sign", "@x.com", "a@nodot", "a b@x.com", "a@x.com.", "a@@x.com"] {
            #expect(!MailAddress(address: bad).isDeliverable, "\(bad)")
        }
    }

    @Test func datesInTheirCommonForms() {
        let expected = Date(timeIntervalSince1970: 1_796_131_230)
        for text in ["Tue, 1 Dec 2026 13:20:30 +0000", "1 Dec 2026 13:20:30 GMT", "Tue, 01 Dec 2026 08:20:30 EST",
                     "Tue, 1 Dec 2026 13:20:30 +0000 (UTC)"] {
            #expect(MailDateProbe.parse(text) == expected, "\(text)")
        }
        #expect(MailDateProbe.parse("yesterday") == nil)
    }
}

/// The `Date` header read through a message, as the workload reads it.
enum MailDateProbe {
    static func parse(_ text: String) -> Date? { MailMessage(raw: Array("Date: \(text)\r\n\r\n".utf8)).date }
}
