import Decisions
import Postgres
import Store

/// One page of a list as the console answers it: the store's typed rows (`ListPage`) as JSON
/// values, which the API writes as they are and the pages read.
public struct Page: Sendable {
    public var items: [JSON]
    public var nextCursor: String?
    public var prevCursor: String?
    public var total: Int
    /// False when there are more than `Queries.countCap` matches: `total` is then a lower bound.
    public var totalExact: Bool
    public var limit: Int

    init<Row>(_ page: ListPage<Row>, _ json: (Row) -> JSON) {
        items = page.items.map(json)
        nextCursor = page.nextCursor
        prevCursor = page.prevCursor
        total = page.total
        totalExact = page.totalExact
        limit = page.limit
    }

    public var json: JSON {
        .object([("items", .array(items)), ("next_cursor", .optional(nextCursor)), ("prev_cursor", .optional(prevCursor)),
                 ("total", .int(total)), ("total_exact", .bool(totalExact)), ("limit", .int(limit))])
    }
}

/// The console's reads: the statements are the store's (`ConsoleQueries`, keyset-paginated, every
/// value a parameter); here each row type is written as the JSON the API documents, one function
/// per type, and a cursor that is not one a list gave out becomes a 400.
public struct Queries {
    let store: ConsoleQueries
    public init(db: Connection) { store = ConsoleQueries(db: db) }

    public static let defaultLimit = ConsoleQueries.defaultLimit
    public static let maxLimit = ConsoleQueries.maxLimit
    public static let countCap = ConsoleQueries.countCap

    static func scope(named s: String) -> LockoutScope? { ConsoleQueries.scope(named: s) }

    private func page<Row>(_ read: () throws -> ListPage<Row>, _ json: (Row) -> JSON) throws -> Page {
        do {
            return Page(try read(), json)
        } catch let e as BadCursor {
            throw Problem(status: 400, title: "Bad Request", detail: e.message, type: "/problems/bad-cursor")
        }
    }

    public func accounts(q: String?, status: String?, kind: String?, cursor: String?, limit: Int) throws -> Page {
        try page({ try store.accounts(q: q, status: status, kind: kind, cursor: cursor, limit: limit) }, Self.json)
    }

    public func account(_ number: String) throws -> JSON? { try store.account(number).map(Self.json) }

    public func ipSettings(account: String?, contains: String?, cursor: String?, limit: Int) throws -> Page {
        try page({ try store.ipSettings(account: account, contains: contains, cursor: cursor, limit: limit) }, Self.json)
    }

    public func ipSetting(_ id: Int64) throws -> JSON? { try store.ipSetting(id).map(Self.json) }

    public func devices(account: String?, domain: String?, q: String?, cursor: String?, limit: Int) throws -> Page {
        try page({ try store.devices(account: account, domain: domain, q: q, cursor: cursor, limit: limit) }, Self.json)
    }

    public func device(id: Int64) throws -> JSON? { try store.device(id: id).map(Self.json) }

    public func domains(cursor: String?, limit: Int) throws -> Page {
        try page({ try store.domains(cursor: cursor, limit: limit) }, Self.json)
    }

    public func lockouts(scope: String?, cursor: String?, limit: Int) throws -> Page {
        try page({ try store.lockouts(scope: scope, cursor: cursor, limit: limit) }, Self.json)
    }

    public func audit(account: String?, objectType: String?, actor: String?, cursor: String?, limit: Int) throws -> Page {
        try page({ try store.audit(account: account, objectType: objectType, actor: actor, cursor: cursor, limit: limit) }, Self.json)
    }

    // MARK: the rows as JSON (the keys and kinds the OpenAPI document gives)

    static func json(_ a: AccountListRow) -> JSON {
        .object([("number", .string(a.number)), ("name", .string(a.name)), ("kind", .string(a.kind)), ("status", .string(a.status)),
                 ("billing", .string(a.billing)), ("balance", .string(a.balance)), ("credit_limit", .string(a.creditLimit)),
                 ("max_channels", .int(a.maxChannels)), ("expires_at", .optional(a.expiresAt)), ("created_at", .string(a.createdAt)),
                 ("updated_at", .string(a.updatedAt)), ("ip_settings", .int(a.ipSettings)), ("devices", .int(a.devices)),
                 ("max_cps", .int(a.maxCPS)), ("calls_up", .int(a.callsUp))])
    }

    static func json(_ s: IPSettingListRow) -> JSON {
        .object([("id", .int64(s.id)), ("account", .string(s.account)), ("name", .string(s.name)), ("network", .string(s.network)),
                 ("prefix", .string(s.prefix)), ("strip_prefix", .bool(s.stripPrefix)), ("enabled", .bool(s.enabled)),
                 ("created_at", .string(s.createdAt)), ("updated_at", .string(s.updatedAt)), ("max_cps", .int(s.maxCPS))])
    }

    static func json(_ d: DeviceListRow) -> JSON {
        .object([("id", .int64(d.id)), ("device", .string(d.device)), ("username", .string(d.username)), ("domain", .string(d.domain)),
                 ("account", .string(d.account)), ("enabled", .bool(d.enabled)), ("caller_id_name", .string(d.callerIDName)),
                 ("caller_id_number", .string(d.callerIDNumber)), ("created_at", .string(d.createdAt)), ("updated_at", .string(d.updatedAt))])
    }

    static func json(_ d: DomainListRow) -> JSON {
        .object([("name", .string(d.name)), ("enabled", .bool(d.enabled)), ("aliases", .array(d.aliases.map { .string($0) })),
                 ("created_at", .string(d.createdAt))])
    }

    static func json(_ l: LockoutListRow) -> JSON {
        .object([("scope", .string(l.scope)), ("subject", .string(l.subject)), ("failures", .int(l.failures)), ("locked_until", .string(l.lockedUntil))])
    }

    static func json(_ e: AuditListRow) -> JSON {
        .object([("id", .int64(e.id)), ("at", .string(e.at)), ("actor", .string(e.actor)), ("action", .string(e.action)),
                 ("object_type", .string(e.objectType)), ("object_id", .string(e.objectID)), ("object", .string(e.object)),
                 ("account", .optional(e.account)), ("before", e.before.map { .raw($0) } ?? .null), ("after", e.after.map { .raw($0) } ?? .null)])
    }
}
