import Decisions
import FreeSWITCHXML
import Lookups
import Postgres
import Store

/// "Explain a call" for `switchauth explain` and the operators' console: the request FreeSWITCH
/// would send is built, then classified, its facts read and decided by the service's own pipeline
/// (`Resolver.classify`, `facts`, `directoryDecision` / `dialplanDecision`, `decide`), with each
/// step written out. The directory answer's XML is not part of it: it carries the device's HA1.
public struct Explanation: Sendable {
    public var steps: [String] = []
    /// The directory decision, when a device was explained.
    public var directory: DirectoryDecision?
    /// The dialplan decision and its exact answer, when a call was explained.
    public var dialplan: DialplanDecision?
    public var dialplanXML: String?

    /// One line: what the caller gets.
    public var summary: String {
        if let d = dialplan { return Explanation.describe(d) }
        guard let d = directory else { return steps.last ?? "" }
        if case .notFound = d.answer { return "not found (FreeSWITCH falls back to its static directory)" }
        return d.reason == .ok ? "registers: user published (FreeSWITCH checks the digest)" : "refused: \(d.reason.rawValue) (403)"
    }

    public static func describe(_ d: DialplanDecision) -> String {
        switch d.answer {
        case .allow(_, let a):
            return "allowed (\(d.reason.rawValue)): accountcode \(a.account.number), transfer \(a.destination) XML \(a.routingContext)"
                + (a.account.maxChannels > 0
                    ? ", limit \(a.account.maxChannels) channels \(a.globalLimits ? "across every switch" : "per switch") (486 past it)" : "")
                + (a.globalLimits && a.account.maxCPS > 0 ? ", \(a.account.maxCPS) calls/s (503 past it)" : "")
                + (a.globalLimits && a.ipSettingCPS > 0 ? ", IP setting \(a.ipSettingCPS) calls/s (503 past it)" : "")
        case .reject(_, let r):
            return "rejected: \(r.code) \(r.phrase) (\(d.reason.rawValue))"
        case .notFound:
            return "not found"
        }
    }
}

extension Resolver {
    private var explainContext: String { config.dialplan.ownedContexts.sorted().first ?? "switchauth" }

    /// A call from `ip` to `destination` on the IP-authenticated profile.
    public func explainCall(from ip: String, to destination: String, db: Connection) throws -> Explanation {
        var e = Explanation()
        let context = explainContext
        e.steps.append("source \(ip), destination \(destination), context \(context)")
        let lookup = classify(FormFields([
            ("hostname", "explain"), ("section", "dialplan"), ("tag_name", ""), ("key_name", ""), ("key_value", ""),
            ("Hunt-Context", context), ("Hunt-Destination-Number", destination), ("Caller-Network-Addr", ip),
            ("variable_sip_network_ip", ip), ("variable_sip_acl_authed_by", config.aclListName)]))
        let facts = try DatabaseFacts(db).facts(for: lookup) ?? LookupFacts.none
        if case .ipCandidates(let candidates) = facts, let address = IPAddress(ip) {
            e.steps.append("IP settings whose network contains \(address): \(candidates.count)")
            for c in candidates.sorted(by: { $0.id < $1.id }) {
                var notes: [String] = []
                if !c.enabled { notes.append("disabled") }
                if !destination.hasPrefix(c.prefix) { notes.append("prefix '\(c.prefix)' does not begin the destination") }
                e.steps.append("  id \(c.id) \(c.name) \(c.network) prefix '\(c.prefix)' account \(c.account.number) (\(c.account.status.rawValue)): \(notes.isEmpty ? "matches" : notes.joined(separator: ", "))")
            }
            let chosen = DialplanDecider.chooseIPSetting(source: address, destination: destination, candidates: candidates)
            e.steps.append("chosen (longest prefix, then most specific network): \(chosen.map { "id \($0.id) \($0.name), account \($0.account.number)" } ?? "none")")
            if let a = chosen?.account { e.steps += Self.gates(a) }
        } else {
            e.steps.append("\(ip) is not an IP address")
        }
        finishCall(&e, lookup, facts, db: db)
        return e
    }

    /// A device `user@domain`: its directory answer, and a call to `destination` if given.
    public func explainDevice(_ user: String, domain: String, destination: String?, db: Connection) throws -> Explanation {
        var e = Explanation()
        let lookup = classify(FormFields([
            ("hostname", "explain"), ("section", "directory"), ("tag_name", "domain"), ("key_name", "name"), ("key_value", domain),
            ("user", user), ("domain", domain)]))
        let facts = try DatabaseFacts(db).facts(for: lookup) ?? LookupFacts.none
        guard case .directory(_, let query) = lookup, case .directory(let f) = facts else {
            e.steps.append("\(user)@\(domain): not a directory lookup")
            return e
        }
        e.steps.append("domain \(domain): \(f.domainKnown ? "served" : "unknown (answer: not found, FreeSWITCH falls back to its static directory)")")
        let decision = directoryDecision(query, f)
        e.directory = decision
        guard f.domainKnown else { return e }
        guard let device = f.device else {
            e.steps.append("user \(user): unknown (answer: the domain without the user, a final 403)")
            return e
        }
        e.steps.append("device \(device.id) \(device.username)@\(device.realm): \(device.enabled ? "enabled" : "disabled"), account \(device.account.number)")
        e.steps += Self.gates(device.account)
        e.steps.append("directory (REGISTER/INVITE digest): \(decision.reason == .ok ? "user published with its HA1; FreeSWITCH checks the digest" : "refused: \(decision.reason.rawValue) (403)")")
        if f.lockout.userLocked {
            e.steps.append("user is locked out: digest attempts from sources it has not authenticated from recently get 403 until the lockout ends ('switchauth lockouts')")
        }
        if let destination, !destination.isEmpty {
            let call = classify(FormFields([
                ("hostname", "explain"), ("section", "dialplan"), ("tag_name", ""), ("key_name", ""), ("key_value", ""),
                ("Hunt-Context", explainContext), ("Hunt-Destination-Number", destination), ("variable_sip_authorized", "true"),
                ("variable_user_name", user), ("variable_domain_name", domain)]))
            finishCall(&e, call, try DatabaseFacts(db).facts(for: call) ?? LookupFacts.none, db: db)
        }
        return e
    }

    private func finishCall(_ e: inout Explanation, _ lookup: Lookup, _ facts: LookupFacts, db: Connection) {
        guard case .dialplan(_, let query) = lookup else { return }
        let decision = dialplanDecision(query, facts)
        e.dialplan = decision
        var account: AccountFacts?
        var routed = ""
        switch decision.answer {
        case .allow(_, let a): account = a.account; routed = a.destination
        default:
            if case .ipCandidates(let c) = facts, case let .ip(_, source, destination) = query, let address = IPAddress(source),
               let chosen = DialplanDecider.chooseIPSetting(source: address, destination: destination, candidates: c) {
                account = chosen.account
                routed = chosen.stripPrefix ? String(destination.dropFirst(chosen.prefix.count)) : destination
            } else if case .device(let d?) = facts, case let .digest(_, _, _, destination) = query {
                account = d.account
                routed = destination
            }
        }
        if let account {
            e.steps += Self.destinationSteps(routed, account)
            let fraud = FraudCheck.applicable(account.fraudThresholds, destination: routed)
            if !account.fraudThresholds.isEmpty {
                e.steps.append("fraud thresholds counting this call: \(fraud.isEmpty ? "none (\(account.fraudThresholds.count) for other prefixes)" : fraud.map(\.summary).joined(separator: "; "))")
            }
            if config.dialplan.callLimits == .global && (account.maxChannels > 0 || account.maxCPS > 0) {
                let up = (try? CallSlots.inUse(db, accountID: account.id)).map(String.init) ?? "unknown (database)"
                e.steps.append("call controls (across every switch): \(up) calls up now of \(account.maxChannels == 0 ? "unlimited" : String(account.maxChannels)); calls per second \(account.maxCPS == 0 ? "unlimited" : String(account.maxCPS)) (explain takes no slot)")
            }
        }
        e.dialplanXML = String(decoding: decide(lookup, facts).0.body, as: UTF8.self)
        e.steps.append("=> " + Explanation.describe(decision))
    }

    /// Which destination rule decides, or why none does.
    static func destinationSteps(_ destination: String, _ a: AccountFacts) -> [String] {
        guard !a.destinationRules.isEmpty else { return ["destination lists: no rule for account \(a.number) or global"] }
        var steps = ["destination lists for \(destination) (\(a.destinationRules.count) rules, global and the account's):"]
        for r in a.destinationRules where destination.hasPrefix(r.prefix) { steps.append("  matches \(r.summary)") }
        switch DestinationScreen.verdict(destination: destination, rules: a.destinationRules) {
        case .allowed(let r?): steps.append("  decides: \(r.summary) (longest prefix)")
        case .allowed(nil): steps.append("  no rule begins it: allowed")
        case .denied(let r): steps.append("  decides: \(r.summary): 403 destination_denied")
        case .notAllowed: steps.append("  the account has allow rules and none begins it: 403 destination_not_allowed")
        }
        return steps
    }

    static func gates(_ a: AccountFacts) -> [String] {
        ["account \(a.number): status \(a.status.rawValue)\(a.expired ? ", expired" : ""), \(a.kind.rawValue), \(a.billing.rawValue), balance \(a.balance), credit limit \(a.creditLimit), max channels \(a.maxChannels == 0 ? "unlimited" : String(a.maxChannels)), max calls/s \(a.maxCPS == 0 ? "unlimited" : String(a.maxCPS))",
         "  standing: \(AccountGate.standing(a)?.rawValue ?? "ok"); funds: \(AccountGate.funds(a)?.rawValue ?? "ok")"]
    }
}
