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

/// Fraud thresholds (migration 0009).
extension Admin {
    /// Sets (adds or replaces) the account's threshold for `metric` on `prefix`. Returns its id.
    @discardableResult
    public func setFraudThreshold(account: String, metric: FraudThreshold.Metric, prefix: String, warning: Int?, critical: Int?) throws -> Int64 {
        guard prefix.isEmpty || DestinationRule.isValidPrefix(prefix) else {
            throw AdminError("fraud threshold prefix must be empty (every destination) or 1-32 of 0-9 + * #: \(prefix)")
        }
        guard warning != nil || critical != nil else { throw AdminError("give --warning, --critical or both") }
        if let w = warning, w < 1 { throw AdminError("--warning must be 1 or more") }
        if let c = critical, c < 1 { throw AdminError("--critical must be 1 or more") }
        if let w = warning, let c = critical, w >= c { throw AdminError("--warning (\(w)) must be below --critical (\(c))") }
        let owner = try self.accountID(account)
        return try db.execute("""
            INSERT INTO fraud_thresholds (account_id, prefix, metric, warning, critical) VALUES ($1::bigint, $2, $3, $4::int, $5::int)
            ON CONFLICT (account_id, prefix, metric) DO UPDATE SET warning = EXCLUDED.warning, critical = EXCLUDED.critical
            RETURNING id
            """, [String(owner), prefix, metric.rawValue, warning.map(String.init), critical.map(String.init)]).decode(0, 0)
    }

    public func removeFraudThreshold(id: Int64) throws {
        let r = try db.execute("DELETE FROM fraud_thresholds WHERE id = $1::bigint", [String(id)])
        guard r.affectedRows == 1 else { throw AdminError("unknown fraud threshold \(id)") }
    }

    public func listFraudThresholds(account: String?) throws -> Table {
        let owner = try account.map { try self.accountID($0) }
        return Table.from(try db.execute("""
            SELECT f.id, a.number AS account, f.metric, f.prefix, coalesce(f.warning::text, '') AS warning,
                   coalesce(f.critical::text, '') AS critical
              FROM fraud_thresholds f JOIN accounts a ON a.id = f.account_id
             WHERE $1::bigint IS NULL OR f.account_id = $1::bigint
             ORDER BY a.number, f.metric, f.prefix
            """, [owner.map(String.init)]))
    }

    /// Levels passed, newest first.
    public func listFraudEvents(account: String?, limit: Int = 100) throws -> Table {
        let owner = try account.map { try self.accountID($0) }
        return Table.from(try db.execute("""
            SELECT e.id, to_char(e.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS at, a.number AS account, e.metric, e.prefix,
                   e.level, e.value, e.level_value, e.unique_id
              FROM fraud_events e JOIN accounts a ON a.id = e.account_id
             WHERE $1::bigint IS NULL OR e.account_id = $1::bigint
             ORDER BY e.id DESC LIMIT $2::int
            """, [owner.map(String.init), String(limit)]))
    }
}
