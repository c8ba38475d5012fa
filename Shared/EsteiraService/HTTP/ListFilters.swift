import EsteiraCore
import Foundation

extension JobFilter {
    /// The filters of a job listing in `q`, for the api and the dashboard: `kind` (one of
    /// `catalog`), `status` (a comma list), `created_after`, `created_before` (after
    /// `created_after`) and `cursor`; a 400 naming the field otherwise.
    public static func read(_ q: QueryInput, catalog: KindCatalog) throws -> JobFilter {
        var filter = JobFilter()
        filter.kind = try q.string("kind", maxLength: 63)
        if let kind = filter.kind, catalog[kind] == nil {
            throw Problem(.badRequest, detail: "unknown kind '\(kind)'", field: "kind")
        }
        if let statuses = try q.string("status") {
            filter.statuses = try statuses.split(separator: ",").map {
                guard let s = JobStatus(rawValue: String($0)) else {
                    throw Problem(.badRequest, detail: "unknown status '\($0)'; statuses: \(JobStatus.allCases.map(\.rawValue).joined(separator: ", "))",
                                  field: "status")
                }
                return s
            }
        }
        filter.createdAfter = try q.date("created_after")
        filter.createdBefore = try q.date("created_before")
        if let a = filter.createdAfter, let b = filter.createdBefore, a >= b {
            throw Problem(.badRequest, detail: "must be after created_after", field: "created_before")
        }
        if let token = try q.string("cursor", maxLength: 200) {
            guard let cursor = ListCursor(token: token) else {
                throw Problem(.badRequest, detail: "not a cursor this api returned", field: "cursor")
            }
            filter.cursor = cursor
        }
        return filter
    }
}

extension DeadLetterSelection {
    /// The error classes a dead letter may have.
    public static let errorClasses = ErrorClass.allCases.map(\.rawValue) + ["cancelled"]

    /// Refuses (400 naming `field`) what is not a kind name. Poison messages may carry kinds
    /// the catalog does not know, so any well-formed name is accepted.
    public static func checkKind(_ kind: String?, field: String) throws {
        if let kind, !KindCatalog.isValidName(kind) { throw Problem(.badRequest, detail: "'\(kind)' is not a kind name", field: field) }
    }

    /// Refuses (400 naming `field`) what is not an error class.
    public static func checkErrorClass(_ value: String?, field: String) throws {
        if let value, !errorClasses.contains(value) {
            throw Problem(.badRequest, detail: "must be one of \(errorClasses.joined(separator: ", "))", field: field)
        }
    }
}
