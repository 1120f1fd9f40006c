import Decisions
import Postgres
import Store

/// One page of a list as the API answers it: the store's typed rows (`ListPage`) written as JSON.
public struct Page: Sendable {
    public var items: [JSON]
    public var nextCursor: String?
    public var prevCursor: String?
    public var total: Int
    /// False when there are more than `Queries.countCap` matches: `total` is then a lower bound.
    public var totalExact: Bool
    public var limit: Int

    init<Row: Encodable>(_ page: ListPage<Row>) throws {
        items = try page.items.map(JSON.init(encoding:))
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
/// value a parameter), answered as its typed rows (the API writes them with `Page`, the pages read
/// their fields); a cursor that is not one a list gave out becomes a 400.
public struct Queries {
    let store: ConsoleQueries
    public init(db: Connection) { store = ConsoleQueries(db: db) }

    public static let defaultLimit = ConsoleQueries.defaultLimit
    public static let maxLimit = ConsoleQueries.maxLimit
    public static let countCap = ConsoleQueries.countCap

    static func scope(named s: String) -> LockoutScope? { ConsoleQueries.scope(named: s) }

    private func page<Row>(_ read: () throws -> ListPage<Row>) throws -> ListPage<Row> {
        do {
            return try read()
        } catch let e as BadCursor {
            throw Problem(status: 400, title: "Bad Request", detail: e.message, type: "/problems/bad-cursor")
        }
    }

    public func accounts(q: String?, status: String?, kind: String?, cursor: String?, limit: Int) throws -> ListPage<AccountListRow> {
        try page { try store.accounts(q: q, status: status, kind: kind, cursor: cursor, limit: limit) }
    }

    public func account(_ number: String) throws -> AccountListRow? { try store.account(number) }

    public func ipSettings(account: String?, contains: String?, cursor: String?, limit: Int) throws -> ListPage<IPSettingListRow> {
        try page { try store.ipSettings(account: account, contains: contains, cursor: cursor, limit: limit) }
    }

    public func ipSetting(_ id: Int64) throws -> IPSettingListRow? { try store.ipSetting(id) }

    public func devices(account: String?, domain: String?, q: String?, cursor: String?, limit: Int) throws -> ListPage<DeviceListRow> {
        try page { try store.devices(account: account, domain: domain, q: q, cursor: cursor, limit: limit) }
    }

    public func device(id: Int64) throws -> DeviceListRow? { try store.device(id: id) }

    public func domains(cursor: String?, limit: Int) throws -> ListPage<DomainListRow> {
        try page { try store.domains(cursor: cursor, limit: limit) }
    }

    public func lockouts(scope: String?, cursor: String?, limit: Int) throws -> ListPage<LockoutListRow> {
        try page { try store.lockouts(scope: scope, cursor: cursor, limit: limit) }
    }

    public func audit(account: String?, objectType: String?, actor: String?, cursor: String?, limit: Int) throws -> ListPage<AuditListRow> {
        try page { try store.audit(account: account, objectType: objectType, actor: actor, cursor: cursor, limit: limit) }
    }
}
