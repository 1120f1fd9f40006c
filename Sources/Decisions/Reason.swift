/// Why a decision came out as it did. Every decision logs exactly one of these.
public enum Reason: String, Sendable, Equatable, CaseIterable {
    // Granted
    case ok
    // Request level
    case hostileRequest = "hostile_request"
    case notOwned = "not_owned"
    case unsupported
    // Directory
    case unknownDomain = "unknown_domain"
    case unknownUser = "unknown_user"
    case deviceDisabled = "device_disabled"
    case digestMismatch = "digest_mismatch"
    case digestUnverifiable = "digest_unverifiable"
    case realmMismatch = "realm_mismatch"
    case lockedOutIP = "locked_out_ip"
    case lockedOutUser = "locked_out_user"
    case lockedOutSourceUser = "locked_out_source_user"
    // Account gates (directory and dialplan)
    case accountSuspended = "account_suspended"
    case accountClosed = "account_closed"
    case accountExpired = "account_expired"
    case insufficientBalance = "insufficient_balance"
    // Dialplan
    case noIPMatch = "no_ip_match"
    case invalidSourceAddress = "invalid_source_address"
    case invalidDestination = "invalid_destination"
    case unauthenticated
    // Call controls, counted across every switch (dialplan)
    case channelLimit = "channel_limit"
    case cpsLimit = "cps_limit"
    case destinationDenied = "destination_denied"
    case destinationNotAllowed = "destination_not_allowed"
    /// A critical fraud threshold was passed: the account is suspended, the call refused.
    case fraudCritical = "fraud_critical"
    // Infrastructure
    case databaseUnavailable = "database_unavailable"
}

/// A SIP rejection sent with FreeSWITCH's `respond` application.
public struct SIPRejection: Sendable, Equatable {
    public var code: Int
    public var phrase: String

    public static let forbidden = SIPRejection(code: 403, phrase: "Forbidden")
    public static let paymentRequired = SIPRejection(code: 402, phrase: "Payment Required")
    public static let notFound = SIPRejection(code: 404, phrase: "Not Found")
    public static let unavailable = SIPRejection(code: 503, phrase: "Service Unavailable")
    public static let busyHere = SIPRejection(code: 486, phrase: "Busy Here")

    /// The SIP answer for each dialplan rejection reason (documented in the README).
    public static func forReason(_ reason: Reason) -> SIPRejection {
        switch reason {
        case .insufficientBalance: return .paymentRequired
        case .invalidDestination: return .notFound
        case .databaseUnavailable: return .unavailable
        case .channelLimit: return .busyHere
        // Calls per second: try again shortly (RFC 3261 21.5.4; what overload control answers).
        case .cpsLimit: return .unavailable
        default: return .forbidden
        }
    }
}

/// The gates every account passes before it may register or call: status, expiry and (for calls) balance.
public enum AccountGate {
    /// Status and expiry: a suspended, closed or expired account neither registers nor calls.
    public static func standing(_ account: AccountFacts) -> Reason? {
        switch account.status {
        case .suspended: return .accountSuspended
        case .closed: return .accountClosed
        case .active: break
        }
        if account.expired { return .accountExpired }
        return nil
    }

    /// Balance for calls. Carriers bring origination traffic and are not balance-gated.
    /// Prepaid: balance must be above zero. Postpaid: balance + credit limit must be above zero.
    public static func funds(_ account: AccountFacts) -> Reason? {
        guard account.kind == .customer else { return nil }
        switch account.billing {
        case .prepaid:
            return account.balance > 0 ? nil : .insufficientBalance
        case .postpaid:
            // balance + credit > 0, without a Decimal addition per call (negation flips a sign bit).
            return account.balance > -account.creditLimit ? nil : .insufficientBalance
        }
    }
}
