import Decisions
import Foundation
import Postgres

/// One page of a list: the rows, the cursors of the next and previous pages (nil at either end),
/// how many rows match in all (counted up to `ConsoleQueries.countCap`) and the page size.
public struct ListPage<Row: Sendable>: Sendable {
    public var items: [Row]
    public var nextCursor: String?
    public var prevCursor: String?
    public var total = 0
    /// False when there are more than `ConsoleQueries.countCap` matches: `total` is then a lower bound.
    public var totalExact = true
    public var limit = ConsoleQueries.defaultLimit
}

/// The rows of the console's lists and the CLI's, as typed values. Their `Encodable` form is the
/// JSON the API documents (the keys below, in this order; see `openapi.json`): the console answers
/// with it, the CLI prints it under `--json` and as its columns. Times are UTC,
/// `YYYY-MM-DDTHH:MM:SSZ`; money is decimal text.
public struct AccountListRow: Sendable, Equatable, Encodable {
    public var number, name, kind, status, billing, balance, creditLimit: String
    public var maxChannels: Int
    public var expiresAt: String?
    public var createdAt, updatedAt: String
    public var ipSettings, devices, maxCPS, callsUp: Int

    enum CodingKeys: String, CodingKey {
        case number, name, kind, status, billing, balance, creditLimit = "credit_limit", maxChannels = "max_channels"
        case expiresAt = "expires_at", createdAt = "created_at", updatedAt = "updated_at", ipSettings = "ip_settings", devices
        case maxCPS = "max_cps", callsUp = "calls_up"
    }
}

public struct IPSettingListRow: Sendable, Equatable, Encodable {
    public var id: Int64
    public var account, name, network, prefix: String
    public var stripPrefix, enabled: Bool
    public var createdAt, updatedAt: String
    public var maxCPS: Int

    enum CodingKeys: String, CodingKey {
        case id, account, name, network, prefix, stripPrefix = "strip_prefix", enabled, createdAt = "created_at", updatedAt = "updated_at"
        case maxCPS = "max_cps"
    }
}

public struct DeviceListRow: Sendable, Equatable, Encodable {
    public var id: Int64
    /// `username@domain`.
    public var device, username, domain, account: String
    public var enabled: Bool
    public var callerIDName, callerIDNumber, createdAt, updatedAt: String

    enum CodingKeys: String, CodingKey {
        case id, device, username, domain, account, enabled, callerIDName = "caller_id_name", callerIDNumber = "caller_id_number"
        case createdAt = "created_at", updatedAt = "updated_at"
    }
}

public struct DomainListRow: Sendable, Equatable, Encodable {
    public var name: String
    public var enabled: Bool
    public var aliases: [String]
    public var createdAt: String

    enum CodingKeys: String, CodingKey {
        case name, enabled, aliases, createdAt = "created_at"
    }
}

public struct LockoutListRow: Sendable, Equatable, Encodable {
    /// As the CLI names it: source, user, source_user.
    public var scope, subject: String
    public var failures: Int
    public var lockedUntil: String

    enum CodingKeys: String, CodingKey {
        case scope, subject, failures, lockedUntil = "locked_until"
    }
}

public struct AuditListRow: Sendable, Equatable, Encodable {
    public var id: Int64
    public var at, actor, action, objectType, objectID, object: String
    public var account: String?
    /// The row before and after the change, as PostgreSQL wrote it.
    public var before, after: RawJSON?

    enum CodingKeys: String, CodingKey {
        case id, at, actor, action, objectType = "object_type", objectID = "object_id", object, account, before, after
    }
}

/// JSON text as PostgreSQL wrote it (a `jsonb` column read as text). The console's and the CLI's
/// JSON writer inserts it as it is; another encoder gets it as a string.
public struct RawJSON: Sendable, Equatable, Encodable {
    public var text: String
    public init(_ text: String) { self.text = text }
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(text)
    }
}

/// A list cursor that is not one a list gave out (a 400).
public struct BadCursor: Error, Equatable {
    public var message: String
}

/// The console's reads. Every list is keyset-paginated (an indexed `> cursor ORDER BY … LIMIT n`,
/// or `<` and the reverse order for the previous page; never OFFSET) so that a page costs the same
/// on page 1 and page 2,000; its total is counted up to `countCap`. Filters add fixed SQL
/// fragments; every value is a parameter.
public struct ConsoleQueries {
    public let db: Connection
    public init(db: Connection) { self.db = db }

    public static let defaultLimit = 50

    /// Every row of a list, page after page (the CLI's lists: the console's statements and rows).
    public static func all<Row>(_ page: (_ cursor: String?) throws -> ListPage<Row>) throws -> [Row] {
        var rows: [Row] = []
        var cursor: String?
        repeat {
            let p = try page(cursor)
            rows += p.items
            cursor = p.nextCursor
        } while cursor != nil
        return rows
    }
    public static let maxLimit = 200
    /// Totals are exact up to this many matches ("10,000+" past it): a count stays cheap at 1,000,000 rows.
    public static let countCap = 10_000

    /// Where a page starts: after a key (the next page: the plain key, as `next_cursor` has always
    /// been) or before one (the previous page: `<` and the key). Anything else is a `BadCursor`.
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
                throw BadCursor(message: "cursor is not one this list gave out: \(s.prefix(80)) (pass next_cursor or prev_cursor back as it is)")
            }
            return c
        }

        static func id(_ k: String) -> Bool { Int64(k).map { $0 >= 0 } ?? false }
    }

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
    func list<Row>(select: String, from: String, countFrom: String? = nil, filter: Filter, key: String, cast: String = "", descending: Bool = false,
                   cursor: Cursor?, limit: Int, keyColumn: Int, row: (QueryResult, Int) throws -> Row) throws -> ListPage<Row> {
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
        var p = ListPage(items: try order.map { try row(r, $0) })
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

    // A list's columns as the console has always read them: NULL text is "", a NULL number 0.
    func str(_ r: QueryResult, _ i: Int, _ c: Int) -> String { r.string(i, c) ?? "" }
    func int(_ r: QueryResult, _ i: Int, _ c: Int) -> Int { r.string(i, c).flatMap { Int($0) } ?? 0 }
    func id(_ r: QueryResult, _ i: Int, _ c: Int) -> Int64 { r.string(i, c).flatMap { Int64($0) } ?? 0 }
    func bool(_ r: QueryResult, _ i: Int, _ c: Int) -> Bool { r.string(i, c) == "t" }

    // MARK: accounts

    static let accountSelect = """
        SELECT a.number, a.name, a.kind, a.status, a.billing, a.balance::text, a.credit_limit::text, a.max_channels,
               \(time("a.expires_at")), \(time("a.created_at")), \(time("a.updated_at")),
               (SELECT count(*) FROM ip_settings s WHERE s.account_id = a.id),
               (SELECT count(*) FROM sip_devices d WHERE d.account_id = a.id), a.max_cps,
               switchauth_calls_up(a.id)
        """
    static let accountColumns = accountSelect + " FROM accounts a"

    func account(_ r: QueryResult, _ i: Int) -> AccountListRow {
        AccountListRow(number: str(r, i, 0), name: str(r, i, 1), kind: str(r, i, 2), status: str(r, i, 3),
                       billing: str(r, i, 4), balance: str(r, i, 5), creditLimit: str(r, i, 6), maxChannels: int(r, i, 7),
                       expiresAt: r.string(i, 8), createdAt: str(r, i, 9), updatedAt: str(r, i, 10),
                       ipSettings: int(r, i, 11), devices: int(r, i, 12), maxCPS: int(r, i, 13), callsUp: int(r, i, 14))
    }

    /// Accounts ordered by number; `q` matches number or name (substring, any case).
    public func accounts(q: String?, status: String?, kind: String?, cursor: String?, limit: Int) throws -> ListPage<AccountListRow> {
        var f = Filter()
        if let q, !q.isEmpty { f.add({ "(lower(a.number) LIKE \($0) OR lower(a.name) LIKE \($0))" }, Self.likePattern(q)) }
        if let status { f.add({ "a.status = \($0)" }, status) }
        if let kind { f.add({ "a.kind = \($0)" }, kind) }
        return try list(select: Self.accountSelect, from: "FROM accounts a", filter: f, key: "a.number",
                        cursor: try Cursor.parse(cursor, valid: Admin.validAccountNumber), limit: limit, keyColumn: 0) { account($0, $1) }
    }

    public func account(_ number: String) throws -> AccountListRow? {
        let r = try db.execute(Self.accountColumns + " WHERE a.number = $1", [number])
        return r.rowCount == 1 ? account(r, 0) : nil
    }

    // MARK: IP settings

    static let ipSelect = """
        SELECT s.id, a.number, s.name, s.network::text, s.prefix, s.strip_prefix, s.enabled, \(time("s.created_at")), \(time("s.updated_at")), s.max_cps
        """
    static let ipFrom = "FROM ip_settings s JOIN accounts a ON a.id = s.account_id"

    func ip(_ r: QueryResult, _ i: Int) -> IPSettingListRow {
        IPSettingListRow(id: id(r, i, 0), account: str(r, i, 1), name: str(r, i, 2), network: str(r, i, 3),
                         prefix: str(r, i, 4), stripPrefix: bool(r, i, 5), enabled: bool(r, i, 6),
                         createdAt: str(r, i, 7), updatedAt: str(r, i, 8), maxCPS: int(r, i, 9))
    }

    /// IP settings ordered by id; filters: account, network (contains this address or equals this network).
    public func ipSettings(account: String?, contains: String?, cursor: String?, limit: Int) throws -> ListPage<IPSettingListRow> {
        var f = Filter()
        if let account { f.add({ "s.account_id = (SELECT id FROM accounts WHERE number = \($0))" }, account) }
        if let contains { f.add({ "s.network >>= \($0)::inet" }, contains) }
        return try list(select: Self.ipSelect, from: Self.ipFrom, countFrom: "FROM ip_settings s", filter: f, key: "s.id", cast: "::bigint",
                        cursor: try Cursor.parse(cursor, valid: Cursor.id), limit: limit, keyColumn: 0) { ip($0, $1) }
    }

    public func ipSetting(_ id: Int64) throws -> IPSettingListRow? {
        let r = try db.execute(Self.ipSelect + " " + Self.ipFrom + " WHERE s.id = $1::bigint", [String(id)])
        return r.rowCount == 1 ? ip(r, 0) : nil
    }

    // MARK: devices

    static let deviceSelect = """
        SELECT v.id, v.username || '@' || d.name, v.username, d.name, a.number, v.enabled, v.caller_id_name, v.caller_id_number,
               \(time("v.created_at")), \(time("v.updated_at"))
        """
    static let deviceFrom = "FROM sip_devices v JOIN sip_domains d ON d.id = v.domain_id JOIN accounts a ON a.id = v.account_id"

    func device(_ r: QueryResult, _ i: Int) -> DeviceListRow {
        DeviceListRow(id: id(r, i, 0), device: str(r, i, 1), username: str(r, i, 2), domain: str(r, i, 3),
                      account: str(r, i, 4), enabled: bool(r, i, 5), callerIDName: str(r, i, 6),
                      callerIDNumber: str(r, i, 7), createdAt: str(r, i, 8), updatedAt: str(r, i, 9))
    }

    /// Devices ordered by id; filters: account, domain, username (substring).
    public func devices(account: String?, domain: String?, q: String?, cursor: String?, limit: Int) throws -> ListPage<DeviceListRow> {
        var f = Filter()
        if let account { f.add({ "v.account_id = (SELECT id FROM accounts WHERE number = \($0))" }, account) }
        if let domain { f.add({ "v.domain_id = (SELECT id FROM sip_domains WHERE lower(name) = lower(\($0)))" }, domain) }
        if let q, !q.isEmpty { f.add({ "lower(v.username) LIKE \($0)" }, Self.likePattern(q)) }
        return try list(select: Self.deviceSelect, from: Self.deviceFrom, countFrom: "FROM sip_devices v", filter: f, key: "v.id", cast: "::bigint",
                        cursor: try Cursor.parse(cursor, valid: Cursor.id), limit: limit, keyColumn: 0) { device($0, $1) }
    }

    public func device(id: Int64) throws -> DeviceListRow? {
        let r = try db.execute(Self.deviceSelect + " " + Self.deviceFrom + " WHERE v.id = $1::bigint", [String(id)])
        return r.rowCount == 1 ? device(r, 0) : nil
    }

    // MARK: domains

    public func domains(cursor: String?, limit: Int) throws -> ListPage<DomainListRow> {
        try list(select: """
            SELECT lower(d.name), d.name, d.enabled, coalesce((SELECT string_agg(al.alias, ',' ORDER BY al.alias) FROM sip_domain_aliases al WHERE al.domain_id = d.id), ''),
                   \(Self.time("d.created_at"))
            """, from: "FROM sip_domains d", filter: Filter(), key: "lower(d.name)",
            cursor: try Cursor.parse(cursor) { Admin.validDomainName($0) && $0 == $0.lowercased() }, limit: limit, keyColumn: 0) { r, i in
            DomainListRow(name: str(r, i, 1), enabled: bool(r, i, 2),
                          aliases: (r.string(i, 3) ?? "").split(separator: ",").map(String.init), createdAt: str(r, i, 4))
        }
    }

    // MARK: lockouts

    /// The scope as the CLI (`switchauth lockouts`) names it: source, user, source_user; the
    /// database's words (ip, pair) are accepted too.
    public static func scope(named s: String) -> LockoutScope? {
        LockoutScope.allCases.first { $0.label == s } ?? LockoutScope(rawValue: s)
    }

    public func lockouts(scope: String?, cursor: String?, limit: Int) throws -> ListPage<LockoutListRow> {
        var f = Filter()
        f.clauses.append("locked_until > now()")
        if let scope { f.add({ "scope = \($0)" }, Self.scope(named: scope)?.rawValue ?? scope) }
        let valid: (String) -> Bool = { k in
            let parts = k.split(separator: " ", maxSplits: 1)
            return parts.count == 2 && LockoutScope(rawValue: String(parts[0])) != nil && !parts[1].unicodeScalars.contains { $0.value < 32 }
        }
        return try list(select: "SELECT scope || ' ' || subject, scope, subject, failures, \(Self.time("locked_until"))", from: "FROM auth_failures",
                        filter: f, key: "scope || ' ' || subject", cursor: try Cursor.parse(cursor, valid: valid), limit: limit, keyColumn: 0) { r, i in
            let scope = r.string(i, 1) ?? ""
            return LockoutListRow(scope: LockoutScope(rawValue: scope)?.label ?? scope, subject: str(r, i, 2),
                                  failures: int(r, i, 3), lockedUntil: str(r, i, 4))
        }
    }

    // MARK: audit

    public func audit(account: String?, objectType: String?, actor: String?, cursor: String?, limit: Int) throws -> ListPage<AuditListRow> {
        var f = Filter()
        if let account { f.add({ "l.account_id = (SELECT id FROM accounts WHERE number = \($0))" }, account) }
        if let objectType { f.add({ "l.object_type = \($0)" }, objectType) }
        if let actor { f.add({ "l.actor = \($0)" }, actor) }
        return try list(select: """
            SELECT l.id, \(Self.time("l.at")), l.actor, l.action, l.object_type, l.object_id, l.object_label,
                   (SELECT number FROM accounts WHERE id = l.account_id), l.before::text, l.after::text
            """, from: "FROM audit_log l", filter: f, key: "l.id", cast: "::bigint", descending: true,
            cursor: try Cursor.parse(cursor, valid: Cursor.id), limit: limit, keyColumn: 0) { r, i in
            AuditListRow(id: id(r, i, 0), at: str(r, i, 1), actor: str(r, i, 2), action: str(r, i, 3),
                         objectType: str(r, i, 4), objectID: str(r, i, 5), object: str(r, i, 6),
                         account: r.string(i, 7), before: r.string(i, 8).map(RawJSON.init), after: r.string(i, 9).map(RawJSON.init))
        }
    }
}
