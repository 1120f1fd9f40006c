import Foundation

public enum AccountKind: String, Sendable, CaseIterable { case customer, carrier }
public enum AccountStatus: String, Sendable, CaseIterable { case active, suspended, closed }
public enum Billing: String, Sendable, CaseIterable { case prepaid, postpaid }

/// An account as the database knows it at the moment of the lookup.
public struct AccountFacts: Sendable, Equatable {
    public var id: Int64
    /// The accountcode.
    public var number: String
    public var name: String
    public var kind: AccountKind
    public var status: AccountStatus
    public var billing: Billing
    public var balance: Decimal
    public var creditLimit: Decimal
    /// 0 = unlimited.
    public var maxChannels: Int
    /// Calls per second, counted across every switch; 0 = unlimited.
    public var maxCPS: Int
    /// `expires_at` has passed (computed by the database clock).
    public var expired: Bool
    /// The destination rules that apply to its calls: the global ones and its own.
    public var destinationRules: [DestinationRule]
    /// Its fraud thresholds.
    public var fraudThresholds: [FraudThreshold]

    public init(id: Int64, number: String, name: String = "", kind: AccountKind = .customer,
                status: AccountStatus = .active, billing: Billing = .prepaid, balance: Decimal = 10,
                creditLimit: Decimal = 0, maxChannels: Int = 0, maxCPS: Int = 0, expired: Bool = false,
                destinationRules: [DestinationRule] = [], fraudThresholds: [FraudThreshold] = []) {
        self.id = id
        self.number = number
        self.name = name
        self.kind = kind
        self.status = status
        self.billing = billing
        self.balance = balance
        self.creditLimit = creditLimit
        self.maxChannels = maxChannels
        self.maxCPS = maxCPS
        self.expired = expired
        self.destinationRules = destinationRules
        self.fraudThresholds = fraudThresholds
    }
}

/// A SIP device with its account.
public struct DeviceFacts: Sendable, Equatable {
    public var id: Int64
    public var username: String
    /// The domain's primary name: the realm the HA1s were computed over.
    public var realm: String
    public var enabled: Bool
    public var ha1MD5: String
    public var ha1SHA256: String
    public var callerIDName: String
    public var callerIDNumber: String
    public var account: AccountFacts

    public init(id: Int64, username: String, realm: String, enabled: Bool = true, ha1MD5: String,
                ha1SHA256: String, callerIDName: String = "", callerIDNumber: String = "", account: AccountFacts) {
        self.id = id
        self.username = username
        self.realm = realm
        self.enabled = enabled
        self.ha1MD5 = ha1MD5
        self.ha1SHA256 = ha1SHA256
        self.callerIDName = callerIDName
        self.callerIDNumber = callerIDNumber
        self.account = account
    }
}

/// One IP setting whose network may contain the caller's address, with its account.
public struct IPSettingFacts: Sendable, Equatable {
    public var id: Int64
    public var name: String
    public var network: IPNetwork
    public var prefix: String
    public var stripPrefix: Bool
    public var enabled: Bool
    /// Calls per second from this setting, counted across every switch; 0 = unlimited.
    public var maxCPS: Int
    public var account: AccountFacts

    public init(id: Int64, name: String, network: IPNetwork, prefix: String, stripPrefix: Bool = false,
                enabled: Bool = true, maxCPS: Int = 0, account: AccountFacts) {
        self.id = id
        self.name = name
        self.network = network
        self.prefix = prefix
        self.stripPrefix = stripPrefix
        self.enabled = enabled
        self.maxCPS = maxCPS
        self.account = account
    }
}

/// What the facts source (the database or the memory copy) says about user@domain, and the lockout state of the source, the user and the pair.
public struct DirectoryFactsResult: Sendable, Equatable {
    public var domainKnown: Bool
    public var device: DeviceFacts?
    public var lockout: LockoutFacts

    public init(domainKnown: Bool, device: DeviceFacts?, lockout: LockoutFacts) {
        self.domainKnown = domainKnown
        self.device = device
        self.lockout = lockout
    }
}
