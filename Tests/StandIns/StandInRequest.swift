/// A request as the stand-in server received it, for tests to inspect.
public struct StandInRequest: Sendable {
    /// The method token, e.g. `"POST"`.
    public var method: String
    /// The path, without the query, e.g. `"/rest/v1/fichas"`.
    public var path: String
    /// The query string without the `?`, or nil when the URL had none.
    public var query: String?
    /// The header fields in the order received; names keep the client's spelling.
    public var headers: [(name: String, value: String)]
    /// The body bytes, empty when there was none.
    public var body: [UInt8]
    /// The client's TCP port: requests with the same port came over the same connection.
    public var remotePort: Int?

    /// Creates a recorded request.
    public init(method: String, path: String, query: String? = nil, headers: [(name: String, value: String)] = [],
                body: [UInt8] = [], remotePort: Int? = nil) {
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
        self.remotePort = remotePort
    }

    /// The first value of a header field, matching the name without regard to case.
    public func header(_ name: String) -> String? {
        headers.first { $0.name.lowercased() == name.lowercased() }?.value
    }

    /// Every value of a header field, in order, matching the name without regard to case.
    public func headerValues(_ name: String) -> [String] {
        headers.filter { $0.name.lowercased() == name.lowercased() }.map(\.value)
    }

    /// The body decoded as UTF-8.
    public var bodyString: String {
        String(decoding: body, as: UTF8.self)
    }
}
