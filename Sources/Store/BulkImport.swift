import Decisions
import Dispatch
import Postgres
import Synchronization

/// `switchauth import` as a bulk load, all or nothing, in the caller's transaction:
/// 1. every record is checked in Swift as it is read, in file order, with the rules of
///    `Admin.addDomain/addAlias/addAccount/addIP/addDevice` (their validators) against the domains
///    and accounts already in the database (read once) and those defined on earlier lines;
/// 2. the records go through one `COPY ... FROM STDIN` into a temporary staging table, devices
///    with their HA1s (computed in parallel; a password never leaves this process);
/// 3. the uniqueness the file alone cannot tell (an IP setting or device already in the database)
///    is checked with one set-based query each, which names the first line;
/// 4. one `INSERT ... SELECT` per table, ordinary statements that fire the tables' triggers.
/// The first bad line is reported, with the message `Admin` would give; nothing is kept.
public final class BulkImport {
    /// A refusal naming its line (1-based, as the CSV reader counts physical lines).
    public struct LineError: Error, CustomStringConvertible, Equatable {
        public var line: Int
        public var message: String
        public init(line: Int, _ message: String) {
            self.line = line
            self.message = message
        }
        public var description: String { "line \(line): \(message)" }
    }

    /// The columns a record may use (the CSV header names, lower case).
    public enum Field: Int, CaseIterable, Sendable {
        case record, account, name, ip, prefix, strip, username, domain, password, callerIDName, callerIDNumber
        case alias, kind, billing, balance, creditLimit, maxChannels

        public static let columnNames = ["record", "account", "name", "ip", "prefix", "strip", "username", "domain", "password",
                                         "caller_id_name", "caller_id_number", "alias", "kind", "billing", "balance",
                                         "credit_limit", "max_channels"]
        public init?(column: String) {
            guard let i = Self.columnNames.firstIndex(of: column) else { return nil }
            self.init(rawValue: i)
        }
        public var column: String { Self.columnNames[rawValue] }
    }

    public struct Counts: Sendable, Equatable {
        public var domain = 0, account = 0, ip = 0, device = 0
        public var total: Int { domain + account + ip + device }
    }

    /// What the import is doing, for a progress display.
    public enum Event {
        case sent(rows: Int)
        case stage(String)
    }

    private let db: Connection
    private let onEvent: (Event) -> Void

    // Names known so far: the database's, then each earlier line's.
    private var domainKeys: [String: (primary: Int, isAlias: Bool)] = [:]   // lower(name or alias)
    private var primaryNames: [String] = []                                   // realm of each primary
    private var accounts: Set<String> = []
    private struct IPKey: Hashable { var network: String; var prefix: String }
    private var ipKeys: Set<IPKey> = []
    private struct DeviceKey: Hashable { var domain: Int32; var username: String }
    private var deviceKeys: Set<DeviceKey> = []
    /// Devices whose domain was written otherwise than its primary name (an alias, another case),
    /// for the duplicate message.
    private var writtenDomains: [Int: String] = [:]

    // Staging.
    private struct PendingDevice: Sendable {
        var line: Int
        var account: String
        var domainKey: String
        var realm: String
        var username: String
        var password: String
        var callerIDName: String
        var callerIDNumber: String
    }
    private var devices: [PendingDevice] = []
    private var out: [UInt8] = []
    private var sentRows = 0
    private var counts = Counts()
    static let deviceBatch = 32_768

    /// Reads the names already in the database (inside the caller's transaction).
    public init(db: Connection, onEvent: @escaping (Event) -> Void = { _ in }) throws {
        self.db = db
        self.onEvent = onEvent
        let d = try db.execute("SELECT lower(name), name FROM sip_domains")
        for i in 0..<d.rowCount {
            domainKeys[try d.decode(i, 0)] = (primaryNames.count, false)
            primaryNames.append(try d.decode(i, 1))
        }
        let al = try db.execute("SELECT lower(al.alias), lower(d.name) FROM sip_domain_aliases al JOIN sip_domains d ON d.id = al.domain_id")
        for i in 0..<al.rowCount {
            if let p = domainKeys[try al.decode(i, 1)] { domainKeys[try al.decode(i, 0)] = (p.primary, true) }
        }
        let a = try db.execute("SELECT number FROM accounts")
        accounts.reserveCapacity(a.rowCount)
        for i in 0..<a.rowCount { accounts.insert(try a.decode(i, 0)) }
    }

    static let stagingColumns = "line, rec, account, name, domain, kind, billing, balance, credit_limit, max_channels, network, prefix, strip, username, ha1_md5, ha1_sha256, cid_name, cid_number"

    /// Runs the import. `rows` reads the file and calls `add(line, values)` for every record
    /// (values indexed by `Field.rawValue`); it may throw a `LineError` of its own (a CSV error),
    /// which, like a refused record, ends the reading. Throws the first bad line's `LineError`.
    public func run(rows: (_ add: (Int, [String?]) throws -> Void) throws -> Void) throws -> Counts {
        try db.executeScript("""
            CREATE TEMPORARY TABLE import_rows (
                line int NOT NULL, rec "char" NOT NULL, account text, name text, domain text,
                kind text, billing text, balance text, credit_limit text, max_channels int,
                network text, prefix text, strip bool,
                username text, ha1_md5 text, ha1_sha256 text, cid_name text, cid_number text
            ) ON COMMIT DROP
            """)
        var firstError: LineError?
        onEvent(.stage("reading"))
        try db.copyIn("COPY import_rows (\(Self.stagingColumns)) FROM STDIN") { copy in
            do {
                try rows { line, values in try self.add(line: line, values, copy) }
            } catch let e as LineError {
                firstError = e   // the lines before it are staged and checked below
            }
            try self.flushDevices(copy)
            if !self.out.isEmpty { try copy.send(self.out); self.out = [] }
        }
        devices = []
        onEvent(.stage("checking"))
        try db.executeScript("ANALYZE import_rows")
        func earlier(_ e: LineError?) {
            if let e, e.line < firstError?.line ?? Int.max { firstError = e }
        }
        if counts.ip > 0 {
            let r = try db.execute("""
                SELECT s.line, s.network, s.prefix FROM import_rows s
                  JOIN ip_settings i ON i.network = s.network::cidr AND i.prefix = s.prefix
                 WHERE s.rec = 'i' ORDER BY s.line LIMIT 1
                """)
            if r.rowCount == 1 {
                earlier(LineError(line: try r.decode(0, 0), "an IP setting for \(try r.decode(0, 1) as String) with prefix '\(try r.decode(0, 2) as String)' already exists"))
            }
        }
        if counts.device > 0 {
            let r = try db.execute("""
                SELECT s.line, s.username, d.name FROM import_rows s
                  JOIN sip_domains d ON lower(d.name) = s.domain
                  JOIN sip_devices v ON v.domain_id = d.id AND v.username = s.username
                 WHERE s.rec = 'v' ORDER BY s.line LIMIT 1
                """)
            if r.rowCount == 1 {
                let line: Int = try r.decode(0, 0)
                let primary: String = try r.decode(0, 2)
                let domain = writtenDomains[line] ?? primary
                earlier(LineError(line: line, "device \(try r.decode(0, 1) as String)@\(domain) already exists"))
            }
        }
        if let firstError { throw firstError }

        func insert(_ what: String, _ expected: Int, _ sql: String) throws {
            guard expected > 0 else { return }
            onEvent(.stage("inserting \(what)"))
            let r = try db.execute(sql)
            guard r.affectedRows == expected else {
                throw PostgresError(kind: .server, operation: "import", message: "\(what): \(r.affectedRows) rows inserted, \(expected) expected")
            }
        }
        let domainRows = try db.execute("SELECT count(*) FILTER (WHERE rec = 'd'), count(*) FILTER (WHERE rec = 'a') FROM import_rows")
        try insert("domains", try domainRows.decode(0, 0), """
            INSERT INTO sip_domains (name) SELECT name FROM import_rows WHERE rec = 'd' ORDER BY line
            """)
        try insert("domain aliases", try domainRows.decode(0, 1), """
            INSERT INTO sip_domain_aliases (domain_id, alias)
            SELECT d.id, s.name FROM import_rows s JOIN sip_domains d ON lower(d.name) = s.domain
             WHERE s.rec = 'a' ORDER BY s.line
            """)
        try insert("accounts", counts.account, """
            INSERT INTO accounts (number, name, kind, billing, balance, credit_limit, max_channels)
            SELECT account, name, kind, billing, balance::numeric, credit_limit::numeric, max_channels
              FROM import_rows WHERE rec = 'c' ORDER BY line
            """)
        try insert("IP settings", counts.ip, """
            INSERT INTO ip_settings (account_id, name, network, prefix, strip_prefix)
            SELECT a.id, s.name, s.network::cidr, s.prefix, s.strip
              FROM import_rows s JOIN accounts a ON a.number = s.account
             WHERE s.rec = 'i' ORDER BY s.line
            """)
        try insert("devices", counts.device, """
            INSERT INTO sip_devices (account_id, domain_id, username, ha1_md5, ha1_sha256, caller_id_name, caller_id_number)
            SELECT a.id, d.id, s.username, s.ha1_md5, s.ha1_sha256, s.cid_name, s.cid_number
              FROM import_rows s JOIN accounts a ON a.number = s.account JOIN sip_domains d ON lower(d.name) = s.domain
             WHERE s.rec = 'v' ORDER BY s.line
            """)
        return counts
    }

    // MARK: records

    /// Checks one record as `Admin` would, in its order, and stages it.
    private func add(line: Int, _ v: [String?], _ copy: CopyIn) throws {
        func need(_ f: Field) throws -> String {
            guard let x = v[f.rawValue], !x.isEmpty else {
                throw LineError(line: line, "'\(f.column)' is required for record \(v[Field.record.rawValue] ?? "")")
            }
            return x
        }
        func value(_ f: Field) -> String? {
            guard let x = v[f.rawValue], !x.isEmpty else { return nil }
            return x
        }
        do {
            switch v[Field.record.rawValue]?.lowercased() ?? "" {
            case "domain":
                let name = try need(.name)
                if let alias = value(.alias) {
                    try addAlias(line: line, domain: name, alias: alias)
                } else {
                    try addDomain(line: line, name)
                }
                counts.domain += 1
            case "account":
                var input = Admin.AccountInput(number: try need(.account), name: try need(.name))
                if let k = value(.kind) {
                    guard let kind = AccountKind(rawValue: k) else { throw AdminError("kind must be customer or carrier") }
                    input.kind = kind
                }
                if let b = value(.billing) {
                    guard let billing = Billing(rawValue: b) else { throw AdminError("billing must be prepaid or postpaid") }
                    input.billing = billing
                }
                if let b = value(.balance) { input.balance = b }
                if let c = value(.creditLimit) { input.creditLimit = c }
                if let m = value(.maxChannels) {
                    guard let n = Int(m) else { throw AdminError("max_channels must be a whole number") }
                    input.maxChannels = n
                }
                try Admin.checkAccount(input)
                guard accounts.insert(input.number).inserted else { throw AdminError.conflict("account \(input.number) already exists") }
                row(line, "c", [input.number, input.name, nil, input.kind.rawValue, input.billing.rawValue, input.balance,
                                input.creditLimit, String(input.maxChannels)])
                counts.account += 1
            case "ip":
                let strip = ["1", "true", "yes"].contains((v[Field.strip.rawValue] ?? "").lowercased())
                let account = try need(.account), name = try need(.name), network = try need(.ip)
                let prefix = v[Field.prefix.rawValue] ?? ""
                let net = try Admin.checkIP(name: name, network: network, prefix: prefix)
                guard accounts.contains(account) else { throw AdminError.notFound("unknown account \(account)") }
                guard ipKeys.insert(IPKey(network: net.description, prefix: prefix)).inserted else {
                    throw AdminError.conflict("an IP setting for \(net) with prefix '\(prefix)' already exists")
                }
                row(line, "i", [account, name, nil, nil, nil, nil, nil, nil, net.description, prefix, strip ? "t" : "f"])
                counts.ip += 1
            case "device":
                var input = Admin.DeviceInput(account: try need(.account), domain: try need(.domain),
                                              username: try need(.username), password: try need(.password))
                input.callerIDName = v[Field.callerIDName.rawValue] ?? ""
                input.callerIDNumber = v[Field.callerIDNumber.rawValue] ?? ""
                try Admin.checkDeviceFields(input)
                guard accounts.contains(input.account) else { throw AdminError.notFound("unknown account \(input.account)") }
                let key = input.domain.lowercased()
                guard let domain = domainKeys[key] else { throw AdminError.notFound("unknown domain \(input.domain)") }
                try Admin.checkPassword(input.password)
                let realm = primaryNames[domain.primary]
                guard deviceKeys.insert(DeviceKey(domain: Int32(domain.primary), username: input.username)).inserted else {
                    throw AdminError.conflict("device \(input.username)@\(input.domain) already exists")
                }
                if input.domain != realm { writtenDomains[line] = input.domain }
                devices.append(PendingDevice(line: line, account: input.account, domainKey: realm.lowercased(), realm: realm,
                                             username: input.username, password: input.password,
                                             callerIDName: input.callerIDName, callerIDNumber: input.callerIDNumber))
                counts.device += 1
                if devices.count >= Self.deviceBatch { try flushDevices(copy) }
            case let other:
                throw AdminError.notFound("unknown record type '\(other)' (domain, account, ip, device)")
            }
        } catch let e as AdminError {
            throw LineError(line: line, e.message)
        }
        if out.count >= 1 << 20 {
            try copy.send(out)
            out.removeAll(keepingCapacity: true)
        }
    }

    private func addDomain(line: Int, _ name: String) throws {
        guard Admin.validDomainName(name) else { throw AdminError("invalid domain name: \(name)") }
        let key = name.lowercased()
        guard domainKeys[key] == nil else { throw AdminError.conflict("domain or alias \(name) already exists") }
        domainKeys[key] = (primaryNames.count, false)
        primaryNames.append(name)
        row(line, "d", [nil, name])
    }

    private func addAlias(line: Int, domain: String, alias: String) throws {
        guard Admin.validDomainName(alias) else { throw AdminError("invalid alias: \(alias)") }
        guard let d = domainKeys[domain.lowercased()], !d.isAlias else {
            throw AdminError.notFound("unknown domain \(domain) (aliases are not accepted here: name the domain)")
        }
        let key = alias.lowercased()
        guard domainKeys[key] == nil else { throw AdminError.conflict("domain or alias \(alias) already exists") }
        domainKeys[key] = (d.primary, true)
        row(line, "a", [nil, alias, primaryNames[d.primary].lowercased()])
    }

    /// One staging row: line, rec, then the columns after them in `stagingColumns` order (nil: NULL).
    private func row(_ line: Int, _ rec: String, _ columns: [String?]) {
        CopyText.append(String(line), to: &out)
        CopyText.appendTab(to: &out)
        CopyText.append(rec, to: &out)
        for i in 0..<16 {
            CopyText.appendTab(to: &out)
            if i < columns.count, let c = columns[i] { CopyText.append(c, to: &out) } else { CopyText.appendNull(to: &out) }
        }
        CopyText.appendNewline(to: &out)
    }

    /// Hashes the pending devices on all cores, in chunks, and sends their rows.
    private func flushDevices(_ copy: CopyIn) throws {
        guard !devices.isEmpty else { return }
        if !out.isEmpty {
            try copy.send(out)
            out.removeAll(keepingCapacity: true)
        }
        let batch = devices
        devices.removeAll(keepingCapacity: true)
        let chunkSize = 2_048
        let chunks = (batch.count + chunkSize - 1) / chunkSize
        let results = Mutex<[[UInt8]]>(Array(repeating: [], count: chunks))
        DispatchQueue.concurrentPerform(iterations: chunks) { c in
            var bytes: [UInt8] = []
            bytes.reserveCapacity(chunkSize * 180)
            for d in batch[(c * chunkSize)..<min(batch.count, (c + 1) * chunkSize)] {
                // What Admin.digests computes (it is an instance method over a Connection, which a
                // concurrent closure may not capture); CLITests checks the two agree.
                let md5 = DigestAlgorithm.md5.ha1(username: d.username, realm: d.realm, password: d.password)
                let sha = DigestAlgorithm.sha256.ha1(username: d.username, realm: d.realm, password: d.password)
                CopyText.append(String(d.line), to: &bytes)
                CopyText.appendTab(to: &bytes)
                CopyText.append("v", to: &bytes)
                CopyText.appendTab(to: &bytes)
                CopyText.append(d.account, to: &bytes)
                CopyText.appendTab(to: &bytes)
                CopyText.appendNull(to: &bytes)                          // name
                CopyText.appendTab(to: &bytes)
                CopyText.append(d.domainKey, to: &bytes)
                for _ in 0..<8 {                                          // kind ... strip
                    CopyText.appendTab(to: &bytes)
                    CopyText.appendNull(to: &bytes)
                }
                for s in [d.username, md5, sha, d.callerIDName, d.callerIDNumber] {
                    CopyText.appendTab(to: &bytes)
                    CopyText.append(s, to: &bytes)
                }
                CopyText.appendNewline(to: &bytes)
            }
            let done = bytes
            results.withLock { $0[c] = done }
        }
        let encoded = results.withLock { r in
            let all = r
            r = []
            return all
        }
        for bytes in encoded { try copy.send(bytes) }
        sentRows += batch.count
        onEvent(.sent(rows: sentRows))
    }
}

// MARK: the checks Admin's add functions make before any SQL

extension Admin {
    /// `addAccount`'s checks.
    static func checkAccount(_ a: AccountInput) throws {
        guard validAccountNumber(a.number) else { throw AdminError("account number must be 1-40 of A-Z a-z 0-9 _ . -: \(a.number)") }
        guard !a.name.isEmpty, a.name.count <= 200 else { throw AdminError("account name must be 1-200 characters") }
        guard validDecimal(a.balance) else { throw AdminError("balance must be a decimal number: \(a.balance)") }
        guard validDecimal(a.creditLimit), !a.creditLimit.hasPrefix("-") else { throw AdminError("credit limit must be a non-negative decimal number") }
        guard a.maxChannels >= 0 else { throw AdminError("max channels must be 0 (unlimited) or more") }
    }

    /// `addIP`'s checks before the account lookup; the network as PostgreSQL's `cidr` will hold it.
    static func checkIP(name: String, network: String, prefix: String) throws -> IPNetwork {
        guard let net = IPNetwork(network) else {
            throw AdminError("invalid IP or CIDR: \(network) (a bare address is one host; a network must have its host bits zero, e.g. 203.0.113.0/24)")
        }
        guard validPrefix(prefix) else { throw AdminError("prefix must be digits only (at most 32), or empty for any destination: \(prefix)") }
        guard !name.isEmpty, name.count <= 200 else { throw AdminError("IP setting name must be 1-200 characters") }
        return net
    }

    /// `addDevice`'s checks before the account and domain lookups (the password is checked after them).
    static func checkDeviceFields(_ d: DeviceInput) throws {
        guard validUsername(d.username) else { throw AdminError("username must be 1-64 of A-Z a-z 0-9 _ . - +: \(d.username)") }
        guard d.callerIDName.count <= 100, !d.callerIDName.unicodeScalars.contains(where: { $0.value < 32 }) else { throw AdminError("caller ID name must be at most 100 printable characters") }
        guard d.callerIDNumber.isEmpty || (d.callerIDNumber.count <= 33 && DialplanDecider.isValidDestination(d.callerIDNumber) && d.callerIDNumber.dropFirst(d.callerIDNumber.hasPrefix("+") ? 1 : 0).allSatisfy(\.isNumber)) else {
            throw AdminError("caller ID number must be digits, optionally with a leading +")
        }
    }

}
