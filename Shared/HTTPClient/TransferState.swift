import CCurl
import Foundation

/// What curl's callbacks fill in during one transfer, passed to them as an unretained
/// `Unmanaged` pointer; the transfer keeps it alive with `withExtendedLifetime`.
final class TransferState {
    var body: [UInt8] = []
    var headers = HTTPHeaders()
    let cancellation: CancellationFlag?
    /// Checked on every socket curl opens; nil: any address.
    let policy: OutboundPolicy?
    /// The body cap; past it the write callback stops the transfer.
    let maxBodyBytes: Int?
    /// Set when the policy refused an address, and when the body reached its cap.
    var refusedAddress = false
    var truncated = false
    /// Bytes to upload (an IMAP APPEND, an SMTP message), and how many curl has taken.
    var upload: [UInt8]?
    var uploadOffset = 0

    init(cancellation: CancellationFlag?, policy: OutboundPolicy? = nil, maxBodyBytes: Int? = nil) {
        self.cancellation = cancellation
        self.policy = policy
        self.maxBodyBytes = maxBodyBytes
    }

    var userdata: UnsafeMutableRawPointer {
        Unmanaged.passUnretained(self).toOpaque()
    }

    static func from(_ userdata: UnsafeMutableRawPointer?) -> TransferState {
        Unmanaged<TransferState>.fromOpaque(userdata!).takeUnretainedValue()
    }
}

/// A flag set from any thread when the task waiting for a transfer is cancelled; the transfer's
/// progress callback reads it on curl's thread.
final class CancellationFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var _isSet = false

    var isSet: Bool {
        lock.withLock { _isSet }
    }

    func set() {
        lock.withLock { _isSet = true }
    }
}

/// CURLOPT_WRITEFUNCTION: appends body bytes, up to the cap; reaching it stops the transfer
/// (returning less than given makes curl fail it with CURLE_WRITE_ERROR).
let curlWriteBody: CCurl_data_callback = { data, size, count, userdata in
    let length = size * count
    guard length > 0, let data else { return length }
    let state = TransferState.from(userdata)
    let room = state.maxBodyBytes.map { max(0, $0 - state.body.count) } ?? length
    data.withMemoryRebound(to: UInt8.self, capacity: length) {
        state.body.append(contentsOf: UnsafeBufferPointer(start: $0, count: min(length, room)))
    }
    if length > room {
        state.truncated = true
        return 0
    }
    return length
}

/// CURLOPT_OPENSOCKETFUNCTION: opens the socket for an address the policy admits; for any
/// other, records the refusal and returns CURL_SOCKET_BAD, so curl never connects.
let curlOpenSocket: CCurl_opensocket_callback = { clientp, _, address in
    guard let address else { return -1 }
    let state = TransferState.from(clientp)
    let sockaddr = CCurl_sockaddr_address(address)!
    let family = Int32(address.pointee.family)
    var bytes: [UInt8] = []
    if family == AF_INET {
        sockaddr.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { v4 in
            bytes = withUnsafeBytes(of: v4.pointee.sin_addr) { Array($0) }
        }
    } else if family == AF_INET6 {
        sockaddr.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { v6 in
            bytes = withUnsafeBytes(of: v6.pointee.sin6_addr) { Array($0) }
        }
    }
    if let policy = state.policy, bytes.isEmpty || !policy.admits(address: bytes) {
        state.refusedAddress = true
        return -1
    }
    return socket(family, Int32(address.pointee.socktype), Int32(address.pointee.protocol))
}

/// CURLOPT_HEADERFUNCTION: curl calls it once per header line of every response it reads,
/// including a `100 Continue` or a redirect before the final one; a status line starts the
/// list afresh, so only the final response's fields remain.
let curlReceiveHeader: CCurl_data_callback = { data, size, count, userdata in
    let length = size * count
    guard length > 0, let data else { return length }
    let state = TransferState.from(userdata)
    data.withMemoryRebound(to: UInt8.self, capacity: length) {
        receiveHeaderLine(UnsafeBufferPointer(start: $0, count: length), into: state)
    }
    return length
}

/// One header line as curl hands it over (with its CR LF), parsed on its bytes: a status line
/// starts a new header block, a blank line ends one, a line starting with a space or tab
/// continues the previous field (obsolete folding), anything else is `name: value`.
func receiveHeaderLine(_ line: UnsafeBufferPointer<UInt8>, into state: TransferState) {
    func isSpace(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 || b == 0x0D || b == 0x0A }
    func text(_ range: Range<Int>) -> String {
        var lower = range.lowerBound, upper = range.upperBound
        while lower < upper, isSpace(line[lower]) { lower += 1 }
        while upper > lower, isSpace(line[upper - 1]) { upper -= 1 }
        return String(decoding: UnsafeBufferPointer(rebasing: line[lower..<upper]), as: UTF8.self)
    }
    let http: [UInt8] = [0x48, 0x54, 0x54, 0x50, 0x2F]  // "HTTP/"
    if line.count >= 5, line.prefix(5).elementsEqual(http) {
        state.headers = HTTPHeaders()
    } else if line.allSatisfy(isSpace) {
        // The blank line that ends a header block.
    } else if line[0] == 0x20 || line[0] == 0x09 {
        if var last = state.headers.fields.last {
            last.value += " " + text(0..<line.count)
            state.headers.replaceLast(with: last)
        }
    } else if let colon = line.firstIndex(of: 0x3A) {
        state.headers.add(name: text(0..<colon), value: text((colon + 1)..<line.count))
    }
}

/// CURLOPT_XFERINFOFUNCTION: a non-zero return aborts the transfer with CURLE_ABORTED_BY_CALLBACK.
let curlCheckCancellation: CCurl_xferinfo_callback = { userdata, _, _, _, _ in
    TransferState.from(userdata).cancellation?.isSet == true ? 1 : 0
}

/// The options every transfer of `handle` starts with, after `curl_easy_reset` (which keeps
/// live connections and the DNS cache): curl's message for a failure into `errorBuffer`, no
/// signals (they do not mix with threads: curl would use SIGALRM for DNS timeouts),
/// `protocols` only, the URL, `configuration`'s TLS checks and CA bundle, the timeouts, the
/// body into `state`, and, when `state` has a policy, the check of every socket's address
/// (with no proxy: through one, the checked address would be the proxy's).
func startTransfer(_ handle: UnsafeMutableRawPointer, errorBuffer: UnsafeMutablePointer<CChar>, protocols: String, url: String,
                   configuration: HTTPClient.Configuration, timeout: Duration, connectTimeout: Duration, state: TransferState,
                   check: (CURLcode) throws -> Void) throws {
    curl_easy_reset(handle)
    errorBuffer[0] = 0
    try check(CCurl_easy_setopt_pointer(handle, CURLOPT_ERRORBUFFER, errorBuffer))
    try check(CCurl_easy_setopt_long(handle, CURLOPT_NOSIGNAL, 1))
    try check(CCurl_easy_setopt_string(handle, CURLOPT_PROTOCOLS_STR, protocols))
    try check(CCurl_easy_setopt_string(handle, CURLOPT_URL, url))
    try check(CCurl_easy_setopt_long(handle, CURLOPT_SSL_VERIFYPEER, configuration.verifiesTLSPeer ? 1 : 0))
    try check(CCurl_easy_setopt_long(handle, CURLOPT_SSL_VERIFYHOST, configuration.verifiesTLSHost ? 2 : 0))
    if let caBundlePath = configuration.caBundlePath {
        try check(CCurl_easy_setopt_string(handle, CURLOPT_CAINFO, caBundlePath))
    }
    try check(CCurl_easy_setopt_long(handle, CURLOPT_TIMEOUT_MS, milliseconds(timeout)))
    try check(CCurl_easy_setopt_long(handle, CURLOPT_CONNECTTIMEOUT_MS, milliseconds(connectTimeout)))
    try check(CCurl_easy_setopt_data_function(handle, CURLOPT_WRITEFUNCTION, curlWriteBody))
    try check(CCurl_easy_setopt_pointer(handle, CURLOPT_WRITEDATA, state.userdata))
    if state.policy != nil {
        try check(CCurl_easy_setopt_opensocket_function(handle, curlOpenSocket))
        try check(CCurl_easy_setopt_pointer(handle, CURLOPT_OPENSOCKETDATA, state.userdata))
        try check(CCurl_easy_setopt_string(handle, CURLOPT_PROXY, ""))
    }
}
