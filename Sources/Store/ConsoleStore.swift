import Decisions
import Foundation
import Postgres

/// The console's own SQL beside `Admin` (which the CLI shares): the dashboard's counts, API tokens
/// and operators' disabling, removing domains and aliases, and failed logins in the audit log.
/// Every statement takes parameters; refusals are `AdminError`s in the CLI's words.
public struct ConsoleStore {
    public let db: Connection
    public init(db: Connection) { self.db = db }

    // MARK: dashboard

    /// What an operator looks at first. Every count is one indexed or small aggregate.
    public struct Dashboard: Sendable, Codable, Equatable {
        /// Accounts by status (active, suspended, closed; absent statuses are 0).
        public var accounts: [String: Int]
        /// Lockouts in force, by scope as the CLI names them (source, user, source_user).
        public var lockouts: [String: Int]
        /// Failed digests counted in the current lockout windows (every failure counts once per source).
        public var failedAuths: Int
        /// Devices that authenticated successfully (a REGISTER or a call) in the last 24 hours.
        public var registrationsSeen: Int
        /// Sources those devices authenticated from in the last 24 hours.
        public var registrationSources: Int
        public var devices: Int
        public var ipSettings: Int
        /// Failed console logins in the last 24 hours (from the audit log).
        public var failedLogins: Int

        enum CodingKeys: String, CodingKey {
            case accounts, lockouts, devices
            case failedAuths = "failed_auths", registrationsSeen = "registrations_seen", registrationSources = "registration_sources"
            case ipSettings = "ip_settings", failedLogins = "failed_logins"
        }
    }

    public func dashboard() throws -> Dashboard {
        var accounts = ["active": 0, "suspended": 0, "closed": 0]
        let a = try db.execute("SELECT status, count(*) FROM accounts GROUP BY status")
        for i in 0..<a.rowCount { accounts[try a.decode(i, 0)] = try a.decode(i, 1) }
        var lockouts = Dictionary(uniqueKeysWithValues: LockoutScope.allCases.map { ($0.label, 0) })
        let l = try db.execute("SELECT scope, count(*) FROM auth_failures WHERE locked_until > now() GROUP BY scope")
        for i in 0..<l.rowCount {
            if let s = LockoutScope(rawValue: try l.decode(i, 0)) { lockouts[s.label] = try l.decode(i, 1) }
        }
        let r = try db.execute("""
            SELECT (SELECT coalesce(sum(failures), 0)::bigint FROM auth_failures WHERE scope = 'ip'),
                   (SELECT count(DISTINCT subject) FROM auth_trusted_sources WHERE last_success > now() - interval '24 hours'),
                   (SELECT count(DISTINCT source) FROM auth_trusted_sources WHERE last_success > now() - interval '24 hours'),
                   (SELECT count(*) FROM sip_devices), (SELECT count(*) FROM ip_settings),
                   (SELECT count(*) FROM audit_log WHERE action = 'login_failed' AND at > now() - interval '24 hours')
            """)
        return Dashboard(accounts: accounts, lockouts: lockouts, failedAuths: try r.decode(0, 0), registrationsSeen: try r.decode(0, 1),
                         registrationSources: try r.decode(0, 2), devices: try r.decode(0, 3), ipSettings: try r.decode(0, 4),
                         failedLogins: try r.decode(0, 5))
    }

    // MARK: operators and tokens

    public struct OperatorRow: Sendable, Codable, Equatable {
        public var name: String
        public var role: String
        public var disabled: Bool
        public var createdAt: String
        enum CodingKeys: String, CodingKey { case name, role, disabled, createdAt = "created_at" }
    }

    static let ts = #"'YYYY-MM-DD"T"HH24:MI:SS"Z"'"#

    public func operators() throws -> [OperatorRow] {
        let r = try db.execute("""
            SELECT name, role, disabled, to_char(created_at AT TIME ZONE 'UTC', \(Self.ts)) FROM console_operators ORDER BY lower(name)
            """)
        return try (0..<r.rowCount).map { i in
            OperatorRow(name: try r.decode(i, 0), role: try r.decode(i, 1), disabled: try r.decode(i, 2), createdAt: try r.decode(i, 3))
        }
    }

    public func operatorRow(_ name: String) throws -> OperatorRow {
        guard let o = try operators().first(where: { $0.name.lowercased() == name.lowercased() }) else { throw AdminError.notFound("unknown operator \(name)") }
        return o
    }

    /// Disables (ending their sessions; their tokens stop working) or enables an operator.
    /// `by` is the operator asking, when it is one: nobody disables themselves, and the last
    /// enabled admin is never disabled (the console would have no admin left).
    public func setOperatorDisabled(_ name: String, _ disabled: Bool, by: String? = nil) throws {
        // One transaction with the admins' rows locked: two admins disabling each other at once
        // cannot leave no enabled admin.
        try db.transaction { db in
            let r = try db.execute("SELECT id, role, disabled FROM console_operators WHERE lower(name) = lower($1)", [name])
            guard r.rowCount == 1 else { throw AdminError.notFound("unknown operator \(name)") }
            let id = String(try r.decode(0, 0) as Int64)
            if disabled {
                if let by, by.lowercased() == name.lowercased() { throw AdminError("you cannot disable yourself (ask another admin)") }
                if try r.decode(0, 1) as String == "admin" {
                    // Every enabled admin locked (this one too), then those left once this one is disabled.
                    let admins = try db.execute("SELECT id::text FROM console_operators WHERE role = 'admin' AND NOT disabled FOR UPDATE")
                    guard (0..<admins.rowCount).contains(where: { admins.string($0, 0) != id }) else { throw AdminError("operator \(name) is the last enabled admin") }
                }
            }
            guard try r.decode(0, 2) as Bool != disabled else { throw AdminError.conflict("operator \(name) is already \(disabled ? "disabled" : "enabled")") }
            try db.execute("UPDATE console_operators SET disabled = $2::bool WHERE id = $1::bigint", [id, disabled ? "true" : "false"])
            if disabled { try db.execute("DELETE FROM console_sessions WHERE operator_id = $1::bigint", [id]) }
        }
    }

    public struct TokenRow: Sendable, Codable, Equatable {
        public var id: Int64
        public var `operator`: String
        public var name: String
        /// The token's first characters, to tell tokens apart (never the token).
        public var hint: String
        public var createdAt: String
        public var lastUsedAt: String?
        public var revokedAt: String?
        enum CodingKeys: String, CodingKey {
            case id, `operator`, name, hint
            case createdAt = "created_at", lastUsedAt = "last_used_at", revokedAt = "revoked_at"
        }

        /// Never-used and unrevoked tokens say so with null (not a missing key).
        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(id, forKey: .id)
            try c.encode(`operator`, forKey: .operator)
            try c.encode(name, forKey: .name)
            try c.encode(hint, forKey: .hint)
            try c.encode(createdAt, forKey: .createdAt)
            try c.encode(lastUsedAt, forKey: .lastUsedAt)
            try c.encode(revokedAt, forKey: .revokedAt)
        }
    }

    /// Tokens, newest first; of one operator when named.
    public func tokens(operator name: String? = nil) throws -> [TokenRow] {
        if let name { _ = try operatorRow(name) }
        let r = try db.execute("""
            SELECT t.id, o.name, t.name, t.hint, to_char(t.created_at AT TIME ZONE 'UTC', \(Self.ts)),
                   to_char(t.last_used_at AT TIME ZONE 'UTC', \(Self.ts)), to_char(t.revoked_at AT TIME ZONE 'UTC', \(Self.ts))
              FROM console_tokens t JOIN console_operators o ON o.id = t.operator_id
             WHERE $1::text IS NULL OR lower(o.name) = lower($1)
             ORDER BY t.id DESC
            """, [name])
        return try (0..<r.rowCount).map { i in
            TokenRow(id: try r.decode(i, 0), operator: try r.decode(i, 1), name: try r.decode(i, 2), hint: try r.decode(i, 3),
                     createdAt: try r.decode(i, 4), lastUsedAt: r.string(i, 5), revokedAt: r.string(i, 6))
        }
    }

    public func token(_ id: Int64) throws -> TokenRow {
        guard let t = try tokens().first(where: { $0.id == id }) else { throw AdminError.notFound("unknown token \(id)") }
        return t
    }

    /// Revokes a token: it stops working at once; the row stays for the audit log.
    @discardableResult
    public func revokeToken(_ id: Int64) throws -> TokenRow {
        let t = try token(id)
        guard t.revokedAt == nil else { throw AdminError.conflict("token \(id) is already revoked") }
        try db.execute("UPDATE console_tokens SET revoked_at = now() WHERE id = $1::bigint AND revoked_at IS NULL", [String(id)])
        return try token(id)
    }

    // MARK: domains and aliases

    /// Removes a domain with its aliases; refused while devices use it (their HA1s are over its name).
    public func removeDomain(_ name: String) throws {
        let id = try Admin(db: db).domainID(name)
        let devices: Int = try db.execute("SELECT count(*) FROM sip_devices WHERE domain_id = $1::bigint", [String(id)]).decode(0, 0)
        guard devices == 0 else { throw AdminError("domain \(name) has \(devices) device(s): remove or move them first") }
        try db.execute("DELETE FROM sip_domain_aliases WHERE domain_id = $1::bigint", [String(id)])
        try db.execute("DELETE FROM sip_domains WHERE id = $1::bigint", [String(id)])
    }

    public func removeAlias(domain: String, alias: String) throws {
        let id = try Admin(db: db).domainID(domain)
        let r = try db.execute("DELETE FROM sip_domain_aliases WHERE domain_id = $1::bigint AND lower(alias) = lower($2)", [String(id), alias])
        guard r.affectedRows == 1 else { throw AdminError.notFound("unknown alias \(alias) of \(domain)") }
    }

    // MARK: names for ids

    /// id -> name of the domains ("sip_domains") or the operators ("console_operators"): the audit
    /// log shows names where rows carry ids.
    public func names(of table: String) throws -> [String: String] {
        let sql = table == "sip_domains" ? "SELECT id::text, name FROM sip_domains" : "SELECT id::text, name FROM console_operators"
        let r = try db.execute(sql)
        var out: [String: String] = [:]
        for i in 0..<r.rowCount { out[r.string(i, 0) ?? ""] = r.string(i, 1) ?? "" }
        return out
    }

    // MARK: failed logins

    /// A refused console login, in the audit log (never the password): who was tried, from where.
    public func recordFailedLogin(name: String, source: String, reason: String) throws {
        let safeName = String(name.unicodeScalars.filter { $0.value >= 32 && $0.value != 127 }.prefix(64).map(Character.init))
        try db.execute("""
            INSERT INTO audit_log (actor, action, object_type, object_id, object_label, after)
            SELECT 'login:' || $2, 'login_failed', 'console_operators', coalesce((SELECT id::text FROM console_operators WHERE lower(name) = lower($1)), ''),
                   $1, jsonb_build_object('source', $2::text, 'reason', $3::text)
            """, [safeName, String(source.prefix(64)), reason])
    }
}
