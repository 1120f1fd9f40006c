import Decisions
import Foundation
import FreeSWITCHXML
import Postgres
import Store

/// "Explain a call": the steps of a decision from the live database, through the same lookups and
/// deciders the service runs (`IPCandidatesLookup`, `DialplanDecider`, `DirectoryLookup`,
/// `DirectoryDecider`) and `switchauth explain` prints. The directory answer's XML is never shown:
/// it carries the device's HA1.
public struct Explanation: Sendable {
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
    public static func explain(_ db: Connection, ip: String?, user: String?, destination: String?,
                               directory: DirectoryPolicy, dialplan: DialplanPolicy) throws -> Explanation {
        var e = Explanation()
        let context = dialplan.ownedContexts.sorted().first ?? "switchauth"
        if let ip, !ip.isEmpty {
            guard let dest = destination, !dest.isEmpty else { throw Problem.invalid("an IP call needs a destination") }
            e.steps.append("source \(ip), destination \(dest), context \(context)")
            guard let address = IPAddress(ip) else {
                e.steps.append("\(ip) is not an IP address")
                finish(&e, DialplanDecider.decideIP(context: context, source: ip, destination: dest, candidates: [], policy: dialplan))
                return e
            }
            let candidates = try IPCandidatesLookup.run(db, source: address)
            e.steps.append("IP settings whose network contains \(address): \(candidates.count)")
            for c in candidates.sorted(by: { $0.id < $1.id }) {
                var notes: [String] = []
                if !c.enabled { notes.append("disabled") }
                if !dest.hasPrefix(c.prefix) { notes.append("prefix '\(c.prefix)' does not begin the destination") }
                e.steps.append("  id \(c.id) \(c.name) \(c.network) prefix '\(c.prefix)' account \(c.account.number) (\(c.account.status.rawValue)): \(notes.isEmpty ? "matches" : notes.joined(separator: ", "))")
            }
            let chosen = DialplanDecider.chooseIPSetting(source: address, destination: dest, candidates: candidates)
            e.steps.append("chosen (longest prefix, then most specific network): \(chosen.map { "id \($0.id) \($0.name), account \($0.account.number)" } ?? "none")")
            if let a = chosen?.account { gates(&e, a) }
            finish(&e, DialplanDecider.decideIP(context: context, source: ip, destination: dest, candidates: candidates, policy: dialplan))
        } else if let user, !user.isEmpty {
            guard let at = user.lastIndex(of: "@") else { throw Problem.invalid("user must be user@domain") }
            let name = String(user[..<at]), domain = String(user[user.index(after: at)...])
            let facts = try DirectoryLookup.run(db, domain: domain, user: name, sourceIP: nil)
            e.steps.append("domain \(domain): \(facts.domainKnown ? "served" : "unknown (answer: not found, FreeSWITCH falls back to its static directory)")")
            guard facts.domainKnown else {
                e.outcome = "not_found"
                e.reason = Reason.unknownDomain.rawValue
                e.summary = "not found"
                return e
            }
            guard let device = facts.device else {
                e.steps.append("user \(name): unknown (answer: the domain without the user, a final 403)")
                e.outcome = "refused"
                e.sipCode = 403
                e.reason = Reason.unknownUser.rawValue
                e.summary = "refused: unknown user (403)"
                return e
            }
            e.steps.append("device \(device.id) \(device.username)@\(device.realm): \(device.enabled ? "enabled" : "disabled"), account \(device.account.number)")
            gates(&e, device.account)
            let lookup = DirectoryDecider.decide(.user(user: name, domain: domain, action: nil, sourceIP: nil), domainKnown: true,
                                                 device: device, lockout: facts.lockout, policy: directory)
            if facts.lockout.userLocked { e.steps.append("user is locked out: digest attempts get 403 until the lockout ends (Lockouts)") }
            if lookup.reason == .ok {
                e.steps.append("directory (REGISTER/INVITE digest): user published with its HA1; FreeSWITCH checks the digest")
                e.outcome = "published"
                e.reason = lookup.reason.rawValue
                e.summary = "registers: user published (FreeSWITCH checks the digest)"
            } else {
                e.steps.append("directory (REGISTER/INVITE digest): refused: \(lookup.reason.rawValue) (403)")
                e.outcome = "refused"
                e.sipCode = 403
                e.reason = lookup.reason.rawValue
                e.summary = "refused: \(lookup.reason.rawValue) (403)"
            }
            if let destination, !destination.isEmpty {
                finish(&e, DialplanDecider.decideDigest(context: context, destination: destination, device: device, policy: dialplan))
            }
        } else {
            throw Problem.invalid("give ip and destination, or user (user@domain) and optionally destination")
        }
        return e
    }

    static func gates(_ e: inout Explanation, _ a: AccountFacts) {
        e.steps.append("account \(a.number): status \(a.status.rawValue)\(a.expired ? ", expired" : ""), \(a.kind.rawValue), \(a.billing.rawValue), balance \(a.balance), credit limit \(a.creditLimit), max channels \(a.maxChannels == 0 ? "unlimited" : String(a.maxChannels))")
        e.steps.append("  standing: \(AccountGate.standing(a)?.rawValue ?? "ok"); funds: \(AccountGate.funds(a)?.rawValue ?? "ok")")
    }

    static func finish(_ e: inout Explanation, _ d: DialplanDecision) {
        e.reason = d.reason.rawValue
        switch d.answer {
        case .allow(_, let a):
            e.outcome = "allowed"
            e.sipCode = nil
            e.summary = "allowed (\(d.reason.rawValue)): accountcode \(a.account.number), transfer \(a.destination) XML \(a.routingContext)\(a.account.maxChannels > 0 ? ", limit \(a.account.maxChannels) channels (486 past it)" : "")"
        case .reject(_, let r):
            e.outcome = "rejected"
            e.sipCode = r.code
            e.summary = "rejected: \(r.code) \(r.phrase) (\(d.reason.rawValue))"
        case .notFound:
            e.outcome = "not_found"
            e.summary = "not found"
        }
        e.steps.append("=> " + e.summary)
        e.dialplanXML = String(decoding: Documents.dialplan(d.answer, reason: d.reason), as: UTF8.self)
    }
}
