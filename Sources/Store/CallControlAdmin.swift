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
        guard r.affectedRows == 1 else { throw AdminError.notFound("unknown destination rule \(id)") }
    }

    /// The global rules and every account's (`account` nil), or the rules that apply to one account
    /// (its own and the global ones): the CLI's table of the typed rows the console and the API use.
    public func listDestinationRules(account: String?) throws -> Table {
        Table(columns: ["id", "account", "action", "prefix", "note"],
              rows: try destinationRules(account: account).map { [String($0.id), $0.account ?? "(global)", $0.action, $0.prefix, $0.note] })
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
        guard r.affectedRows == 1 else { throw AdminError.notFound("unknown fraud threshold \(id)") }
    }

    /// The CLI's table of the typed rows the console and the API use.
    public func listFraudThresholds(account: String?) throws -> Table {
        Table(columns: ["id", "account", "metric", "prefix", "warning", "critical"],
              rows: try fraudThresholds(account: account).map {
                  [String($0.id), $0.account, $0.metric, $0.prefix, $0.warning.map(String.init) ?? "", $0.critical.map(String.init) ?? ""]
              })
    }

    /// Levels passed, newest first (the CLI's table of the typed rows).
    public func listFraudEvents(account: String?, limit: Int = 100) throws -> Table {
        Table(columns: ["id", "at", "account", "metric", "prefix", "level", "value", "level_value", "unique_id"],
              rows: try fraudEvents(account: account, limit: limit).map {
                  [String($0.id), $0.at, $0.account, $0.metric, $0.prefix, $0.level, String($0.value), String($0.levelValue), $0.uniqueID]
              })
    }
}

/// The call controls' typed rows: what the console's pages read and the JSON API serves (the
/// CLI's `--json` keeps its own table output; these carry the same columns with JSON types).
public struct DestinationRuleRow: Sendable, Codable, Equatable {
    public var id: Int64
    /// The account's number, or nil for a global rule (every account).
    public var account: String?
    public var action: String
    public var prefix: String
    public var note: String
    public var createdAt: String
    enum CodingKeys: String, CodingKey { case id, account, action, prefix, note, createdAt = "created_at" }

    /// A global rule says so with null (not a missing key).
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(account, forKey: .account)
        try c.encode(action, forKey: .action)
        try c.encode(prefix, forKey: .prefix)
        try c.encode(note, forKey: .note)
        try c.encode(createdAt, forKey: .createdAt)
    }
}

public struct FraudThresholdRow: Sendable, Codable, Equatable {
    public var id: Int64
    public var account: String
    public var metric: String
    /// '' = every destination.
    public var prefix: String
    public var warning: Int?
    public var critical: Int?
    public var createdAt: String
    enum CodingKeys: String, CodingKey { case id, account, metric, prefix, warning, critical, createdAt = "created_at" }

    /// A level not set is null (not a missing key).
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(account, forKey: .account)
        try c.encode(metric, forKey: .metric)
        try c.encode(prefix, forKey: .prefix)
        try c.encode(warning, forKey: .warning)
        try c.encode(critical, forKey: .critical)
        try c.encode(createdAt, forKey: .createdAt)
    }
}

public struct FraudEventRow: Sendable, Codable, Equatable {
    public var id: Int64
    public var at: String
    public var account: String
    public var metric: String
    public var prefix: String
    /// warning or critical.
    public var level: String
    /// What was counted, and the level it passed.
    public var value: Int
    public var levelValue: Int
    /// The call that passed it.
    public var uniqueID: String
    enum CodingKeys: String, CodingKey {
        case id, at, account, metric, prefix, level, value
        case levelValue = "level_value", uniqueID = "unique_id"
    }
}

extension Admin {
    static let utc = #"'YYYY-MM-DD"T"HH24:MI:SS"Z"'"#

    /// Every rule (`account` nil: the global ones first, then each account's by number), or the
    /// rules that apply to one account (its own and the global ones).
    public func destinationRules(account: String?) throws -> [DestinationRuleRow] {
        let owner = try account.map { try self.accountID($0) }
        let r = try db.execute("""
            SELECT r.id, a.number, r.action, r.prefix, r.note, to_char(r.created_at AT TIME ZONE 'UTC', \(Self.utc))
              FROM destination_rules r LEFT JOIN accounts a ON a.id = r.account_id
             WHERE $1::bigint IS NULL OR r.account_id = $1::bigint OR r.account_id IS NULL
             ORDER BY a.number NULLS FIRST, r.prefix
            """, [owner.map(String.init)])
        return try (0..<r.rowCount).map { i in
            DestinationRuleRow(id: try r.decode(i, 0), account: r.string(i, 1), action: try r.decode(i, 2), prefix: try r.decode(i, 3),
                               note: try r.decode(i, 4), createdAt: try r.decode(i, 5))
        }
    }

    public func destinationRule(id: Int64) throws -> DestinationRuleRow {
        let r = try db.execute("""
            SELECT r.id, a.number, r.action, r.prefix, r.note, to_char(r.created_at AT TIME ZONE 'UTC', \(Self.utc))
              FROM destination_rules r LEFT JOIN accounts a ON a.id = r.account_id WHERE r.id = $1::bigint
            """, [String(id)])
        guard r.rowCount == 1 else { throw AdminError.notFound("unknown destination rule \(id)") }
        return DestinationRuleRow(id: try r.decode(0, 0), account: r.string(0, 1), action: try r.decode(0, 2), prefix: try r.decode(0, 3),
                                  note: try r.decode(0, 4), createdAt: try r.decode(0, 5))
    }

    static let thresholdSelect = """
        SELECT f.id, a.number, f.metric, f.prefix, f.warning::text, f.critical::text, to_char(f.created_at AT TIME ZONE 'UTC', \(utc))
          FROM fraud_thresholds f JOIN accounts a ON a.id = f.account_id
        """

    func thresholdRows(_ r: QueryResult) throws -> [FraudThresholdRow] {
        try (0..<r.rowCount).map { i in
            FraudThresholdRow(id: try r.decode(i, 0), account: try r.decode(i, 1), metric: try r.decode(i, 2), prefix: try r.decode(i, 3),
                              warning: r.string(i, 4).flatMap { Int($0) }, critical: r.string(i, 5).flatMap { Int($0) }, createdAt: try r.decode(i, 6))
        }
    }

    /// Every account's thresholds (`account` nil), or one account's, by metric and prefix.
    public func fraudThresholds(account: String?) throws -> [FraudThresholdRow] {
        let owner = try account.map { try self.accountID($0) }
        return try thresholdRows(try db.execute(Self.thresholdSelect + " WHERE $1::bigint IS NULL OR f.account_id = $1::bigint ORDER BY a.number, f.metric, f.prefix",
                                                [owner.map(String.init)]))
    }

    public func fraudThreshold(id: Int64) throws -> FraudThresholdRow {
        guard let t = try thresholdRows(try db.execute(Self.thresholdSelect + " WHERE f.id = $1::bigint", [String(id)])).first else {
            throw AdminError.notFound("unknown fraud threshold \(id)")
        }
        return t
    }

    /// Levels passed, newest first (every account's, or one account's).
    public func fraudEvents(account: String?, limit: Int = 100) throws -> [FraudEventRow] {
        let owner = try account.map { try self.accountID($0) }
        let r = try db.execute("""
            SELECT e.id, to_char(e.at AT TIME ZONE 'UTC', \(Self.utc)), a.number, e.metric, e.prefix, e.level, e.value, e.level_value, e.unique_id
              FROM fraud_events e JOIN accounts a ON a.id = e.account_id
             WHERE $1::bigint IS NULL OR e.account_id = $1::bigint
             ORDER BY e.id DESC LIMIT $2::int
            """, [owner.map(String.init), String(limit)])
        return try (0..<r.rowCount).map { i in
            FraudEventRow(id: try r.decode(i, 0), at: try r.decode(i, 1), account: try r.decode(i, 2), metric: try r.decode(i, 3),
                          prefix: try r.decode(i, 4), level: try r.decode(i, 5), value: try r.decode(i, 6), levelValue: try r.decode(i, 7),
                          uniqueID: try r.decode(i, 8))
        }
    }
}
