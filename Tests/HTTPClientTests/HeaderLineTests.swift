@testable import HTTPClient
import Testing

/// The header lines curl hands over, parsed on their bytes.
@Suite struct HeaderLineTests {
    static func parse(_ lines: [String]) -> HTTPHeaders {
        let state = TransferState(cancellation: nil)
        for line in lines {
            Array(line.utf8).withUnsafeBufferPointer { receiveHeaderLine($0, into: state) }
        }
        return state.headers
    }

    @Test func fieldsAreTrimmedAndAStatusLineStartsAFreshBlock() {
        let headers = Self.parse([
            "HTTP/1.1 100 Continue\r\n", "X-Early: gone\r\n", "\r\n",
            "HTTP/1.1 200 OK\r\n", "Content-Type:application/json \r\n", "Retry-After: \t 1.5\r\n",
            "Location: http://h:8080/a?b=c\r\n", "X-Name: São Paulo\r\n", "X-Empty:\r\n",
            "X-Folded: first\r\n", " \t second part\r\n", "no colon here\r\n", "\r\n",
        ])
        #expect(headers.fields.map(\.name) == ["Content-Type", "Retry-After", "Location", "X-Name", "X-Empty", "X-Folded"])
        #expect(headers["content-type"] == "application/json" && headers["Retry-After"] == "1.5")
        #expect(headers["Location"] == "http://h:8080/a?b=c" && headers["X-Name"] == "São Paulo" && headers["X-Empty"] == "")
        #expect(headers["X-Folded"] == "first second part" && headers["X-Early"] == nil)
    }
}
