import Decisions
import Foundation
import FreeSWITCHXML
import Logging
import Postgres
import Store
import SwitchAuthService

/// "Explain a call" as the console and the API show it: the service's own pipeline, through
/// `Resolver.explainCall` / `explainDevice` (the same code `switchauth explain` prints), rendered as
/// an outcome, a SIP code, a summary and the steps. The directory answer's XML is never shown: it
/// carries the device's HA1.
public struct ExplainResult: Sendable {
    public var steps: [String] = []
    /// allowed, rejected, not_found, refused (directory), published (directory), or invalid.
    public var outcome = "invalid"
    public var sipCode: Int?
    public var reason = ""
    public var summary = ""
    public var dialplanXML: String?

    public var json: JSON {
        .object([("outcome", .string(outcome)), ("sip_code", sipCode.map { .int($0) } ?? .null), ("reason", .string(reason)),
                 ("summary", .string(summary)), ("steps", .array(steps.map { .string($0) })), ("dialplan_xml", .optional(dialplanXML))])
    }
}

public enum Explainer {
    /// `config`: the services' configuration (`ConsoleSettings.service`), so that the explanation
    /// decides as they do.
    public static func explain(_ db: Connection, ip: String?, user: String?, destination: String?,
                               config: ServiceConfig) throws -> ExplainResult {
        let resolver = Resolver.offline(config)
        let e: Explanation
        if let ip, !ip.isEmpty {
            guard let dest = destination, !dest.isEmpty else { throw Problem.invalid("an IP call needs a destination") }
            e = try resolver.explainCall(from: ip, to: dest, db: db)
        } else if let user, !user.isEmpty {
            guard let at = user.lastIndex(of: "@") else { throw Problem.invalid("user must be user@domain") }
            e = try resolver.explainDevice(String(user[..<at]), domain: String(user[user.index(after: at)...]),
                                           destination: destination, db: db)
        } else {
            throw Problem.invalid("give ip and destination, or user (user@domain) and optionally destination")
        }
        var r = ExplainResult(steps: e.steps, summary: e.summary, dialplanXML: e.dialplanXML)
        if let d = e.dialplan {
            r.reason = d.reason.rawValue
            switch d.answer {
            case .allow: r.outcome = "allowed"
            case .reject(_, let rejection):
                r.outcome = "rejected"
                r.sipCode = rejection.code
            case .notFound: r.outcome = "not_found"
            }
        } else if let d = e.directory {
            r.reason = d.reason.rawValue
            switch d.answer {
            case .notFound: r.outcome = "not_found"
            case .user: r.outcome = "published"
            case .domainWithoutUser:
                r.outcome = "refused"
                r.sipCode = 403
            }
        }
        return r
    }
}
