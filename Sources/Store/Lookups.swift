import Decisions
import Foundation
import Postgres

/// The account columns every lookup selects, in this order, and their decoding.
enum AccountColumns {
    static let select = """
        a.id, a.number, a.name, a.kind, a.status, a.billing, a.balance::text, a.credit_limit::text, a.max_channels,
        (a.expires_at IS NOT NULL AND a.expires_at <= now()), a.max_cps,
        (SELECT json_agg(json_build_array(r.id, r.account_id, r.action, r.prefix, r.note) ORDER BY r.id)::text
           FROM destination_rules r WHERE r.account_id IS NULL OR r.account_id = a.id),
        (SELECT json_agg(json_build_array(f.id, f.prefix, f.metric, f.warning, f.critical) ORDER BY f.id)::text
           FROM fraud_thresholds f WHERE f.account_id = a.id)
        """
    static let count = 13

    static func decode(_ r: QueryResult, _ row: Int, at c: Int) throws -> AccountFacts {
        func enumValue<E: RawRepresentable>(_ column: Int, _: E.Type) throws -> E where E.RawValue == String {
            guard let v = E(rawValue: try r.decode(row, column)) else {
                throw PostgresError(kind: .decoding, operation: "decode", message: "unexpected \(E.self)")
            }
            return v
        }
        func decimal(_ column: Int) throws -> Decimal {
            guard let d = parseNumeric(try r.decode(row, column, as: String.self)) else {
                throw PostgresError(kind: .decoding, operation: "decode", message: "bad numeric")
            }
            return d
        }
        return AccountFacts(
            id: try r.decode(row, c), number: try r.decode(row, c + 1), name: try r.decode(row, c + 2),
            kind: try enumValue(c + 3, AccountKind.self), status: try enumValue(c + 4, AccountStatus.self),
            billing: try enumValue(c + 5, Billing.self), balance: try decimal(c + 6), creditLimit: try decimal(c + 7),
            maxChannels: try r.decode(row, c + 8), maxCPS: try r.decode(row, c + 10), expired: try r.decode(row, c + 9),
            destinationRules: try rules(r.string(row, c + 11)), fraudThresholds: try fraud(r.string(row, c + 12)))
    }

    /// The thresholds' JSON (`[[id, prefix, metric, warning, critical], ...]`; NULL: none).
    static func fraud(_ json: String?) throws -> [FraudThreshold] {
        guard let json else { return [] }
        guard let rows = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [[Any]] else {
            throw PostgresError(kind: .decoding, operation: "decode", message: "bad fraud thresholds")
        }
        return try rows.map { row in
            guard row.count == 5, let id = (row[0] as? NSNumber)?.int64Value, let prefix = row[1] as? String,
                  let metric = (row[2] as? String).flatMap(FraudThreshold.Metric.init(rawValue:)) else {
                throw PostgresError(kind: .decoding, operation: "decode", message: "bad fraud threshold")
            }
            return FraudThreshold(id: id, prefix: prefix, metric: metric, warning: (row[3] as? NSNumber)?.intValue,
                                  critical: (row[4] as? NSNumber)?.intValue)
        }
    }

    /// The rules' JSON (`[[id, account_id, action, prefix, note], ...]`; NULL: none).
    static func rules(_ json: String?) throws -> [DestinationRule] {
        guard let json else { return [] }
        guard let rows = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [[Any]] else {
            throw PostgresError(kind: .decoding, operation: "decode", message: "bad destination rules")
        }
        return try rows.map { row in
            guard row.count == 5, let id = (row[0] as? NSNumber)?.int64Value,
                  let action = (row[2] as? String).flatMap(DestinationRule.Action.init(rawValue:)),
                  let prefix = row[3] as? String, let note = row[4] as? String else {
                throw PostgresError(kind: .decoding, operation: "decode", message: "bad destination rule")
            }
            return DestinationRule(id: id, accountID: (row[1] as? NSNumber)?.int64Value, action: action, prefix: prefix, note: note)
        }
    }
}

/// PostgreSQL's `numeric` text ("-123.450000") as a Decimal, without Foundation's locale-aware
/// parser (which showed up in profiles of the lookup path). Up to 18 significant digits.
public enum StoreNumeric {
    public static func parse(_ text: String) -> Decimal? { parseNumeric(text) }
}

func parseNumeric(_ text: String) -> Decimal? {
    var utf8 = Substring(text).utf8[...]
    var negative = false
    if utf8.first == UInt8(ascii: "-") { negative = true; utf8 = utf8.dropFirst() }
    var mantissa: UInt64 = 0
    var digits = 0
    var exponent = 0
    var seenPoint = false
    for b in utf8 {
        if b == UInt8(ascii: ".") {
            if seenPoint { return nil }
            seenPoint = true
            continue
        }
        guard b >= 48 && b <= 57 else { return nil }
        digits += 1
        guard digits <= 18 else { return nil }
        mantissa = mantissa * 10 + UInt64(b - 48)
        if seenPoint { exponent -= 1 }
    }
    guard digits > 0 else { return nil }
    return Decimal(sign: negative ? .minus : .plus, exponent: exponent, significand: Decimal(mantissa))
}

/// Domain resolution (primary name or alias, case-insensitive), the device and its account, and
/// lockouts, in one round trip.
public enum DirectoryLookup {
    public static let sql = """
        WITH d AS (
            SELECT id, name FROM sip_domains WHERE lower(name) = lower($1) AND enabled
            UNION ALL
            SELECT sd.id, sd.name FROM sip_domain_aliases al JOIN sip_domains sd ON sd.id = al.domain_id
             WHERE lower(al.alias) = lower($1) AND sd.enabled
            LIMIT 1
        )
        SELECT d.name, dev.id, dev.username, dev.enabled, dev.ha1_md5, dev.ha1_sha256,
               dev.caller_id_name, dev.caller_id_number,
               \(AccountColumns.select),
               EXISTS (SELECT 1 FROM auth_failures f WHERE f.scope = 'ip' AND f.subject = $3 AND f.locked_until > now()),
               EXISTS (SELECT 1 FROM auth_failures f WHERE f.scope = 'user' AND f.subject = $2 || '@' || lower(d.name) AND f.locked_until > now()),
               EXISTS (SELECT 1 FROM auth_failures f WHERE f.scope = 'pair' AND f.subject = $3 || '|' || $2 || '@' || lower(d.name) AND f.locked_until > now()),
               (SELECT floor(extract(epoch FROM now() - t.last_success))::int FROM auth_trusted_sources t
                 WHERE t.subject = $2 || '@' || lower(d.name) AND t.source = $3)
          FROM d
          LEFT JOIN sip_devices dev ON dev.domain_id = d.id AND dev.username = $2
          LEFT JOIN accounts a ON a.id = dev.account_id
        """

    /// - Parameter source: the lockout source key (`LockoutKeys.source`), nil when unknown.
    public static func run(_ db: Connection, domain: String, user: String, source: String?) throws -> DirectoryFactsResult {
        let r = try db.execute(sql, [domain, user, source ?? ""], retry: .idempotent)
        guard r.rowCount > 0 else {
            return DirectoryFactsResult(domainKnown: false, device: nil, lockout: .none)
        }
        let realm: String = try r.decode(0, 0)
        let a = 8 + AccountColumns.count
        let lockout = LockoutFacts(sourceLocked: try r.decode(0, a), userLocked: try r.decode(0, a + 1),
                                   pairLocked: try r.decode(0, a + 2), secondsSinceSuccess: r.string(0, a + 3).flatMap { Int($0) })
        guard r.string(0, 1) != nil else {
            return DirectoryFactsResult(domainKnown: true, device: nil, lockout: lockout)
        }
        let device = DeviceFacts(
            id: try r.decode(0, 1), username: try r.decode(0, 2), realm: realm, enabled: try r.decode(0, 3),
            ha1MD5: try r.decode(0, 4), ha1SHA256: try r.decode(0, 5), callerIDName: try r.decode(0, 6),
            callerIDNumber: try r.decode(0, 7), account: try AccountColumns.decode(r, 0, at: 8))
        return DirectoryFactsResult(domainKnown: true, device: device, lockout: lockout)
    }
}

/// The IP settings whose network contains an address: one equality probe per prefix length in use
/// in the address's family (`ip_setting_masklens`, migration 0006), so the cost does not grow with
/// the number of settings.
public enum IPCandidatesLookup {
    public static let sql = """
        SELECT s.id, s.name, s.network::text, s.prefix, s.strip_prefix, s.enabled, s.max_cps, \(AccountColumns.select)
          FROM ip_settings s JOIN accounts a ON a.id = s.account_id
         WHERE s.network IN (SELECT network(set_masklen($1::inet, m.masklen)) FROM ip_setting_masklens m
                              WHERE m.family = family($1::inet) AND m.settings > 0)
        """

    public static func run(_ db: Connection, source: IPAddress) throws -> [IPSettingFacts] {
        let r = try db.execute(sql, [source.description], retry: .idempotent)
        var out: [IPSettingFacts] = []
        out.reserveCapacity(r.rowCount)
        for i in 0..<r.rowCount {
            guard let network = IPNetwork(try r.decode(i, 2, as: String.self)) else {
                throw PostgresError(kind: .decoding, operation: "decode", message: "bad cidr")
            }
            out.append(IPSettingFacts(
                id: try r.decode(i, 0), name: try r.decode(i, 1), network: network, prefix: try r.decode(i, 3),
                stripPrefix: try r.decode(i, 4), enabled: try r.decode(i, 5), maxCPS: try r.decode(i, 6),
                account: try AccountColumns.decode(r, i, at: 7)))
        }
        return out
    }
}

/// acl.conf: networks of enabled IP settings of active, unexpired accounts, de-duplicated and
/// ordered by PostgreSQL (`ORDER BY network`: IPv4 before IPv6, then by network), in one statement,
/// so one snapshot: never a half-read list. Rows come back as PostgreSQL's canonical `cidr` text and
/// are checked byte by byte instead of being parsed again (100,000 rows).
public enum ACLNetworksLookup {
    public static let sql = """
        SELECT s.network::text
          FROM ip_settings s
         WHERE s.enabled
           AND EXISTS (SELECT 1 FROM accounts a WHERE a.id = s.account_id AND a.status = 'active'
                                                  AND (a.expires_at IS NULL OR a.expires_at > now()))
         GROUP BY s.network
         ORDER BY s.network
        """

    public static func run(_ db: Connection) throws -> [String] {
        let r = try db.execute(sql, retry: .idempotent)
        var out: [String] = []
        out.reserveCapacity(r.rowCount)
        for i in 0..<r.rowCount {
            let text: String = try r.decode(i, 0)
            guard isCIDRText(text) else {
                throw PostgresError(kind: .decoding, operation: "decode", message: "bad cidr")
            }
            out.append(text)
        }
        return out
    }

    /// `address/length` with hex digits, dots and colons only.
    static func isCIDRText(_ s: String) -> Bool {
        var slash = false
        var lengthDigits = 0
        for b in s.utf8 {
            if slash {
                guard b >= 48 && b <= 57 else { return false }
                lengthDigits += 1
            } else if b == UInt8(ascii: "/") {
                slash = true
            } else {
                guard (b >= 48 && b <= 57) || (b >= 97 && b <= 102) || (b >= 65 && b <= 70) || b == 46 || b == 58 else { return false }
            }
        }
        return slash && lengthDigits >= 1 && lengthDigits <= 3
    }
}

public struct LockoutEntry: Sendable, Equatable {
    public var scope: LockoutScope
    public var subject: String
    public var failures: Int
    public var lockedUntil: String
}

/// Brute-force counters (README, "Lockouts"): one row per (scope, subject), shared by every
/// instance; and the trusted sources (a user's recent successes, per source).
public enum AuthFailures {
    /// Adds failures and locks, in one statement: each row's count is incremented under its row
    /// lock and returned, and the row is locked in the same statement when its budget is spent, so
    /// concurrent requests and instances never count past a budget unseen. A window that has
    /// passed, or a lock that has ended, starts the count again. The budget is chosen by scope.
    static let recordSQL = """
        INSERT INTO auth_failures AS f (scope, subject, window_start, failures, locked_until)
        SELECT b.scope, b.subject, now(), b.n,
               CASE WHEN b.n >= (CASE b.scope WHEN 'pair' THEN $5::int WHEN 'ip' THEN $6::int ELSE $7::int END)
                    THEN now() + make_interval(secs => $8::int) END
          FROM unnest($1::text[], $2::text[], $3::int[]) WITH ORDINALITY AS b(scope, subject, n, i)
         ORDER BY b.i
        ON CONFLICT (scope, subject) DO UPDATE SET
            window_start = CASE WHEN f.window_start <= now() - make_interval(secs => $4::int)
                                  OR f.locked_until <= now() THEN now() ELSE f.window_start END,
            failures = CASE WHEN f.window_start <= now() - make_interval(secs => $4::int)
                              OR f.locked_until <= now() THEN excluded.failures ELSE f.failures + excluded.failures END,
            locked_until = CASE
                WHEN f.locked_until > now() THEN f.locked_until
                WHEN (CASE WHEN f.window_start <= now() - make_interval(secs => $4::int)
                             OR f.locked_until <= now() THEN excluded.failures ELSE f.failures + excluded.failures END)
                     >= (CASE f.scope WHEN 'pair' THEN $5::int WHEN 'ip' THEN $6::int ELSE $7::int END)
                    THEN now() + make_interval(secs => $8::int)
                ELSE NULL END
        RETURNING f.scope, f.subject, f.failures, coalesce(f.locked_until > now(), false)
        """

    /// One counter.
    public struct Count: Sendable, Hashable {
        public var scope: LockoutScope
        public var subject: String
        public init(scope: LockoutScope, subject: String) {
            self.scope = scope
            self.subject = subject
        }
    }

    /// The counters one failed attempt adds to: the source, and with a known user the user and the
    /// (source, user) pair. Without a source (no usable `ip`), only the user.
    public static func counters(source: String?, user: String?) -> [Count] {
        var out: [Count] = []
        if let source { out.append(Count(scope: .source, subject: source)) }
        if let user {
            out.append(Count(scope: .user, subject: user))
            if let source { out.append(Count(scope: .pair, subject: LockoutKeys.pair(source: source, user: user))) }
        }
        return out
    }

    /// The result of counting: each counter's failures in its window and whether this statement
    /// spent its budget (the lock began now).
    public struct Counted: Sendable, Equatable {
        public var count: Count
        public var failures: Int
        public var locked: Bool
        public var crossed: Bool
    }

    /// Adds failures in one statement (one round trip, one transaction; never retried: a failure
    /// is counted at most once). Rows are written in (scope, subject) order, so concurrent
    /// statements never deadlock.
    @discardableResult
    public static func record(_ db: Connection, batch: [Count: Int], policy: LockoutPolicy) throws -> [Counted] {
        guard !batch.isEmpty else { return [] }
        let entries = batch.sorted { ($0.key.scope.rawValue, $0.key.subject) < ($1.key.scope.rawValue, $1.key.subject) }
        func array(_ items: [String]) -> String {
            "{" + items.map { "\"" + $0.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\"" }.joined(separator: ",") + "}"
        }
        let r = try db.execute(recordSQL, [
            array(entries.map(\.key.scope.rawValue)), array(entries.map(\.key.subject)), "{" + entries.map { String($0.value) }.joined(separator: ",") + "}",
            String(policy.windowSeconds), String(policy.threshold), String(policy.sourceThreshold), String(policy.userThreshold),
            String(policy.lockSeconds),
        ])
        var out: [Counted] = []
        for i in 0..<r.rowCount {
            guard let scope = LockoutScope(rawValue: try r.decode(i, 0)) else { continue }
            let key = Count(scope: scope, subject: try r.decode(i, 1))
            let failures: Int = try r.decode(i, 2)
            let locked: Bool = try r.decode(i, 3)
            let added = batch[key] ?? 0
            let budget = policy.threshold(for: scope)
            out.append(Counted(count: key, failures: failures, locked: locked,
                               crossed: locked && failures >= budget && failures - added < budget))
        }
        return out
    }

    /// One failed attempt (the request path): counts it in every budget it belongs to.
    @discardableResult
    public static func countFailure(_ db: Connection, source: String?, user: String?, policy: LockoutPolicy) throws -> [Counted] {
        let keys = counters(source: source, user: user)
        return try record(db, batch: Dictionary(uniqueKeysWithValues: keys.map { ($0, 1) }), policy: policy)
    }

    /// A success from `source` for `user`: trusted from now on. Setting a time is idempotent.
    public static func recordSuccess(_ db: Connection, source: String, user: String) throws {
        try db.execute("""
            INSERT INTO auth_trusted_sources (subject, source, last_success) VALUES ($1, $2, now())
            ON CONFLICT (subject, source) DO UPDATE SET last_success = now()
            """, [user, source], retry: .idempotent)
    }

    public static func locked(_ db: Connection) throws -> [LockoutEntry] {
        let r = try db.execute("""
            SELECT scope, subject, failures, to_char(locked_until AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
              FROM auth_failures WHERE locked_until > now() ORDER BY locked_until, scope, subject
            """, retry: .idempotent)
        return try (0..<r.rowCount).compactMap { i in
            guard let scope = LockoutScope(rawValue: try r.decode(i, 0)) else { return nil }
            return LockoutEntry(scope: scope, subject: try r.decode(i, 1), failures: try r.decode(i, 2), lockedUntil: try r.decode(i, 3))
        }
    }

    /// Clears lockouts and counters: all, or one subject (an IP or /64 source, or user@domain),
    /// with the (source, user) counters that name it. Returns rows removed.
    @discardableResult
    public static func clear(_ db: Connection, subject: String?) throws -> Int {
        try db.execute("""
            DELETE FROM auth_failures
             WHERE $1::text IS NULL OR subject = $1
                OR (scope = 'pair' AND (split_part(subject, '|', 1) = $1 OR split_part(subject, '|', 2) = $1))
            """, [subject]).affectedRows
    }

    /// Active lockouts per scope.
    public static func lockedCounts(_ db: Connection) throws -> [LockoutScope: Int] {
        let r = try db.execute("SELECT scope, count(*) FROM auth_failures WHERE locked_until > now() GROUP BY scope", retry: .idempotent)
        var out: [LockoutScope: Int] = [:]
        for scope in LockoutScope.allCases { out[scope] = 0 }
        for i in 0..<r.rowCount {
            if let scope = LockoutScope(rawValue: try r.decode(i, 0)) { out[scope] = try r.decode(i, 1) }
        }
        return out
    }

    /// Sources currently trusted for some user.
    public static func trustedCount(_ db: Connection, policy: LockoutPolicy) throws -> Int {
        try db.execute("SELECT count(*) FROM auth_trusted_sources WHERE last_success > now() - make_interval(secs => $1::int)",
                       [String(policy.trustSeconds)], retry: .idempotent).decode(0, 0)
    }

    /// Removes counters whose window and lock are both over, and trust that has expired.
    public static func prune(_ db: Connection, policy: LockoutPolicy) throws {
        try db.execute("""
            DELETE FROM auth_failures
             WHERE (locked_until IS NULL OR locked_until <= now())
               AND window_start <= now() - make_interval(secs => $1::int)
            """, [String(policy.windowSeconds)], retry: .idempotent)
        try db.execute("DELETE FROM auth_trusted_sources WHERE last_success <= now() - make_interval(secs => $1::int)",
                       [String(policy.trustSeconds)], retry: .idempotent)
    }
}

/// Every name of a SIP domain: its own and its aliases (the switch caches a user under each).
public enum DomainNamesLookup {
    public static func run(_ db: Connection, domain: String) throws -> [String] {
        let r = try db.execute("""
            SELECT name FROM sip_domains WHERE lower(name) = lower($1)
            UNION SELECT al.alias FROM sip_domain_aliases al JOIN sip_domains sd ON sd.id = al.domain_id WHERE lower(sd.name) = lower($1)
            """, [domain])
        return (0..<r.rowCount).compactMap { r.string($0, 0) }
    }
}

/// Where a standby stands against its primary: a change is pushed to the switches only once the
/// standby lookups read from has replayed it.
public enum StandbyReplay {
    /// The primary's WAL position now.
    public static func primaryPosition(_ db: Connection) throws -> String {
        try db.execute("SELECT pg_current_wal_lsn()::text").decode(0, 0)
    }

    /// Whether `db` has replayed the WAL up to `position` (a promoted server, no longer in
    /// recovery, has everything).
    public static func hasReplayed(_ db: Connection, position: String) throws -> Bool {
        try db.execute("SELECT NOT pg_is_in_recovery() OR coalesce(pg_last_wal_replay_lsn() >= $1::pg_lsn, false)", [position]).decode(0, 0)
    }
}
