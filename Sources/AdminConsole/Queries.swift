import Foundation
import Postgres
import Store

/// One page of a list: the rows and the cursor of the next page (nil on the last).
public struct Page: Sendable {
    public var items: [JSON]
    public var nextCursor: String?

    public var json: JSON { .object([("items", .array(items)), ("next_cursor", .optional(nextCursor))]) }
}

/// The console's reads. Every list is keyset-paginated (an indexed `> cursor ORDER BY … LIMIT n`,
/// never OFFSET) so that a page costs the same on page 1 and page 2,000. Filters add fixed SQL
/// fragments; every value is a parameter.
public struct Queries {
    public let db: Connection
    public init(db: Connection) { self.db = db }

    public static let defaultLimit = 50
    public static let maxLimit = 200

    static let ts = #"YYYY-MM-DD"T"HH24:MI:SS"Z""#
    static func time(_ column: String) -> String { "to_char(\(column) AT TIME ZONE 'UTC', '\(ts)')" }

    /// A WHERE clause under construction: fragments with $n placeholders numbered as added.
    struct Filter {
        var clauses: [String] = []
        var params: [String?] = []
        mutating func add(_ fragment: (String) -> String, _ value: String?) {
            params.append(value)
            clauses.append(fragment("$\(params.count)"))
        }
        var sql: String { clauses.isEmpty ? "" : " WHERE " + clauses.joined(separator: " AND ") }
        mutating func limit(_ n: Int) -> String {
            params.append(String(n + 1))
            return " LIMIT $\(params.count)::int"
        }
    }

    static func likePattern(_ q: String) -> String {
        "%" + q.lowercased().replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "%", with: "\\%")
            .replacingOccurrences(of: "_", with: "\\_") + "%"
    }

    func page(_ r: QueryResult, limit: Int, cursorColumn: Int, row: (Int) throws -> JSON) throws -> Page {
        let n = min(r.rowCount, limit)
        let items = try (0..<n).map(row)
        let next = r.rowCount > limit ? r.string(n - 1, cursorColumn) : nil
        return Page(items: items, nextCursor: next)
    }

    func b(_ r: QueryResult, _ i: Int, _ c: Int) -> JSON { .bool(r.string(i, c) == "t") }
    func s(_ r: QueryResult, _ i: Int, _ c: Int) -> JSON { .string(r.string(i, c) ?? "") }
    func n(_ r: QueryResult, _ i: Int, _ c: Int) -> JSON { .number(r.string(i, c) ?? "0") }
    func o(_ r: QueryResult, _ i: Int, _ c: Int) -> JSON { r.string(i, c).map { .string($0) } ?? .null }

    // MARK: accounts

    static let accountColumns = """
        SELECT a.number, a.name, a.kind, a.status, a.billing, a.balance::text, a.credit_limit::text, a.max_channels,
               \(time("a.expires_at")), \(time("a.created_at")), \(time("a.updated_at")),
               (SELECT count(*) FROM ip_settings s WHERE s.account_id = a.id),
               (SELECT count(*) FROM sip_devices d WHERE d.account_id = a.id)
          FROM accounts a
        """

    func account(_ r: QueryResult, _ i: Int) -> JSON {
        .object([("number", s(r, i, 0)), ("name", s(r, i, 1)), ("kind", s(r, i, 2)), ("status", s(r, i, 3)),
                 ("billing", s(r, i, 4)), ("balance", s(r, i, 5)), ("credit_limit", s(r, i, 6)), ("max_channels", n(r, i, 7)),
                 ("expires_at", o(r, i, 8)), ("created_at", s(r, i, 9)), ("updated_at", s(r, i, 10)),
                 ("ip_settings", n(r, i, 11)), ("devices", n(r, i, 12))])
    }

    /// Accounts ordered by number; `q` matches number or name (substring, any case).
    public func accounts(q: String?, status: String?, kind: String?, cursor: String?, limit: Int) throws -> Page {
        var f = Filter()
        if let cursor { f.add({ "a.number > \($0)" }, cursor) }
        if let q, !q.isEmpty { f.add({ "(lower(a.number) LIKE \($0) OR lower(a.name) LIKE \($0))" }, Self.likePattern(q)) }
        if let status { f.add({ "a.status = \($0)" }, status) }
        if let kind { f.add({ "a.kind = \($0)" }, kind) }
        let where_ = f.sql
        let lim = f.limit(limit)
        let r = try db.execute(Self.accountColumns + where_ + " ORDER BY a.number" + lim, f.params)
        return try page(r, limit: limit, cursorColumn: 0) { account(r, $0) }
    }

    public func account(_ number: String) throws -> JSON? {
        let r = try db.execute(Self.accountColumns + " WHERE a.number = $1", [number])
        return r.rowCount == 1 ? account(r, 0) : nil
    }

    // MARK: IP settings

    static let ipColumns = """
        SELECT s.id, a.number, s.name, s.network::text, s.prefix, s.strip_prefix, s.enabled, \(time("s.created_at")), \(time("s.updated_at"))
          FROM ip_settings s JOIN accounts a ON a.id = s.account_id
        """

    func ip(_ r: QueryResult, _ i: Int) -> JSON {
        .object([("id", n(r, i, 0)), ("account", s(r, i, 1)), ("name", s(r, i, 2)), ("network", s(r, i, 3)),
                 ("prefix", s(r, i, 4)), ("strip_prefix", b(r, i, 5)), ("enabled", b(r, i, 6)),
                 ("created_at", s(r, i, 7)), ("updated_at", s(r, i, 8))])
    }

    /// IP settings ordered by id; filters: account, network (contains this address or equals this network).
    public func ipSettings(account: String?, contains: String?, cursor: String?, limit: Int) throws -> Page {
        var f = Filter()
        if let cursor { f.add({ "s.id > \($0)::bigint" }, cursor) }
        if let account { f.add({ "s.account_id = (SELECT id FROM accounts WHERE number = \($0))" }, account) }
        if let contains { f.add({ "s.network >>= \($0)::inet" }, contains) }
        let where_ = f.sql
        let lim = f.limit(limit)
        let r = try db.execute(Self.ipColumns + where_ + " ORDER BY s.id" + lim, f.params)
        return try page(r, limit: limit, cursorColumn: 0) { ip(r, $0) }
    }

    public func ipSetting(_ id: Int64) throws -> JSON? {
        let r = try db.execute(Self.ipColumns + " WHERE s.id = $1::bigint", [String(id)])
        return r.rowCount == 1 ? ip(r, 0) : nil
    }

    // MARK: devices

    static let deviceColumns = """
        SELECT v.id, v.username || '@' || d.name, v.username, d.name, a.number, v.enabled, v.caller_id_name, v.caller_id_number,
               \(time("v.created_at")), \(time("v.updated_at"))
          FROM sip_devices v JOIN sip_domains d ON d.id = v.domain_id JOIN accounts a ON a.id = v.account_id
        """

    func device(_ r: QueryResult, _ i: Int) -> JSON {
        .object([("id", n(r, i, 0)), ("device", s(r, i, 1)), ("username", s(r, i, 2)), ("domain", s(r, i, 3)),
                 ("account", s(r, i, 4)), ("enabled", b(r, i, 5)), ("caller_id_name", s(r, i, 6)),
                 ("caller_id_number", s(r, i, 7)), ("created_at", s(r, i, 8)), ("updated_at", s(r, i, 9))])
    }

    /// Devices ordered by id; filters: account, domain, username (substring).
    public func devices(account: String?, domain: String?, q: String?, cursor: String?, limit: Int) throws -> Page {
        var f = Filter()
        if let cursor { f.add({ "v.id > \($0)::bigint" }, cursor) }
        if let account { f.add({ "v.account_id = (SELECT id FROM accounts WHERE number = \($0))" }, account) }
        if let domain { f.add({ "v.domain_id = (SELECT id FROM sip_domains WHERE lower(name) = lower(\($0)))" }, domain) }
        if let q, !q.isEmpty { f.add({ "lower(v.username) LIKE \($0)" }, Self.likePattern(q)) }
        let where_ = f.sql
        let lim = f.limit(limit)
        let r = try db.execute(Self.deviceColumns + where_ + " ORDER BY v.id" + lim, f.params)
        return try page(r, limit: limit, cursorColumn: 0) { device(r, $0) }
    }

    public func device(id: Int64) throws -> JSON? {
        let r = try db.execute(Self.deviceColumns + " WHERE v.id = $1::bigint", [String(id)])
        return r.rowCount == 1 ? device(r, 0) : nil
    }

    // MARK: domains

    public func domains(cursor: String?, limit: Int) throws -> Page {
        var f = Filter()
        if let cursor { f.add({ "lower(d.name) > \($0)" }, cursor) }
        let where_ = f.sql
        let lim = f.limit(limit)
        let r = try db.execute("""
            SELECT lower(d.name), d.name, d.enabled, coalesce((SELECT string_agg(al.alias, ',' ORDER BY al.alias) FROM sip_domain_aliases al WHERE al.domain_id = d.id), ''),
                   \(Self.time("d.created_at"))
              FROM sip_domains d
            """ + where_ + " ORDER BY lower(d.name)" + lim, f.params)
        return try page(r, limit: limit, cursorColumn: 0) { i in
            let aliases = (r.string(i, 3) ?? "").split(separator: ",").map { JSON.string(String($0)) }
            return .object([("name", s(r, i, 1)), ("enabled", b(r, i, 2)), ("aliases", .array(aliases)), ("created_at", s(r, i, 4))])
        }
    }

    // MARK: lockouts

    public func lockouts(scope: String?, cursor: String?, limit: Int) throws -> Page {
        var f = Filter()
        f.clauses.append("locked_until > now()")
        if let cursor { f.add({ "scope || ' ' || subject > \($0)" }, cursor) }
        if let scope { f.add({ "scope = \($0)" }, scope) }
        let where_ = f.sql
        let lim = f.limit(limit)
        let r = try db.execute("""
            SELECT scope || ' ' || subject, scope, subject, failures, \(Self.time("locked_until")) FROM auth_failures
            """ + where_ + " ORDER BY scope || ' ' || subject" + lim, f.params)
        return try page(r, limit: limit, cursorColumn: 0) { i in
            .object([("scope", s(r, i, 1)), ("subject", s(r, i, 2)), ("failures", n(r, i, 3)), ("locked_until", s(r, i, 4))])
        }
    }

    // MARK: audit

    public func audit(account: String?, objectType: String?, actor: String?, cursor: String?, limit: Int) throws -> Page {
        var f = Filter()
        if let cursor { f.add({ "l.id < \($0)::bigint" }, cursor) }
        if let account { f.add({ "l.account_id = (SELECT id FROM accounts WHERE number = \($0))" }, account) }
        if let objectType { f.add({ "l.object_type = \($0)" }, objectType) }
        if let actor { f.add({ "l.actor = \($0)" }, actor) }
        let where_ = f.sql
        let lim = f.limit(limit)
        let r = try db.execute("""
            SELECT l.id, \(Self.time("l.at")), l.actor, l.action, l.object_type, l.object_id, l.object_label,
                   (SELECT number FROM accounts WHERE id = l.account_id), l.before::text, l.after::text
              FROM audit_log l
            """ + where_ + " ORDER BY l.id DESC" + lim, f.params)
        return try page(r, limit: limit, cursorColumn: 0) { i in
            func raw(_ c: Int) -> JSON {
                guard let t = r.string(i, c) else { return .null }
                return .raw(t)
            }
            return .object([("id", n(r, i, 0)), ("at", s(r, i, 1)), ("actor", s(r, i, 2)), ("action", s(r, i, 3)),
                            ("object_type", s(r, i, 4)), ("object_id", s(r, i, 5)), ("object", s(r, i, 6)),
                            ("account", o(r, i, 7)), ("before", raw(8)), ("after", raw(9))])
        }
    }
}
