import Foundation

/// An email as received (RFC 5322 with MIME): its headers, decoded, and the text a reply
/// answers. Parsing never fails: what cannot be decoded is kept as well as it can be (bytes
/// read as ISO-8859-1, a part without its boundary read as text), since a customer's mail is
/// answered whatever its client did.
public struct MailMessage: Sendable {
    /// The header fields in order, names as written, values unfolded (not decoded).
    public var fields: [(name: String, value: String)]
    /// The text of the message: its first text/plain part that is not an attachment, else its
    /// first text/html part with the markup taken out; empty when there is neither.
    public var text: String
    /// Parts given as attachments (or of a type that is not text), by their file name.
    public var attachments: [Attachment]

    /// A part that is not the message's text.
    public struct Attachment: Sendable, Equatable {
        public var filename: String?
        public var contentType: String
        public var size: Int

        public init(filename: String?, contentType: String, size: Int) {
            self.filename = filename
            self.contentType = contentType
            self.size = size
        }
    }

    /// Parses `raw`, the message's bytes as fetched.
    public init(raw: [UInt8]) {
        let (header, body) = MailMessage.split(raw[...])
        fields = MailMessage.fields(of: header)
        var texts: [(html: Bool, text: String)] = []
        var attachments: [Attachment] = []
        MailMessage.walk(fields: fields, body: body, depth: 0, texts: &texts, attachments: &attachments)
        self.attachments = attachments
        if let plain = texts.first(where: { !$0.html }) {
            text = plain.text
        } else if let html = texts.first {
            text = HTMLText.plain(html.text)
        } else {
            text = ""
        }
    }

    /// The value of the first field `name` (any case), unfolded and with its encoded words decoded.
    public func header(_ name: String) -> String? {
        rawHeader(name).map(EncodedWords.decode)
    }

    /// The value of the first field `name` (any case), unfolded, as written.
    public func rawHeader(_ name: String) -> String? {
        MailMessage.value(name, in: fields)
    }

    /// The value of the first field `name` (any case) of `fields`.
    static func value(_ name: String, in fields: [(name: String, value: String)]) -> String? {
        fields.first { $0.name.caseInsensitiveCompare(name) == .orderedSame }?.value
    }

    /// The subject, decoded ("" when there is none).
    public var subject: String { header("Subject") ?? "" }

    /// The `Message-ID`, without its angle brackets.
    public var messageID: String? { rawHeader("Message-ID").flatMap { MessageIDs.list($0).first } }

    /// The `In-Reply-To` id, without its angle brackets.
    public var inReplyTo: String? { rawHeader("In-Reply-To").flatMap { MessageIDs.list($0).first } }

    /// The `References` ids, oldest first.
    public var references: [String] { rawHeader("References").map(MessageIDs.list) ?? [] }

    /// The id of the thread's first message: the first of `References`, else `In-Reply-To`,
    /// else this message's own id.
    public var conversationID: String? { references.first ?? inReplyTo ?? messageID }

    /// The sender (`From`).
    public var from: MailAddress? { header("From").flatMap { MailAddress.list($0).first } }

    /// Where replies go: `Reply-To` if it holds an address, else `From`.
    public var replyAddress: MailAddress? { header("Reply-To").flatMap { MailAddress.list($0).first } ?? from }

    /// The `To` addresses.
    public var to: [MailAddress] { header("To").map(MailAddress.list) ?? [] }

    /// The `Date`, when it is a date RFC 5322 (or a common variant of it) can read.
    public var date: Date? { rawHeader("Date").flatMap(MailDate.parse) }

    /// Why this message is not a person writing (an auto-reply, a bounce, a list's mail), or
    /// nil: RFC 3834's `Auto-Submitted`, `Precedence: bulk/junk/list`, the common auto-reply
    /// markers, a list's `List-Id`, a delivery report, or an empty `Return-Path`.
    public var automatedReason: String? {
        if let auto = rawHeader("Auto-Submitted")?.trimmingCharacters(in: .whitespaces).lowercased(), !auto.hasPrefix("no") {
            return "Auto-Submitted: \(auto)"
        }
        if let precedence = rawHeader("Precedence")?.trimmingCharacters(in: .whitespaces).lowercased(),
           ["bulk", "junk", "list", "auto_reply"].contains(precedence) {
            return "Precedence: \(precedence)"
        }
        for marker in ["X-Autoreply", "X-Autorespond", "X-Auto-Response-Suppress", "List-Id"] where rawHeader(marker) != nil {
            return "\(marker) present"
        }
        if let type = rawHeader("Content-Type"), ContentType(type).mimeType == "multipart/report" {
            return "a delivery report"
        }
        if let path = rawHeader("Return-Path"), path.trimmingCharacters(in: .whitespaces) == "<>" {
            return "an empty Return-Path (a bounce)"
        }
        return nil
    }

    // MARK: - Parsing

    /// Splits at the first empty line (CRLF or LF line ends).
    static func split(_ bytes: ArraySlice<UInt8>) -> (header: ArraySlice<UInt8>, body: ArraySlice<UInt8>) {
        var i = bytes.startIndex
        // A part that starts with its empty line has no header fields.
        if bytes.starts(with: [13, 10]) { return (bytes[i..<i], bytes[(i + 2)...]) }
        if bytes.first == 10 { return (bytes[i..<i], bytes[(i + 1)...]) }
        while i < bytes.endIndex {
            if bytes[i] == 10 {
                let next = i + 1
                if next < bytes.endIndex, bytes[next] == 10 { return (bytes[..<i], bytes[(next + 1)...]) }
                if next + 1 < bytes.endIndex, bytes[next] == 13, bytes[next + 1] == 10 { return (bytes[..<i], bytes[(next + 2)...]) }
            }
            i += 1
        }
        return (bytes, bytes[bytes.endIndex...])
    }

    /// The header's fields, unfolded. A line that is neither a field nor a continuation is
    /// skipped. Header bytes that are not UTF-8 are read as ISO-8859-1.
    static func fields(of header: ArraySlice<UInt8>) -> [(name: String, value: String)] {
        let text = Charsets.decode(header, charset: "utf-8")
        var fields: [(name: String, value: String)] = []
        for line in text.split(omittingEmptySubsequences: true, whereSeparator: \.isNewline) {
            if let first = line.first, first == " " || first == "\t" {
                if !fields.isEmpty { fields[fields.count - 1].value += " " + line.trimmingCharacters(in: .whitespaces) }
                continue
            }
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = line[..<colon].trimmingCharacters(in: .whitespaces)
            guard !name.isEmpty, !name.contains(" ") else { continue }
            fields.append((name, line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)))
        }
        return fields
    }

    /// Collects the texts and attachments of a part (recursively for multiparts).
    static func walk(fields: [(name: String, value: String)], body: ArraySlice<UInt8>, depth: Int,
                     texts: inout [(html: Bool, text: String)], attachments: inout [Attachment]) {
        let value = { (name: String) in MailMessage.value(name, in: fields) }
        let type = ContentType(value("Content-Type") ?? "text/plain")
        let disposition = ContentType(value("Content-Disposition") ?? "")
        if type.mimeType.hasPrefix("multipart/"), let boundary = type.parameters["boundary"], !boundary.isEmpty, depth < 16 {
            for part in Multipart.parts(of: body, boundary: boundary) {
                let (header, partBody) = split(part)
                walk(fields: self.fields(of: header), body: partBody, depth: depth + 1, texts: &texts, attachments: &attachments)
            }
            return
        }
        let decoded = TransferEncoding.decode(body, encoding: value("Content-Transfer-Encoding") ?? "7bit")
        let filename = disposition.parameters["filename"] ?? type.parameters["name"]
        let isText = type.mimeType == "text/plain" || type.mimeType == "text/html"
        if isText, disposition.mimeType != "attachment" {
            texts.append((type.mimeType == "text/html", Charsets.decode(decoded[...], charset: type.parameters["charset"] ?? "us-ascii")))
        } else {
            attachments.append(Attachment(filename: filename.map(EncodedWords.decode), contentType: type.mimeType, size: decoded.count))
        }
    }
}

/// A `Content-Type` (or `Content-Disposition`) value: the lower-cased type and its
/// parameters, names lower-cased, quotes taken off, RFC 2231 values (`name*=utf-8''...`)
/// decoded.
struct ContentType {
    var mimeType: String
    var parameters: [String: String] = [:]

    init(_ value: String) {
        var pieces = ContentType.splitParameters(value)
        mimeType = pieces.isEmpty ? "" : pieces.removeFirst().trimmingCharacters(in: .whitespaces).lowercased()
        var continued: [String: [(Int, String)]] = [:]
        for piece in pieces {
            guard let eq = piece.firstIndex(of: "=") else { continue }
            var name = piece[..<eq].trimmingCharacters(in: .whitespaces).lowercased()
            var v = piece[piece.index(after: eq)...].trimmingCharacters(in: .whitespaces)
            if v.count >= 2, v.hasPrefix("\""), v.hasSuffix("\"") {
                v = String(v.dropFirst().dropLast()).replacingOccurrences(of: "\\\"", with: "\"")
            }
            var extended = false
            if name.hasSuffix("*") { name.removeLast(); extended = true }
            if let star = name.lastIndex(of: "*"), let n = Int(name[name.index(after: star)...]) {
                let base = String(name[..<star])
                continued[base, default: []].append((n, extended ? ContentType.extendedValue(v, first: n == 0) : v))
                continue
            }
            parameters[name] = extended ? ContentType.extendedValue(v, first: true) : v
        }
        for (name, pieces) in continued where parameters[name] == nil {
            parameters[name] = pieces.sorted { $0.0 < $1.0 }.map(\.1).joined()
        }
    }

    /// `charset'language'percent-encoded` (RFC 2231); a continuation has no charset part.
    static func extendedValue(_ value: String, first: Bool) -> String {
        var charset = "utf-8", encoded = Substring(value)
        if first {
            let parts = value.split(separator: "'", maxSplits: 2, omittingEmptySubsequences: false)
            if parts.count == 3 {
                charset = parts[0].isEmpty ? "us-ascii" : String(parts[0])
                encoded = parts[2]
            }
        }
        // `%XX` escapes decoded; a `%` without two hex digits after it stays as it is.
        let utf8 = Array(encoded.utf8)
        var bytes: [UInt8] = [], i = 0
        while i < utf8.count {
            if utf8[i] == UInt8(ascii: "%"), i + 2 < utf8.count, let h = Hex.value(utf8[i + 1]), let l = Hex.value(utf8[i + 2]) {
                bytes.append(h << 4 | l)
                i += 3
            } else {
                bytes.append(utf8[i])
                i += 1
            }
        }
        return Charsets.decode(bytes[...], charset: charset)
    }

    /// Splits at the semicolons outside quoted strings.
    static func splitParameters(_ value: String) -> [String] {
        var pieces: [String] = [], current = "", quoted = false, escaped = false
        for c in value {
            if escaped { current.append(c); escaped = false; continue }
            if c == "\\" && quoted { current.append(c); escaped = true; continue }
            if c == "\"" { quoted.toggle() }
            if c == ";" && !quoted { pieces.append(current); current = ""; continue }
            current.append(c)
        }
        pieces.append(current)
        return pieces
    }
}

/// The bodies of a multipart between its boundary lines (the preamble and epilogue dropped).
enum Multipart {
    static func parts(of body: ArraySlice<UInt8>, boundary: String) -> [ArraySlice<UInt8>] {
        let delimiter = Array("--\(boundary)".utf8)
        var parts: [ArraySlice<UInt8>] = []
        var start: Int?
        var lineStart = body.startIndex
        while lineStart < body.endIndex {
            let lineEnd = body[lineStart...].firstIndex(of: 10) ?? body.endIndex
            let line = body[lineStart..<lineEnd]
            if line.starts(with: delimiter) {
                let rest = line.dropFirst(delimiter.count)
                let closing = rest.starts(with: [45, 45])
                // Only whitespace may follow a boundary on its line.
                if closing || rest.allSatisfy({ $0 == 32 || $0 == 9 || $0 == 13 }) {
                    if let s = start {
                        // The line break before the boundary belongs to it.
                        var end = lineStart
                        if end > s, body[end - 1] == 10 { end -= 1 }
                        if end > s, body[end - 1] == 13 { end -= 1 }
                        parts.append(body[s..<end])
                    }
                    if closing { return parts }
                    start = min(lineEnd + 1, body.endIndex)
                }
            }
            lineStart = lineEnd + 1
        }
        // No closing boundary: the last part runs to the end.
        if let s = start, s < body.endIndex { parts.append(body[s...]) }
        return parts
    }
}

/// Content-Transfer-Encoding: base64 and quoted-printable decoded, anything else as is.
enum TransferEncoding {
    static func decode(_ body: ArraySlice<UInt8>, encoding: String) -> [UInt8] {
        switch encoding.trimmingCharacters(in: .whitespaces).lowercased() {
        case "base64": return base64(body)
        case "quoted-printable": return quotedPrintable(body)
        default: return Array(body)
        }
    }

    /// Lenient: characters outside the alphabet (line breaks) are skipped, decoding stops at `=`.
    static func base64(_ body: ArraySlice<UInt8>) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(body.count * 3 / 4)
        var buffer: UInt32 = 0, bits = 0
        for b in body {
            let v: UInt8
            switch b {
            case 65...90: v = b - 65
            case 97...122: v = b - 71
            case 48...57: v = b + 4
            case 43: v = 62
            case 47: v = 63
            case 61: return out
            default: continue
            }
            buffer = buffer << 6 | UInt32(v)
            bits += 6
            if bits >= 8 {
                bits -= 8
                out.append(UInt8(truncatingIfNeeded: buffer >> UInt32(bits)))
            }
        }
        return out
    }

    /// `=XX` bytes and `=` soft line breaks; trailing spaces of a line are dropped (RFC 2045).
    static func quotedPrintable(_ body: ArraySlice<UInt8>) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(body.count)
        var i = body.startIndex
        var pendingSpaces: [UInt8] = []
        while i < body.endIndex {
            let b = body[i]
            if b == 32 || b == 9 { pendingSpaces.append(b); i += 1; continue }
            if b == 13 || b == 10 { pendingSpaces = []; out.append(b); i += 1; continue }
            out += pendingSpaces
            pendingSpaces = []
            if b == 61 {
                let next = i + 1
                if next < body.endIndex, body[next] == 10 { i = next + 1; continue }
                if next + 1 < body.endIndex, body[next] == 13, body[next + 1] == 10 { i = next + 2; continue }
                // Spaces before a soft line break are dropped with it.
                if next + 1 < body.endIndex, let h = Hex.value(body[next]), let l = Hex.value(body[next + 1]) {
                    out.append(h << 4 | l)
                    i = next + 2
                    continue
                }
                if next >= body.endIndex { break }
            }
            out.append(b)
            i += 1
        }
        return out
    }
}

enum Hex {
    static func value(_ b: UInt8) -> UInt8? {
        switch b {
        case 48...57: return b - 48
        case 65...70: return b - 55
        case 97...102: return b - 87
        default: return nil
        }
    }
}

/// Bytes to text by a MIME charset name: UTF-8, ISO-8859-1 (latin1), Windows-1252 and
/// US-ASCII by name; bytes that are not valid in the named charset, or a charset not known,
/// are read as UTF-8 if they are valid UTF-8, else as Windows-1252 (a superset of
/// ISO-8859-1's printable range, and what mail clients mean by it in practice).
enum Charsets {
    static func decode(_ bytes: ArraySlice<UInt8>, charset: String) -> String {
        let name = charset.trimmingCharacters(in: CharacterSet(charactersIn: "\" ")).lowercased()
        let data = Data(bytes)
        switch name {
        case "iso-8859-1", "iso8859-1", "latin1", "latin-1", "l1", "iso_8859-1", "windows-1252", "cp1252", "iso-8859-15":
            if let s = String(data: data, encoding: .windowsCP1252) { return s }
            return String(data: data, encoding: .isoLatin1) ?? ""
        default:
            if let s = String(validating: bytes, as: UTF8.self) { return s }
            if let s = String(data: data, encoding: .windowsCP1252) { return s }
            return String(data: data, encoding: .isoLatin1) ?? String(decoding: bytes, as: UTF8.self)
        }
    }
}

/// RFC 2047 encoded words in header values (`=?charset?B?...?=`, `=?charset?Q?...?=`);
/// whitespace between two encoded words is dropped, as the RFC says.
public enum EncodedWords {
    public static func decode(_ value: String) -> String {
        guard value.contains("=?") else { return value }
        var out = ""
        var rest = Substring(value)
        var pendingSpace = ""
        var lastWasEncoded = false
        while !rest.isEmpty {
            if rest.hasPrefix("=?"), let (text, after) = word(rest) {
                if !lastWasEncoded { out += pendingSpace }
                pendingSpace = ""
                out += text
                rest = after
                lastWasEncoded = true
                continue
            }
            let c = rest.removeFirst()
            if c == " " || c == "\t" {
                pendingSpace.append(c)
                continue
            }
            out += pendingSpace
            pendingSpace = ""
            out.append(c)
            lastWasEncoded = false
        }
        return out + pendingSpace
    }

    /// One encoded word at the start of `s`, and what follows it.
    static func word(_ s: Substring) -> (String, Substring)? {
        let body = s.dropFirst(2)
        guard let q1 = body.firstIndex(of: "?") else { return nil }
        let charset = body[..<q1].split(separator: "*").first.map(String.init) ?? ""
        let afterCharset = body[body.index(after: q1)...]
        guard let q2 = afterCharset.firstIndex(of: "?"), afterCharset.distance(from: afterCharset.startIndex, to: q2) == 1 else { return nil }
        let encoding = afterCharset[afterCharset.startIndex].lowercased()
        let text = afterCharset[afterCharset.index(after: q2)...]
        guard let end = text.range(of: "?=") else { return nil }
        let encoded = text[..<end.lowerBound]
        guard !encoded.contains(" ") else { return nil }
        let bytes: [UInt8]
        switch encoding {
        case "b": bytes = TransferEncoding.base64(Array(encoded.utf8)[...])
        case "q":
            bytes = TransferEncoding.quotedPrintable(Array(encoded.utf8.map { $0 == UInt8(ascii: "_") ? 32 : $0 })[...])
        default: return nil
        }
        return (Charsets.decode(bytes[...], charset: charset), text[end.upperBound...])
    }
}

/// Message ids in `Message-ID`, `In-Reply-To` and `References`: the `<...>` tokens in order,
/// or the whole value when it has none.
enum MessageIDs {
    static func list(_ value: String) -> [String] {
        var ids: [String] = []
        var rest = Substring(value)
        while let open = rest.firstIndex(of: "<"), let close = rest[open...].firstIndex(of: ">") {
            let id = rest[rest.index(after: open)..<close].trimmingCharacters(in: .whitespaces)
            if !id.isEmpty { ids.append(id) }
            rest = rest[rest.index(after: close)...]
        }
        if ids.isEmpty {
            let bare = value.trimmingCharacters(in: .whitespaces)
            if !bare.isEmpty, !bare.contains(" ") { ids.append(bare) }
        }
        return ids
    }
}

/// An address with its display name.
public struct MailAddress: Sendable, Equatable, CustomStringConvertible {
    public var name: String?
    /// `local@domain`, the domain lower-cased.
    public var address: String

    public init(name: String? = nil, address: String) {
        self.name = name
        self.address = address
    }

    public var description: String { name.map { "\($0) <\(address)>" } ?? address }

    /// Whether it looks like an address mail can be sent to: one `@`, a local part, a domain
    /// with a dot, no spaces or control characters.
    public var isDeliverable: Bool {
        let parts = address.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, parts[1].contains("."), !parts[1].hasPrefix("."), !parts[1].hasSuffix(".") else {
            return false
        }
        return !address.unicodeScalars.contains { $0.value <= 32 || $0 == "<" || $0 == ">" || $0 == "," || $0 == ";" }
    }

    /// The addresses of a decoded address list (`To`, `From`), groups flattened, comments
    /// dropped.
    public static func list(_ value: String) -> [MailAddress] {
        var out: [MailAddress] = []
        for item in split(value) {
            var item = item.trimmingCharacters(in: .whitespaces)
            // "group: a, b;" — the group's name goes.
            if let colon = item.firstIndex(of: ":"), !item[..<colon].contains("<"), !item[..<colon].contains("\"") {
                item = String(item[item.index(after: colon)...]).trimmingCharacters(in: .whitespaces)
            }
            item = item.trimmingCharacters(in: CharacterSet(charactersIn: "; "))
            guard !item.isEmpty else { continue }
            if let open = item.lastIndex(of: "<"), let close = item[open...].firstIndex(of: ">") {
                let address = String(item[item.index(after: open)..<close]).trimmingCharacters(in: .whitespaces)
                var name = String(item[..<open]).trimmingCharacters(in: .whitespaces)
                if name.count >= 2, name.hasPrefix("\""), name.hasSuffix("\"") {
                    name = String(name.dropFirst().dropLast()).replacingOccurrences(of: "\\\"", with: "\"")
                }
                guard !address.isEmpty else { continue }
                out.append(MailAddress(name: name.isEmpty ? nil : name, address: normalized(address)))
            } else {
                // "a@b (Name)": the comment is the name.
                var name: String?
                if let open = item.firstIndex(of: "("), let close = item.lastIndex(of: ")"), open < close {
                    name = String(item[item.index(after: open)..<close]).trimmingCharacters(in: .whitespaces)
                    item = String(item[..<open]).trimmingCharacters(in: .whitespaces)
                }
                out.append(MailAddress(name: name?.isEmpty == false ? name : nil, address: normalized(item)))
            }
        }
        return out
    }

    static func normalized(_ address: String) -> String {
        guard let at = address.lastIndex(of: "@") else { return address }
        return address[..<at] + address[at...].lowercased()
    }

    /// Splits at commas outside quotes and angle brackets.
    static func split(_ value: String) -> [String] {
        var items: [String] = [], current = "", quoted = false, angle = false, escaped = false
        for c in value {
            if escaped { current.append(c); escaped = false; continue }
            if c == "\\" && quoted { current.append(c); escaped = true; continue }
            if c == "\"" { quoted.toggle() }
            if c == "<" && !quoted { angle = true }
            if c == ">" && !quoted { angle = false }
            if c == "," && !quoted && !angle { items.append(current); current = ""; continue }
            current.append(c)
        }
        items.append(current)
        return items
    }
}

/// RFC 5322 dates, with or without the day name and seconds, and with the obsolete zone names.
enum MailDate {
    static func parse(_ value: String) -> Date? {
        var text = value.trimmingCharacters(in: .whitespaces)
        // A comment after the zone: "(UTC)".
        if let open = text.firstIndex(of: "(") { text = String(text[..<open]).trimmingCharacters(in: .whitespaces) }
        if let comma = text.firstIndex(of: ",") { text = String(text[text.index(after: comma)...]).trimmingCharacters(in: .whitespaces) }
        let zones = ["UT": "+0000", "GMT": "+0000", "Z": "+0000", "EST": "-0500", "EDT": "-0400", "CST": "-0600", "CDT": "-0500",
                     "MST": "-0700", "MDT": "-0600", "PST": "-0800", "PDT": "-0700"]
        var pieces = text.split(separator: " ").map(String.init)
        if let last = pieces.last, let zone = zones[last.uppercased()] { pieces[pieces.count - 1] = zone }
        text = pieces.joined(separator: " ")
        for format in ["d MMM yyyy HH:mm:ss Z", "d MMM yyyy HH:mm Z", "d MMM yy HH:mm:ss Z"] {
            let formatter = DateFormatter()
            formatter.locale = Locale(identifier: "en_US_POSIX")
            formatter.dateFormat = format
            if let date = formatter.date(from: text) { return date }
        }
        return nil
    }
}

/// The text of an HTML body: tags out, line breaks for blocks and `<br>`, entities decoded,
/// spaces and blank lines collapsed.
enum HTMLText {
    static func plain(_ html: String) -> String {
        var out = ""
        // Line breaks in markup are spaces; the blocks make the lines.
        var rest = Substring(String(html.map { $0.isNewline ? " " : $0 }))
        while let open = rest.firstIndex(of: "<") {
            out += rest[..<open]
            guard let close = rest[open...].firstIndex(of: ">") else { rest = rest[rest.endIndex...]; break }
            let tag = rest[rest.index(after: open)..<close].lowercased()
            let name = tag.split(whereSeparator: { $0 == " " || $0 == "/" || $0 == "\n" }).first.map(String.init) ?? ""
            // Scripts and styles are not text.
            if name == "script" || name == "style", let end = rest[close...].range(of: "</\(name)", options: .caseInsensitive) {
                rest = rest[end.upperBound...]
                if let gt = rest.firstIndex(of: ">") { rest = rest[rest.index(after: gt)...] }
                continue
            }
            if ["br", "p", "/p", "div", "/div", "tr", "/tr", "li", "/li", "h1", "h2", "h3", "/h1", "/h2", "/h3"].contains(name) || tag.hasPrefix("br") {
                out += "\n"
            }
            rest = rest[rest.index(after: close)...]
        }
        out += rest
        for (entity, char) in [("&nbsp;", " "), ("&lt;", "<"), ("&gt;", ">"), ("&quot;", "\""), ("&#39;", "'"), ("&apos;", "'"), ("&amp;", "&")] {
            out = out.replacingOccurrences(of: entity, with: char)
        }
        let lines = out.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).map { $0.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" }).joined(separator: " ") }
        var collapsed: [String] = []
        for line in lines where !(line.isEmpty && (collapsed.last?.isEmpty ?? true)) { collapsed.append(line) }
        return collapsed.joined(separator: "\n").trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
