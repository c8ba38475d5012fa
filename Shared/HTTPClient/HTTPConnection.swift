import CCurl

/// One curl easy handle, reused request after request so that curl keeps the connection alive.
///
/// Not thread-safe: use a connection from one thread at a time (it may move between threads
/// between requests). For concurrent callers use ``HTTPClient/execute(_:)``, which keeps a pool.
public final class HTTPConnection {
    /// How requests are sent.
    public let configuration: HTTPClient.Configuration

    private let handle: UnsafeMutableRawPointer
    /// curl writes its message for a failure here (CURLOPT_ERRORBUFFER); it must live as long
    /// as the handle, since curl keeps the pointer.
    private let errorBuffer: UnsafeMutablePointer<CChar>

    /// Creates a connection; it connects on the first request.
    public init(configuration: HTTPClient.Configuration = .init()) throws {
        try CurlGlobal.ensureInitialized()
        guard let handle = curl_easy_init() else {
            throw HTTPClientError(code: .other, message: "curl_easy_init failed")
        }
        self.configuration = configuration
        self.handle = handle
        self.errorBuffer = .allocate(capacity: Int(CURL_ERROR_SIZE))
        self.errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE))
    }

    deinit {
        curl_easy_cleanup(handle)
        errorBuffer.deallocate()
    }

    /// Sends a request and waits for the whole response, blocking the calling thread.
    ///
    /// Do not call it from Swift concurrency's cooperative pool; use ``HTTPClient/execute(_:)``.
    /// - Throws: ``HTTPClientError`` when no response arrived; an HTTP error status is a response.
    @available(*, noasync, message: "blocks the thread; use HTTPClient.execute from async code")
    public func send(_ request: HTTPRequest) throws -> HTTPResponse {
        try perform(request, cancellation: nil)
    }

    /// The transfer behind ``send(_:)``; `cancellation`, when set, aborts it.
    func perform(_ request: HTTPRequest, cancellation: CancellationFlag?) throws -> HTTPResponse {
        // A host the allow-list names skips the address check; otherwise every socket is checked.
        let state = TransferState(cancellation: cancellation, policy: configuration.policy.checking(host: URLHost.of(request.url) ?? ""),
                                  maxBodyBytes: configuration.maxResponseBytes)
        let headerList = try configure(for: request, state: state)
        defer {
            // curl keeps the list's pointer until the next reset: drop it before freeing.
            _ = CCurl_easy_setopt_slist(handle, CURLOPT_HTTPHEADER, nil)
            curl_slist_free_all(headerList)
        }
        try withExtendedLifetime(state) {
            let code = curl_easy_perform(handle)
            if state.refusedAddress {
                throw HTTPClientError(code: .forbiddenAddress, curlCode: Int32(code.rawValue),
                                      message: "the target's address is not allowed for this request")
            }
            // The body reached its cap: what was read is the response.
            if code == CURLE_WRITE_ERROR && state.truncated { return }
            try check(code)
        }
        var status = 0
        var connects = 0
        var effectiveURL: UnsafeMutablePointer<CChar>?
        try check(CCurl_easy_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &status))
        try check(CCurl_easy_getinfo_long(handle, CURLINFO_NUM_CONNECTS, &connects))
        try check(CCurl_easy_getinfo_string(handle, CURLINFO_EFFECTIVE_URL, &effectiveURL))
        return HTTPResponse(
            status: status,
            headers: state.headers,
            body: state.body,
            effectiveURL: effectiveURL.map { String(cString: $0) } ?? request.url,
            connectionReused: connects == 0,
            bodyTruncated: state.truncated
        )
    }

    /// Sets every option for one request, starting from `curl_easy_reset`, so nothing from the
    /// previous request leaks into this one; the reset keeps live connections and the DNS cache.
    /// Returns the header list, which the caller frees after the transfer.
    private func configure(for request: HTTPRequest, state: TransferState) throws -> UnsafeMutablePointer<curl_slist>? {
        try startTransfer(handle, errorBuffer: errorBuffer, protocols: "http,https", url: request.url, configuration: configuration,
                          timeout: request.timeout ?? configuration.timeout,
                          connectTimeout: request.connectTimeout ?? configuration.connectTimeout, state: state, check: check)
        try check(CCurl_easy_setopt_string(handle, CURLOPT_REDIR_PROTOCOLS_STR, "http,https"))
        try check(CCurl_easy_setopt_string(handle, CURLOPT_USERAGENT, configuration.userAgent))
        if configuration.maxRedirects > 0 {
            try check(CCurl_easy_setopt_long(handle, CURLOPT_FOLLOWLOCATION, 1))
            try check(CCurl_easy_setopt_long(handle, CURLOPT_MAXREDIRS, configuration.maxRedirects))
        }

        try check(CCurl_easy_setopt_data_function(handle, CURLOPT_HEADERFUNCTION, curlReceiveHeader))
        try check(CCurl_easy_setopt_pointer(handle, CURLOPT_HEADERDATA, state.userdata))
        if let (bytesPerSecond, seconds) = configuration.lowSpeedLimit {
            try check(CCurl_easy_setopt_long(handle, CURLOPT_LOW_SPEED_LIMIT, bytesPerSecond))
            try check(CCurl_easy_setopt_long(handle, CURLOPT_LOW_SPEED_TIME, seconds))
        }
        if state.cancellation != nil {
            try check(CCurl_easy_setopt_xferinfo_function(handle, curlCheckCancellation))
            try check(CCurl_easy_setopt_pointer(handle, CURLOPT_XFERINFODATA, state.userdata))
            try check(CCurl_easy_setopt_long(handle, CURLOPT_NOPROGRESS, 0))
        }

        let sendsBody = !request.body.isEmpty || [.post, .put, .patch].contains(request.method)
        switch request.method {
        case .head:
            try check(CCurl_easy_setopt_long(handle, CURLOPT_NOBODY, 1))
        case .get where !sendsBody:
            try check(CCurl_easy_setopt_long(handle, CURLOPT_HTTPGET, 1))
        default:
            if sendsBody {
                // The size first, so that curl copies exactly that many bytes, zeros included.
                try check(CCurl_easy_setopt_off_t(handle, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(request.body.count)))
                try request.body.withUnsafeBytes { bytes in
                    // An empty array may have no address; curl then needs a non-null pointer.
                    let pointer = bytes.baseAddress ?? UnsafeRawPointer(emptyBody.utf8Start)
                    try check(CCurl_easy_setopt_pointer(handle, CURLOPT_COPYPOSTFIELDS, UnsafeMutableRawPointer(mutating: pointer)))
                }
            }
            if request.method != .post {
                try check(CCurl_easy_setopt_string(handle, CURLOPT_CUSTOMREQUEST, request.method.rawValue))
            }
        }

        var list: UnsafeMutablePointer<curl_slist>?
        do {
            for field in request.headers {
                try append(headerLine(field), to: &list)
            }
            // curl would otherwise wait up to a second for `100 Continue` before large bodies.
            if !request.headers.contains("Expect") {
                try append("Expect:", to: &list)
            }
            // curl would otherwise label every body as a form.
            if sendsBody && !request.headers.contains("Content-Type") {
                try append("Content-Type:", to: &list)
            }
            try check(CCurl_easy_setopt_slist(handle, CURLOPT_HTTPHEADER, list))
        } catch {
            curl_slist_free_all(list)
            throw error
        }
        return list
    }

    private func append(_ line: String, to list: inout UnsafeMutablePointer<curl_slist>?) throws {
        guard let appended = curl_slist_append(list, line) else {
            throw HTTPClientError(code: .other, curlCode: Int32(CURLE_OUT_OF_MEMORY.rawValue),
                                  message: "curl_slist_append failed")
        }
        list = appended
    }

    /// The line curl sends for a field; a line break in it would let a value add fields or
    /// requests of its own, so it is refused. The message names the field, never its value.
    private func headerLine(_ field: HTTPHeaders.Field) throws -> String {
        // Bytes, not Characters: "\r\n" is one Character and would slip past a Character test.
        let forbidden: (UInt8) -> Bool = { $0 == 0x0D || $0 == 0x0A || $0 == 0 }
        guard !field.name.isEmpty, !field.name.utf8.contains(where: forbidden), !field.name.contains(":"),
              !field.value.utf8.contains(where: forbidden)
        else {
            let printableName = String(decoding: field.name.utf8.filter { !forbidden($0) }, as: UTF8.self)
            throw HTTPClientError(code: .invalidRequest,
                                  message: "header field \"\(printableName)\" has a forbidden character")
        }
        // "Name:" with nothing after it tells curl to drop the field; "Name;" sends it empty.
        return field.value.isEmpty ? "\(field.name);" : "\(field.name): \(field.value)"
    }

    /// Every curl return code goes through here: anything but CURLE_OK becomes an
    /// ``HTTPClientError`` with curl's message.
    private func check(_ code: CURLcode) throws {
        guard code != CURLE_OK else { return }
        let detail = String(cString: errorBuffer)
        throw HTTPClientError(
            code: HTTPClientError.Code(curlCode: code),
            curlCode: Int32(code.rawValue),
            message: detail.isEmpty ? String(cString: curl_easy_strerror(code)) : detail
        )
    }
}

/// A non-null pointer for an empty body; a static string, so nothing is allocated or leaked.
private let emptyBody: StaticString = ""

/// curl takes milliseconds, and reads 0 as "no limit": a positive duration never rounds to 0,
/// and zero or less means no limit.
func milliseconds(_ duration: Duration) -> Int {
    let (seconds, attoseconds) = duration.components
    let total = seconds * 1000 + attoseconds / 1_000_000_000_000_000
    return duration > .zero ? max(1, Int(total)) : 0
}
