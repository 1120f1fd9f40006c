import Decisions
import Foundation
import Postgres

/// A refusal of an operator's command, in words an operator can act on. Nothing was changed.
public struct AdminError: Error, CustomStringConvertible, Equatable {
    /// What kind of refusal it is: the console answers 422, 404 or 409 by it (never by the words).
    public enum Kind: Sendable, Equatable {
        /// Bad input: a value out of range, a malformed name, a rule broken.
        case invalid
        /// The object named does not exist.
        case notFound
        /// It exists already, or the key was used for something else.
        case conflict
    }

    public var kind: Kind
    public var message: String
    public init(_ message: String, kind: Kind = .invalid) {
        self.message = message
        self.kind = kind
    }
    public static func notFound(_ message: String) -> AdminError { AdminError(message, kind: .notFound) }
    public static func conflict(_ message: String) -> AdminError { AdminError(message, kind: .conflict) }
    public var description: String { message }
}

/// Rows as the CLI shows them: ordered columns of text.
public struct Table: Sendable, Equatable {
    public var columns: [String]
    public var rows: [[String]]
    public init(columns: [String], rows: [[String]]) {
        self.columns = columns
        self.rows = rows
    }

    static func from(_ r: QueryResult) -> Table {
        Table(columns: (0..<r.columnCount).map(r.columnName),
              rows: (0..<r.rowCount).map { i in (0..<r.columnCount).map { r.string(i, $0) ?? "" } })
    }
}

/// The operators' writes and reads (the seed's admin panel: accounts, IP settings, SIP devices,
/// domains). Every input is validated before it reaches SQL, and constraint violations are turned
/// into messages; every statement takes parameters.
public struct Admin {
    public let db: Connection
    public init(db: Connection) { self.db = db }

    // MARK: audit

    /// Who the audit log (migration 0005) names for changes made by the CLI: `cli:<login name>`,
    /// passed as the session setting `switchauth.actor` (characters outside A-Z a-z 0-9 _ . - dropped).
    public static var cliActor: String {
        var name = "unknown"
        if let pw = getpwuid(geteuid()), let n = pw.pointee.pw_name { name = String(cString: n) }
        let safe = name.unicodeScalars.filter { $0.isASCII && (CharacterSet.alphanumerics.contains($0) || "_.-".unicodeScalars.contains($0)) }
        return "cli:" + String(String.UnicodeScalarView(safe.prefix(64)))
    }

    // MARK: validation

    public static func validAccountNumber(_ s: String) -> Bool {
        !s.isEmpty && s.utf8.count <= 40 && s.utf8.allSatisfy { isAlnum($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") }
    }

    public static func validPrefix(_ s: String) -> Bool {
        s.utf8.count <= 32 && s.utf8.allSatisfy { $0 >= 48 && $0 <= 57 }
    }

    public static func validUsername(_ s: String) -> Bool {
        !s.isEmpty && s.utf8.count <= 64 && s.utf8.allSatisfy {
            isAlnum($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "+")
        }
    }

    public static func validDomainName(_ s: String) -> Bool {
        guard let f = s.utf8.first, isAlnum(f), s.utf8.count <= 253 else { return false }
        return s.utf8.allSatisfy { isAlnum($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: ":") }
    }

    static func isAlnum(_ b: UInt8) -> Bool {
        (b >= 48 && b <= 57) || (b >= 65 && b <= 90) || (b >= 97 && b <= 122)
    }

    @discardableResult
    func mapConstraint<T>(_ body: () throws -> T, unique: String) throws -> T {
        do {
            return try body()
        } catch let e as PostgresError where e.isUniqueViolation {
            throw AdminError.conflict(unique)
        } catch let e as PostgresError where e.sqlState == "23514" || e.sqlState == "22P02" || e.sqlState == "22003" {
            throw AdminError("invalid value: \(e.message)")
        }
    }

    // MARK: accounts

    public struct AccountInput: Sendable {
        public var number: String
        public var name: String
        public var kind: AccountKind = .customer
        public var billing: Billing = .prepaid
        public var balance: String = "0"
        public var creditLimit: String = "0"
        public var maxChannels: Int = 0
        /// Calls per second across every switch; 0 = unlimited.
        public var maxCPS: Int = 0
        public var expiresAt: String?
        public init(number: String, name: String) {
            self.number = number
            self.name = name
        }
    }

    static func validDecimal(_ s: String) -> Bool {
        let body = s.hasPrefix("-") ? String(s.dropFirst()) : s
        let parts = body.split(separator: ".", omittingEmptySubsequences: false)
        return !body.isEmpty && parts.count <= 2 && parts.allSatisfy { !$0.isEmpty && $0.allSatisfy(\.isNumber) && $0.count <= 14 }
    }

    @discardableResult
    public func addAccount(_ a: AccountInput) throws -> Int64 {
        guard Self.validAccountNumber(a.number) else { throw AdminError("account number must be 1-40 of A-Z a-z 0-9 _ . -: \(a.number)") }
        guard !a.name.isEmpty, a.name.count <= 200 else { throw AdminError("account name must be 1-200 characters") }
        guard Self.validDecimal(a.balance) else { throw AdminError("balance must be a decimal number: \(a.balance)") }
        guard Self.validDecimal(a.creditLimit), !a.creditLimit.hasPrefix("-") else { throw AdminError("credit limit must be a non-negative decimal number") }
        guard a.maxChannels >= 0 else { throw AdminError("max channels must be 0 (unlimited) or more") }
        guard a.maxCPS >= 0 else { throw AdminError("max calls per second must be 0 (unlimited) or more") }
        return try mapConstraint({
            try db.execute("""
                INSERT INTO accounts (number, name, kind, billing, balance, credit_limit, max_channels, expires_at, max_cps)
                VALUES ($1, $2, $3, $4, $5::numeric, $6::numeric, $7::int, $8::timestamptz, $9::int) RETURNING id
                """, [a.number, a.name, a.kind.rawValue, a.billing.rawValue, a.balance, a.creditLimit, String(a.maxChannels), a.expiresAt,
                      String(a.maxCPS)])
                .decode(0, 0)
        }, unique: "account \(a.number) already exists")
    }

    /// The account's id; throws a clear error when there is none.
    public func accountID(_ number: String) throws -> Int64 {
        let r = try db.execute("SELECT id FROM accounts WHERE number = $1", [number])
        guard r.rowCount == 1 else { throw AdminError.notFound("unknown account \(number)") }
        return try r.decode(0, 0)
    }

    public func setStatus(_ number: String, _ status: AccountStatus) throws {
        let r = try db.execute("UPDATE accounts SET status = $2 WHERE number = $1", [number, status.rawValue])
        guard r.affectedRows == 1 else { throw AdminError.notFound("unknown account \(number)") }
    }

    public struct AccountUpdate: Sendable {
        public var name: String?
        public var billing: Billing?
        public var creditLimit: String?
        public var maxChannels: Int?
        public var maxCPS: Int?
        public var expiresAt: String?
        public var clearExpiry = false
        public init() {}
    }

    public func updateAccount(_ number: String, _ u: AccountUpdate) throws {
        if let n = u.name, n.isEmpty || n.count > 200 { throw AdminError("account name must be 1-200 characters") }
        if let c = u.creditLimit, !Self.validDecimal(c) || c.hasPrefix("-") { throw AdminError("credit limit must be a non-negative decimal number") }
        if let m = u.maxChannels, m < 0 { throw AdminError("max channels must be 0 (unlimited) or more") }
        if let m = u.maxCPS, m < 0 { throw AdminError("max calls per second must be 0 (unlimited) or more") }
        let r = try mapConstraint({
            try db.execute("""
                UPDATE accounts SET name = coalesce($2, name), billing = coalesce($3, billing),
                       credit_limit = coalesce($4::numeric, credit_limit), max_channels = coalesce($5::int, max_channels),
                       expires_at = CASE WHEN $7::bool THEN NULL ELSE coalesce($6::timestamptz, expires_at) END,
                       max_cps = coalesce($8::int, max_cps)
                 WHERE number = $1
                """, [number, u.name, u.billing?.rawValue, u.creditLimit, u.maxChannels.map(String.init), u.expiresAt, u.clearExpiry ? "true" : "false",
                      u.maxCPS.map(String.init)])
        }, unique: "conflict")
        guard r.affectedRows == 1 else { throw AdminError.notFound("unknown account \(number)") }
    }

    /// Sets (`=`) or adjusts (`+`/`-`) the balance; returns the new balance.
    public func balance(_ number: String, set: String?, adjust: String?) throws -> String {
        if let v = set ?? adjust, !Self.validDecimal(v.hasPrefix("+") ? String(v.dropFirst()) : v) {
            throw AdminError("amount must be a decimal number: \(v)")
        }
        let r: QueryResult
        if let set {
            r = try db.execute("UPDATE accounts SET balance = $2::numeric WHERE number = $1 RETURNING balance::text", [number, set])
        } else if let adjust {
            let v = adjust.hasPrefix("+") ? String(adjust.dropFirst()) : adjust
            r = try db.execute("UPDATE accounts SET balance = balance + $2::numeric WHERE number = $1 RETURNING balance::text", [number, v])
        } else {
            r = try db.execute("SELECT balance::text FROM accounts WHERE number = $1", [number])
        }
        guard r.rowCount == 1 else { throw AdminError.notFound("unknown account \(number)") }
        return try r.decode(0, 0)
    }

    /// Adds `amount` to the balance once per `idempotencyKey`: a retried request with the same key
    /// (and the same account and amount) moves nothing and returns the balance of the first; the
    /// same key with another account or amount is refused. One statement, so it is atomic without
    /// a transaction of its own (callers may hold one).
    public func adjustBalance(_ number: String, amount: String, idempotencyKey: String) throws -> (balance: String, replayed: Bool) {
        let v = amount.hasPrefix("+") ? String(amount.dropFirst()) : amount
        guard Self.validDecimal(v) else { throw AdminError("amount must be a decimal number: \(amount)") }
        guard !idempotencyKey.isEmpty, idempotencyKey.utf8.count <= 200, !idempotencyKey.unicodeScalars.contains(where: { $0.value < 32 }) else {
            throw AdminError("idempotency key must be 1-200 printable characters")
        }
        let accountID = try accountID(number)
        let r = try db.execute("""
            WITH ins AS (
                INSERT INTO balance_adjustments (idempotency_key, account_id, amount, balance_after)
                SELECT $1, a.id, $3::numeric, a.balance + $3::numeric FROM accounts a WHERE a.id = $2::bigint FOR UPDATE
                ON CONFLICT (idempotency_key) DO NOTHING
                RETURNING account_id, amount
            ), upd AS (
                UPDATE accounts a SET balance = a.balance + ins.amount FROM ins WHERE a.id = ins.account_id RETURNING a.balance::text
            )
            SELECT balance FROM upd
            """, [idempotencyKey, String(accountID), v])
        if r.rowCount == 1 { return (try r.decode(0, 0), false) }
        let prior = try db.execute("""
            SELECT account_id = $2::bigint AND amount = $3::numeric, balance_after::text FROM balance_adjustments WHERE idempotency_key = $1
            """, [idempotencyKey, String(accountID), v])
        guard prior.rowCount == 1 else { throw AdminError("balance adjustment with key \(idempotencyKey) could not be recorded; retry") }
        guard try prior.decode(0, 0) as Bool else {
            throw AdminError.conflict("idempotency key \(idempotencyKey) was already used for a different adjustment")
        }
        return (try prior.decode(0, 1), true)
    }

    // MARK: IP settings

    @discardableResult
    public func addIP(account: String, name: String, network: String, prefix: String, strip: Bool, maxCPS: Int = 0) throws -> Int64 {
        guard let net = IPNetwork(network) else {
            throw AdminError("invalid IP or CIDR: \(network) (a bare address is one host; a network must have its host bits zero, e.g. 203.0.113.0/24)")
        }
        guard Self.validPrefix(prefix) else { throw AdminError("prefix must be digits only (at most 32), or empty for any destination: \(prefix)") }
        guard !name.isEmpty, name.count <= 200 else { throw AdminError("IP setting name must be 1-200 characters") }
        guard maxCPS >= 0 else { throw AdminError("max calls per second must be 0 (unlimited) or more") }
        let id = try accountID(account)
        return try mapConstraint({
            try db.execute("""
                INSERT INTO ip_settings (account_id, name, network, prefix, strip_prefix, max_cps)
                VALUES ($1, $2, $3::cidr, $4, $5::bool, $6::int) RETURNING id
                """, [String(id), name, net.description, prefix, strip ? "true" : "false", String(maxCPS)]).decode(0, 0)
        }, unique: "an IP setting for \(net) with prefix '\(prefix)' already exists")
    }

    /// Changes an IP setting; nil fields stay as they are. The same checks as `addIP`.
    public struct IPUpdate: Sendable {
        public var name: String?
        public var network: String?
        public var prefix: String?
        public var strip: Bool?
        public var enabled: Bool?
        public var maxCPS: Int?
        public init() {}
    }

    public func updateIP(id: Int64, _ u: IPUpdate) throws {
        var net: IPNetwork?
        if let network = u.network {
            guard let n = IPNetwork(network) else {
                throw AdminError("invalid IP or CIDR: \(network) (a bare address is one host; a network must have its host bits zero, e.g. 203.0.113.0/24)")
            }
            net = n
        }
        if let prefix = u.prefix, !Self.validPrefix(prefix) { throw AdminError("prefix must be digits only (at most 32), or empty for any destination: \(prefix)") }
        if let name = u.name, name.isEmpty || name.count > 200 { throw AdminError("IP setting name must be 1-200 characters") }
        let r = try mapConstraint({
            try db.execute("""
                UPDATE ip_settings SET name = coalesce($2, name), network = coalesce($3::cidr, network), prefix = coalesce($4, prefix),
                       strip_prefix = coalesce($5::bool, strip_prefix), enabled = coalesce($6::bool, enabled),
                       max_cps = coalesce($7::int, max_cps)
                 WHERE id = $1::bigint
                """, [String(id), u.name, net?.description, u.prefix, u.strip.map { $0 ? "true" : "false" }, u.enabled.map { $0 ? "true" : "false" },
                      u.maxCPS.map(String.init)])
        }, unique: "an IP setting for \(net?.description ?? "that network") with prefix '\(u.prefix ?? "")' already exists")
        guard r.affectedRows == 1 else { throw AdminError.notFound("unknown IP setting \(id)") }
    }

    public func setIPEnabled(id: Int64, _ enabled: Bool) throws {
        let r = try db.execute("UPDATE ip_settings SET enabled = $2::bool WHERE id = $1::bigint", [String(id), enabled ? "true" : "false"])
        guard r.affectedRows == 1 else { throw AdminError.notFound("unknown IP setting \(id)") }
    }

    public func removeIP(id: Int64) throws {
        let r = try db.execute("DELETE FROM ip_settings WHERE id = $1::bigint", [String(id)])
        guard r.affectedRows == 1 else { throw AdminError.notFound("unknown IP setting \(id)") }
    }

    // MARK: domains

    @discardableResult
    public func addDomain(_ name: String) throws -> Int64 {
        guard Self.validDomainName(name) else { throw AdminError("invalid domain name: \(name)") }
        return try mapConstraint({
            try db.execute("INSERT INTO sip_domains (name) VALUES ($1) RETURNING id", [name]).decode(0, 0)
        }, unique: "domain or alias \(name) already exists")
    }

    public func addAlias(domain: String, alias: String) throws {
        guard Self.validDomainName(alias) else { throw AdminError("invalid alias: \(alias)") }
        let id = try domainID(domain)
        try mapConstraint({
            try db.execute("INSERT INTO sip_domain_aliases (domain_id, alias) VALUES ($1::bigint, $2)", [String(id), alias])
        }, unique: "domain or alias \(alias) already exists")
    }

    public func domainID(_ name: String) throws -> Int64 {
        let r = try db.execute("SELECT id FROM sip_domains WHERE lower(name) = lower($1)", [name])
        guard r.rowCount == 1 else { throw AdminError.notFound("unknown domain \(name) (aliases are not accepted here: name the domain)") }
        return try r.decode(0, 0)
    }

    public func listDomains() throws -> Table {
        Table.from(try db.execute("""
            SELECT d.name, d.enabled, coalesce(string_agg(al.alias, ',' ORDER BY al.alias), '') AS aliases,
                   (SELECT count(*) FROM sip_devices v WHERE v.domain_id = d.id) AS devices
              FROM sip_domains d LEFT JOIN sip_domain_aliases al ON al.domain_id = d.id
             GROUP BY d.id ORDER BY d.name
            """))
    }

    // MARK: devices

    public struct DeviceInput: Sendable {
        public var account: String
        public var domain: String
        public var username: String
        public var password: String
        public var callerIDName = ""
        public var callerIDNumber = ""
        public init(account: String, domain: String, username: String, password: String) {
            self.account = account
            self.domain = domain
            self.username = username
            self.password = password
        }
    }

    static func checkPassword(_ p: String) throws {
        guard p.utf8.count >= 8 else { throw AdminError("password must be at least 8 characters") }
        guard p.utf8.count <= 128, !p.utf8.contains(where: { $0 < 32 || $0 == 127 }) else {
            throw AdminError("password must be at most 128 characters without control characters")
        }
    }

    /// The realm (primary domain name) and both HA1s. The plaintext goes no further than this.
    func digests(username: String, realm: String, password: String) -> (String, String) {
        (DigestAlgorithm.md5.ha1(username: username, realm: realm, password: password),
         DigestAlgorithm.sha256.ha1(username: username, realm: realm, password: password))
    }

    func realm(of domainID: Int64) throws -> String {
        try db.execute("SELECT name FROM sip_domains WHERE id = $1::bigint", [String(domainID)]).decode(0, 0)
    }

    @discardableResult
    public func addDevice(_ d: DeviceInput) throws -> Int64 {
        guard Self.validUsername(d.username) else { throw AdminError("username must be 1-64 of A-Z a-z 0-9 _ . - +: \(d.username)") }
        guard d.callerIDName.count <= 100, !d.callerIDName.unicodeScalars.contains(where: { $0.value < 32 }) else { throw AdminError("caller ID name must be at most 100 printable characters") }
        guard d.callerIDNumber.isEmpty || (d.callerIDNumber.count <= 33 && DialplanDecider.isValidDestination(d.callerIDNumber) && d.callerIDNumber.dropFirst(d.callerIDNumber.hasPrefix("+") ? 1 : 0).allSatisfy(\.isNumber)) else {
            throw AdminError("caller ID number must be digits, optionally with a leading +")
        }
        let accountID = try accountID(d.account)
        let domainID = try domainID(d.domain)
        try Self.checkPassword(d.password)
        let (md5, sha) = digests(username: d.username, realm: try realm(of: domainID), password: d.password)
        return try mapConstraint({
            try db.execute("""
                INSERT INTO sip_devices (account_id, domain_id, username, ha1_md5, ha1_sha256, caller_id_name, caller_id_number)
                VALUES ($1::bigint, $2::bigint, $3, $4, $5, $6, $7) RETURNING id
                """, [String(accountID), String(domainID), d.username, md5, sha, d.callerIDName, d.callerIDNumber]).decode(0, 0)
        }, unique: "device \(d.username)@\(d.domain) already exists")
    }

    /// user@domain -> device id.
    public func deviceID(_ address: String) throws -> Int64 {
        guard let at = address.lastIndex(of: "@") else { throw AdminError("name the device as user@domain: \(address)") }
        let user = String(address[..<at]), domain = String(address[address.index(after: at)...])
        let r = try db.execute("""
            SELECT v.id FROM sip_devices v JOIN sip_domains d ON d.id = v.domain_id
             WHERE v.username = $1 AND (lower(d.name) = lower($2)
                OR d.id IN (SELECT domain_id FROM sip_domain_aliases WHERE lower(alias) = lower($2)))
            """, [user, domain])
        guard r.rowCount == 1 else { throw AdminError.notFound("unknown device \(address)") }
        return try r.decode(0, 0)
    }

    public func setPassword(_ address: String, password: String) throws {
        try Self.checkPassword(password)
        let id = try deviceID(address)
        let r = try db.execute("SELECT v.username, d.name FROM sip_devices v JOIN sip_domains d ON d.id = v.domain_id WHERE v.id = $1::bigint", [String(id)])
        let (md5, sha) = digests(username: try r.decode(0, 0), realm: try r.decode(0, 1), password: password)
        try db.execute("UPDATE sip_devices SET ha1_md5 = $2, ha1_sha256 = $3 WHERE id = $1::bigint", [String(id), md5, sha])
    }

    public func setDeviceEnabled(_ address: String, _ enabled: Bool) throws {
        let id = try deviceID(address)
        try db.execute("UPDATE sip_devices SET enabled = $2::bool WHERE id = $1::bigint", [String(id), enabled ? "true" : "false"])
    }

    public func removeDevice(_ address: String) throws {
        let id = try deviceID(address)
        try db.execute("DELETE FROM sip_devices WHERE id = $1::bigint", [String(id)])
    }

    // MARK: typed reads (the console's statements and rows, every page)

    public func accounts() throws -> [AccountListRow] {
        try ConsoleQueries.all { try ConsoleQueries(db: db).accounts(q: nil, status: nil, kind: nil, cursor: $0, limit: ConsoleQueries.maxLimit) }
    }

    public func account(_ number: String) throws -> AccountListRow {
        guard let row = try ConsoleQueries(db: db).account(number) else { throw AdminError.notFound("unknown account \(number)") }
        return row
    }

    public func ipSettings(account: String?) throws -> [IPSettingListRow] {
        if let account { _ = try accountID(account) }
        return try ConsoleQueries.all { try ConsoleQueries(db: db).ipSettings(account: account, contains: nil, cursor: $0, limit: ConsoleQueries.maxLimit) }
    }

    public func devices(account: String?) throws -> [DeviceListRow] {
        if let account { _ = try accountID(account) }
        return try ConsoleQueries.all { try ConsoleQueries(db: db).devices(account: account, domain: nil, q: nil, cursor: $0, limit: ConsoleQueries.maxLimit) }
    }

    /// A device named `user@domain`.
    public func device(_ address: String) throws -> DeviceListRow {
        let id = try deviceID(address)
        guard let row = try ConsoleQueries(db: db).device(id: id) else { throw AdminError.notFound("unknown device \(address)") }
        return row
    }
}
