import Decisions
import Foundation
import Postgres
import Store

/// One page of a list: the rows, the cursors of the next and previous pages (nil at either end),
/// how many rows match in all (counted up to `Queries.countCap`) and the page size.
public struct Page: Sendable {
    public var items: [JSON]
    public var nextCursor: String?
    public var prevCursor: String?
    public var total = 0
    /// False when there are more than `Queries.countCap` matches: `total` is then a lower bound.
    public var totalExact = true
    public var limit = Queries.defaultLimit

    public init(items: [JSON]) { self.items = items }

    public var json: JSON {
        .object([("items", .array(items)), ("next_cursor", .optional(nextCursor)), ("prev_cursor", .optional(prevCursor)),
                 ("total", .int(total)), ("total_exact", .bool(totalExact)), ("limit", .int(limit))])
    }
}

/// Where a page starts: after a key (the next page: the plain key, as `next_cursor` has always
/// been) or before one (the previous page: `<` and the key). Anything else is a 400.
enum Cursor: Equatable {
    case after(String)
    case before(String)

    static func parse(_ s: String?, valid: (String) -> Bool) throws -> Cursor? {
        guard let s, !s.isEmpty else { return nil }
        let c: Cursor = s.hasPrefix("<") ? .before(String(s.dropFirst())) : .after(s)
        let key: String
        switch c {
        case .after(let k), .before(let k): key = k
        }
        guard !key.isEmpty, key.utf8.count <= 500, valid(key) else {
            throw Problem(status: 400, title: "Bad Request", detail: "cursor is not one this list gave out: \(s.prefix(80)) (pass next_cursor or prev_cursor back as it is)",
                          type: "/problems/bad-cursor")
        }
        return c
    }

    static func id(_ k: String) -> Bool { Int64(k).map { $0 >= 0 } ?? false }
}

/// The console's reads. Every list is keyset-paginated (an indexed `> cursor ORDER BY … LIMIT n`,
/// or `<` and the reverse order for the previous page; never OFFSET) so that a page costs the same
/// on page 1 and page 2,000; its total is counted up to `countCap`. Filters add fixed SQL
/// fragments; every value is a parameter.
public struct Queries {
    public let db: Connection
    public init(db: Connection) { self.db = db }

    public static let defaultLimit = 50
    public static let maxLimit = 200
    /// Totals are exact up to this many matches ("10,000+" past it): a count stays cheap at 1,000,000 rows.
    public static let countCap = 10_000

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

    /// One page of `select` `from` under `filter`, keyed by `key` (`cast` applied to the cursor's
    /// value), ascending unless `descending`; `keyColumn` is the key's column in `select`. The
    /// total counts `countFrom` (the table alone, without the joins that only add columns) under
    /// the same filter.
    func list(select: String, from: String, countFrom: String? = nil, filter: Filter, key: String, cast: String = "", descending: Bool = false,
              cursor: Cursor?, limit: Int, keyColumn: Int, row: (QueryResult, Int) throws -> JSON) throws -> Page {
        var f = filter
        let total: Int = try db.execute("SELECT count(*) FROM (SELECT 1 " + (countFrom ?? from) + f.sql + " LIMIT \(Self.countCap + 1)) t", f.params).decode(0, 0)
        var backward = false
        switch cursor {
        case .after(let k)?: f.add({ "\(key) \(descending ? "<" : ">") \($0)\(cast)" }, k)
        case .before(let k)?:
            backward = true
            f.add({ "\(key) \(descending ? ">" : "<") \($0)\(cast)" }, k)
        case nil: break
        }
        let ascending = descending == backward
        let where_ = f.sql
        let lim = f.limit(limit)
        let r = try db.execute(select + " " + from + where_ + " ORDER BY \(key) \(ascending ? "ASC" : "DESC")" + lim, f.params)
        var order = Array(0..<min(r.rowCount, limit))
        if backward { order.reverse() }
        var p = Page(items: try order.map { try row(r, $0) })
        p.total = min(total, Self.countCap)
        p.totalExact = total <= Self.countCap
        p.limit = limit
        let firstKey = order.first.flatMap { r.string($0, keyColumn) }, lastKey = order.last.flatMap { r.string($0, keyColumn) }
        if backward {
            p.prevCursor = r.rowCount > limit ? firstKey.map { "<" + $0 } : nil
            p.nextCursor = lastKey
        } else {
            p.nextCursor = r.rowCount > limit ? lastKey : nil
            p.prevCursor = cursor == nil ? nil : firstKey.map { "<" + $0 }
        }
        return p
    }

    func b(_ r: QueryResult, _ i: Int, _ c: Int) -> JSON { .bool(r.string(i, c) == "t") }
    func s(_ r: QueryResult, _ i: Int, _ c: Int) -> JSON { .string(r.string(i, c) ?? "") }
    func n(_ r: QueryResult, _ i: Int, _ c: Int) -> JSON { .number(r.string(i, c) ?? "0") }
    func o(_ r: QueryResult, _ i: Int, _ c: Int) -> JSON { r.string(i, c).map { .string($0) } ?? .null }

    // MARK: accounts

    static let accountSelect = """
        SELECT a.number, a.name, a.kind, a.status, a.billing, a.balance::text, a.credit_limit::text, a.max_channels,
               \(time("a.expires_at")), \(time("a.created_at")), \(time("a.updated_at")),
               (SELECT count(*) FROM ip_settings s WHERE s.account_id = a.id),
               (SELECT count(*) FROM sip_devices d WHERE d.account_id = a.id), a.max_cps,
               (SELECT count(*) FROM call_slots c WHERE c.account_id = a.id)
        """
    static let accountColumns = accountSelect + " FROM accounts a"

    func account(_ r: QueryResult, _ i: Int) -> JSON {
        .object([("number", s(r, i, 0)), ("name", s(r, i, 1)), ("kind", s(r, i, 2)), ("status", s(r, i, 3)),
                 ("billing", s(r, i, 4)), ("balance", s(r, i, 5)), ("credit_limit", s(r, i, 6)), ("max_channels", n(r, i, 7)),
                 ("expires_at", o(r, i, 8)), ("created_at", s(r, i, 9)), ("updated_at", s(r, i, 10)),
                 ("ip_settings", n(r, i, 11)), ("devices", n(r, i, 12)), ("max_cps", n(r, i, 13)), ("calls_up", n(r, i, 14))])
    }

    /// Accounts ordered by number; `q` matches number or name (substring, any case).
    public func accounts(q: String?, status: String?, kind: String?, cursor: String?, limit: Int) throws -> Page {
        var f = Filter()
        if let q, !q.isEmpty { f.add({ "(lower(a.number) LIKE \($0) OR lower(a.name) LIKE \($0))" }, Self.likePattern(q)) }
        if let status { f.add({ "a.status = \($0)" }, status) }
        if let kind { f.add({ "a.kind = \($0)" }, kind) }
        return try list(select: Self.accountSelect, from: "FROM accounts a", filter: f, key: "a.number",
                        cursor: try Cursor.parse(cursor, valid: Admin.validAccountNumber), limit: limit, keyColumn: 0) { account($0, $1) }
    }

    public func account(_ number: String) throws -> JSON? {
        let r = try db.execute(Self.accountColumns + " WHERE a.number = $1", [number])
        return r.rowCount == 1 ? account(r, 0) : nil
    }

    // MARK: IP settings

    static let ipSelect = """
        SELECT s.id, a.number, s.name, s.network::text, s.prefix, s.strip_prefix, s.enabled, \(time("s.created_at")), \(time("s.updated_at")), s.max_cps
        """
    static let ipFrom = "FROM ip_settings s JOIN accounts a ON a.id = s.account_id"

    func ip(_ r: QueryResult, _ i: Int) -> JSON {
        .object([("id", n(r, i, 0)), ("account", s(r, i, 1)), ("name", s(r, i, 2)), ("network", s(r, i, 3)),
                 ("prefix", s(r, i, 4)), ("strip_prefix", b(r, i, 5)), ("enabled", b(r, i, 6)),
                 ("created_at", s(r, i, 7)), ("updated_at", s(r, i, 8)), ("max_cps", n(r, i, 9))])
    }

    /// IP settings ordered by id; filters: account, network (contains this address or equals this network).
    public func ipSettings(account: String?, contains: String?, cursor: String?, limit: Int) throws -> Page {
        var f = Filter()
        if let account { f.add({ "s.account_id = (SELECT id FROM accounts WHERE number = \($0))" }, account) }
        if let contains { f.add({ "s.network >>= \($0)::inet" }, contains) }
        return try list(select: Self.ipSelect, from: Self.ipFrom, countFrom: "FROM ip_settings s", filter: f, key: "s.id", cast: "::bigint",
                        cursor: try Cursor.parse(cursor, valid: Cursor.id), limit: limit, keyColumn: 0) { ip($0, $1) }
    }

    public func ipSetting(_ id: Int64) throws -> JSON? {
        let r = try db.execute(Self.ipSelect + " " + Self.ipFrom + " WHERE s.id = $1::bigint", [String(id)])
        return r.rowCount == 1 ? ip(r, 0) : nil
    }

    // MARK: devices

    static let deviceSelect = """
        SELECT v.id, v.username || '@' || d.name, v.username, d.name, a.number, v.enabled, v.caller_id_name, v.caller_id_number,
               \(time("v.created_at")), \(time("v.updated_at"))
        """
    static let deviceFrom = "FROM sip_devices v JOIN sip_domains d ON d.id = v.domain_id JOIN accounts a ON a.id = v.account_id"

    func device(_ r: QueryResult, _ i: Int) -> JSON {
        .object([("id", n(r, i, 0)), ("device", s(r, i, 1)), ("username", s(r, i, 2)), ("domain", s(r, i, 3)),
                 ("account", s(r, i, 4)), ("enabled", b(r, i, 5)), ("caller_id_name", s(r, i, 6)),
                 ("caller_id_number", s(r, i, 7)), ("created_at", s(r, i, 8)), ("updated_at", s(r, i, 9))])
    }

    /// Devices ordered by id; filters: account, domain, username (substring).
    public func devices(account: String?, domain: String?, q: String?, cursor: String?, limit: Int) throws -> Page {
        var f = Filter()
        if let account { f.add({ "v.account_id = (SELECT id FROM accounts WHERE number = \($0))" }, account) }
        if let domain { f.add({ "v.domain_id = (SELECT id FROM sip_domains WHERE lower(name) = lower(\($0)))" }, domain) }
        if let q, !q.isEmpty { f.add({ "lower(v.username) LIKE \($0)" }, Self.likePattern(q)) }
        return try list(select: Self.deviceSelect, from: Self.deviceFrom, countFrom: "FROM sip_devices v", filter: f, key: "v.id", cast: "::bigint",
                        cursor: try Cursor.parse(cursor, valid: Cursor.id), limit: limit, keyColumn: 0) { device($0, $1) }
    }

    public func device(id: Int64) throws -> JSON? {
        let r = try db.execute(Self.deviceSelect + " " + Self.deviceFrom + " WHERE v.id = $1::bigint", [String(id)])
        return r.rowCount == 1 ? device(r, 0) : nil
    }

    // MARK: domains

    public func domains(cursor: String?, limit: Int) throws -> Page {
        try list(select: """
            SELECT lower(d.name), d.name, d.enabled, coalesce((SELECT string_agg(al.alias, ',' ORDER BY al.alias) FROM sip_domain_aliases al WHERE al.domain_id = d.id), ''),
                   \(Self.time("d.created_at"))
            """, from: "FROM sip_domains d", filter: Filter(), key: "lower(d.name)",
            cursor: try Cursor.parse(cursor) { Admin.validDomainName($0) && $0 == $0.lowercased() }, limit: limit, keyColumn: 0) { r, i in
            let aliases = (r.string(i, 3) ?? "").split(separator: ",").map { JSON.string(String($0)) }
            return .object([("name", s(r, i, 1)), ("enabled", b(r, i, 2)), ("aliases", .array(aliases)), ("created_at", s(r, i, 4))])
        }
    }

    // MARK: lockouts

    /// The scope as the CLI (`switchauth lockouts`) names it: source, user, source_user; the
    /// database's words (ip, pair) are accepted too.
    static func scope(named s: String) -> LockoutScope? {
        LockoutScope.allCases.first { $0.label == s } ?? LockoutScope(rawValue: s)
    }

    public func lockouts(scope: String?, cursor: String?, limit: Int) throws -> Page {
        var f = Filter()
        f.clauses.append("locked_until > now()")
        if let scope { f.add({ "scope = \($0)" }, Self.scope(named: scope)?.rawValue ?? scope) }
        let valid: (String) -> Bool = { k in
            let parts = k.split(separator: " ", maxSplits: 1)
            return parts.count == 2 && LockoutScope(rawValue: String(parts[0])) != nil && !parts[1].unicodeScalars.contains { $0.value < 32 }
        }
        return try list(select: "SELECT scope || ' ' || subject, scope, subject, failures, \(Self.time("locked_until"))", from: "FROM auth_failures",
                        filter: f, key: "scope || ' ' || subject", cursor: try Cursor.parse(cursor, valid: valid), limit: limit, keyColumn: 0) { r, i in
            let label = LockoutScope(rawValue: r.string(i, 1) ?? "")?.label ?? (r.string(i, 1) ?? "")
            return .object([("scope", .string(label)), ("subject", s(r, i, 2)), ("failures", n(r, i, 3)), ("locked_until", s(r, i, 4))])
        }
    }

    // MARK: audit

    public func audit(account: String?, objectType: String?, actor: String?, cursor: String?, limit: Int) throws -> Page {
        var f = Filter()
        if let account { f.add({ "l.account_id = (SELECT id FROM accounts WHERE number = \($0))" }, account) }
        if let objectType { f.add({ "l.object_type = \($0)" }, objectType) }
        if let actor { f.add({ "l.actor = \($0)" }, actor) }
        return try list(select: """
            SELECT l.id, \(Self.time("l.at")), l.actor, l.action, l.object_type, l.object_id, l.object_label,
                   (SELECT number FROM accounts WHERE id = l.account_id), l.before::text, l.after::text
            """, from: "FROM audit_log l", filter: f, key: "l.id", cast: "::bigint", descending: true,
            cursor: try Cursor.parse(cursor, valid: Cursor.id), limit: limit, keyColumn: 0) { r, i in
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
