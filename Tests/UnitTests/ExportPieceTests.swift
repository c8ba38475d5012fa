import EsteiraService
@testable import Exports
import Foundation
import HTTPClient
import Testing

/// The export workload's pieces that need no server.
@Suite struct ExportPieceTests {
    @Test func theRowARejectionNamesIsReadAsPostgreSQLWordsIt() {
        #expect(FichasClient.namedRow(in: ["details": #"Failing row contains (7, {"id": 7}, 1)."#]) == 7)
        #expect(FichasClient.namedRow(in: ["details": "Failing row contains (42)."]) == 42)
        #expect(FichasClient.namedRow(in: ["details": "Key (id)=(9) already exists."]) == 9)
        #expect(FichasClient.namedRow(in: ["details": "Failing row contains (null, x)."]) == nil)
        #expect(FichasClient.namedRow(in: ["message": "boom"]) == nil)
    }

    @Test func aTargetsErrorIsToldWithItsCodeAndDetails() {
        let r = HTTPResponse(status: 400, body: Array(#"{"code": "23514", "message": "violates check", "details": "Failing row contains (3)."}"#.utf8))
        #expect(FichasClient.message(r) == "23514: violates check: Failing row contains (3).")
        #expect(FichasClient.message(HTTPResponse(status: 502, body: Array("<html>bad gateway</html>".utf8))) == "<html>bad gateway</html>")
    }

    @Test func daysAreCalendarDaysAsYYYYMMDD() throws {
        #expect(try APIDates.day("2026-03-10", field: "start_date") == 20260310)
        #expect(try APIDates.day("2024-02-29", field: "start_date") == 20240229)
        for bad in ["2026-02-29", "2026-13-01", "2026-3-10", "20260310", "2026-03-10T00:00", "１２３４-01-01", "0999-01-01", ""] {
            #expect(throws: Problem.self, "\(bad)") { try APIDates.day(bad, field: "end_date") }
        }
        let checked = try ExportController.check(startDate: "2026-03-10", endDate: "2026-03-10", batchSize: nil, target: nil)
        #expect(checked.batchSize == 100 && checked.endDate == "2026-03-10")
        do {
            _ = try ExportController.check(startDate: "2026-03-10", endDate: "2026-03-11", batchSize: nil, target: nil)
            Issue.record("an end after the start was taken")
        } catch let problem as Problem {
            #expect(problem.field == "end_date")
        }
    }

    @Test func percentIsSentOverAllCappedAndCompleteAtTheEnd() {
        #expect(Export.percent(done: 1, total: 3, status: .running) == 33.3)
        #expect(Export.percent(done: 5, total: 3, status: .running) == 100)
        #expect(Export.percent(done: 0, total: 0, status: .running) == 0)
        #expect(Export.percent(done: 0, total: 0, status: .completed) == 100)
        #expect(Export.percent(done: 2, total: nil, status: .pending) == 0)
    }

    @Test func refusalsNameTheirField() {
        #expect(ExportError.noActiveTarget.problem.field == "target")
        #expect(ExportError.noActiveTarget.problem.status == .unprocessableContent)
        let busy = ExportError.alreadyActive(target: "t", export: UUID(), status: .paused).problem
        #expect(busy.status == .conflict && busy.field == "target" && busy.detail.contains("paused"))
        #expect(ExportError.wrongStatus(.completed, action: "paused").problem.field == "status")
    }
}
