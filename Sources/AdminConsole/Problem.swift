import Foundation
import HTTPServer
import Postgres
import Store

/// An RFC 9457 problem: what went wrong, as `application/problem+json`.
public struct Problem: Error, Sendable, Equatable {
    public var status: Int
    public var title: String
    public var detail: String
    /// A relative URI naming the kind of problem (documented in the OpenAPI document).
    public var type: String
    public var headers: [(String, String)] = []

    public static func == (a: Problem, b: Problem) -> Bool { a.status == b.status && a.detail == b.detail && a.type == b.type }

    public init(status: Int, title: String, detail: String, type: String? = nil) {
        self.status = status
        self.title = title
        self.detail = detail
        self.type = type ?? "/problems/" + title.lowercased().replacingOccurrences(of: " ", with: "-")
    }

    static func invalid(_ detail: String) -> Problem { Problem(status: 422, title: "Invalid Input", detail: detail) }
    static let unauthenticated = Problem(status: 401, title: "Unauthorized", detail: "a valid API token is required (Authorization: Bearer sat_...)")
    static func forbidden(_ role: Role) -> Problem {
        Problem(status: 403, title: "Forbidden", detail: "this needs the \(role.rawValue) role or higher")
    }
    static let notFound = Problem(status: 404, title: "Not Found", detail: "no such resource")

    /// An operator's refusal from the shared validation path (Store.Admin), in the CLI's words, by
    /// its kind: unknown objects are 404, duplicates and reused keys 409, everything else 422.
    static func from(_ e: AdminError) -> Problem {
        switch e.kind {
        case .notFound: return Problem(status: 404, title: "Not Found", detail: e.message)
        case .conflict: return Problem(status: 409, title: "Conflict", detail: e.message)
        case .invalid: return invalid(e.message)
        }
    }

    /// A list cursor that no list gave out.
    static func from(_ e: BadCursor) -> Problem {
        Problem(status: 400, title: "Bad Request", detail: e.message, type: "/problems/bad-cursor")
    }

    static func from(_ e: PostgresError) -> Problem {
        if e.isConstraintViolation { return invalid("refused by the database: \(e.message)") }
        // A generic description: connection details and SQL stay in the log.
        return Problem(status: 503, title: "Service Unavailable", detail: "the database did not answer (\(e.description))")
    }

    public var response: HTTPResponse {
        let body = JSON.object([("type", .string(type)), ("title", .string(title)), ("status", .int(status)), ("detail", .string(detail))])
        return HTTPResponse(status: HTTPStatus(code: status, reason: title), contentType: "application/problem+json",
                            body: Array(body.text.utf8), headers: headers.map { (name: $0.0, value: $0.1) } + ConsoleRequest.securityHeaders)
    }
}
