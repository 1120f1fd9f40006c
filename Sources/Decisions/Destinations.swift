/// Destination prefix lists (README, "Call controls"): deny or allow what a call may dial, for every
/// account (global rules) or for one. Checked on the destination as it is routed (after an IP
/// setting's prefix is stripped).
public struct DestinationRule: Sendable, Equatable {
    public enum Action: String, Sendable, CaseIterable { case deny, allow }

    public var id: Int64
    /// nil: a global rule (every account).
    public var accountID: Int64?
    public var action: Action
    /// Dial-able characters, 1-32 of them (`0-9 + * #`).
    public var prefix: String
    public var note: String

    public init(id: Int64, accountID: Int64?, action: Action, prefix: String, note: String = "") {
        self.id = id
        self.accountID = accountID
        self.action = action
        self.prefix = prefix
        self.note = note
    }

    /// What the rule says, for logs and `explain`: `deny 1900 (global, rule 7: premium rate)`.
    public var summary: String {
        "\(action.rawValue) \(prefix) (\(accountID == nil ? "global" : "account"), rule \(id)\(note.isEmpty ? "" : ": \(note)"))"
    }

    public static func isValidPrefix(_ p: String) -> Bool {
        !p.isEmpty && p.utf8.count <= 32 && p.utf8.allSatisfy { b in
            (b >= 0x30 && b <= 0x39) || b == UInt8(ascii: "+") || b == UInt8(ascii: "*") || b == UInt8(ascii: "#")
        }
    }
}

/// What the lists say of one destination.
public enum DestinationVerdict: Sendable, Equatable {
    /// No rule applies, or the deciding rule allows it.
    case allowed(by: DestinationRule?)
    /// The deciding rule denies it.
    case denied(by: DestinationRule)
    /// The account lists allowed prefixes and none of them (nor a global allow) begins it.
    case notAllowed
}

public enum DestinationScreen {
    /// The rules of `rules` (global and the account's, in any order) that begin `destination` decide:
    /// the longest prefix wins; on a tie the account's rule beats a global one, and deny beats
    /// allow. With none, the call may dial it unless the account has allow rules of its own (then
    /// the account dials only what they allow).
    public static func verdict(destination: String, rules: [DestinationRule]) -> DestinationVerdict {
        var best: DestinationRule?
        var accountAllows = false
        for r in rules {
            if r.accountID != nil && r.action == .allow { accountAllows = true }
            guard destination.hasPrefix(r.prefix) else { continue }
            guard let b = best else { best = r; continue }
            let (rl, bl) = (r.prefix.utf8.count, b.prefix.utf8.count)
            if rl != bl {
                if rl > bl { best = r }
            } else if (r.accountID != nil) != (b.accountID != nil) {
                if r.accountID != nil { best = r }
            } else if r.action != b.action {
                if r.action == .deny { best = r }
            } else if r.id < b.id {
                best = r
            }
        }
        if let best {
            return best.action == .deny ? .denied(by: best) : .allowed(by: best)
        }
        return accountAllows ? .notAllowed : .allowed(by: nil)
    }
}
