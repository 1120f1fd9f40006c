import Decisions
import Foundation
import Postgres

// An in-memory copy of what lookups read: accounts, SIP domains and devices, IP settings, locks and
// trusted sources. Plain values with no locking and no I/O: the service owns one behind a lock and
// keeps it current from the `switchauth_rows` feed (migration 0007); the loaders below read it from
// PostgreSQL. Facts computed here are the same values the lookup statements of Lookups.swift return
// (a test compares them row for row); where the copy cannot give them (a device whose account it
// does not hold, a domain name that is not ASCII) it returns nil and the lookup goes to the database.

/// SIP devices by (domain id, username) in a dense array with an open-addressing index of 32-bit
/// slots: about 100 bytes a device (1,000,000 devices: ~100 MB), where a `Dictionary` keyed by the
/// pair needs twice that.
public struct DeviceTable: Sendable {
    public struct Record: Sendable {
        public var id: Int64
        public var accountID: Int64
        public var md5: (UInt64, UInt64)
        public var sha256: (UInt64, UInt64, UInt64, UInt64)
        public var username: String
        /// Most devices have none: a reference (8 bytes) instead of two strings (32).
        var callerID: CallerID?
        public var domainID: Int32
        public var enabled: Bool

        public var callerIDName: String { callerID?.name ?? "" }
        public var callerIDNumber: String { callerID?.number ?? "" }

        public init(id: Int64, accountID: Int64, md5: (UInt64, UInt64), sha256: (UInt64, UInt64, UInt64, UInt64), username: String,
                    callerIDName: String, callerIDNumber: String, domainID: Int32, enabled: Bool) {
            self.id = id
            self.accountID = accountID
            self.md5 = md5
            self.sha256 = sha256
            self.username = username
            self.callerID = callerIDName.isEmpty && callerIDNumber.isEmpty ? nil : CallerID(name: callerIDName, number: callerIDNumber)
            self.domainID = domainID
            self.enabled = enabled
        }
    }

    private(set) var records: [Record] = []
    /// -1: empty; -2: deleted; else an index into `records`.
    private var slots: [Int32] = []
    /// Slots not empty (live and deleted).
    private var usedSlots = 0

    public init(capacity: Int = 0) {
        records.reserveCapacity(capacity)
        slots = [Int32](repeating: -1, count: Self.slotCount(for: capacity))
    }

    public var count: Int { records.count }

    static func slotCount(for n: Int) -> Int {
        var c = 16
        while c < n * 2 { c <<= 1 }
        return c
    }

    private static func hash(_ domainID: Int32, _ username: String) -> Int {
        var h = Hasher()
        h.combine(domainID)
        h.combine(username)
        return h.finalize()
    }

    /// The slot holding (domainID, username), if any.
    private func slot(_ domainID: Int32, _ username: String) -> Int? {
        let mask = slots.count - 1
        var i = Self.hash(domainID, username) & mask
        while true {
            let s = slots[i]
            if s == -1 { return nil }
            if s >= 0 && records[Int(s)].domainID == domainID && records[Int(s)].username == username { return i }
            i = (i + 1) & mask
        }
    }

    public func find(domainID: Int32, username: String) -> Record? {
        guard let i = slot(domainID, username) else { return nil }
        return records[Int(slots[i])]
    }

    public mutating func upsert(_ record: Record) {
        if let i = slot(record.domainID, record.username) {
            records[Int(slots[i])] = record
            return
        }
        if (usedSlots + 1) * 2 > slots.count { rehash(to: Self.slotCount(for: records.count + 1)) }
        records.append(record)
        place(Int32(records.count - 1), record.domainID, record.username)
    }

    private mutating func place(_ index: Int32, _ domainID: Int32, _ username: String) {
        let mask = slots.count - 1
        var i = Self.hash(domainID, username) & mask
        while slots[i] >= 0 { i = (i + 1) & mask }
        if slots[i] == -1 { usedSlots += 1 }
        slots[i] = index
    }

    public mutating func remove(domainID: Int32, username: String) {
        guard let i = slot(domainID, username) else { return }
        let k = Int(slots[i])
        slots[i] = -2
        let last = records.count - 1
        if k != last {
            // The last record moves into the hole; its slot is pointed at its new place.
            let moved = records[last]
            if let j = slot(moved.domainID, moved.username) { slots[j] = Int32(k) }
            records[k] = moved
        }
        records.removeLast()
    }

    private mutating func rehash(to size: Int) {
        slots = [Int32](repeating: -1, count: size)
        usedSlots = 0
        for (k, r) in records.enumerated() { place(Int32(k), r.domainID, r.username) }
    }
}

public final class CallerID: Sendable {
    let name: String
    let number: String
    init(name: String, number: String) {
        self.name = name
        self.number = number
    }
}

public struct ReplicaAccount: Sendable, Equatable {
    /// `expired` is computed at lookup time from `expiresAtMilliseconds`.
    public var facts: AccountFacts
    public var expiresAtMilliseconds: Int64?

    func at(_ nowMilliseconds: Int64) -> AccountFacts {
        var f = facts
        f.expired = expiresAtMilliseconds.map { $0 <= nowMilliseconds } ?? false
        return f
    }
}

public struct ReplicaIPSetting: Sendable, Equatable {
    public var id: Int64
    public var accountID: Int64
    public var name: String
    public var network: IPNetwork
    public var prefix: String
    public var stripPrefix: Bool
    public var enabled: Bool
    public var maxCPS: Int = 0
}

public struct ReplicaDomain: Sendable, Equatable {
    public var id: Int32
    public var name: String
    public var enabled: Bool
}

/// The copy itself. Mutated by one writer (the feed), read under the owner's lock.
///
/// A class, not a struct: a lookup calls its methods on the one instance, which read their fields
/// in place. As a struct behind the lock, every call was handed a copy: its sixteen tables
/// retained and released per lookup, atomics on the same cache lines from every event loop.
// @unchecked Sendable: mutated by one thread at a time, while it is built (before it is shared)
// or under its owner's write lock (`Replica`); read only under that owner's read lock.
public final class ReplicaTables: @unchecked Sendable {
    public var accounts: [Int64: ReplicaAccount] = [:]
    public var devices = DeviceTable()
    public var ipSettings: [Int64: ReplicaIPSetting] = [:]
    /// The settings by network (held here too, so that a lookup reads a setting without a second
    /// hash probe), keyed by `NetworkKey` (two words and a length): a lookup masks and hashes
    /// integers, with no byte array per prefix length tried.
    var ipByNetwork: [NetworkKey: [ReplicaIPSetting]] = [:]
    /// Settings per prefix length (index 0-128) for IPv4 and IPv6, and the lengths in use, longest
    /// first: an address is masked to each of those.
    var ipLengthCounts4 = [Int](repeating: 0, count: 33), ipLengthCounts6 = [Int](repeating: 0, count: 129)
    var ipLengths4: [Int] = [], ipLengths6: [Int] = []
    /// Lower-cased names and aliases to domain ids, and the domains.
    public var domainNames: [String: Int32] = [:]
    public var domains: [Int32: ReplicaDomain] = [:]
    /// "scope:subject" to locked_until (epoch ms).
    public var locks: [String: Int64] = [:]
    /// (subject, source), hashed with the process's random seed, to last_success (epoch ms). Hashed:
    /// a million trusted pairs in 16 bytes each; a collision (2^-64 per pair, not steerable from
    /// outside) could only make a lock not apply to one source.
    public var trusted: [Int: Int64] = [:]
    /// Destination rules: the global ones, and per account its own followed by the global ones
    /// (built once per change, so that a lookup only retains an array).
    public private(set) var globalRules: [DestinationRule] = []
    public private(set) var rulesByAccount: [Int64: [DestinationRule]] = [:]
    public private(set) var fraudByAccount: [Int64: [FraudThreshold]] = [:]

    public func setFraudThresholds(_ thresholds: [(accountID: Int64, threshold: FraudThreshold)]) {
        var byAccount: [Int64: [FraudThreshold]] = [:]
        for t in thresholds { byAccount[t.accountID, default: []].append(t.threshold) }
        fraudByAccount = byAccount
    }

    public init() {}

    /// Another instance with the same contents (copy-on-write tables: cheap until one changes).
    public func copy() -> ReplicaTables {
        let c = ReplicaTables()
        c.accounts = accounts
        c.devices = devices
        c.ipSettings = ipSettings
        c.ipByNetwork = ipByNetwork
        c.ipLengthCounts4 = ipLengthCounts4
        c.ipLengthCounts6 = ipLengthCounts6
        c.ipLengths4 = ipLengths4
        c.ipLengths6 = ipLengths6
        c.domainNames = domainNames
        c.domains = domains
        c.locks = locks
        c.trusted = trusted
        c.globalRules = globalRules
        c.rulesByAccount = rulesByAccount
        c.fraudByAccount = fraudByAccount
        return c
    }

    public func setDestinationRules(_ rules: [DestinationRule]) {
        globalRules = rules.filter { $0.accountID == nil }
        var byAccount: [Int64: [DestinationRule]] = [:]
        for r in rules { if let a = r.accountID { byAccount[a, default: []].append(r) } }
        for k in byAccount.keys { byAccount[k]! += globalRules }
        rulesByAccount = byAccount
    }

    /// An account's facts at `now`, with the destination rules that apply to it.
    func accountFacts(_ account: ReplicaAccount, _ now: Int64) -> AccountFacts {
        var f = account.at(now)
        // Usually no account has rules or thresholds of its own: no key hashed then.
        f.destinationRules = rulesByAccount.isEmpty ? globalRules : rulesByAccount[f.id] ?? globalRules
        f.fraudThresholds = fraudByAccount.isEmpty ? [] : fraudByAccount[f.id] ?? []
        return f
    }

    // MARK: Changes

    public func setAccount(_ id: Int64, _ account: ReplicaAccount?) {
        accounts[id] = account
    }

    public func setIPSetting(_ id: Int64, _ setting: ReplicaIPSetting?) {
        if let old = ipSettings.removeValue(forKey: id) {
            let key = NetworkKey(old.network)
            ipByNetwork[key]?.removeAll { $0.id == id }
            if ipByNetwork[key]?.isEmpty == true { ipByNetwork[key] = nil }
            countLength(of: old.network, by: -1)
        }
        guard let s = setting else { return }
        ipSettings[id] = s
        ipByNetwork[NetworkKey(s.network), default: []].append(s)
        countLength(of: s.network, by: 1)
    }

    /// The lengths in use are listed again only when one comes into use or goes out of it (not
    /// for each of the 100,000 settings of a load).
    private func countLength(of network: IPNetwork, by delta: Int) {
        let l = network.prefixLength
        if network.address.isIPv4 {
            ipLengthCounts4[l] += delta
            if ipLengthCounts4[l] == 0 || ipLengthCounts4[l] == delta {
                ipLengths4 = ipLengthCounts4.indices.reversed().filter { ipLengthCounts4[$0] > 0 }
            }
        } else {
            ipLengthCounts6[l] += delta
            if ipLengthCounts6[l] == 0 || ipLengthCounts6[l] == delta {
                ipLengths6 = ipLengthCounts6.indices.reversed().filter { ipLengthCounts6[$0] > 0 }
            }
        }
    }

    public func setDomains(_ list: [ReplicaDomain], aliases: [(domainID: Int32, alias: String)]) {
        domains = Dictionary(list.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        domainNames = [:]
        for d in list { domainNames[d.name.lowercased()] = d.id }
        for a in aliases where domainNames[a.alias.lowercased()] == nil { domainNames[a.alias.lowercased()] = a.domainID }
    }

    public func setLock(scope: String, subject: String, until: Int64?) {
        locks[scope + ":" + subject] = until
    }

    /// A trust record's key: the subject's bytes, a 0xFF (never in UTF-8), the source.
    public static func trustKey(subject: String, source: String) -> Int {
        var h = Hasher()
        append(subject, to: &h)
        h.combine(UInt8(0xFF))
        h.combine(source)
        return h.finalize()
    }

    /// The same key for the subject `user@domain` without building it (a String allocated per
    /// lookup): the hasher takes bytes as a stream, so the parts hash as the whole.
    public static func trustKey(user: String, domain: String, source: String) -> Int {
        var h = Hasher()
        append(user, to: &h)
        h.combine(UInt8(ascii: "@"))
        append(domain, to: &h)
        h.combine(UInt8(0xFF))
        h.combine(source)
        return h.finalize()
    }

    private static func append(_ text: String, to h: inout Hasher) {
        var text = text
        text.withUTF8 { h.combine(bytes: UnsafeRawBufferPointer($0)) }
    }

    public func setTrust(subject: String, source: String, lastSuccess: Int64?) {
        trusted[Self.trustKey(subject: subject, source: source)] = lastSuccess
    }

    // MARK: Facts

    /// An enabled domain by name or alias, as `DirectoryLookup` resolves it. nil: the name is not
    /// plain ASCII (PostgreSQL's `lower` and Swift's may differ there): ask the database.
    func domain(_ name: String) -> ReplicaDomain?? {
        guard name.utf8.allSatisfy({ $0 < 0x80 }) else { return nil }
        guard let id = domainNames[name.lowercasedIfNeeded], let d = domains[id], d.enabled else { return .some(nil) }
        return .some(d)
    }

    func deviceFacts(_ domain: ReplicaDomain, user: String, now: Int64) -> DeviceFacts?? {
        guard let r = devices.find(domainID: domain.id, username: user) else { return .some(nil) }
        guard let account = accounts[r.accountID] else { return nil }
        return .some(DeviceFacts(
            id: r.id, username: r.username, realm: domain.name, enabled: r.enabled,
            ha1MD5: Hex.encode(r.md5), ha1SHA256: Hex.encode(r.sha256),
            callerIDName: r.callerIDName, callerIDNumber: r.callerIDNumber, account: accountFacts(account, now)))
    }

    private func locked(_ scope: String, _ subject: String, _ now: Int64) -> Bool {
        guard let until = locks[scope + ":" + subject] else { return false }
        return until > now
    }

    /// What `DirectoryLookup.run` returns, from the copy. nil: ask the database.
    public func directoryFacts(domain name: String, user: String, source: String?, now: Int64) -> DirectoryFactsResult? {
        guard let resolved = domain(name) else { return nil }
        guard let d = resolved else { return DirectoryFactsResult(domainKnown: false, device: nil, lockout: .none) }
        let src = source ?? ""
        let domain = d.name.lowercasedIfNeeded
        var since: Int?
        if let last = trusted[Self.trustKey(user: user, domain: domain, source: src)] {
            // floor(extract(epoch FROM now() - last_success))
            since = Int((Double(now - last) / 1000).rounded(.down))
        }
        // No lock at all (the usual state): no keys to build.
        let lockout: LockoutFacts
        if locks.isEmpty {
            lockout = LockoutFacts(secondsSinceSuccess: since)
        } else {
            let subject = user + "@" + domain
            lockout = LockoutFacts(sourceLocked: locked("ip", src, now), userLocked: locked("user", subject, now),
                                   pairLocked: locked("pair", src + "|" + subject, now), secondsSinceSuccess: since)
        }
        guard let device = deviceFacts(d, user: user, now: now) else { return nil }
        return DirectoryFactsResult(domainKnown: true, device: device, lockout: lockout)
    }

    /// The device `DirectoryLookup.run(...).device` returns (nil inside: no such device, or the
    /// domain is unknown), from the copy. nil: ask the database.
    public func device(domain name: String, user: String, now: Int64) -> DeviceFacts?? {
        guard let resolved = domain(name) else { return nil }
        guard let d = resolved else { return .some(nil) }
        return deviceFacts(d, user: user, now: now)
    }

    /// What `IPCandidatesLookup.run` returns (ordered by id), from the copy. nil: ask the database.
    public func ipCandidates(_ address: IPAddress, now: Int64) -> [IPSettingFacts]? {
        var out: [IPSettingFacts] = []
        let full = NetworkKey(address)
        for length in address.isIPv4 ? ipLengths4 : ipLengths6 {
            guard let settings = ipByNetwork[full.masked(to: length)] else { continue }
            for s in settings {
                guard let account = accounts[s.accountID] else { return nil }
                out.append(IPSettingFacts(id: s.id, name: s.name, network: s.network, prefix: s.prefix, stripPrefix: s.stripPrefix,
                                          enabled: s.enabled, maxCPS: s.maxCPS, account: accountFacts(account, now)))
            }
        }
        out.sort { $0.id < $1.id }
        return out
    }
}

/// A network as a hash key: the address in two big-endian words (IPv4 in the low 32 bits of `lo`),
/// host bits cleared, with its length and family. Equal keys are equal `IPNetwork`s.
struct NetworkKey: Hashable {
    var hi: UInt64
    var lo: UInt64
    var length: UInt8
    var v6: Bool

    /// The host route of `address` (/32 or /128).
    init(_ address: IPAddress) {
        hi = address.high
        lo = address.low
        length = address.isIPv4 ? 32 : 128
        v6 = !address.isIPv4
    }

    init(_ network: IPNetwork) {
        self = NetworkKey(network.address).masked(to: network.prefixLength)
    }

    /// The network of the first `length` bits (at most this key's length).
    func masked(to length: Int) -> NetworkKey {
        var k = self
        k.length = UInt8(length)
        if v6 {
            k.hi = length >= 64 ? hi : length == 0 ? 0 : hi & ~(UInt64.max >> UInt64(length))
            k.lo = length >= 128 ? lo : length <= 64 ? 0 : lo & ~(UInt64.max >> UInt64(length - 64))
        } else {
            k.lo = length >= 32 ? lo : length == 0 ? 0 : lo & (0xffff_ffff & ~(0xffff_ffff >> UInt64(length)))
        }
        return k
    }
}

/// Lower-case hex of digests held as big-endian words.
public enum Hex {
    static func words(_ text: String, _ count: Int) -> [UInt64]? {
        let u = Array(text.utf8)
        guard u.count == count * 16 else { return nil }
        var out = [UInt64](repeating: 0, count: count)
        for (i, c) in u.enumerated() {
            let v: UInt8
            switch c {
            case 48...57: v = c - 48
            case 97...102: v = c - 87
            default: return nil
            }
            out[i / 16] = out[i / 16] << 4 | UInt64(v)
        }
        return out
    }

    public static func md5(_ text: String) -> (UInt64, UInt64)? {
        guard let w = words(text, 2) else { return nil }
        return (w[0], w[1])
    }

    public static func sha256(_ text: String) -> (UInt64, UInt64, UInt64, UInt64)? {
        guard let w = words(text, 4) else { return nil }
        return (w[0], w[1], w[2], w[3])
    }

    /// 16 lower-case hex digits of `word` at `out[at...]`.
    @inline(__always)
    static func write(_ word: UInt64, _ out: UnsafeMutableBufferPointer<UInt8>, at: Int) {
        for k in 0..<16 {
            let nibble = UInt8(truncatingIfNeeded: word >> UInt64(60 - 4 * k)) & 0xf
            out[at + k] = nibble < 10 ? UInt8(ascii: "0") + nibble : UInt8(ascii: "a") - 10 + nibble
        }
    }

    public static func encode(_ w: (UInt64, UInt64)) -> String {
        String(unsafeUninitializedCapacity: 32) { out in
            write(w.0, out, at: 0)
            write(w.1, out, at: 16)
            return 32
        }
    }

    public static func encode(_ w: (UInt64, UInt64, UInt64, UInt64)) -> String {
        String(unsafeUninitializedCapacity: 64) { out in
            write(w.0, out, at: 0)
            write(w.1, out, at: 16)
            write(w.2, out, at: 32)
            write(w.3, out, at: 48)
            return 64
        }
    }
}

/// One notification of the `switchauth_rows` feed (migration 0007), parsed.
public enum ReplicaChange: Sendable, Equatable {
    case account(Int64)
    case device(Int64)
    case deviceKeyGone(domainID: Int32, username: String)
    case ipSetting(Int64)
    case domains
    /// Destination rules or fraud thresholds changed: the copy reads them all again.
    case destinationRules
    case lock(scope: String, subject: String, until: Int64?)
    case trust(subject: String, source: String, lastSuccess: Int64?)
    case reloadAll
    case heartbeat(UInt64)

    public static let channel = "switchauth_rows"

    /// Whether a change this session committed came back on the feed's channel (the session
    /// listens on it; PostgreSQL delivers a session's own notifications after its commit): the
    /// memory copies have a change of it to apply. Nil when the notifications cannot be read.
    public static func committedBy(_ db: Connection) -> Bool? {
        let me = db.backendPID
        return (try? db.notifications(timeoutMilliseconds: 0)).map { $0.contains { $0.processID == me } }
    }

    /// Sends heartbeat `n` on the feed's channel (the copy's proof of being current comes back with it).
    public static func sendHeartbeat(_ db: Connection, _ n: UInt64) throws {
        try db.execute("SELECT pg_notify($1, $2)", [channel, "h\(n)"])
    }

    /// nil: not a payload of this feed (ignored, and counted by the caller).
    public init?(payload: String) {
        guard let tag = payload.first else { return nil }
        let rest = payload.dropFirst()
        func splitOnce(_ s: Substring, _ c: Character) -> (Substring, Substring)? {
            guard let i = s.firstIndex(of: c) else { return nil }
            return (s[..<i], s[s.index(after: i)...])
        }
        switch tag {
        case "a": guard let id = Int64(rest) else { return nil }; self = .account(id)
        case "d": guard let id = Int64(rest) else { return nil }; self = .device(id)
        case "i": guard let id = Int64(rest) else { return nil }; self = .ipSetting(id)
        case "h": guard let n = UInt64(rest) else { return nil }; self = .heartbeat(n)
        case "n": guard rest.isEmpty else { return nil }; self = .domains
        case "p": guard rest.isEmpty else { return nil }; self = .destinationRules
        case "R": guard rest.isEmpty else { return nil }; self = .reloadAll
        case "x":
            guard let (d, user) = splitOnce(rest, ":"), let id = Int32(d), !user.isEmpty else { return nil }
            self = .deviceKeyGone(domainID: id, username: String(user))
        case "l":
            guard let (scope, tail) = splitOnce(rest, ":"), let (ms, subject) = splitOnce(tail, ":"), !subject.isEmpty else { return nil }
            if ms.isEmpty {
                self = .lock(scope: String(scope), subject: String(subject), until: nil)
            } else {
                guard let until = Int64(ms) else { return nil }
                self = .lock(scope: String(scope), subject: String(subject), until: until)
            }
        case "t":
            guard let (ms, pair) = splitOnce(rest, ":"), let last = Int64(ms), let (subject, source) = splitOnce(pair, "|") else { return nil }
            self = .trust(subject: String(subject), source: String(source), lastSuccess: last)
        case "T":
            guard let (subject, source) = splitOnce(rest, "|") else { return nil }
            self = .trust(subject: String(subject), source: String(source), lastSuccess: nil)
        default:
            return nil
        }
    }
}

/// Reads the copy from PostgreSQL: a whole snapshot (one REPEATABLE READ transaction, tables read
/// in key order in batches so that no result holds a million rows), and single rows by id again
/// after a notification.
public enum ReplicaLoad {
    static let accountColumns = """
        id, number, name, kind, status, billing, balance::text, credit_limit::text, max_channels,
        floor(extract(epoch FROM expires_at) * 1000)::bigint, max_cps
        """
    static let deviceColumns = "id, account_id, domain_id, username, enabled, ha1_md5, ha1_sha256, caller_id_name, caller_id_number"
    static let ipColumns = "id, account_id, name, network::text, prefix, strip_prefix, enabled, max_cps"

    public static func snapshot(_ db: Connection, batch: Int = 20_000) throws -> ReplicaTables {
        try db.transaction { db in
            try db.executeScript("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            let t = ReplicaTables()
            let deviceCount = try db.execute("SELECT count(*) FROM sip_devices").decode(0, 0, as: Int.self)
            t.devices = DeviceTable(capacity: deviceCount)
            try keyset(db, "SELECT \(accountColumns) FROM accounts WHERE id > $1 ORDER BY id LIMIT $2", batch) { r, i in
                let a = try account(r, i)
                t.accounts[a.facts.id] = a
                return a.facts.id
            }
            try keyset(db, "SELECT \(deviceColumns) FROM sip_devices WHERE id > $1 ORDER BY id LIMIT $2", batch) { r, i in
                let d = try device(r, i)
                t.devices.upsert(d)
                return d.id
            }
            try keyset(db, "SELECT \(ipColumns) FROM ip_settings WHERE id > $1 ORDER BY id LIMIT $2", batch) { r, i in
                let s = try ipSetting(r, i)
                t.setIPSetting(s.id, s)
                return s.id
            }
            let (domains, aliases) = try self.domains(db)
            t.setDomains(domains, aliases: aliases)
            t.setDestinationRules(try destinationRules(db))
            t.setFraudThresholds(try fraudThresholds(db))
            let locks = try db.execute("""
                SELECT scope, subject, floor(extract(epoch FROM locked_until) * 1000)::bigint
                  FROM auth_failures WHERE locked_until > now()
                """)
            for i in 0..<locks.rowCount {
                t.setLock(scope: try locks.decode(i, 0), subject: try locks.decode(i, 1), until: try locks.decode(i, 2, as: Int64.self))
            }
            var after = ("", "")
            while true {
                let r = try db.execute("""
                    SELECT subject, source, floor(extract(epoch FROM last_success) * 1000)::bigint FROM auth_trusted_sources
                     WHERE (subject, source) > ($1, $2) ORDER BY subject, source LIMIT $3
                    """, [after.0, after.1, String(batch)])
                for i in 0..<r.rowCount {
                    t.setTrust(subject: try r.decode(i, 0), source: try r.decode(i, 1), lastSuccess: try r.decode(i, 2, as: Int64.self))
                }
                guard r.rowCount == batch else { break }
                after = (try r.decode(batch - 1, 0), try r.decode(batch - 1, 1))
            }
            return t
        }
    }

    /// Reads a table in id order, `batch` rows per statement; `row` returns each row's id.
    private static func keyset(_ db: Connection, _ sql: String, _ batch: Int, _ row: (QueryResult, Int) throws -> Int64) throws {
        var last: Int64 = 0
        while true {
            let r = try db.execute(sql, [String(last), String(batch)])
            for i in 0..<r.rowCount { last = try row(r, i) }
            if r.rowCount < batch { return }
        }
    }

    static func account(_ r: QueryResult, _ i: Int) throws -> ReplicaAccount {
        func decimal(_ c: Int) throws -> Decimal {
            guard let d = parseNumeric(try r.decode(i, c)) else {
                throw PostgresError(kind: .decoding, operation: "decode", message: "bad numeric")
            }
            return d
        }
        func value<E: RawRepresentable>(_ c: Int, _: E.Type) throws -> E where E.RawValue == String {
            guard let v = E(rawValue: try r.decode(i, c)) else {
                throw PostgresError(kind: .decoding, operation: "decode", message: "unexpected \(E.self)")
            }
            return v
        }
        let facts = AccountFacts(
            id: try r.decode(i, 0), number: try r.decode(i, 1), name: try r.decode(i, 2), kind: try value(3, AccountKind.self),
            status: try value(4, AccountStatus.self), billing: try value(5, Billing.self), balance: try decimal(6),
            creditLimit: try decimal(7), maxChannels: try r.decode(i, 8), maxCPS: try r.decode(i, 10), expired: false)
        return ReplicaAccount(facts: facts, expiresAtMilliseconds: r.string(i, 9).flatMap { Int64($0) })
    }

    static func device(_ r: QueryResult, _ i: Int) throws -> DeviceTable.Record {
        guard let md5 = Hex.md5(try r.decode(i, 5)), let sha = Hex.sha256(try r.decode(i, 6)),
              let domainID = Int32(exactly: try r.decode(i, 2, as: Int64.self)) else {
            throw PostgresError(kind: .decoding, operation: "decode", message: "bad device row")
        }
        return DeviceTable.Record(
            id: try r.decode(i, 0), accountID: try r.decode(i, 1), md5: md5, sha256: sha, username: try r.decode(i, 3),
            callerIDName: try r.decode(i, 7), callerIDNumber: try r.decode(i, 8), domainID: domainID, enabled: try r.decode(i, 4))
    }

    static func ipSetting(_ r: QueryResult, _ i: Int) throws -> ReplicaIPSetting {
        guard let network = IPNetwork(try r.decode(i, 3, as: String.self)) else {
            throw PostgresError(kind: .decoding, operation: "decode", message: "bad cidr")
        }
        return ReplicaIPSetting(id: try r.decode(i, 0), accountID: try r.decode(i, 1), name: try r.decode(i, 2), network: network,
                                prefix: try r.decode(i, 4), stripPrefix: try r.decode(i, 5), enabled: try r.decode(i, 6),
                                maxCPS: try r.decode(i, 7))
    }

    public static func destinationRules(_ db: Connection) throws -> [DestinationRule] {
        let r = try db.execute("SELECT id, account_id, action, prefix, note FROM destination_rules ORDER BY id")
        return try (0..<r.rowCount).map { i in
            guard let action = DestinationRule.Action(rawValue: try r.decode(i, 2)) else {
                throw PostgresError(kind: .decoding, operation: "decode", message: "unexpected destination rule action")
            }
            return DestinationRule(id: try r.decode(i, 0), accountID: r.string(i, 1).flatMap { Int64($0) }, action: action,
                                   prefix: try r.decode(i, 3), note: try r.decode(i, 4))
        }
    }

    public static func fraudThresholds(_ db: Connection) throws -> [(accountID: Int64, threshold: FraudThreshold)] {
        let r = try db.execute("SELECT id, account_id, prefix, metric, warning, critical FROM fraud_thresholds ORDER BY id")
        return try (0..<r.rowCount).map { i in
            guard let metric = FraudThreshold.Metric(rawValue: try r.decode(i, 3)) else {
                throw PostgresError(kind: .decoding, operation: "decode", message: "unexpected fraud metric")
            }
            return (try r.decode(i, 1), FraudThreshold(id: try r.decode(i, 0), prefix: try r.decode(i, 2), metric: metric,
                                                       warning: r.string(i, 4).flatMap { Int($0) }, critical: r.string(i, 5).flatMap { Int($0) }))
        }
    }

    public static func domains(_ db: Connection) throws -> ([ReplicaDomain], [(domainID: Int32, alias: String)]) {
        let d = try db.execute("SELECT id, name, enabled FROM sip_domains")
        var list: [ReplicaDomain] = []
        for i in 0..<d.rowCount {
            guard let id = Int32(exactly: try d.decode(i, 0, as: Int64.self)) else { continue }
            list.append(ReplicaDomain(id: id, name: try d.decode(i, 1), enabled: try d.decode(i, 2)))
        }
        let a = try db.execute("SELECT domain_id, alias FROM sip_domain_aliases")
        var aliases: [(domainID: Int32, alias: String)] = []
        for i in 0..<a.rowCount {
            guard let id = Int32(exactly: try a.decode(i, 0, as: Int64.self)) else { continue }
            aliases.append((id, try a.decode(i, 1)))
        }
        return (list, aliases)
    }

    /// `{1,2,3}`: ids as an array parameter (numbers only; never text from a request).
    static func idArray(_ ids: some Collection<Int64>) -> String {
        "{" + ids.map(String.init).joined(separator: ",") + "}"
    }

    public static func accounts(_ db: Connection, ids: some Collection<Int64>) throws -> [Int64: ReplicaAccount] {
        let r = try db.execute("SELECT \(accountColumns) FROM accounts WHERE id = ANY($1::bigint[])", [idArray(ids)])
        var out: [Int64: ReplicaAccount] = [:]
        for i in 0..<r.rowCount {
            let a = try account(r, i)
            out[a.facts.id] = a
        }
        return out
    }

    public static func devices(_ db: Connection, ids: some Collection<Int64>) throws -> [DeviceTable.Record] {
        let r = try db.execute("SELECT \(deviceColumns) FROM sip_devices WHERE id = ANY($1::bigint[])", [idArray(ids)])
        return try (0..<r.rowCount).map { try device(r, $0) }
    }

    public static func ipSettings(_ db: Connection, ids: some Collection<Int64>) throws -> [Int64: ReplicaIPSetting] {
        let r = try db.execute("SELECT \(ipColumns) FROM ip_settings WHERE id = ANY($1::bigint[])", [idArray(ids)])
        var out: [Int64: ReplicaIPSetting] = [:]
        for i in 0..<r.rowCount {
            let s = try ipSetting(r, i)
            out[s.id] = s
        }
        return out
    }
}

/// Successes recorded in one statement per batch (the replica answers a success at once and hands
/// its trust record here): one row per (subject, source), last_success = now().
public enum TrustBatch {
    public static func record(_ db: Connection, _ pairs: [(subject: String, source: String)]) throws {
        guard !pairs.isEmpty else { return }
        try db.execute("""
            INSERT INTO auth_trusted_sources (subject, source, last_success)
            SELECT s, src, now() FROM unnest($1::text[], $2::text[]) AS p(s, src)
            ON CONFLICT (subject, source) DO UPDATE SET last_success = now()
            """, [textArray(pairs.map(\.subject)), textArray(pairs.map(\.source))], retry: .idempotent)
    }

    /// A text[] literal: every element double-quoted, `"` and `\` escaped. Passed as a parameter.
    public static func textArray(_ items: [String]) -> String {
        var out: [UInt8] = [UInt8(ascii: "{")]
        out.reserveCapacity(2 + items.reduce(0) { $0 + $1.utf8.count + 3 })
        for (n, s) in items.enumerated() {
            if n > 0 { out.append(UInt8(ascii: ",")) }
            out.append(UInt8(ascii: "\""))
            for b in s.utf8 {
                if b == UInt8(ascii: "\"") || b == UInt8(ascii: "\\") { out.append(UInt8(ascii: "\\")) }
                out.append(b)
            }
            out.append(UInt8(ascii: "\""))
        }
        out.append(UInt8(ascii: "}"))
        return String(decoding: out, as: UTF8.self)
    }
}
