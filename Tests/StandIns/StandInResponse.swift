/// What the stand-in server does for a request: answer (perhaps late), or hang up.
public struct StandInResponse: Sendable {
    /// The status code.
    public var status: Int
    /// Header fields, in order; a name may repeat.
    public var headers: [(name: String, value: String)]
    /// The body bytes.
    public var body: [UInt8]
    /// How long to wait before answering, to make clients time out.
    public var delay: Duration?
    /// Whether to close the connection instead of answering.
    public var dropsConnection: Bool

    /// An answer with a byte body.
    public init(status: Int = 200, headers: [(name: String, value: String)] = [], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
        self.delay = nil
        self.dropsConnection = false
    }

    /// An answer with a UTF-8 text body.
    public init(status: Int = 200, headers: [(name: String, value: String)] = [], body: String) {
        self.init(status: status, headers: headers, body: Array(body.utf8))
    }

    /// An answer with a JSON body and `Content-Type: application/json`.
    public static func json(_ json: String, status: Int = 200,
                            headers: [(name: String, value: String)] = []) -> StandInResponse {
        StandInResponse(status: status, headers: [("Content-Type", "application/json")] + headers, body: json)
    }

    /// `429 Too Many Requests` with `Retry-After` in seconds, as rate-limited APIs answer.
    public static func tooManyRequests(retryAfter seconds: Int) -> StandInResponse {
        StandInResponse(status: 429, headers: [("Retry-After", String(seconds))], body: "slow down")
    }

    /// Close the connection without a byte of response, as a crashing server or a proxy would.
    public static var dropConnection: StandInResponse {
        var response = StandInResponse(status: 0)
        response.dropsConnection = true
        return response
    }

    /// The same response, sent after a delay.
    public func delayed(by delay: Duration) -> StandInResponse {
        var response = self
        response.delay = delay
        return response
    }
}
