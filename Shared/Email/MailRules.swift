import Foundation

/// Spam detection by rules on a message's headers and text: each rule that matches adds its
/// score, and a message at or above the threshold is spam. The rules and the threshold are
/// settings of the store (``SpamRules/standard`` when it sets none).
public struct SpamRules: Sendable, Codable, Equatable {
    /// Phrases (any case, accents ignored) that score ``phraseScore`` each.
    public var phrases: [String]
    public var phraseScore: Double
    /// Links in the text above this many score ``linkScore``.
    public var maxLinks: Int
    public var linkScore: Double
    /// A subject in capitals (at least 12 letters) scores this.
    public var shoutingSubjectScore: Double
    /// A message without `Message-ID` or `Date` scores this.
    public var missingHeaderScore: Double
    /// An upstream filter's verdict (`X-Spam-Flag: YES`, `X-Spam-Status: Yes...`) scores this.
    public var upstreamVerdictScore: Double
    /// Spam at this score or above.
    public var threshold: Double

    public static let standard = SpamRules(
        phrases: ["viagra", "cassino online", "online casino", "ganhe dinheiro", "make money fast", "bitcoin investment",
                  "clique aqui para resgatar", "click here to claim", "voce foi selecionado", "you have been selected",
                  "premio garantido", "guaranteed prize", "crypto giveaway", "renda extra garantida"],
        phraseScore: 3, maxLinks: 5, linkScore: 2, shoutingSubjectScore: 1.5, missingHeaderScore: 1, upstreamVerdictScore: 5,
        threshold: 5)

    /// The score of `message` and the rules that made it.
    public func score(_ message: MailMessage) -> (score: Double, reasons: [String]) {
        var score = 0.0, reasons: [String] = []
        func add(_ points: Double, _ reason: String) {
            guard points > 0 else { return }
            score += points
            reasons.append(reason)
        }
        if message.rawHeader("X-Spam-Flag")?.trimmingCharacters(in: .whitespaces).uppercased() == "YES"
            || message.rawHeader("X-Spam-Status")?.trimmingCharacters(in: .whitespaces).lowercased().hasPrefix("yes") == true {
            add(upstreamVerdictScore, "an upstream filter marked it spam")
        }
        let text = TextMatch.folded(message.subject + "\n" + message.text)
        for phrase in phrases where text.contains(TextMatch.folded(phrase)) { add(phraseScore, "phrase \"\(phrase)\"") }
        let links = message.text.components(separatedBy: "http://").count + message.text.components(separatedBy: "https://").count - 2
        if links > maxLinks { add(linkScore, "\(links) links") }
        let letters = String(String.UnicodeScalarView(message.subject.unicodeScalars.filter { CharacterSet.letters.contains($0) }))
        if letters.unicodeScalars.count >= 12, letters == letters.uppercased() {
            add(shoutingSubjectScore, "a subject in capitals")
        }
        if message.messageID == nil || message.rawHeader("Date") == nil { add(missingHeaderScore, "no Message-ID or Date") }
        return (score, reasons)
    }

    /// Whether `message` is spam, and why.
    public func verdict(_ message: MailMessage) -> String? {
        let (score, reasons) = self.score(message)
        return score >= threshold ? "spam (score \(score): \(reasons.joined(separator: ", ")))" : nil
    }
}

/// What a customer writes about, by the rule classifier: keywords in Portuguese and English
/// (any case, accents ignored), the subject counting with the text.
public enum MailClass: String, Sendable, Codable, CaseIterable {
    case orderStatus = "order_status"
    case refund
    case exchange
    case other

    /// The class of `message`: the class with the most keyword hits, a refund winning a tie
    /// over an exchange and both over an order status (the more specific request); `other`
    /// when none is hit.
    public static func classify(_ message: MailMessage) -> MailClass {
        classify(subject: message.subject, text: message.text)
    }

    public static func classify(subject: String, text: String) -> MailClass {
        let folded = TextMatch.folded(subject + "\n" + QuotedText.stripped(text))
        let order: [MailClass] = [.refund, .exchange, .orderStatus]
        var best: (MailClass, Int) = (.other, 0)
        for c in order {
            let hits = keywords[c, default: []].filter { folded.contains($0) }.count
            if hits > best.1 { best = (c, hits) }
        }
        return best.0
    }

    static let keywords: [MailClass: [String]] = [
        .orderStatus: ["onde esta meu pedido", "onde esta o meu pedido", "status do pedido", "rastreio", "rastreamento",
                       "codigo de rastreio", "nao chegou", "ainda nao recebi", "previsao de entrega", "quando chega",
                       "where is my order", "order status", "tracking", "track my order", "has not arrived", "hasn't arrived",
                       "not received", "delivery date", "when will it arrive"],
        .refund: ["reembolso", "estorno", "estornar", "devolver o dinheiro", "dinheiro de volta", "cancelar o pedido",
                  "cancelamento", "refund", "money back", "chargeback", "cancel my order", "cancel the order"],
        .exchange: ["troca", "trocar", "tamanho errado", "cor errada", "produto errado", "veio errado", "veio com defeito",
                    "exchange", "swap", "wrong size", "wrong color", "wrong item", "replacement", "defective"],
    ]

    /// An order number the customer gave: `#1234`, `pedido 1234`, `pedido nº 1234`, `order 1234`,
    /// `order number 1234` (3 to 12 digits).
    public static func orderNumber(in message: MailMessage) -> String? {
        orderNumber(in: message.subject + "\n" + QuotedText.stripped(message.text))
    }

    public static func orderNumber(in text: String) -> String? {
        let folded = TextMatch.folded(text)
        let pattern = #"(?:#|\bpedido\s*(?:n[o.º°]?\.?\s*|numero\s*)?#?\s*|\border\s*(?:number\s*|no\.?\s*)?#?\s*)(\d{3,12})\b"#
        guard let regex = try? NSRegularExpression(pattern: pattern),
              let match = regex.firstMatch(in: folded, range: NSRange(folded.startIndex..., in: folded)),
              let range = Range(match.range(at: 1), in: folded) else { return nil }
        return String(folded[range])
    }
}

/// The text a customer wrote, without the quoted history a reply carries: lines starting
/// with `>` and everything from a reply header ("On ... wrote:", "Em ... escreveu:",
/// "-----Original Message-----") on.
enum QuotedText {
    static func stripped(_ text: String) -> String {
        var kept: [Substring] = []
        for line in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline) {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            let folded = TextMatch.folded(trimmed)
            if (folded.hasPrefix("on ") && folded.hasSuffix("wrote:")) || (folded.hasPrefix("em ") && folded.hasSuffix("escreveu:"))
                || folded.hasPrefix("-----original message") || folded.hasPrefix("-----mensagem original") {
                break
            }
            if trimmed.hasPrefix(">") { continue }
            kept.append(line)
        }
        return kept.joined(separator: "\n")
    }
}

/// Lower case without accents, for keyword matching in Portuguese and English.
enum TextMatch {
    static func folded(_ text: String) -> String {
        text.folding(options: [.caseInsensitive, .diacriticInsensitive], locale: Locale(identifier: "en_US_POSIX")).lowercased()
    }
}
