/// The brute-force policy (README, "Lockouts"). Failed digests are counted in three budgets, each
/// within `windowSeconds` and each locking for `lockSeconds` once spent:
///
/// - per **source and user** (`threshold`, 10): what one source may guess against one user. It
///   applies to every source, also one the user authenticated from: guessing is always bounded.
/// - per **source** (`sourceThreshold`, 100): every failure from one source, unknown users
///   included (a source spraying many users or inventing names).
/// - per **user** (`userThreshold`, 100): every failure against one user, from all sources
///   together (a guess spread over many addresses).
///
/// The source and user locks do not apply to a source from which the user authenticated within
/// `trustSeconds` (OWASP's answer to lockout as denial of service): an attacker elsewhere cannot
/// lock a customer's registered devices out, and a device that keeps failing behind a customer's
/// NAT address does not lock the devices that work. A source is an IPv4 address or an IPv6 /64
/// (one customer's LAN). A success never resets a counter: what an attacker spent stays spent.
public struct LockoutPolicy: Sendable, Equatable {
    /// Failures per (source, user) within the window that lock that pair.
    public var threshold: Int
    /// Failures per source within the window that lock the source (except for users it is trusted for).
    public var sourceThreshold: Int
    /// Failures per user within the window that lock the user (except from sources trusted for it).
    public var userThreshold: Int
    public var windowSeconds: Int
    public var lockSeconds: Int
    /// How long a success from a source keeps that source trusted for that user.
    public var trustSeconds: Int
    /// A success refreshes the trust record only when it is older than this (no write per REGISTER).
    public var trustRefreshSeconds: Int

    public init(threshold: Int = 10, sourceThreshold: Int = 100, userThreshold: Int = 100, windowSeconds: Int = 300,
                lockSeconds: Int = 900, trustSeconds: Int = 30 * 86_400, trustRefreshSeconds: Int = 3_600) {
        self.threshold = threshold
        self.sourceThreshold = sourceThreshold
        self.userThreshold = userThreshold
        self.windowSeconds = windowSeconds
        self.lockSeconds = lockSeconds
        self.trustSeconds = trustSeconds
        self.trustRefreshSeconds = trustRefreshSeconds
    }

    /// The budget of a counter scope.
    public func threshold(for scope: LockoutScope) -> Int {
        switch scope {
        case .pair: return threshold
        case .source: return sourceThreshold
        case .user: return userThreshold
        }
    }
}

/// What a failure counter counts. The raw values are the `auth_failures.scope` column.
public enum LockoutScope: String, Sendable, CaseIterable, Comparable {
    /// One source (IPv4 address or IPv6 /64).
    case source = "ip"
    /// One user@realm, from every source.
    case user = "user"
    /// One source against one user@realm.
    case pair = "pair"

    /// How operators read it (`switchauth lockouts`, `/metrics`).
    public var label: String {
        switch self {
        case .source: return "source"
        case .user: return "user"
        case .pair: return "source_user"
        }
    }

    public static func < (a: LockoutScope, b: LockoutScope) -> Bool { a.rawValue < b.rawValue }
}

/// How counters are keyed.
public enum LockoutKeys {
    /// The source a failure is counted against: the IPv4 address, or the /64 of an IPv6 address
    /// (an attacker with one /64 has 2^64 addresses; a customer's LAN is one /64).
    public static func source(_ ip: IPAddress) -> String {
        guard !ip.isIPv4 else { return ip.description }
        let network = IPAddress(high: ip.high, low: 0)
        return network.description + "/64"
    }

    /// The source of a request's `ip` field; nil when absent or not an address.
    public static func source(_ text: String?) -> String? {
        text.flatMap(IPAddress.init).map(source)
    }

    /// What lookups without a usable `ip` field (absent, or not an address) are counted and locked
    /// against: one shared source. FreeSWITCH always sends `ip`; a request without one is not the
    /// switch's, so it may not escape the per-source budget, and it never earns trust.
    public static let unknownSource = "unknown"

    /// The source a request's failures count against: its `ip`'s source, else `unknownSource`.
    public static func countedSource(_ text: String?) -> String { source(text) ?? unknownSource }

    /// The (source, user) counter's subject. Neither part can contain `|`.
    public static func pair(source: String, user: String) -> String { "\(source)|\(user)" }

    /// A user's counter subject: `username@realm`, the realm (the domain's primary name) in lower
    /// case, so that an alias or a different spelling of the domain counts against the same user.
    public static func user(_ username: String, realm: String) -> String { username + "@" + realm.lowercasedIfNeeded }
}

/// Lockout state for the subjects of a sip_auth lookup.
public struct LockoutFacts: Sendable, Equatable {
    /// The source is over its budget.
    public var sourceLocked: Bool
    /// The user is over its budget.
    public var userLocked: Bool
    /// This source is over its budget for this user.
    public var pairLocked: Bool
    /// Seconds since the user last authenticated from this source; nil = never (or long ago).
    public var secondsSinceSuccess: Int?

    public init(sourceLocked: Bool = false, userLocked: Bool = false, pairLocked: Bool = false, secondsSinceSuccess: Int? = nil) {
        self.sourceLocked = sourceLocked
        self.userLocked = userLocked
        self.pairLocked = pairLocked
        self.secondsSinceSuccess = secondsSinceSuccess
    }

    public static let none = LockoutFacts()
}

/// Which lock, if any, refuses an attempt: pure, over the facts and the policy.
public enum LockoutDecider {
    /// The user authenticated from this source recently enough to be exempt from the source and user locks.
    public static func trusted(_ facts: LockoutFacts, _ policy: LockoutPolicy) -> Bool {
        guard let s = facts.secondsSinceSuccess else { return false }
        return s <= policy.trustSeconds
    }

    /// The refusal for an attempt by a known user, or nil when it may be checked.
    public static func refusal(_ facts: LockoutFacts, _ policy: LockoutPolicy) -> Reason? {
        if facts.pairLocked { return .lockedOutSourceUser }
        let trusted = trusted(facts, policy)
        if facts.sourceLocked && !trusted { return .lockedOutIP }
        if facts.userLocked && !trusted { return .lockedOutUser }
        return nil
    }

    /// After a success: whether the trust record must be written (absent or older than the refresh interval).
    public static func shouldRecordSuccess(_ facts: LockoutFacts, _ policy: LockoutPolicy) -> Bool {
        guard let s = facts.secondsSinceSuccess else { return true }
        return s > policy.trustRefreshSeconds
    }
}
