@testable import Dashboard
import EsteiraCore
@testable import EsteiraService
import Foundation
import Hummingbird
import Testing

/// The dashboard's pieces that need no server: escaping, the inputs pages read, the sign-in's
/// redirect target, the charts' paths, the management URL.
@Suite struct HTMLTests {
    @Test func interpolatedStringsAreEscapedAndMarkupIsNot() {
        let name = #"<script>alert("x") & 'y'</script>"#
        let inner: HTML = "<b>\(name)</b>"
        #expect(inner.text == "<b>&lt;script&gt;alert(&quot;x&quot;) &amp; &#39;y&#39;&lt;/script&gt;</b>")
        let outer: HTML = "<p>\(inner)\([inner, inner])</p>"
        #expect(outer.text.hasPrefix("<p><b>&lt;script") && !outer.text.contains("<script"))
        let optional: String? = nil
        #expect(("<i>\(optional)</i>" as HTML).text == "<i></i>")
        #expect(("\(UUID(uuidString: "6BA7B810-9DAD-11D1-80B4-00C04FD430C8")!)" as HTML).text == "6ba7b810-9dad-11d1-80b4-00c04fd430c8")
    }

    @Test func numbersTimesAndDurationsReadWell() {
        #expect(HTML.number(0) == "0" && HTML.number(999) == "999" && HTML.number(1000) == "1,000" && HTML.number(-1234567) == "-1,234,567")
        #expect(HTML.duration(0.25) == "250 ms" && HTML.duration(12.5) == "12.5 s" && HTML.duration(185) == "3 min 5 s" && HTML.duration(7500) == "2 h 5 min")
        #expect(HTML.duration(nil) == "–" && HTML.time(nil).text == "–")
        let t = HTML.time(Date(timeIntervalSince1970: 0)).text
        #expect(t.contains(#"datetime="1970-01-01T00:00:00Z""#) && t.contains(">1970-01-01 00:00:00Z<"), "\(t)")
    }

    @Test func tablesSelectsAndPagersEscapeTheirData() {
        let table = HTML.table(["<h>"], [["\("<td>")"]], empty: "none")
        #expect(table.text.contains("<th scope=\"col\">&lt;h&gt;</th>") && table.text.contains("<td>&lt;td&gt;</td>"))
        #expect(HTML.table(["a"], [], empty: "<nothing>").text == "<p class=\"empty\">&lt;nothing&gt;</p>")
        let select = HTML.select("k", label: "Kind", options: [("a\"b", "A"), ("c", "C")], selected: "c", any: "any")
        #expect(select.text.contains("<option value=\"a&quot;b\">A</option>") && select.text.contains("<option value=\"c\" selected>C</option>"))
        #expect(HTML.nextPage(nil, query: [:], path: "/ui/jobs") == .empty)
        let next = HTML.nextPage("abc", query: ["kind": "noop", "q": "payload.a=b c", "status": ""], path: "/ui/jobs").text
        #expect(next.contains(#"href="/ui/jobs?cursor=abc&amp;kind=noop&amp;q=payload.a%3Db%20c""#), "\(next)")
    }
}

@Suite struct DashboardInputTests {
    @Test func formsReadPlusAsASpaceAndRepeatFields() throws {
        let form = QueryInput(form: ByteBuffer(string: "q=payload.name%3DAna+Maria&job_id=a&job_id=b&empty="))
        #expect(try form.string("q") == "payload.name=Ana Maria")
        #expect(try form.strings("job_id") == ["a", "b"])
        // A form sends its empty fields too: they read as not given.
        #expect(form.has("job_id") && !form.has("empty") && !form.has("missing"))
        #expect(try form.strings("empty") == [] && form.parameters.get("empty") == nil)
        #expect(throws: Problem.self) { try form.strings("job_id", maxLength: 0) }
        // A browser's `datetime-local` value is a UTC time in forms; the api still wants RFC 3339.
        let dates = QueryInput(form: ByteBuffer(string: "a=2026-12-01T10:30&b=2026-12-01T10:30:15&c=2026-12-01T10:30:00%2B01:00"))
        #expect(try dates.date("a") == Date(timeIntervalSince1970: 1_796_121_000))
        #expect(try dates.date("b") == Date(timeIntervalSince1970: 1_796_121_015))
        #expect(try dates.date("c") == Date(timeIntervalSince1970: 1_796_117_400))
    }

    @Test func payloadSearchesAreAPathAndAValue() throws {
        let m = try Dashboard.payloadMatch("payload.customer.id=42")
        #expect(m.path == ["customer", "id"] && m.value == "42")
        #expect(try Dashboard.payloadMatch("payload.a=x=y").value == "x=y")
        for bad in ["customer.id=1", "payload=1", "payload.a", "payload..a=1", "payload.a b=1", "payload.a.b.c.d.e.f=1"] {
            #expect(throws: Problem.self, "\(bad)") { try Dashboard.payloadMatch(bad) }
        }
    }

    @Test func theSignInOnlyGoesOnToDashboardPaths() {
        #expect(SignIn.safeNext("/ui/jobs?kind=noop") == "/ui/jobs?kind=noop")
        for bad in [nil, "", "/", "//evil.example", "https://evil.example/ui", "/ui\\@evil", "/v1/tokens", "/ui\n/x"] as [String?] {
            #expect(SignIn.safeNext(bad) == "/ui/", "\(bad ?? "nil")")
        }
    }

    @Test func theManagementURLTakesTheBrokersCredentialsUnlessItHasItsOwn() {
        let amqp = "amqp://app:s%40cret@rabbit.internal:5672/prod"
        #expect(Dashboard.Settings(managementURL: nil, amqpURL: amqp).managementURL == "http://app:s%40cret@rabbit.internal:15672")
        #expect(Dashboard.Settings(managementURL: "http://127.0.0.1:15672", amqpURL: amqp).managementURL == "http://app:s%40cret@127.0.0.1:15672")
        #expect(Dashboard.Settings(managementURL: "https://mon:pw@mgmt:443", amqpURL: amqp).managementURL == "https://mon:pw@mgmt:443")
        #expect(Dashboard.Settings(managementURL: nil, amqpURL: amqp).virtualHost == "prod")
        #expect(Dashboard.Settings(managementURL: nil, amqpURL: "amqp://guest:guest@localhost:5672/").virtualHost == "/")
        #expect(Dashboard.Settings(managementURL: nil, amqpURL: "amqp://guest:guest@localhost:5672/%2Fother").virtualHost == "/other")
    }
}

@Suite struct ChartTests {
    @Test func aChartBreaksItsLineWhereABucketHasNoFigure() {
        let span = (Date(timeIntervalSince1970: 0), Date(timeIntervalSince1970: 3600))
        let svg = LineChart(title: "t", series: [("a", [1, nil, 3, 4]), ("b", [nil, nil, nil, nil])], span: span, format: { "\($0)" }).svg.text
        let paths = svg.components(separatedBy: "<path ").dropFirst()
        #expect(paths.count == 2)
        #expect(paths.first!.components(separatedBy: "M").count - 1 == 2 && paths.first!.contains("L"), "\(paths.first!)")
        #expect(svg.contains(">4.0<"), "the top value on the axis")
        let empty = LineChart(title: "t", series: [("a", [nil, nil])], span: span, format: { "\($0)" }).svg.text
        #expect(empty.contains("no jobs in this span"))
    }
}
