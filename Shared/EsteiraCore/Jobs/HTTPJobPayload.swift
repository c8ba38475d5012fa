/// What the payload of an `http` job may say, checked at enqueue (a 422 naming the field)
/// and again by the handler.
public enum HTTPJobPayload {
    /// Request headers a payload may not set: they frame the request or the connection (curl
    /// sets them itself), or address a proxy.
    public static func isReserved(header name: String) -> Bool {
        let lower = name.lowercased()
        return reservedHeaders.contains(lower) || lower.hasPrefix("proxy-")
    }

    static let reservedHeaders: Set<String> = ["host", "content-length", "transfer-encoding", "connection", "te", "upgrade",
                                               "expect", "keep-alive", "trailer"]

    /// The first reserved header `payload` sets, if any.
    public static func reservedHeader(in payload: JSONValue?) -> String? {
        guard case .object(let headers)? = payload?["headers"] else { return nil }
        return headers.keys.sorted().first(where: isReserved(header:))
    }
}
