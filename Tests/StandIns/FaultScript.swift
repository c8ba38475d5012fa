import Foundation

/// What a test scripts a paging stand-in to do besides answering well: the next answers
/// (429, 5xx, a dropped connection), one page's answer, a delay on every page; and the
/// requests it received, in order.
public final class FaultScript: Sendable {
    private struct State {
        var next: [StandInResponse] = []
        var pages: [String: StandInResponse] = [:]
        var delay: Duration?
        var requests: [String] = []
    }
    private let state = Locked(State())

    public init() {}

    /// The next requests get these answers, in order, before anything else is looked at.
    public func failNext(_ responses: [StandInResponse]) { state.withLock { $0.next += responses } }

    /// Page `page` (1-based) of `resource` answers `response`, once.
    public func failPage(_ resource: String, page: Int, with response: StandInResponse) {
        state.withLock { $0.pages["\(resource)#\(page)"] = response }
    }

    /// Every page takes this long to answer (nil: no delay).
    public func slowPages(_ delay: Duration?) { state.withLock { $0.delay = delay } }

    /// The requests received so far: path and query.
    public var requests: [String] { state.withLock { $0.requests } }

    /// Records `request`, waits the page delay, and returns a scripted next answer, if any.
    func begin(_ request: StandInRequest) async throws -> StandInResponse? {
        let (fault, delay) = state.withLock { s -> (StandInResponse?, Duration?) in
            s.requests.append(request.path + (request.query.map { "?" + $0 } ?? ""))
            return (s.next.isEmpty ? nil : s.next.removeFirst(), s.delay)
        }
        if let delay { try await Task.sleep(for: delay) }
        return fault
    }

    /// The scripted answer for page `page` of `resource`, if any (given once).
    func page(_ resource: String, _ page: Int) -> StandInResponse? {
        state.withLock { $0.pages.removeValue(forKey: "\(resource)#\(page)") }
    }
}

/// A query string's parameters, percent-decoded (`+` is not a space here: the APIs stood in
/// for send `%20`).
func queryParameters(_ query: String?) -> [String: String] {
    var out: [String: String] = [:]
    for pair in (query ?? "").split(separator: "&") {
        let kv = pair.split(separator: "=", maxSplits: 1).map { String($0).removingPercentEncoding ?? String($0) }
        out[kv[0]] = kv.count > 1 ? kv[1] : ""
    }
    return out
}
