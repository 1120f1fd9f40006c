import Decisions
import Foundation
import Locking
import Logging
import Postgres
import Store
import SystemCalls

/// The call admissions of every switch held in this instance's memory while it holds the lease
/// (migration 0015, README "Call controls"): a call of a limited account is decided against the
/// ledger on the event loop that read it, with no database round trip; what the ledger changed
/// is written to PostgreSQL every `flushMilliseconds` by this part's thread, on the connection that
/// holds the lease (the one owner of that handle), so that the tables stay its copy.
///
/// - Without the lease (`.none`) calls are admitted in the database as before; one that the
///   database refuses because another instance holds them (`CallSlots.AdmissionsInMemory`) asks
///   for them back (`wantDatabase`) and is retried until its deadline.
/// - The holder that is asked gives them back (`.database`): it writes its changes and CPS windows,
///   and admits in the database like everyone, until nobody has asked for `returnAfterSeconds`.
/// - The lease is tried every second: an instance that died holding it is replaced within a second
///   or two, by whichever instance (or restart) takes it next.
final class AdmissionAuthority: Sendable {
    enum Mode: Sendable, Equatable {
        /// Another instance may hold the lease: the database admits.
        case none
        /// This instance holds the lease and the admissions.
        case memory
        /// This instance holds the lease but gave the admissions to the database (asked by another).
        case database
    }

    private struct State {
        var mode = Mode.none
        var epoch: Int64 = 0
        var ledger = AdmissionLedger()
        var poked = false
        var flushes: UInt64 = 0
        var flushedChanges: UInt64 = 0
        var takeovers: UInt64 = 0
        /// The thread's first try at the lease is done (start waits for it).
        var tried = false
        /// This instance holds the lease (whatever the mode).
        var leaseHeld = false
        /// When this instance last admitted a call (memory or database; MonotonicClock).
        var lastAdmission: UInt64 = 0
        /// After giving the lease up, not before this (MonotonicClock): the instance that asked takes it.
        var holdOffUntil: UInt64 = 0
    }

    static let flushMilliseconds = 5
    static let idleMilliseconds = 100
    static let leaseRetryMilliseconds = 1_000
    static let returnAfterSeconds = 30.0
    /// A holder that another instance asks and that admitted nothing itself for this long lets the
    /// lease go: with xml_curl bindings in failover order, the instance the switches ask holds them.
    static let idleHolderSeconds: UInt64 = 10

    private let state = Monitor(State())
    private let thread: BackgroundThread
    let databaseConfig: ConnectionConfig
    let holder: String
    let metrics: Metrics
    let logger: Logger
    let idleHolder: UInt64
    /// When this instance last wrote that it wants the admissions in the database.
    private let lastWanted = Locked<UInt64>(0)

    /// `idleHolderSeconds`: see `Self.idleHolderSeconds` (tests shorten it).
    init(databaseConfig: ConnectionConfig, metrics: Metrics, logger: Logger, idleHolderSeconds: UInt64 = AdmissionAuthority.idleHolderSeconds) {
        self.idleHolder = idleHolderSeconds * 1_000_000_000
        var c = databaseConfig
        c.applicationName = "switchauth-admissions"
        // A background thread's statements: no lookup waits on them (a switch into memory waits
        // for the admissions in flight in the database).
        c.queryTimeoutMilliseconds = max(c.queryTimeoutMilliseconds, 2_000)
        self.databaseConfig = c
        self.metrics = metrics
        self.logger = logger
        // Unique per instance (two in one process, in tests, are two holders).
        holder = "\(ProcessInfo.processInfo.hostName) pid \(ProcessInfo.processInfo.processIdentifier) \(UUID().uuidString.prefix(8).lowercased())"
        let box = WeakOwner<AdmissionAuthority>()
        thread = BackgroundThread(name: "admissions") { t in box.owner?.run(t) }
        box.owner = self
    }

    /// Starts the thread and waits (up to 3 s) for its first try at the lease and the admissions,
    /// so that an instance that can hold them does from its first call.
    func start() {
        thread.start()
        _ = state.wait(until: { $0.tried }, timeoutNanoseconds: 3_000_000_000) { _ in () }
    }
    func stop() {
        thread.stop()
    }

    var mode: Mode { state.withLock(wake: .none) { $0.mode } }

    static func nowMicroseconds() -> Int64 {
        let t = WallClock.now()
        return Int64(t.seconds) * 1_000_000 + Int64(t.nanoseconds / 1_000)
    }

    // MARK: Called by the lookups and the listeners

    /// The call decided against the ledger; nil when this instance does not hold the admissions.
    func admit(_ a: CallAdmission) -> AdmissionLedger.Answer? {
        // Everything that needs no ledger is done before its lock: the event loops and the
        // listeners meet there.
        let key = CallKey(a.uniqueID)
        let (now, at) = (MonotonicClock.now(), Self.nowMicroseconds())
        let (answer, first) = state.withLock(wake: .none) { s -> (AdmissionLedger.Answer?, Bool) in
            guard s.mode == .memory else { return (nil, false) }
            s.lastAdmission = now
            let idle = !s.ledger.hasChanges
            let answer = s.ledger.admit(a, now: at, key: key)
            return (answer, idle && s.ledger.hasChanges)
        }
        if first { wakeWriter() }
        return answer
    }

    /// The first change after an idle moment is written at once (the writer then waits at most
    /// `flushMilliseconds` for the next ones): what a crash can lose stays that small.
    private func wakeWriter() {
        state.withLock(wake: .all) { $0.poked = true }
    }

    /// Releases slots from the ledger; nil when this instance does not hold the admissions (the
    /// caller releases them in the database). A few dozen at a time under the lock the event loops
    /// admit under: a burst of hundreds of hangups held it for as long as hundreds of requests take.
    func release(_ ids: [String]) -> Int? {
        var released = 0
        let keys = ids.map { CallKey($0) }
        for from in stride(from: 0, to: max(keys.count, 1), by: Self.releaseChunk) {
            let chunk = keys[from..<min(from + Self.releaseChunk, keys.count)]
            let (n, first) = state.withLock(wake: .none) { s -> (Int?, Bool) in
                guard s.mode == .memory else { return (nil, false) }
                let idle = !s.ledger.hasChanges
                let n = s.ledger.release(keys: chunk)
                return (n, idle && s.ledger.hasChanges)
            }
            if first { wakeWriter() }
            // Not held (any more): the caller releases them all in the database, where those the
            // ledger released already are gone or go with its last write (a no-op twice).
            guard let n else { return nil }
            released += n
        }
        return released
    }

    static let releaseChunk = 32

    func inUse(account: Int64) -> Int? {
        state.withLock(wake: .none) { s in s.mode == .memory ? s.ledger.inUse(account: account) : nil }
    }

    /// The database refused a call because another instance holds the admissions: ask for them
    /// (at most every 100 ms) and try the lease at once (its holder may be gone).
    func refusedByDatabase(_ db: Connection) {
        // This instance holds the lease: it is taking them into memory this moment.
        guard !state.withLock(wake: .all, { s in s.poked = true; return s.leaseHeld }) else { return }
        wantDatabase(db, every: 100_000_000)
    }

    /// A call admitted in the database while this instance does not hold the lease: keeps the
    /// holder from taking the admissions back into memory (written at most every 5 s).
    func admittedInDatabase(_ db: Connection) {
        let now = MonotonicClock.now()
        guard state.withLock(wake: .none, { s in
            s.lastAdmission = now
            return s.mode == .none && !s.leaseHeld
        }) else { return }
        wantDatabase(db, every: 5_000_000_000)
    }

    private func wantDatabase(_ db: Connection, every interval: UInt64) {
        let now = MonotonicClock.now()
        let due = lastWanted.withLock { last -> Bool in
            guard now &- last >= interval || last == 0 else { return false }
            last = now
            return true
        }
        guard due else { return }
        do { try CallSlots.wantDatabase(db, by: holder) } catch { metrics.databaseError() }
    }

    /// A reconciliation with a switch judged in the ledger, which holds every slot while this
    /// instance holds the admissions (migration 0018): the slots gone are released there, a part
    /// of the slab at a time under the lock the event loops admit under, and their rows and
    /// journal entries go with the next write, as a hangup's do. `whole`: the ledger held the
    /// admissions throughout; else (given back meanwhile, or never held) the database judges its
    /// slots (`CallSlots.reconcile`), the rest of them or all.
    func reconcile(_ judge: AdmissionLedger.Reconciliation) -> (released: Int, whole: Bool) {
        var released = 0
        var from = 0
        while true {
            let step = state.withLock(wake: .none) { s -> (n: Int, next: Int, done: Bool)? in
                guard s.mode == .memory else { return nil }
                let end = min(from + AdmissionLedger.reconcilePart, s.ledger.slabCount)
                let n = s.ledger.release(keys: s.ledger.gone(in: from..<end, judge))
                return (n, end, end >= s.ledger.slabCount)
            }
            guard let step else { return (released, false) }
            released += step.n
            if step.done { break }
            from = step.next
        }
        if released > 0 { wakeWriter() }
        return (released, true)
    }

    struct Gauges {
        var inMemory: Bool
        var slots: Int
        var unwritten: Int
        var flushes: UInt64
        var takeovers: UInt64
    }

    var gauges: Gauges {
        state.withLock(wake: .none) { s in
            Gauges(inMemory: s.mode == .memory, slots: s.mode == .memory ? s.ledger.slotCount : 0, unwritten: s.ledger.changeCount,
                   flushes: s.flushes, takeovers: s.takeovers)
        }
    }

    // MARK: The thread

    private func run(_ t: BackgroundThread) {
        let db = Connection(lazy: databaseConfig)
        defer { db.close() }
        /// The connection's `connectCount` when it took the lease (a new connection holds nothing).
        var leaseConnection: Int?
        var nextLeaseTry: UInt64 = 0
        var nextPoll: UInt64 = 0
        var nextPrune: UInt64 = 0
        /// Writes are at least `flushMilliseconds` apart (a write per call would cost the database a
        /// statement per call under load); the first change after a quiet moment goes at once.
        var lastFlush: UInt64 = 0
        /// The connection (its `connectCount`) whose caches hold the admissions' tables.
        var warmed = -1
        let interval = UInt64(Self.flushMilliseconds) * 1_000_000
        while !t.isStopping {
            let now = MonotonicClock.now()
            let (mode, poked) = state.withLock(wake: .none) { s -> (Mode, Bool) in
                defer { s.poked = false }
                return (s.mode, s.poked)
            }
            if let held = leaseConnection, held != db.connectCount {
                leaseConnection = nil
                lostConnection(db, &leaseConnection)
            }
            switch mode {
            case .none:
                if now >= nextLeaseTry || poked, now >= state.withLock(wake: .none, { $0.holdOffUntil }) {
                    nextLeaseTry = now + UInt64(Self.leaseRetryMilliseconds) * 1_000_000
                    take(db, &leaseConnection, warmed: &warmed)
                }
            case .memory:
                let (hasChanges, epoch) = state.withLock(wake: .none) { ($0.ledger.hasChanges, $0.epoch) }
                if (hasChanges && now >= lastFlush &+ interval) || now >= nextPoll {
                    nextPoll = now + UInt64(Self.idleMilliseconds) * 1_000_000
                    lastFlush = now
                    flush(db, epoch: epoch, &leaseConnection)
                }
                if now >= nextPrune {
                    nextPrune = now + 60_000_000_000
                    state.withLock(wake: .none) { $0.ledger.prune(now: Self.nowMicroseconds()) }
                }
            case .database:
                if now >= nextPoll {
                    nextPoll = now + UInt64(Self.idleMilliseconds) * 1_000_000
                    if let a = try? CallSlots.authority(db, holder: holder) {
                        if a.wantedSecondsAgo.map({ $0 > Self.returnAfterSeconds }) ?? true {
                            takeIntoMemory(db, &leaseConnection)
                        } else if idle(now), leaseConnection != nil {
                            // Another instance admits and this one does not: the lease goes to it
                            // (it tries at once when refused, else within a second).
                            letLeaseGo(db, &leaseConnection)
                        }
                    }
                }
            }
            state.withLock(wake: .all) { $0.tried = true }
            let busy = state.withLock(wake: .none) { $0.mode == .memory && $0.ledger.hasChanges }
            let after = MonotonicClock.now()
            let wait = busy ? max(200_000, (lastFlush &+ interval) > after ? (lastFlush &+ interval) - after : 0)
                            : UInt64(Self.idleMilliseconds) * 1_000_000
            _ = state.wait(until: { $0.poked }, timeoutNanoseconds: wait) { _ in () }
            if t.isStopping { break }
        }
        // A clean stop: everything written and the admissions given back with the CPS windows, so
        // that the next holder starts exact. The lease goes with the connection.
        if mode == .memory, leaseConnection == db.connectCount { giveBack(db, reason: "stopping") }
        state.withLock(wake: .all) { s in
            s.mode = .none
            s.leaseHeld = false
        }
    }

    /// Takes the lease if it is free, then the admissions.
    private func take(_ db: Connection, _ leaseConnection: inout Int?, warmed: inout Int) {
        do {
            // The tables read under the switch's exclusive lock, read once before it on each new
            // connection: its first reads of them cost it its catalog caches (100-200 ms seen).
            if warmed != db.connectCount {
                try CallSlots.warm(db)
                warmed = db.connectCount
            }
            guard try CallSlots.tryLease(db) else { return }
        } catch {
            return
        }
        state.withLock(wake: .none) { $0.leaseHeld = true }
        leaseConnection = db.connectCount
        takeIntoMemory(db, &leaseConnection)
    }

    private func takeIntoMemory(_ db: Connection, _ leaseConnection: inout Int?) {
        do {
            let stored = try CallSlots.takeIntoMemory(db, holder: holder)
            guard leaseConnection == db.connectCount else { return }
            // After an instance that died holding them, its last second of CPS admissions is unknown.
            let blind = stored.modeBefore == "memory" ? stored.now + AdmissionLedger.second : 0
            state.withLock(wake: .all) { s in
                s.ledger = AdmissionLedger(slots: stored.slots, windows: stored.windows, counts: stored.counts, cpsUnknownUntil: blind)
                s.epoch = stored.epoch
                s.mode = .memory
                s.takeovers += 1
            }
            logger.notice("call admissions held in memory", metadata: [
                "epoch": .stringConvertible(stored.epoch), "slots": .stringConvertible(stored.slots.count),
                "after": .string(stored.modeBefore == "memory" ? "an instance that stopped holding them without giving them back (CPS-limited calls refused for 1 s)" : "the database")])
        } catch {
            metrics.databaseError()
            logger.warning("call admissions not taken into memory; admitting in the database", metadata: ["error": .string("\(error)")])
            state.withLock(wake: .all) { s in if s.mode == .none { s.mode = .database } }
        }
    }

    private func flush(_ db: Connection, epoch: Int64, _ leaseConnection: inout Int?) {
        let (changes, now) = state.withLock(wake: .none) { s in
            let now = Self.nowMicroseconds()
            return (s.ledger.takeChanges(now: now), now)
        }
        let answer: CallSlots.FlushAnswer
        do {
            answer = try CallSlots.flush(db, epoch: epoch, now: now, changes)
        } catch {
            state.withLock(wake: .none) { $0.ledger.restore(changes) }
            metrics.databaseError()
            if leaseConnection != db.connectCount { leaseConnection = nil; lostConnection(db, &leaseConnection) }
            return
        }
        state.withLock(wake: .none) { s in
            s.flushes += 1
            s.flushedChanges += UInt64(changes.size)
        }
        switch answer {
        case .ok: break
        case .wanted:
            giveBack(db, reason: "another instance admits calls")
            if state.withLock(wake: .none, { $0.mode == .database }), idle(MonotonicClock.now()) { letLeaseGo(db, &leaseConnection) }
        case .lost:
            // Another instance took them (this one's lease was gone): what it decided since is its.
            logger.error("call admissions taken by another instance; this one's unwritten changes are dropped", metadata: [
                "epoch": .stringConvertible(epoch), "changes": .stringConvertible(changes.size)])
            state.withLock(wake: .all) { s in
                s.mode = .none
                s.leaseHeld = false
                s.ledger = AdmissionLedger()
            }
            leaseConnection = nil
            db.close()
        }
    }

    /// The lease's connection broke (the lock went with it). Taken again at once if nobody took
    /// the admissions meanwhile (the epoch is still this one's): the ledger goes on; else dropped.
    private func lostConnection(_ db: Connection, _ leaseConnection: inout Int?) {
        let (mode, epoch) = state.withLock(wake: .none) { ($0.mode, $0.epoch) }
        guard mode != .none else { return }
        if (try? CallSlots.tryLease(db)) == true {
            leaseConnection = db.connectCount
            if mode == .database { return }
            if let a = try? CallSlots.authority(db, holder: holder), a.mode == "memory", a.epoch == epoch { return }
        }
        logger.error("call admissions lease lost with the database connection; admitting in the database", metadata: [
            "epoch": .stringConvertible(epoch)])
        state.withLock(wake: .all) { s in
            s.mode = .none
            s.leaseHeld = false
            s.ledger = AdmissionLedger()
        }
        if leaseConnection != nil { db.close(); leaseConnection = nil }
    }

    private func idle(_ now: UInt64) -> Bool {
        let last = state.withLock(wake: .none) { $0.lastAdmission }
        return last == 0 || now &- last > idleHolder
    }

    /// Gives up the lease (the admissions are in the database already).
    private func letLeaseGo(_ db: Connection, _ leaseConnection: inout Int?) {
        do {
            _ = try CallSlots.releaseLease(db)
        } catch {
            // The lock goes with the connection.
            db.close()
        }
        leaseConnection = nil
        state.withLock(wake: .all) { s in
            s.mode = .none
            s.leaseHeld = false
            s.holdOffUntil = MonotonicClock.now() + 5_000_000_000
        }
        logger.notice("call admissions lease given up: another instance admits calls and this one has not for a while", metadata: [
            "idle_s": .stringConvertible(idleHolder / 1_000_000_000)])
    }

    /// Writes the ledger's changes and CPS windows and gives the admissions to the database.
    private func giveBack(_ db: Connection, reason: String) {
        let (changes, windows, epoch, now) = state.withLock(wake: .none) { s in
            s.mode = .database
            let now = Self.nowMicroseconds()
            return (s.ledger.takeChanges(now: now), s.ledger.liveWindows(now: now), s.epoch, now)
        }
        do {
            // The journal goes into call_slots with the admissions (switchauth_admissions_to_database).
            let given = try db.transaction { db -> Bool in
                _ = try CallSlots.flush(db, epoch: epoch, now: now, changes)
                return try CallSlots.giveToDatabase(db, epoch: epoch, windows: windows)
            }
            logger.notice("call admissions given back to the database", metadata: [
                "reason": .string(reason), "epoch": .stringConvertible(epoch), "written": .stringConvertible(given)])
            state.withLock(wake: .all) { $0.ledger = AdmissionLedger() }
        } catch {
            // Still held here; tried again at the next flush.
            metrics.databaseError()
            state.withLock(wake: .all) { s in
                s.mode = .memory
                s.ledger.restore(changes)
            }
        }
    }
}

extension AdmissionAuthority: Lifecycle {}
