import Foundation

/// Reply texts per class, with `{name}` placeholders filled from what the pipeline found:
/// `greeting` (always: "Olá Maria," or "Olá,"), `customer_name`, `order_number`,
/// `order_status`, `tracking_url`, `store_name`, and `?order_not_found` (a condition:
/// `{?name}` writes nothing, its line shows when `name` has a value). A line with a
/// placeholder that has no value is left out, so a template holds lines for what is known
/// only sometimes.
public struct ReplyTemplates: Sendable, Codable, Equatable {
    public var templates: [String: String]

    public init(templates: [String: String]) { self.templates = templates }

    public static let standard = ReplyTemplates(templates: [
        MailClass.orderStatus.rawValue: """
            {greeting}

            Seu pedido {order_number} está: {order_status}.
            Acompanhe a entrega em {tracking_url}
            {?order_not_found}Não encontramos um pedido com este e-mail: responda com o número do pedido.

            Equipe {store_name}
            """,
        MailClass.refund.rawValue: """
            {greeting}

            Recebemos seu pedido de reembolso. Nossa equipe vai analisá-lo e responder em até 2 dias úteis.
            Pedido: {order_number}

            Equipe {store_name}
            """,
        MailClass.exchange.rawValue: """
            {greeting}

            Recebemos seu pedido de troca. Enviaremos as instruções de envio em até 2 dias úteis.
            Pedido: {order_number}

            Equipe {store_name}
            """,
        MailClass.other.rawValue: """
            {greeting}

            Recebemos sua mensagem e vamos responder em breve.

            Equipe {store_name}
            """,
    ])

    /// The text for `mailClass` with `values` filled in (nil when there is no template for it).
    public func render(_ mailClass: MailClass, _ values: [String: String]) -> String? {
        guard let template = templates[mailClass.rawValue] else { return nil }
        var lines: [String] = []
        lines: for line in template.split(separator: "\n", omittingEmptySubsequences: false) {
            var out = "", rest = Substring(line)
            while let open = rest.firstIndex(of: "{"), let close = rest[open...].firstIndex(of: "}") {
                out += rest[..<open]
                let key = rest[rest.index(after: open)..<close]
                guard let value = values[String(key.hasPrefix("?") ? key.dropFirst() : key)], !value.isEmpty else { continue lines }
                if !key.hasPrefix("?") { out += value }
                rest = rest[rest.index(after: close)...]
            }
            lines.append(out + rest)
        }
        return lines.joined(separator: "\n")
    }
}

/// A reply as sent: RFC 5322 with MIME, UTF-8 text in quoted-printable, threaded under the
/// message it answers (`In-Reply-To` its id, `References` its references and its id), with a
/// `Message-ID` of its own and `Auto-Submitted: auto-replied` (RFC 3834), so that other
/// robots do not answer it.
public struct MailReply: Sendable {
    public var from: MailAddress
    public var to: MailAddress
    public var subject: String
    public var text: String
    public var messageID: String
    public var inReplyTo: String?
    public var references: [String]
    public var date: Date

    /// The reply to `original` from `from`, with `text`; its id is made from `idSeed` (the
    /// same seed, the same id: a send tried again carries the id the first try had).
    public init?(to original: MailMessage, from: MailAddress, text: String, idSeed: String, date: Date = Date()) {
        guard let to = original.replyAddress else { return nil }
        self.from = from
        self.to = to
        let subject = original.subject.trimmingCharacters(in: .whitespaces)
        self.subject = subject.lowercased().hasPrefix("re:") ? subject : "Re: " + subject
        self.text = text
        let domain = from.address.split(separator: "@").last.map(String.init) ?? "esteira.local"
        messageID = "\(idSeed)@\(domain)"
        inReplyTo = original.messageID
        references = original.references + (original.messageID.map { [$0] } ?? [])
        self.date = date
    }

    /// The message's bytes, CR LF line ends.
    public var bytes: [UInt8] {
        var lines = [
            "From: \(MailHeaderText.address(from))",
            "To: \(MailHeaderText.address(to))",
            "Subject: \(MailHeaderText.encoded(subject))",
            "Date: \(MailHeaderText.date(date))",
            "Message-ID: <\(messageID)>",
        ]
        if let inReplyTo { lines.append("In-Reply-To: <\(inReplyTo)>") }
        if !references.isEmpty { lines.append("References: " + references.map { "<\($0)>" }.joined(separator: " ")) }
        lines += ["Auto-Submitted: auto-replied", "MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8",
                  "Content-Transfer-Encoding: quoted-printable", ""]
        return Array((lines.joined(separator: "\r\n") + "\r\n").utf8) + QuotedPrintable.encode(text)
    }
}

/// Header values as sent.
enum MailHeaderText {
    /// ASCII without control characters as is; anything else as RFC 2047 base64 words.
    static func encoded(_ value: String) -> String {
        let clean = value.map { $0.isNewline ? " " : $0 }
        let text = String(clean)
        if text.unicodeScalars.allSatisfy({ $0.isASCII && $0.value >= 32 }) { return text }
        // Words of at most 45 bytes of UTF-8 (60 characters encoded), cut between characters.
        var words: [String] = [], current: [UInt8] = []
        for c in text {
            let bytes = Array(String(c).utf8)
            if current.count + bytes.count > 45 { words.append(Data(current).base64EncodedString()); current = [] }
            current += bytes
        }
        if !current.isEmpty { words.append(Data(current).base64EncodedString()) }
        return words.map { "=?UTF-8?B?\($0)?=" }.joined(separator: "\r\n ")
    }

    static func address(_ address: MailAddress) -> String {
        guard let name = address.name, !name.isEmpty else { return "<\(address.address)>" }
        let plain = name.unicodeScalars.allSatisfy { $0.isASCII && $0.value >= 32 && !"\"\\<>,;:@()".unicodeScalars.contains($0) }
        return (plain ? name : encoded(name)) + " <\(address.address)>"
    }

    static func date(_ date: Date) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "EEE, d MMM yyyy HH:mm:ss Z"
        return formatter.string(from: date)
    }
}

/// Quoted-printable (RFC 2045) of UTF-8 text: lines of at most 76 characters, CR LF ends.
enum QuotedPrintable {
    static func encode(_ text: String) -> [UInt8] {
        var out: [UInt8] = []
        let hex = Array("0123456789ABCDEF".utf8)
        for (n, line) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
            if n > 0 { out += [13, 10] }
            var width = 0
            let bytes = Array(line.utf8)
            for (i, b) in bytes.enumerated() {
                let last = i == bytes.count - 1
                let plain = (b >= 33 && b <= 126 && b != 61) || ((b == 32 || b == 9) && !last)
                let piece: [UInt8] = plain ? [b] : [61, hex[Int(b >> 4)], hex[Int(b & 15)]]
                if width + piece.count > 75 { out += [61, 13, 10]; width = 0 }
                out += piece
                width += piece.count
            }
        }
        out += [13, 10]
        return out
    }
}
