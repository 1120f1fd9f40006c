/// Service settings the dialplan decision depends on.
public struct DialplanPolicy: Sendable, Equatable {
    /// Contexts whose lookups the service answers; every other context gets not found.
    public var ownedContexts: Set<String>
    /// Sofia profiles whose calls are IP-authenticated even without `sip_acl_authed_by`.
    public var ipAuthProfiles: Set<String>
    /// Where allowed calls are transferred (the operator's routing context).
    public var routingContext: String
    /// `limit` realm for channel counting (`callLimits == .perSwitch`).
    public var limitRealm: String
    /// Where max_channels and max_cps are counted.
    public var callLimits: CallLimitScope

    public init(ownedContexts: Set<String> = ["switchauth"], ipAuthProfiles: Set<String> = ["switchauth_ip"],
                routingContext: String = "switchauth_routing", limitRealm: String = "switchauth",
                callLimits: CallLimitScope = .perSwitch) {
        self.ownedContexts = ownedContexts
        self.ipAuthProfiles = ipAuthProfiles
        self.routingContext = routingContext
        self.limitRealm = limitRealm
        self.callLimits = callLimits
    }
}

/// Where an account's channels and calls per second are counted.
public enum CallLimitScope: String, Sendable, Equatable, CaseIterable {
    /// In the shared database, across every switch and instance: a slot per call, reserved at the
    /// dialplan decision and released by the switch's hangup event. Needs the event sockets.
    case global
    /// By each switch's `limit hash` (max_channels only; N switches give an account N times its
    /// channels, and max_cps is not enforced).
    case perSwitch = "switch"
}

/// What one allowed call must be admitted against, in the shared database, before its answer goes
/// out: its channel slot and its calls-per-second allowance.
public struct CallAdmission: Sendable, Equatable {
    /// The channel's Unique-ID: the slot's key, released by the switch's hangup event.
    public var uniqueID: String
    /// The switch's Core-UUID: its run, so that a restarted switch's calls are all released.
    public var coreUUID: String
    public var accountID: Int64
    /// 0: channels are not counted for this account.
    public var maxChannels: Int
    public var accountCPS: Int
    public var ipSettingID: Int64?
    public var ipSettingCPS: Int
    /// As routed: what fraud thresholds per prefix are counted by.
    public var destination: String
    /// Keep a slot even without max_channels: a concurrent-calls fraud threshold counts them.
    public var trackChannels: Bool
    /// The account's fraud thresholds that the call is counted for.
    public var fraudThresholds: [FraudThreshold]

    public init(uniqueID: String, coreUUID: String, accountID: Int64, maxChannels: Int, accountCPS: Int,
                ipSettingID: Int64?, ipSettingCPS: Int, destination: String = "", trackChannels: Bool = false,
                fraudThresholds: [FraudThreshold] = []) {
        self.uniqueID = uniqueID
        self.coreUUID = coreUUID
        self.accountID = accountID
        self.maxChannels = maxChannels
        self.accountCPS = accountCPS
        self.ipSettingID = ipSettingID
        self.ipSettingCPS = ipSettingCPS
        self.destination = destination
        self.trackChannels = trackChannels
        self.fraudThresholds = fraudThresholds
    }
}

/// Whether an allowed call must be admitted in the shared database before its answer goes out.
public enum AdmissionNeed: Sendable, Equatable {
    case none
    case admit(CallAdmission)
    /// The call cannot be admitted at all (no key for its slot).
    case refuse(DialplanDecision)
}

/// What the shared counters said of a call.
public enum AdmissionVerdict: Sendable, Equatable {
    /// Admitted; the account's calls now up (0 when its channels are not counted).
    case admitted(inUse: Int)
    /// The channel holds its slot already (a second lookup of the same call).
    case alreadyHeld
    /// The account has `inUse` calls up, its max_channels.
    case channelLimit(inUse: Int)
    /// The account, or the IP setting, admitted its max_cps calls in the last second.
    case cpsLimit(ipSetting: Bool)

    /// `switchauth_admit_call`'s verdict (the part before its first '|'; migration 0009); nil when
    /// it is not one of its forms.
    public init?(databaseText t: String) {
        if t == "held" { self = .alreadyHeld; return }
        if t == "cps:account" { self = .cpsLimit(ipSetting: false); return }
        if t == "cps:ip_setting" { self = .cpsLimit(ipSetting: true); return }
        if t.hasPrefix("ok:"), let n = Int(t.dropFirst(3)) { self = .admitted(inUse: n); return }
        if t.hasPrefix("channels:"), let n = Int(t.dropFirst(9)) { self = .channelLimit(inUse: n); return }
        return nil
    }
}

/// What a dialplan lookup asks for (freeswitch-conf/PROTOCOL.md §7).
public enum DialplanQuery: Sendable, Equatable {
    case notOwned(context: String)
    /// IP-authenticated call: the account is chosen by source address and destination prefix.
    case ip(context: String, source: String, destination: String)
    /// Digest-authenticated call from a device.
    case digest(context: String, user: String, domain: String, destination: String)
    /// A call in an owned context that is neither: refused.
    case unauthenticated(context: String, destination: String)
}

public struct DialplanAllowance: Sendable, Equatable {
    public var account: AccountFacts
    public var method: String
    public var ipSettingID: Int64?
    public var deviceID: Int64?
    /// The destination after stripping the IP setting's prefix (when it says so).
    public var destination: String
    public var callerIDName: String?
    public var callerIDNumber: String?
    public var routingContext: String
    public var limitRealm: String
    /// Channels are counted in the shared database (no per-switch `limit`).
    public var globalLimits: Bool
    /// The IP setting's own calls-per-second limit (IP calls).
    public var ipSettingCPS: Int

    public init(account: AccountFacts, method: String, ipSettingID: Int64?, deviceID: Int64?, destination: String,
                callerIDName: String?, callerIDNumber: String?, routingContext: String, limitRealm: String,
                globalLimits: Bool = false, ipSettingCPS: Int = 0) {
        self.account = account
        self.method = method
        self.ipSettingID = ipSettingID
        self.deviceID = deviceID
        self.destination = destination
        self.callerIDName = callerIDName
        self.callerIDNumber = callerIDNumber
        self.routingContext = routingContext
        self.limitRealm = limitRealm
        self.globalLimits = globalLimits
        self.ipSettingCPS = ipSettingCPS
    }
}

public enum DialplanAnswer: Sendable, Equatable {
    case notFound
    case reject(context: String, SIPRejection)
    case allow(context: String, DialplanAllowance)
}

public struct DialplanDecision: Sendable, Equatable {
    public var answer: DialplanAnswer
    public var reason: Reason
    /// For logs and `explain`: the IP setting or device the decision rests on.
    public var detail: String

    public init(answer: DialplanAnswer, reason: Reason, detail: String) {
        self.answer = answer
        self.reason = reason
        self.detail = detail
    }
}

public enum DialplanDecider {
    /// Destinations we transfer: dial-able characters only, so nothing reaches application data that
    /// FreeSWITCH would expand.
    public static func isValidDestination(_ d: String) -> Bool {
        guard !d.isEmpty, d.utf8.count <= 64 else { return false }
        return d.utf8.allSatisfy { b in
            (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a)
                || b == UInt8(ascii: "+") || b == UInt8(ascii: "*") || b == UInt8(ascii: "#")
                || b == UInt8(ascii: ".") || b == UInt8(ascii: "-") || b == UInt8(ascii: "_")
        }
    }

    public static func classify(_ request: XMLCurlRequest, policy: DialplanPolicy) throws(HostileRequest) -> DialplanQuery {
        let context = try request.firstValue("Hunt-Context", "Caller-Context") ?? ""
        guard policy.ownedContexts.contains(context) else { return .notOwned(context: context) }
        let destination = try request.firstValue("Hunt-Destination-Number", "Caller-Destination-Number") ?? ""
        let aclAuthedBy = try request.nonEmpty("variable_sip_acl_authed_by")
        let profile = try request.nonEmpty("variable_sofia_profile_name")
        if aclAuthedBy != nil || profile.map(policy.ipAuthProfiles.contains) == true {
            // The network address FreeSWITCH saw; never a SIP header (P-Accountcode etc. are spoofable).
            let source = try request.firstValue("variable_sip_network_ip", "Caller-Network-Addr") ?? ""
            return .ip(context: context, source: source, destination: destination)
        }
        if try request.value("variable_sip_authorized") == "true",
           let user = try request.nonEmpty("variable_user_name"),
           let domain = try request.nonEmpty("variable_domain_name") {
            return .digest(context: context, user: user, domain: domain, destination: destination)
        }
        return .unauthenticated(context: context, destination: destination)
    }

    /// Chooses among IP settings: among enabled settings whose network contains `source` and whose
    /// prefix begins `destination`, the longest prefix wins, then the most specific network, then the
    /// lowest id (so the answer never depends on row order).
    public static func chooseIPSetting(source: IPAddress, destination: String, candidates: [IPSettingFacts]) -> IPSettingFacts? {
        var best: IPSettingFacts?
        for c in candidates where c.enabled && c.network.contains(source) && destination.hasPrefix(c.prefix) {
            guard let b = best else { best = c; continue }
            if c.prefix.count != b.prefix.count {
                if c.prefix.count > b.prefix.count { best = c }
            } else if c.network.prefixLength != b.network.prefixLength {
                if c.network.prefixLength > b.network.prefixLength { best = c }
            } else if c.id < b.id {
                best = c
            }
        }
        return best
    }

    /// The IP path. `candidates` are the IP settings whose network may contain the source.
    public static func decideIP(context: String, source: String, destination: String,
                                candidates: [IPSettingFacts], policy: DialplanPolicy) -> DialplanDecision {
        guard let address = IPAddress(source) else {
            return reject(context, .invalidSourceAddress, "source \(source.isEmpty ? "missing" : "not an address")")
        }
        guard isValidDestination(destination) else {
            return reject(context, .invalidDestination, "destination not dial-able")
        }
        guard let setting = chooseIPSetting(source: address, destination: destination, candidates: candidates) else {
            return reject(context, .noIPMatch, "no enabled IP setting for \(address.description) with a prefix of the destination")
        }
        var text = TextBuilder(capacity: 96 + setting.name.utf8.count + setting.prefix.utf8.count)
        text.add("ip_setting="); text.add(setting.id)
        text.add(" name="); text.add(setting.name)
        text.add(" network="); text.add(setting.network.description)
        text.add(" prefix="); text.add(setting.prefix)
        text.add(" account="); text.add(setting.account.number)
        let detail = text.string
        if let refusal = AccountGate.standing(setting.account) ?? AccountGate.funds(setting.account) {
            return reject(context, refusal, detail)
        }
        var dest = destination
        if setting.stripPrefix && !setting.prefix.isEmpty {
            dest = String(destination.dropFirst(setting.prefix.count))
            if dest.isEmpty { return reject(context, .invalidDestination, detail + " (empty after strip)") }
        }
        if let refusal = screen(context, dest, setting.account, detail) { return refusal }
        let allowance = DialplanAllowance(
            account: setting.account, method: "ip", ipSettingID: setting.id, deviceID: nil, destination: dest,
            callerIDName: nil, callerIDNumber: nil, routingContext: policy.routingContext, limitRealm: policy.limitRealm,
            globalLimits: policy.callLimits == .global, ipSettingCPS: setting.maxCPS)
        return DialplanDecision(answer: .allow(context: context, allowance), reason: .ok, detail: detail)
    }

    /// The digest path: the device FreeSWITCH just authenticated.
    public static func decideDigest(context: String, destination: String, device: DeviceFacts?,
                                    policy: DialplanPolicy) -> DialplanDecision {
        guard let device else { return reject(context, .unknownUser, "device not found") }
        var text = TextBuilder(capacity: 64 + device.username.utf8.count + device.realm.utf8.count)
        text.add("device="); text.add(device.id)
        text.add(" user="); text.add(device.username); text.add("@"); text.add(device.realm)
        text.add(" account="); text.add(device.account.number)
        let detail = text.string
        guard device.enabled else { return reject(context, .deviceDisabled, detail) }
        guard isValidDestination(destination) else { return reject(context, .invalidDestination, detail) }
        if let refusal = AccountGate.standing(device.account) ?? AccountGate.funds(device.account) {
            return reject(context, refusal, detail)
        }
        if let refusal = screen(context, destination, device.account, detail) { return refusal }
        let allowance = DialplanAllowance(
            account: device.account, method: "digest", ipSettingID: nil, deviceID: device.id, destination: destination,
            callerIDName: device.callerIDName.isEmpty ? nil : device.callerIDName,
            callerIDNumber: device.callerIDNumber.isEmpty ? nil : device.callerIDNumber,
            routingContext: policy.routingContext, limitRealm: policy.limitRealm, globalLimits: policy.callLimits == .global)
        return DialplanDecision(answer: .allow(context: context, allowance), reason: .ok, detail: detail)
    }

    /// The destination lists (global and the account's) on the destination as routed; nil: allowed.
    static func screen(_ context: String, _ destination: String, _ account: AccountFacts, _ detail: String) -> DialplanDecision? {
        guard !account.destinationRules.isEmpty else { return nil }
        switch DestinationScreen.verdict(destination: destination, rules: account.destinationRules) {
        case .allowed: return nil
        case .denied(let rule): return reject(context, .destinationDenied, detail + " destination rule: " + rule.summary)
        case .notAllowed: return reject(context, .destinationNotAllowed, detail + " destination: none of the account's allow rules begins it")
        }
    }

    /// A channel's Unique-ID or a switch's Core-UUID as FreeSWITCH writes them: what a slot may be keyed by.
    public static func isValidUUID(_ s: String) -> Bool {
        !s.isEmpty && s.utf8.count <= 64 && s.utf8.allSatisfy { b in
            (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a) || b == UInt8(ascii: "-")
        }
    }

    /// What an allowed call must be admitted against in the shared database; nil when nothing is
    /// counted there (limits per switch, or an account and IP setting without limits). A call that
    /// needs a slot but names no usable Unique-ID or Core-UUID is refused: its slot could never be
    /// released.
    public static func admission(for decision: DialplanDecision, uniqueID: String?, coreUUID: String?) -> AdmissionNeed {
        guard case let .allow(context, a) = decision.answer, a.globalLimits else { return .none }
        let fraud = FraudCheck.applicable(a.account.fraudThresholds, destination: a.destination)
        guard a.account.maxChannels > 0 || a.account.maxCPS > 0 || a.ipSettingCPS > 0 || !fraud.isEmpty else { return .none }
        guard let uniqueID, isValidUUID(uniqueID), let coreUUID, isValidUUID(coreUUID) else {
            return .refuse(reject(context, .hostileRequest, decision.detail + " (no usable Unique-ID or Core-UUID for the call's slot)"))
        }
        // Concurrent calls are counted from slots: any such threshold of the account keeps one per call.
        let track = a.account.fraudThresholds.contains { $0.metric == .concurrentCalls }
        return .admit(CallAdmission(uniqueID: uniqueID, coreUUID: coreUUID, accountID: a.account.id,
                                      maxChannels: a.account.maxChannels, accountCPS: a.account.maxCPS,
                                      ipSettingID: a.ipSettingID, ipSettingCPS: a.ipSettingCPS,
                                      destination: a.destination, trackChannels: track, fraudThresholds: fraud))
    }

    /// The decision once the shared counters have spoken: unchanged when admitted, else refused
    /// with the limit's reason.
    public static func admitted(_ decision: DialplanDecision, _ verdict: AdmissionVerdict,
                                fraud: [FraudCrossing] = []) -> DialplanDecision {
        guard case let .allow(context, a) = decision.answer else { return decision }
        if let critical = fraud.first(where: { $0.level == .critical }) {
            return reject(context, .fraudCritical, decision.detail + " fraud: \(critical.threshold.metric.rawValue) \(critical.value) > \(critical.levelValue), account suspended")
        }
        switch verdict {
        case .admitted(let n):
            var d = decision
            if a.account.maxChannels > 0 { d.detail += " channels=\(n)/\(a.account.maxChannels)" }
            return d
        case .alreadyHeld:
            return decision
        case .channelLimit(let n):
            return reject(context, .channelLimit, decision.detail + " channels=\(n)/\(a.account.maxChannels)")
        case .cpsLimit(let ipSetting):
            return reject(context, .cpsLimit, decision.detail + (ipSetting
                ? " cps: the IP setting's \(a.ipSettingCPS)/s" : " cps: the account's \(a.account.maxCPS)/s"))
        }
    }

    public static func reject(_ context: String, _ reason: Reason, _ detail: String) -> DialplanDecision {
        DialplanDecision(answer: .reject(context: context, SIPRejection.forReason(reason)), reason: reason, detail: detail)
    }
}

extension DialplanQuery {
    /// The context the lookup asks for; every answer names it.
    public var context: String {
        switch self {
        case .notOwned(let c), .ip(let c, _, _), .digest(let c, _, _, _), .unauthenticated(let c, _): return c
        }
    }
}
