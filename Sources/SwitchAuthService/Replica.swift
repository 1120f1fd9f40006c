import CSystemShims
import Decisions
import Foundation
import HTTPServer
import Locking
import Logging
import Lookups
import Postgres
import Store
import Synchronization
import SystemCalls

/// The lookups' in-memory copy of the database (README, "Answering from memory"), and the proof of
/// how current it is. The feed thread loads it in one snapshot, applies the `switchauth_rows`
/// notifications in commit order, and every `replica_heartbeat_ms` sends a notification to itself:
/// when that heartbeat comes back, every change committed before it was sent has been applied
/// (PostgreSQL delivers notifications in commit order, and a session's own before its
/// ReadyForQuery). The copy answers only while its last returned heartbeat was sent at most
/// `replica_staleness_ms` ago; otherwise (loading, feed lost, database hung or gone) `facts` returns
/// nil and the lookup goes to the database threads exactly as without a copy, failing closed there.
public final class Replica: FactsSource, Sendable {
    let stalenessNanoseconds: UInt64
    /// Read by both event loops at once on every lookup; written by the feed (and a success's trust).
    /// Held unmanaged: a lookup reads the instance under the read lock without a retain and
    /// release of it (an atomic on a line every loop shares); `replace` releases the one it drops
    /// after the write lock, when no reader can hold it, and `deinit` the last.
    private let tables = ReadWriteLocked(Unmanaged.passRetained(ReplicaTables()))
    /// Monotonic time the newest returned heartbeat was sent; 0: nothing proven.
    private let currentAsOf = Atomic<UInt64>(0)
    let answered = Atomic<UInt64>(0)
    let reloads = Atomic<UInt64>(0)
    let changesApplied = Atomic<UInt64>(0)
    let unknownPayloads = Atomic<UInt64>(0)
    /// Times the proof lapsed while the feed ran (a heartbeat came back after the previous proof
    /// had expired), the time not proven in those gaps, and the slowest heartbeat round trip: why
    /// lookups went to the database threads although nothing was wrong with the feed.
    let proofLapses = Atomic<UInt64>(0)
    let lapsedNanoseconds = Atomic<UInt64>(0)
    let slowestHeartbeatNanoseconds = Atomic<UInt64>(0)

    /// Lookups waiting for a late heartbeat instead of going to the database (`park`).
    private let parked = Locked<[ParkedLookup]>([])
    let parkedTotal = Atomic<UInt64>(0)
    let parkedResumed = Atomic<UInt64>(0)
    /// At most this many lookups wait at once; past it a lookup goes to the database threads.
    let parkLimit: Int

    struct ParkedLookup: Sendable {
        let deadline: UInt64
        let resume: @Sendable () -> Void
    }

    public init(stalenessMilliseconds: Int, parkLimit: Int = 20_000) {
        stalenessNanoseconds = UInt64(stalenessMilliseconds) * 1_000_000
        self.parkLimit = parkLimit
    }

    /// How long ago the proof expired while the feed runs (a heartbeat is late), in nanoseconds;
    /// nil when it has not (current), or was cleared (a lost feed or a load).
    private func lapsedFor(at now: UInt64) -> UInt64? {
        let asOf = currentAsOf.load(ordering: .acquiring)
        guard asOf != 0, now > asOf + stalenessNanoseconds else { return nil }
        return now - asOf - stalenessNanoseconds
    }

    func isLapsed(at now: UInt64 = MonotonicClock.now()) -> Bool { lapsedFor(at: now) != nil }

    /// Lapsed for at most another `replica_staleness_ms`: a heartbeat late by a stall of the box,
    /// more likely than PostgreSQL gone (whose prober, under the same stall, may have opened the
    /// circuit: its probe has a 100 ms deadline).
    func isRecentlyLapsed(at now: UInt64 = MonotonicClock.now()) -> Bool {
        lapsedFor(at: now).map { $0 <= stalenessNanoseconds } ?? false
    }

    /// Makes the proof `age` old (tests).
    func ageProofForTests(nanoseconds age: UInt64) {
        let now = MonotonicClock.now()
        currentAsOf.store(now > age ? now - age : 1, ordering: .releasing)
    }

    /// A lookup that found the proof lapsed waits for the next heartbeat rather than going to the
    /// database threads: at saturation those cannot take the whole load, their deadline answers
    /// fail closed, and the load they put on PostgreSQL delays the heartbeat further. `resume` runs
    /// (on the feed thread: it must only hand the lookup on) once a heartbeat proves the copy
    /// current, unless `deadline` has passed by then (the loop has answered fail-closed). False:
    /// not parked (the proof is back, the feed was lost, or too many wait), go on as before.
    func park(deadline: UInt64, resume: @escaping @Sendable () -> Void) -> Bool {
        let taken = parked.withLock { list -> Bool in
            // Checked under the lock the feed drains it under: a proof that came meanwhile has
            // either drained this list already (then the copy is current: not parked) or will.
            guard isLapsed(), list.count < parkLimit else { return false }
            list.append(ParkedLookup(deadline: deadline, resume: resume))
            return true
        }
        if taken { parkedTotal.add(1, ordering: .relaxed) }
        return taken
    }

    /// Hands every parked lookup still within its deadline on (feed thread): after a proof they are
    /// answered from the copy, after a lost feed they go to the database threads. The rest are
    /// dropped: the loop has answered them.
    func resumeParked(now: UInt64 = MonotonicClock.now()) {
        let list = parked.withLock { list -> [ParkedLookup] in
            guard !list.isEmpty else { return [] }
            defer { list = [] }
            return list
        }
        guard !list.isEmpty else { return }
        let live = list.filter { $0.deadline > now }
        // Counted before they are handed on: one answered at once is already counted when its
        // client (or a test) sees the answer.
        parkedResumed.add(UInt64(live.count), ordering: .relaxed)
        for p in live { p.resume() }
    }

    /// Lookups parked now (for tests and the metrics).
    var parkedCount: Int { parked.withLock { $0.count } }

    /// Whether the copy is provably within the bound at `now` (monotonic ns).
    public func isCurrent(at now: UInt64 = MonotonicClock.now()) -> Bool {
        let asOf = currentAsOf.load(ordering: .acquiring)
        return asOf != 0 && now >= asOf && now - asOf <= stalenessNanoseconds
    }

    /// How far behind the copy is proven to be, in seconds (nil: not proven at all).
    public var lagSeconds: Double? {
        let asOf = currentAsOf.load(ordering: .acquiring)
        guard asOf != 0 else { return nil }
        let now = MonotonicClock.now()
        return now > asOf ? Double(now - asOf) / 1e9 : 0
    }

    func proveCurrent(asOf sent: UInt64, now: UInt64 = MonotonicClock.now()) {
        if now > sent { slowestHeartbeatNanoseconds.max(now - sent, ordering: .relaxed) }
        // Monotone: an older heartbeat never moves the proof back.
        var old = currentAsOf.load(ordering: .relaxed)
        while sent > old {
            let (exchanged, original) = currentAsOf.compareExchange(expected: old, desired: sent, ordering: .acquiringAndReleasing)
            if exchanged {
                // The previous proof (0: none, a load or a lost feed, counted elsewhere) had expired.
                if old != 0 && now > old + stalenessNanoseconds {
                    proofLapses.add(1, ordering: .relaxed)
                    lapsedNanoseconds.add(now - (old + stalenessNanoseconds), ordering: .relaxed)
                }
                return
            }
            old = original
        }
    }

    /// Waits until the copy is proven to hold every change committed before `since` (monotonic ns;
    /// default: now): a caller that just wrote can then read its write from the copy. Polls; for
    /// tests and tools, never on the request path.
    public func waitUntilCurrent(since: UInt64 = MonotonicClock.now(), timeoutMilliseconds: Int = 5_000) -> Bool {
        let deadline = MonotonicClock.now() + UInt64(timeoutMilliseconds) * 1_000_000
        while MonotonicClock.now() < deadline {
            if currentAsOf.load(ordering: .acquiring) >= since && isCurrent() { return true }
            Syscall.sleep(nanoseconds: 1_000_000)
        }
        return false
    }

    func markUnproven() {
        currentAsOf.store(0, ordering: .releasing)
        // Nothing will prove the copy soon: the parked lookups go to the database threads now.
        resumeParked()
    }

    /// While set, returning heartbeats prove nothing: a late heartbeat held as long as a test needs.
    let proofHeldForTests = Atomic<Bool>(false)
    /// While set, the feed reads nothing and sends no heartbeat: its thread as if not scheduled.
    let feedPausedForTests = Atomic<Bool>(false)


    deinit {
        tables.write { $0.release() }
    }

    func replace(_ new: ReplicaTables) {
        let old = tables.write { current -> Unmanaged<ReplicaTables> in
            defer { current = Unmanaged.passRetained(new) }
            return current
        }
        // The previous copy is freed here, outside the lock, and with it the load's garbage is
        // handed back to the kernel (a million-device load leaves tens of MB of free heap).
        old.release()
        _ = sa_malloc_trim()
    }

    func update(_ body: (ReplicaTables) -> Void) { tables.write { $0._withUnsafeGuaranteedRef(body) } }

    /// Reads the copy in place under the read lock.
    private func read<R>(_ body: (ReplicaTables) -> R) -> R { tables.read { $0._withUnsafeGuaranteedRef(body) } }

    /// A copy of the copy (copy-on-write: cheap until the feed next changes it), for tests and tools.
    public func tablesForTests() -> ReplicaTables { read { $0.copy() } }

    public var answeredCount: UInt64 { answered.load(ordering: .relaxed) }

    func noteAnswered() { answered.add(1, ordering: .relaxed) }

    public var deviceCount: Int { read { $0.devices.count } }

    /// The lookups the copy can answer at all (`facts` returns nil for the others).
    static func answers(_ lookup: Lookup) -> Bool {
        switch lookup {
        case .answered, .acl: return false
        case .directory: return true
        case .dialplan(_, let query):
            switch query {
            case .ip, .digest: return true
            case .notOwned, .unauthenticated: return false
            }
        }
    }

    /// The facts the lookup needs, from the copy; nil when the copy is not provably current or cannot
    /// give them (acl.conf is always read from the database: it is fetched only on `reloadacl`).
    public func facts(for lookup: Lookup) -> LookupFacts? {
        guard isCurrent() else { return nil }
        let now = WallClock.milliseconds()
        let facts: LookupFacts?
        switch lookup {
        case .answered, .acl:
            return nil
        case .directory(_, let query):
            let source = LockoutKeys.countedSource(query.sourceIP)
            facts = read { $0.directoryFacts(domain: query.domain, user: query.user, source: source, now: now) }.map { .directory($0) }
        case .dialplan(_, let query):
            switch query {
            case .ip(_, let source, _):
                guard let address = IPAddress(source) else { facts = .ipCandidates([]); break }
                facts = read { $0.ipCandidates(address, now: now) }.map { .ipCandidates($0) }
            case let .digest(_, user, domain, _):
                // The device alone: the digest was verified by the switch, no lockout state is needed.
                facts = read { $0.device(domain: domain, user: user, now: now) }.map { .device($0) }
            case .notOwned, .unauthenticated:
                return nil
            }
        }
        // Re-checked after the read: a copy that lost its proof meanwhile is not answered from.
        guard facts != nil, isCurrent() else { return nil }
        return facts
    }

    /// A success answered from the copy: its trust record is written in the background
    /// (`TrustRecorder`); the copy holds it at once so that the next success does not queue it again.
    func noteSuccess(source: String, user: String) {
        let now = WallClock.milliseconds()
        update { $0.setTrust(subject: user, source: source, lastSuccess: now) }
    }
}

/// The feed: one thread, one connection to the primary (LISTEN works there only).
final class ReplicaFeed: Sendable {
    let replica: Replica
    let config: ServiceConfig
    let logger: Logger
    private let thread: BackgroundThread

    init(replica: Replica, config: ServiceConfig, logger: Logger) {
        self.replica = replica
        self.config = config
        self.logger = logger
        var db = config.databaseConfig
        // Loading a million rows takes seconds; each statement is still bounded.
        db.queryTimeoutMilliseconds = max(10_000, config.queryTimeoutMilliseconds)
        db.reconnectBackoffMilliseconds = 0
        let connection = db
        let heartbeat = UInt64(config.replicaHeartbeatMilliseconds) * 1_000_000
        thread = BackgroundThread(name: "replica-feed") { t in
            var backoff = 250
            while !t.isStopping {
                let c = Connection(lazy: connection)
                do {
                    try Self.follow(c, replica: replica, heartbeat: heartbeat, logger: logger, thread: t)
                    backoff = 250
                } catch {
                    replica.markUnproven()
                    logger.warning("memory copy lost its feed; lookups read PostgreSQL until it is back", metadata: ["error": .string("\(error)")])
                    t.sleep(milliseconds: backoff)
                    backoff = min(backoff * 2, 2_000)
                }
                c.close()
            }
            replica.markUnproven()
        }
    }

    func start() { thread.start() }
    func stop() { thread.stop() }

    /// Loads, then follows the feed until the connection fails or the thread stops.
    private static func follow(_ c: Connection, replica: Replica, heartbeat: UInt64, logger: Logger, thread t: BackgroundThread) throws {
        try c.listen(ReplicaChange.channel)
        try load(c, replica: replica, logger: logger)
        let me = c.backendPID
        var sent: [UInt64: UInt64] = [:] // heartbeat number -> monotonic time sent
        var next: UInt64 = 0
        var lastBeat: UInt64 = 0
        var pending: [ReplicaChange] = []
        while !t.isStopping {
            if replica.feedPausedForTests.load(ordering: .relaxed) {
                Syscall.sleep(nanoseconds: 1_000_000)
                continue
            }
            let now = MonotonicClock.now()
            if now - lastBeat >= heartbeat {
                next += 1
                sent[next] = now
                lastBeat = now
                try ReplicaChange.sendHeartbeat(c, next)
            }
            let wait = Int((heartbeat - min(heartbeat, MonotonicClock.now() - lastBeat)) / 1_000_000)
            for n in try c.notifications(timeoutMilliseconds: max(1, wait)) {
                guard let change = ReplicaChange(payload: n.payload) else {
                    replica.unknownPayloads.add(1, ordering: .relaxed)
                    continue
                }
                if case .heartbeat(let k) = change {
                    // Another instance's heartbeat proves nothing about this copy.
                    guard n.processID == me, let at = sent.removeValue(forKey: k) else { continue }
                    // Everything before it is applied first; only then is the copy current as of `at`.
                    try apply(&pending, c, replica: replica, logger: logger)
                    if !replica.proofHeldForTests.load(ordering: .relaxed) {
                        replica.proveCurrent(asOf: at)
                        replica.resumeParked()
                    }
                    sent = sent.filter { $0.key > k }
                } else {
                    pending.append(change)
                }
            }
            // Applied as soon as they arrive (a change reaches lookups in about a millisecond); the
            // heartbeats only prove how current the copy is.
            try apply(&pending, c, replica: replica, logger: logger)
        }
    }

    private static func load(_ c: Connection, replica: Replica, logger: Logger) throws {
        replica.markUnproven()
        let started = MonotonicClock.now()
        let tables = try ReplicaLoad.snapshot(c)
        replica.replace(tables)
        replica.reloads.add(1, ordering: .relaxed)
        logger.notice("memory copy loaded", metadata: [
            "devices": .stringConvertible(tables.devices.count), "accounts": .stringConvertible(tables.accounts.count),
            "ip_settings": .stringConvertible(tables.ipSettings.count),
            "ms": .stringConvertible((MonotonicClock.now() - started) / 1_000_000)])
    }

    /// Applies the changes in order: rows named by id are read again (in one statement per table),
    /// then everything goes into the copy under one lock, so no lookup sees half a batch.
    private static func apply(_ pending: inout [ReplicaChange], _ c: Connection, replica: Replica, logger: Logger) throws {
        guard !pending.isEmpty else { return }
        defer { pending = [] }
        if pending.contains(.reloadAll) {
            try load(c, replica: replica, logger: logger)
            return
        }
        var accountIDs: Set<Int64> = [], deviceIDs: Set<Int64> = [], ipIDs: Set<Int64> = []
        var domainsChanged = false, rulesChanged = false
        for change in pending {
            switch change {
            case .account(let id): accountIDs.insert(id)
            case .device(let id): deviceIDs.insert(id)
            case .ipSetting(let id): ipIDs.insert(id)
            case .domains: domainsChanged = true
            case .destinationRules: rulesChanged = true
            default: break
            }
        }
        let accounts = accountIDs.isEmpty ? [:] : try ReplicaLoad.accounts(c, ids: accountIDs)
        let devices = deviceIDs.isEmpty ? [] : try ReplicaLoad.devices(c, ids: deviceIDs)
        let ipSettings = ipIDs.isEmpty ? [:] : try ReplicaLoad.ipSettings(c, ids: ipIDs)
        let domains = domainsChanged ? try ReplicaLoad.domains(c) : nil
        let rules = rulesChanged ? try ReplicaLoad.destinationRules(c) : nil
        let fraud = rulesChanged ? try ReplicaLoad.fraudThresholds(c) : nil
        let devicesByID = Dictionary(devices.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        let keysRead = Set(devices.map { "\($0.domainID):\($0.username)" })
        replica.update { t in
            for change in pending {
                switch change {
                case .account(let id): t.setAccount(id, accounts[id])
                case .device(let id): if let d = devicesByID[id] { t.devices.upsert(d) }
                case let .deviceKeyGone(domainID, username):
                    // Unless the row read again holds that key now (deleted, then inserted again).
                    if !keysRead.contains("\(domainID):\(username)") {
                        t.devices.remove(domainID: domainID, username: username)
                    }
                case .ipSetting(let id): t.setIPSetting(id, ipSettings[id])
                case .domains: if let (list, aliases) = domains { t.setDomains(list, aliases: aliases) }
                case .destinationRules:
                    if let rules { t.setDestinationRules(rules) }
                    if let fraud { t.setFraudThresholds(fraud) }
                case let .lock(scope, subject, until): t.setLock(scope: scope, subject: subject, until: until)
                case let .trust(subject, source, last): t.setTrust(subject: subject, source: source, lastSuccess: last)
                case .reloadAll, .heartbeat: break
                }
            }
        }
        replica.changesApplied.add(UInt64(pending.count), ordering: .relaxed)
    }
}

/// Trust records of successes answered from the memory copy, written in batches (one statement per
/// `flush` interval) by a thread of its own: the answer never waits for this write. Bounded: past
/// `capacity` pending records new ones are dropped and counted (the only effect of a dropped record
/// is that the source is not yet trusted; the next success queues it again).
final class TrustRecorder: Sendable {
    struct Pending: Sendable {
        var keys: Set<String> = [] // "subject|source"
        var list: [(subject: String, source: String)] = []
    }

    final class Counters: Sendable {
        let written = Atomic<UInt64>(0)
        let dropped = Atomic<UInt64>(0)
        let failedBatches = Atomic<UInt64>(0)
    }

    let capacity: Int
    let counters = Counters()
    private let pending = Monitor(Pending())
    private let thread: BackgroundThread

    init(config: ServiceConfig, logger: Logger, capacity: Int = 100_000, flushMilliseconds: Int = 20) {
        self.capacity = capacity
        let pending = self.pending
        let counters = self.counters
        let dbConfig = config.databaseConfig
        thread = BackgroundThread(name: "trust-recorder") { t in
            let c = Connection(lazy: dbConfig)
            defer { c.close() }
            while true {
                let batch = pending.wait(until: { !$0.list.isEmpty }, timeoutNanoseconds: 50_000_000) { p -> [(subject: String, source: String)] in
                    defer { p = Pending() }
                    return p.list
                } ?? []
                if batch.isEmpty {
                    if t.isStopping { break }
                    continue
                }
                do {
                    for chunk in stride(from: 0, to: batch.count, by: 1_000) {
                        try TrustBatch.record(c, Array(batch[chunk..<min(batch.count, chunk + 1_000)]))
                    }
                    counters.written.add(UInt64(batch.count), ordering: .relaxed)
                } catch {
                    counters.failedBatches.add(1, ordering: .relaxed)
                    logger.warning("trust records not written", metadata: ["records": .stringConvertible(batch.count), "error": .string("\(error)")])
                    if t.isStopping { break }
                    t.sleep(milliseconds: 250)
                }
                if !t.isStopping { t.sleep(milliseconds: flushMilliseconds) }
            }
        }
    }

    func record(source: String, user: String) {
        let accepted = pending.withLock(wake: .one) { p -> Bool in
            let key = user + "|" + source
            if p.keys.contains(key) { return true }
            guard p.list.count < capacity else { return false }
            p.keys.insert(key)
            p.list.append((user, source))
            return true
        }
        if !accepted { counters.dropped.add(1, ordering: .relaxed) }
    }

    var queued: Int { pending.withLock(wake: .none) { $0.list.count } }

    func start() { thread.start() }
    /// Writes what is pending (each statement bounded by its deadline), then stops.
    func stop() { thread.stop() }
}
