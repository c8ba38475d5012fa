import CCurl
import Foundation

/// IMAP and SMTP through libcurl, on one easy handle reused command after command, so that
/// curl keeps the session (an IMAP login and its selected mailbox, an SMTP connection).
///
/// Not thread-safe: use a connection from one thread at a time. Every call blocks its thread;
/// from async code run it on a thread or queue of its own.
public final class MailConnection {
    /// How the connection is secured.
    public enum Security: String, Sendable, CaseIterable {
        /// Plain text (a server on a trusted network only).
        case none
        /// STARTTLS if the server offers it, plain text otherwise.
        case startTLSIfOffered = "starttls_if_offered"
        /// STARTTLS, required.
        case startTLS = "starttls"
        /// TLS from the first byte (`imaps`, `smtps`: ports 993, 465).
        case implicit = "tls"
    }

    /// A server and its login.
    public struct Server: Sendable {
        public var host: String
        public var port: Int
        public var security: Security
        public var user: String
        public var password: String

        public init(host: String, port: Int, security: Security, user: String, password: String) {
            self.host = host
            self.port = port
            self.security = security
            self.user = user
            self.password = password
        }

        /// `scheme://host:port`, the host bracketed when it is an IPv6 address.
        func base(_ scheme: String) -> String {
            let host = self.host.contains(":") ? "[\(self.host)]" : self.host
            return "\(security == .implicit ? scheme + "s" : scheme)://\(host):\(port)"
        }
    }

    /// A mailbox's identity and size (IMAP `STATUS`).
    public struct MailboxStatus: Sendable, Equatable {
        /// Changes when the mailbox's UIDs no longer name the same messages.
        public var uidValidity: UInt32
        /// The UID the next message will get.
        public var uidNext: UInt32
        public var messages: Int
    }

    public let configuration: HTTPClient.Configuration
    private let handle: UnsafeMutableRawPointer
    private let errorBuffer: UnsafeMutablePointer<CChar>

    /// `configuration`'s TLS checks, timeouts and outbound policy apply to mail servers too.
    public init(configuration: HTTPClient.Configuration = .init()) throws {
        try CurlGlobal.ensureInitialized()
        guard let handle = curl_easy_init() else { throw HTTPClientError(code: .other, message: "curl_easy_init failed") }
        self.configuration = configuration
        self.handle = handle
        errorBuffer = .allocate(capacity: Int(CURL_ERROR_SIZE))
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE))
    }

    deinit {
        curl_easy_cleanup(handle)
        errorBuffer.deallocate()
    }

    // MARK: - IMAP

    /// The `STATUS` of `mailbox`.
    public func status(_ server: Server, mailbox: String = "INBOX") throws -> MailboxStatus {
        let text = try imap(server, path: "", command: "STATUS \(IMAPText.quoted(mailbox)) (MESSAGES UIDNEXT UIDVALIDITY)")
        guard let open = text.firstIndex(of: "("), let close = text[open...].firstIndex(of: ")") else {
            throw MailError(kind: .protocolError, message: "no STATUS answer for \(mailbox): \(text.prefix(200))")
        }
        let items = text[text.index(after: open)..<close].split(separator: " ")
        var values: [String: UInt64] = [:]
        for i in stride(from: 0, to: items.count - 1, by: 2) { values[items[i].uppercased()] = UInt64(items[i + 1]) }
        guard let validity = values["UIDVALIDITY"], let next = values["UIDNEXT"] else {
            throw MailError(kind: .protocolError, message: "STATUS of \(mailbox) without UIDVALIDITY or UIDNEXT: \(text.prefix(200))")
        }
        return MailboxStatus(uidValidity: UInt32(truncatingIfNeeded: validity), uidNext: UInt32(truncatingIfNeeded: next),
                             messages: Int(values["MESSAGES"] ?? 0))
    }

    /// The UIDs in `mailbox` from `first` on, ascending (`UID SEARCH UID first:*`; the answer
    /// for `*` alone, the highest UID, is dropped when it is below `first`).
    public func uids(_ server: Server, mailbox: String = "INBOX", from first: UInt32) throws -> [UInt32] {
        let text = try imap(server, path: IMAPText.pathSegment(mailbox), command: "UID SEARCH UID \(max(1, first)):*")
        var uids: [UInt32] = []
        // `isNewline`: CR LF is one Character.
        for line in text.split(whereSeparator: \.isNewline) where line.hasPrefix("* SEARCH") {
            uids += line.dropFirst(8).split(separator: " ").compactMap { UInt32($0) }
        }
        return uids.filter { $0 >= first }.sorted()
    }

    /// The message `uid` of `mailbox`, as stored (its RFC 5322 bytes); the server marks it
    /// seen. Fails with ``MailError/Kind/notFound`` when the mailbox's UIDVALIDITY is no
    /// longer `uidValidity` or the message is gone.
    public func fetch(_ server: Server, mailbox: String = "INBOX", uid: UInt32, uidValidity: UInt32) throws -> [UInt8] {
        // curl's URL form (RFC 5092) checks the UIDVALIDITY on the SELECT it makes. curl
        // fetches `BODY[]`, which marks the message seen.
        let url = "\(server.base("imap"))/\(IMAPText.pathSegment(mailbox));UIDVALIDITY=\(uidValidity)/;UID=\(uid)"
        let state = TransferState(cancellation: nil, policy: configuration.policy.checking(host: server.host), maxBodyBytes: nil)
        try perform(url: url, server: server, state: state)
        return state.body
    }

    /// Appends `message` to `mailbox` (`APPEND`).
    public func append(_ server: Server, mailbox: String = "INBOX", message: [UInt8]) throws {
        let state = TransferState(cancellation: nil, policy: configuration.policy.checking(host: server.host), maxBodyBytes: nil)
        state.upload = message
        try perform(url: "\(server.base("imap"))/\(IMAPText.pathSegment(mailbox))", server: server, state: state)
    }

    /// Runs `command` after selecting `path`'s mailbox (none when empty) and returns the
    /// server's untagged answers.
    private func imap(_ server: Server, path: String, command: String) throws -> String {
        let state = TransferState(cancellation: nil, policy: configuration.policy.checking(host: server.host), maxBodyBytes: 16 << 20)
        try perform(url: "\(server.base("imap"))/\(path)", server: server, state: state, customRequest: command)
        return String(decoding: state.body, as: UTF8.self)
    }

    // MARK: - SMTP

    /// What an SMTP server answered to a message it took.
    public struct Accepted: Sendable, Equatable {
        /// The final reply's code (250).
        public var code: Int
    }

    /// Sends `message` (its RFC 5322 bytes, headers included) from `sender` to `recipients`.
    /// A refusal is a ``MailError`` of kind ``MailError/Kind/refused`` with the server's code
    /// (4xx: try again later; 5xx: permanent).
    @discardableResult
    public func send(_ server: Server, from sender: String, to recipients: [String], message: [UInt8]) throws -> Accepted {
        guard !recipients.isEmpty else { throw MailError(kind: .invalid, message: "no recipients") }
        for address in [sender] + recipients where address.utf8.contains(where: { $0 < 32 || $0 == UInt8(ascii: "<") || $0 == UInt8(ascii: ">") }) {
            throw MailError(kind: .invalid, message: "an address has a forbidden character")
        }
        let state = TransferState(cancellation: nil, policy: configuration.policy.checking(host: server.host), maxBodyBytes: 1 << 20)
        state.upload = message
        var list: UnsafeMutablePointer<curl_slist>?
        defer {
            // curl keeps the list's pointer until the next reset: drop it before freeing.
            _ = CCurl_easy_setopt_slist(handle, CURLOPT_MAIL_RCPT, nil)
            curl_slist_free_all(list)
        }
        for r in recipients {
            guard let appended = curl_slist_append(list, "<\(r)>") else { throw MailError(kind: .other, message: "curl_slist_append failed") }
            list = appended
        }
        try perform(url: server.base("smtp"), server: server, state: state) {
            try self.check(CCurl_easy_setopt_string(self.handle, CURLOPT_MAIL_FROM, "<\(sender)>"))
            try self.check(CCurl_easy_setopt_slist(self.handle, CURLOPT_MAIL_RCPT, list))
        }
        return Accepted(code: responseCode())
    }

    // MARK: - The transfer

    private func responseCode() -> Int {
        var code = 0
        _ = CCurl_easy_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &code)
        return code
    }

    private func perform(url: String, server: Server, state: TransferState, customRequest: String? = nil,
                         extra: () throws -> Void = {}) throws {
        try startTransfer(handle, errorBuffer: errorBuffer, protocols: "imap,imaps,smtp,smtps", url: url, configuration: configuration,
                          timeout: configuration.timeout, connectTimeout: configuration.connectTimeout, state: state, check: check)
        // An empty user: no login (an SMTP relay that trusts the network).
        if !server.user.isEmpty {
            try check(CCurl_easy_setopt_string(handle, CURLOPT_USERNAME, server.user))
            try check(CCurl_easy_setopt_string(handle, CURLOPT_PASSWORD, server.password))
        }
        let useSSL: Int = switch server.security {
        case .none: Int(CURLUSESSL_NONE.rawValue)
        case .startTLSIfOffered: Int(CURLUSESSL_TRY.rawValue)
        case .startTLS, .implicit: Int(CURLUSESSL_ALL.rawValue)
        }
        try check(CCurl_easy_setopt_long(handle, CURLOPT_USE_SSL, useSSL))
        if let customRequest { try check(CCurl_easy_setopt_string(handle, CURLOPT_CUSTOMREQUEST, customRequest)) }
        if state.upload != nil {
            try check(CCurl_easy_setopt_long(handle, CURLOPT_UPLOAD, 1))
            try check(CCurl_easy_setopt_off_t(handle, CURLOPT_INFILESIZE_LARGE, curl_off_t(state.upload!.count)))
            try check(CCurl_easy_setopt_data_function(handle, CURLOPT_READFUNCTION, curlReadUpload))
            try check(CCurl_easy_setopt_pointer(handle, CURLOPT_READDATA, state.userdata))
        }
        try extra()
        try withExtendedLifetime(state) {
            let code = curl_easy_perform(handle)
            if state.refusedAddress {
                throw MailError(kind: .forbiddenAddress, curlCode: Int32(code.rawValue),
                                message: "the mail server's address is not allowed")
            }
            if code == CURLE_WRITE_ERROR && state.truncated {
                throw MailError(kind: .protocolError, message: "the server's answer is larger than \(state.maxBodyBytes ?? 0) bytes")
            }
            try check(code)
        }
    }

    /// CURLE_OK passes; anything else becomes a ``MailError`` with curl's message and, for a
    /// refusal, the server's reply code.
    private func check(_ code: CURLcode) throws {
        guard code != CURLE_OK else { return }
        let detail = String(cString: errorBuffer)
        let message = detail.isEmpty ? String(cString: curl_easy_strerror(code)) : detail
        let reply = responseCode()
        let kind: MailError.Kind
        switch code {
        case CURLE_LOGIN_DENIED: kind = .login
        case CURLE_REMOTE_FILE_NOT_FOUND, CURLE_REMOTE_ACCESS_DENIED: kind = .notFound
        case CURLE_USE_SSL_FAILED: kind = .tls
        // A reply code of 400 or more: the server answered, and refused.
        case _ where reply >= 400 && [CURLE_QUOTE_ERROR, CURLE_SEND_ERROR, CURLE_RECV_ERROR, CURLE_UPLOAD_FAILED].contains(code):
            kind = .refused
        default:
            let transport = HTTPClientError.Code(curlCode: code)
            kind = transport == .tls ? .tls : transport == .other ? (reply >= 400 ? .refused : .other) : .transport(transport)
        }
        throw MailError(kind: kind, curlCode: Int32(code.rawValue), replyCode: reply, message: message)
    }
}

/// A mail command that did not succeed.
public struct MailError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// The login was refused.
        case login
        /// The server refused the command (`replyCode`: SMTP's code; 0 for IMAP's NO).
        case refused
        /// The mailbox or message is not there, or the mailbox's UIDVALIDITY changed.
        case notFound
        /// TLS could not be set up (or STARTTLS, required, was not offered).
        case tls
        /// The network: no connection, a timeout, a connection lost.
        case transport(HTTPClientError.Code)
        /// The server's address is not allowed by the outbound policy.
        case forbiddenAddress
        /// An answer that could not be read.
        case protocolError
        /// Bad input (an address with a line break).
        case invalid
        case other
    }

    public var kind: Kind
    public var curlCode: Int32 = 0
    /// The server's last reply code (SMTP), 0 when there was none.
    public var replyCode: Int = 0
    public var message: String

    public init(kind: Kind, curlCode: Int32 = 0, replyCode: Int = 0, message: String) {
        self.kind = kind
        self.curlCode = curlCode
        self.replyCode = replyCode
        self.message = message
    }

    /// Whether trying again later may work: the network, a 4xx reply.
    public var isTransient: Bool {
        switch kind {
        case .transport: return true
        case .refused: return (400..<500).contains(replyCode)
        default: return false
        }
    }

    public var description: String { replyCode > 0 ? "\(message) (reply \(replyCode))" : message }
}

/// IMAP strings and URL path segments.
enum IMAPText {
    /// A quoted string (RFC 3501), for a mailbox name in a command.
    static func quoted(_ s: String) -> String {
        "\"" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }

    /// A mailbox name as a URL path segment.
    static func pathSegment(_ s: String) -> String {
        s.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~"))) ?? s
    }
}

/// CURLOPT_READFUNCTION: hands curl the upload's next bytes.
let curlReadUpload: CCurl_data_callback = { buffer, size, count, userdata in
    let state = TransferState.from(userdata)
    guard let buffer, let upload = state.upload else { return 0 }
    let n = min(size * count, upload.count - state.uploadOffset)
    guard n > 0 else { return 0 }
    upload.withUnsafeBytes { bytes in
        UnsafeMutableRawPointer(buffer).copyMemory(from: bytes.baseAddress! + state.uploadOffset, byteCount: n)
    }
    state.uploadOffset += n
    return n
}
