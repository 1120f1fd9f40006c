/// What a directory lookup asks for, classified from the request (freeswitch-conf/PROTOCOL.md §3).
public enum DirectoryQuery: Sendable, Equatable {
    /// A REGISTER/INVITE/SUBSCRIBE/MESSAGE digest check.
    case sipAuth(SipAuthQuery)
    /// A lookup of a user without digest (no action: ACL tokens, `user_exists`; `user_call`: bridging).
    case user(user: String, domain: String, action: String?, sourceIP: String?)
    /// Something we do not serve (message-count, group_call, reverse-auth-lookup, gateways,
    /// network-list, an unknown action): answered not found.
    case unsupported(String)
}

public struct SipAuthQuery: Sendable, Equatable {
    public var user: String
    public var domain: String
    public var sourceIP: String?
    /// `nil` when a digest field is missing: the lookup cannot be verified.
    public var credentials: DigestCredentials?

    public init(user: String, domain: String, sourceIP: String?, credentials: DigestCredentials?) {
        self.user = user
        self.domain = domain
        self.sourceIP = sourceIP
        self.credentials = credentials
    }
}

/// Service settings the directory decision depends on.
public struct DirectoryPolicy: Sendable, Equatable {
    /// `user_context` given to devices: the dialplan context their calls start in.
    public var userContext: String
    /// `cacheable` in milliseconds on published users; nil = not cacheable (the default).
    public var cacheableMilliseconds: Int?
    /// Brute-force budgets and trust (README, "Lockouts").
    public var lockout: LockoutPolicy

    public init(userContext: String = "switchauth", cacheableMilliseconds: Int? = nil, lockout: LockoutPolicy = LockoutPolicy()) {
        self.userContext = userContext
        self.cacheableMilliseconds = cacheableMilliseconds
        self.lockout = lockout
    }
}

/// A user to publish in a directory answer.
public struct PublishedUser: Sendable, Equatable {
    public var id: String
    public var a1Hash: String
    public var cacheableMilliseconds: Int?
    public var variables: [Variable]

    public init(id: String, a1Hash: String, cacheableMilliseconds: Int?, variables: [Variable]) {
        self.id = id
        self.a1Hash = a1Hash
        self.cacheableMilliseconds = cacheableMilliseconds
        self.variables = variables
    }

    public struct Variable: Sendable, Equatable {
        public var name: String
        public var value: String
        public init(_ name: String, _ value: String) { self.name = name; self.value = value }
    }
}

public enum DirectoryAnswer: Sendable, Equatable {
    /// `<result status="not found"/>`: FreeSWITCH falls back to its (empty) static directory.
    case notFound
    /// The domain without the user: a final not-found (403), no static fallback.
    case domainWithoutUser(domain: String)
    case user(domain: String, PublishedUser)
}

/// What the service must record after answering.
public enum AuthEffect: Sendable, Equatable {
    case none
    /// A failed attempt from `source` (a lockout source key; nil when unknown) against `user`
    /// (user@realm; nil when the user does not exist, so that invented names are not stored).
    case countFailure(source: String?, user: String?)
    /// A verified success from `source`: the source becomes (or stays) trusted for `user`. No
    /// counter is reset.
    case recordSuccess(source: String, user: String)
    /// An allowed call to admit against the shared counters (channels, calls per second) before
    /// its answer goes out (dialplan, call_limits = global), and the decision that allowed it
    /// (the answer once admitted is built from it, not decided again).
    case admitCall(CallAdmission, DialplanDecision)
}

public struct DirectoryDecision: Sendable, Equatable {
    public var answer: DirectoryAnswer
    public var reason: Reason
    public var effect: AuthEffect
}

public enum DirectoryDecider {
    /// Classifies a directory request. Throws for the injection shapes of freeswitch-conf/PROTOCOL.md §1.
    public static func classify(_ request: XMLCurlRequest) throws(HostileRequest) -> DirectoryQuery {
        if let purpose = try request.nonEmpty("purpose") {
            return .unsupported("purpose=\(purpose)")
        }
        guard request.tagName == "domain", request.keyName == "name" else {
            return .unsupported("tag \(request.tagName)/\(request.keyName)")
        }
        let action = try request.nonEmpty("action")
        let domain = request.keyValue
        guard !domain.isEmpty else { return .unsupported("no domain") }
        if let d = try request.nonEmpty("domain"), !d.equalsIgnoringCase(domain) {
            throw HostileRequest(field: "domain", problem: "differs from key_value")
        }
        guard let user = try request.nonEmpty("user") else {
            return .unsupported("no user")
        }
        let ip = try request.nonEmpty("ip")
        switch action {
        case nil, "user_call":
            return .user(user: user, domain: domain, action: action, sourceIP: ip)
        case "sip_auth":
            var credentials: DigestCredentials?
            if let username = try request.nonEmpty("sip_auth_username"),
               let realm = try request.nonEmpty("sip_auth_realm"),
               let nonce = try request.nonEmpty("sip_auth_nonce"),
               let uri = try request.nonEmpty("sip_auth_uri"),
               let method = try request.nonEmpty("sip_auth_method"),
               let response = try request.nonEmpty("sip_auth_response") {
                credentials = DigestCredentials(
                    username: username, realm: realm, nonce: nonce, uri: uri, method: method,
                    qop: try request.nonEmpty("sip_auth_qop"), cnonce: try request.nonEmpty("sip_auth_cnonce"),
                    nc: try request.nonEmpty("sip_auth_nc"), response: response)
                if username != user {
                    throw HostileRequest(field: "sip_auth_username", problem: "differs from user")
                }
            }
            return .sipAuth(SipAuthQuery(user: user, domain: domain, sourceIP: ip, credentials: credentials))
        case let other?:
            return .unsupported("action=\(other)")
        }
    }

    /// The decision for a classified query, given what the database said.
    /// - Parameters:
    ///   - domainKnown: the requested domain is a name or alias of an enabled SIP domain.
    ///   - device: the device `user` in that domain, if any.
    ///   - lockout: lockout state of the source IP and of user@domain.
    public static func decide(_ query: DirectoryQuery, domainKnown: Bool, device: DeviceFacts?,
                              lockout: LockoutFacts, policy: DirectoryPolicy) -> DirectoryDecision {
        switch query {
        case .unsupported:
            return DirectoryDecision(answer: .notFound, reason: .unsupported, effect: .none)

        case let .user(_, domain, _, _):
            guard domainKnown else { return DirectoryDecision(answer: .notFound, reason: .unknownDomain, effect: .none) }
            guard let device else { return final(domain, .unknownUser) }
            if let refusal = deviceRefusal(device) { return final(domain, refusal) }
            return DirectoryDecision(answer: .user(domain: domain, publish(device, a1: device.ha1MD5, policy: policy)),
                                     reason: .ok, effect: .none)

        case let .sipAuth(q):
            guard domainKnown else { return DirectoryDecision(answer: .notFound, reason: .unknownDomain, effect: .none) }
            // Trust is earned by a real address only; failures without one count against `unknown`.
            let source = LockoutKeys.source(q.sourceIP)
            let counted = source ?? LockoutKeys.unknownSource
            guard let device else {
                // Unknown users count against the source only; a trusted source does not exist for them.
                if lockout.sourceLocked { return final(q.domain, .lockedOutIP) }
                return DirectoryDecision(answer: .domainWithoutUser(domain: q.domain), reason: .unknownUser,
                                         effect: .countFailure(source: counted, user: nil))
            }
            if let refusal = LockoutDecider.refusal(lockout, policy.lockout) { return final(q.domain, refusal) }
            // Counters are keyed by the realm (primary domain name), so aliases share one counter.
            let userKey = LockoutKeys.user(device.username, realm: device.realm)
            if let refusal = deviceRefusal(device) { return final(q.domain, refusal) }
            guard let credentials = q.credentials, let algorithm = credentials.algorithm else {
                return final(q.domain, .digestUnverifiable)
            }
            guard credentials.realm.equalsIgnoringCase(device.realm) else {
                return final(q.domain, .realmMismatch)
            }
            let ha1 = algorithm == .md5 ? device.ha1MD5 : device.ha1SHA256
            guard credentials.verify(ha1: ha1, algorithm: algorithm) else {
                return DirectoryDecision(answer: .domainWithoutUser(domain: q.domain), reason: .digestMismatch,
                                         effect: .countFailure(source: counted, user: userKey))
            }
            var effect = AuthEffect.none
            if let source, LockoutDecider.shouldRecordSuccess(lockout, policy.lockout) {
                effect = .recordSuccess(source: source, user: userKey)
            }
            return DirectoryDecision(answer: .user(domain: q.domain, publish(device, a1: ha1, policy: policy)),
                                     reason: .ok, effect: effect)
        }
    }

    private static func final(_ domain: String, _ reason: Reason) -> DirectoryDecision {
        DirectoryDecision(answer: .domainWithoutUser(domain: domain), reason: reason, effect: .none)
    }

    private static func deviceRefusal(_ device: DeviceFacts) -> Reason? {
        if !device.enabled { return .deviceDisabled }
        return AccountGate.standing(device.account)
    }

    static func publish(_ device: DeviceFacts, a1: String, policy: DirectoryPolicy) -> PublishedUser {
        var variables: [PublishedUser.Variable] = []
        variables.reserveCapacity(7)  // one allocation, caller ID or not
        variables.append(.init("accountcode", device.account.number))
        variables.append(.init("user_context", policy.userContext))
        variables.append(.init("switchauth_account_id", String(device.account.id)))
        variables.append(.init("switchauth_device_id", String(device.id)))
        variables.append(.init("switchauth_auth_method", "digest"))
        if !device.callerIDName.isEmpty {
            variables.append(.init("effective_caller_id_name", device.callerIDName))
        }
        if !device.callerIDNumber.isEmpty {
            variables.append(.init("effective_caller_id_number", device.callerIDNumber))
        }
        return PublishedUser(id: device.username, a1Hash: a1, cacheableMilliseconds: policy.cacheableMilliseconds,
                             variables: variables)
    }
}

extension DirectoryQuery {
    /// The domain the lookup names (empty for an unsupported request).
    public var domain: String {
        switch self {
        case .sipAuth(let q): return q.domain
        case .user(_, let domain, _, _): return domain
        case .unsupported: return ""
        }
    }

    /// The user the lookup names (empty for an unsupported request).
    public var user: String {
        switch self {
        case .sipAuth(let q): return q.user
        case .user(let user, _, _, _): return user
        case .unsupported: return ""
        }
    }

    /// The caller's address as FreeSWITCH gave it, if any.
    public var sourceIP: String? {
        switch self {
        case .sipAuth(let q): return q.sourceIP
        case .user(_, _, _, let ip): return ip
        case .unsupported: return nil
        }
    }
}
