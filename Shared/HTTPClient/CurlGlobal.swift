import CCurl

/// libcurl's process-wide state.
///
/// `curl_global_init` is not thread-safe and must run before the first easy handle, once:
/// a `static let` is initialised lazily under `swift_once`, which gives exactly that.
enum CurlGlobal {
    private static let initResult: CURLcode = curl_global_init(Int(CURL_GLOBAL_DEFAULT))

    /// Runs `curl_global_init` if it has not run yet; throws if it failed.
    static func ensureInitialized() throws {
        let code = initResult
        if code != CURLE_OK {
            throw HTTPClientError(code: .other, curlCode: Int32(code.rawValue),
                                  message: "curl_global_init failed: " + String(cString: curl_easy_strerror(code)))
        }
    }
}
