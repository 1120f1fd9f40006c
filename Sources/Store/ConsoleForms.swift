import Decisions
import Foundation

/// One refusal of one input field, in the words `Admin` uses for it.
public struct FieldProblem: Sendable, Equatable {
    public var field: String
    public var message: String
    public init(_ field: String, _ message: String) {
        self.field = field
        self.message = message
    }
}

/// Every refusal of a form at once (`Admin`'s own checks stop at the first): the console shows each
/// next to its field. The messages are `Admin`'s, so the CLI, the API and the forms say the same.
extension Admin {
    public static func problems(_ a: AccountInput) -> [FieldProblem] {
        var p: [FieldProblem] = []
        if !validAccountNumber(a.number) { p.append(.init("number", "account number must be 1-40 of A-Z a-z 0-9 _ . -: \(a.number)")) }
        if a.name.isEmpty || a.name.count > 200 { p.append(.init("name", "account name must be 1-200 characters")) }
        if !validDecimal(a.balance) { p.append(.init("balance", "balance must be a decimal number: \(a.balance)")) }
        if !validDecimal(a.creditLimit) || a.creditLimit.hasPrefix("-") { p.append(.init("credit_limit", "credit limit must be a non-negative decimal number")) }
        if a.maxChannels < 0 { p.append(.init("max_channels", "max channels must be 0 (unlimited) or more")) }
        if a.maxCPS < 0 { p.append(.init("max_cps", "max calls per second must be 0 (unlimited) or more")) }
        return p
    }

    public static func problems(_ u: AccountUpdate) -> [FieldProblem] {
        var p: [FieldProblem] = []
        if let n = u.name, n.isEmpty || n.count > 200 { p.append(.init("name", "account name must be 1-200 characters")) }
        if let c = u.creditLimit, !validDecimal(c) || c.hasPrefix("-") { p.append(.init("credit_limit", "credit limit must be a non-negative decimal number")) }
        if let m = u.maxChannels, m < 0 { p.append(.init("max_channels", "max channels must be 0 (unlimited) or more")) }
        if let m = u.maxCPS, m < 0 { p.append(.init("max_cps", "max calls per second must be 0 (unlimited) or more")) }
        return p
    }

    public static func ipProblems(name: String?, network: String?, prefix: String?, maxCPS: Int? = nil) -> [FieldProblem] {
        var p: [FieldProblem] = []
        if let maxCPS, maxCPS < 0 { p.append(.init("max_cps", "max calls per second must be 0 (unlimited) or more")) }
        if let name, name.isEmpty || name.count > 200 { p.append(.init("name", "IP setting name must be 1-200 characters")) }
        if let network, IPNetwork(network) == nil {
            p.append(.init("network", "invalid IP or CIDR: \(network) (a bare address is one host; a network must have its host bits zero, e.g. 203.0.113.0/24)"))
        }
        if let prefix, !validPrefix(prefix) { p.append(.init("prefix", "prefix must be digits only (at most 32), or empty for any destination: \(prefix)")) }
        return p
    }

    public static func problems(_ d: DeviceInput) -> [FieldProblem] {
        var p: [FieldProblem] = []
        if !validUsername(d.username) { p.append(.init("username", "username must be 1-64 of A-Z a-z 0-9 _ . - +: \(d.username)")) }
        if d.domain.isEmpty { p.append(.init("domain", "choose a domain")) }
        do { try checkPassword(d.password) } catch let e as AdminError { p.append(.init("password", e.message)) } catch {}
        if d.callerIDName.count > 100 || d.callerIDName.unicodeScalars.contains(where: { $0.value < 32 }) {
            p.append(.init("caller_id_name", "caller ID name must be at most 100 printable characters"))
        }
        let n = d.callerIDNumber
        if !(n.isEmpty || (n.count <= 33 && DialplanDecider.isValidDestination(n) && n.dropFirst(n.hasPrefix("+") ? 1 : 0).allSatisfy(\.isNumber))) {
            p.append(.init("caller_id_number", "caller ID number must be digits, optionally with a leading +"))
        }
        return p
    }

    /// A destination rule's form (`addDestinationRule`'s checks, every one at once).
    public static func destinationRuleProblems(prefix: String, note: String) -> [FieldProblem] {
        var p: [FieldProblem] = []
        if !DestinationRule.isValidPrefix(prefix) { p.append(.init("prefix", "destination prefix must be 1-32 of 0-9 + * #: \(prefix)")) }
        if note.count > 200 { p.append(.init("note", "note must be at most 200 characters")) }
        return p
    }

    /// A fraud threshold's form (`setFraudThreshold`'s checks, in the form's words: its fields are
    /// warning and critical, not the CLI's --warning and --critical).
    public static func fraudThresholdProblems(prefix: String, warning: Int?, critical: Int?) -> [FieldProblem] {
        var p: [FieldProblem] = []
        if !(prefix.isEmpty || DestinationRule.isValidPrefix(prefix)) {
            p.append(.init("prefix", "fraud threshold prefix must be empty (every destination) or 1-32 of 0-9 + * #: \(prefix)"))
        }
        if warning == nil && critical == nil { p.append(.init("warning", "give a warning level, a critical level or both")) }
        if let w = warning, w < 1 { p.append(.init("warning", "warning must be 1 or more")) }
        if let c = critical, c < 1 { p.append(.init("critical", "critical must be 1 or more")) }
        if let w = warning, let c = critical, w >= 1, c >= 1, w >= c { p.append(.init("warning", "warning (\(w)) must be below critical (\(c))")) }
        return p
    }

    public static func amountProblems(_ amount: String) -> [FieldProblem] {
        let v = amount.hasPrefix("+") ? String(amount.dropFirst()) : amount
        return validDecimal(v) ? [] : [.init("amount", "amount must be a decimal number: \(amount)")]
    }

    /// The field an `AdminError` from a write is about (a duplicate, an unknown domain, a value the
    /// database refused), or nil when it is about the whole form.
    public static func field(of message: String) -> String? {
        let table: [(String, String)] = [
            ("account number", "number"), ("account name", "name"), ("balance", "balance"), ("credit limit", "credit_limit"),
            ("max channels", "max_channels"), ("max calls per second", "max_cps"), ("destination prefix", "prefix"),
            ("a destination rule for prefix", "prefix"), ("fraud threshold prefix", "prefix"), ("note", "note"),
            ("unknown account", "account"), ("give --warning", "warning"), ("--warning", "warning"), ("--critical", "critical"), ("invalid IP or CIDR", "network"), ("an IP setting for", "network"), ("prefix", "prefix"),
            ("IP setting name", "name"), ("username", "username"), ("device ", "username"), ("caller ID name", "caller_id_name"),
            ("caller ID number", "caller_id_number"), ("password", "password"), ("unknown domain", "domain"),
            ("invalid domain name", "name"), ("invalid alias", "alias"), ("amount", "amount"), ("idempotency", "amount"),
        ]
        if message.hasPrefix("account "), message.hasSuffix(" already exists") { return "number" }
        if message.hasPrefix("invalid value:"), message.contains("timestamp") || message.contains("time zone") || message.contains("date") { return "expires_at" }
        return table.first { message.hasPrefix($0.0) }?.1
    }
}
