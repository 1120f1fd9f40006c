import Decisions
import Postgres

/// Destination rules (migration 0009): what the CLI, the console and the API change.
extension Admin {
    /// Adds a rule for one account (`account`) or for every account (nil). Returns its id.
    @discardableResult
    public func addDestinationRule(account: String?, action: DestinationRule.Action, prefix: String, note: String = "") throws -> Int64 {
        guard DestinationRule.isValidPrefix(prefix) else {
            throw AdminError("destination prefix must be 1-32 of 0-9 + * #: \(prefix)")
        }
        guard note.count <= 200 else { throw AdminError("note must be at most 200 characters") }
        let owner = try account.map { try self.accountID($0) }
        return try mapConstraint({
            try db.execute("INSERT INTO destination_rules (account_id, action, prefix, note) VALUES ($1::bigint, $2, $3, $4) RETURNING id",
                           [owner.map(String.init), action.rawValue, prefix, note]).decode(0, 0)
        }, unique: "a destination rule for prefix \(prefix) already exists \(account.map { "for account \($0)" } ?? "globally")")
    }

    public func removeDestinationRule(id: Int64) throws {
        let r = try db.execute("DELETE FROM destination_rules WHERE id = $1::bigint", [String(id)])
        guard r.affectedRows == 1 else { throw AdminError("unknown destination rule \(id)") }
    }

    /// The global rules and every account's (`account` nil), or the rules that apply to one account
    /// (its own and the global ones).
    public func listDestinationRules(account: String?) throws -> Table {
        let owner = try account.map { try self.accountID($0) }
        return Table.from(try db.execute("""
            SELECT r.id, coalesce(a.number, '(global)') AS account, r.action, r.prefix, r.note
              FROM destination_rules r LEFT JOIN accounts a ON a.id = r.account_id
             WHERE $1::bigint IS NULL OR r.account_id = $1::bigint OR r.account_id IS NULL
             ORDER BY r.account_id NULLS FIRST, r.prefix
            """, [owner.map(String.init)]))
    }
}
