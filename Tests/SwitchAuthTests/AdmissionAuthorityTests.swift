import Decisions
import DatabaseTestSupport
import Foundation
import Locking
import Postgres
import Store
@testable import SwitchAuthService
import SystemCalls
import TestSupport
import Testing

/// Admissions in memory (migration 0015) against a real PostgreSQL: the ledger decides as
/// `switchauth_admit_call` does, and the lease moves between instances without a call admitted
/// twice or lost.
@Suite("admissions in memory")
struct AdmissionAuthorityTests {
    /// The same random sequence of calls and hangups through the database's function and through
    /// the ledger: the same verdicts and fraud counts, call by call. In bursts of 40 calls a second
    /// apart, so that no CPS window entry expires between the two clocks' readings.
    @Test func ledgerAgreesWithTheDatabase() throws {
        let db = try Connection(try TestDatabase.shared.freshDatabase())
        defer { db.close() }
        let admin = Admin(db: db)
        let a1 = try CallControlTests.account(db, "L1", channels: 3, cps: 4)
        let a2 = try CallControlTests.account(db, "L2")
        let a3 = try CallControlTests.account(db, "L3", channels: 2)
        var thresholds: [Int64: [FraudThreshold]] = [:]
        // L1 has none: it is not tracked, and its calls count for nothing.
        for (number, id) in [("L2", a2), ("L3", a3)] {
            let perMinute = try admin.setFraudThreshold(account: number, metric: .callsPerMinute, prefix: "", warning: 100, critical: nil)
            let perDay = try admin.setFraudThreshold(account: number, metric: .attemptsPerDay, prefix: "", warning: 100, critical: nil)
            let concurrent = try admin.setFraudThreshold(account: number, metric: .concurrentCalls, prefix: "49", warning: 100, critical: nil)
            thresholds[id] = [FraudThreshold(id: perMinute, metric: .callsPerMinute, warning: 100, critical: nil),
                              FraudThreshold(id: perDay, metric: .attemptsPerDay, warning: 100, critical: nil),
                              FraudThreshold(id: concurrent, prefix: "49", metric: .concurrentCalls, warning: 100, critical: nil)]
        }
        let accounts: [(id: Int64, channels: Int, cps: Int, fraud: Bool)] = [(a1, 3, 4, false), (a2, 0, 0, true), (a3, 2, 0, true)]
        var generator = SplitMix(seed: 0x5eed_2121)
        var ledger = AdmissionLedger()
        var issued: [String] = []
        var compared = 0
        for burst in 0..<3 {
            if burst > 0 { Syscall.sleep(nanoseconds: 1_100_000_000) }
            for step in 0..<40 {
                if !issued.isEmpty, generator.next() % 4 == 0 {
                    let id = issued[Int(generator.next() % UInt64(issued.count))]
                    #expect(ledger.release([id]) == (try CallSlots.release(db, uniqueIDs: [id])), "release \(id)")
                    continue
                }
                let a = accounts[Int(generator.next() % 3)]
                let reuse = !issued.isEmpty && generator.next() % 5 == 0
                let id = reuse ? issued[Int(generator.next() % UInt64(issued.count))] : "u\(burst)-\(step)"
                if !reuse { issued.append(id) }
                let destination = generator.next() % 2 == 0 ? "4930123" : "3312345"
                let ip: Int64? = generator.next() % 2 == 0 ? 77 : nil
                let fraud = FraudCheck.applicable(thresholds[a.id] ?? [], destination: destination)
                let call = CallAdmission(uniqueID: id, coreUUID: "core-1", accountID: a.id, maxChannels: a.channels, accountCPS: a.cps,
                                         ipSettingID: ip, ipSettingCPS: ip == nil ? 0 : 3, destination: destination,
                                         trackChannels: a.fraud, fraudThresholds: fraud)
                let now: Int64 = try db.execute("SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint").decode(0, 0)
                let inDatabase = try CallSlots.admit(db, call)
                let inMemory = ledger.admit(call, now: now)
                #expect(inMemory.verdict == inDatabase.verdict, "call \(id) of account \(a.id)")
                #expect(inMemory.measurements.map { [$0.thresholdID, Int64($0.value)] } == inDatabase.measurements.map { [$0.thresholdID, Int64($0.value)] },
                        "fraud counts of call \(id)")
                compared += 1
            }
        }
        #expect(compared > 60)
        // And the slots are the same set.
        #expect(Set(try CallSlots.slots(db).keys) == Set(ledger.slots.keys))
    }

    static func authority(_ config: ConnectionConfig, idleHolderSeconds: UInt64 = 600) -> AdmissionAuthority {
        AdmissionAuthority(databaseConfig: config, metrics: Metrics(), logger: quietLogger, idleHolderSeconds: idleHolderSeconds)
    }

    /// Two instances on one database: the first holds the admissions; the second, refused by the
    /// database, asks for them and gets them there; the first stops; the second takes the lease and
    /// the admissions into memory with every slot, and gives them back when it stops.
    @Test func twoInstancesHandTheAdmissionsOver() throws {
        let config = try TestDatabase.shared.freshDatabase()
        let db = try Connection(config)
        defer { db.close() }
        let id = try CallControlTests.account(db, "H1", channels: 2)
        func call(_ uuid: String) -> CallAdmission { CallControlTests.admission(id, uuid, channels: 2) }
        let first = Self.authority(config), second = Self.authority(config)
        first.start()
        defer { first.stop() }
        #expect(first.mode == .memory)
        second.start()
        defer { second.stop() }
        #expect(second.mode == .none, "the lease is the first's")
        #expect(first.admit(call("a1"))?.verdict == .admitted(inUse: 1))
        #expect(second.admit(call("a2")) == nil)
        // The database refuses while the first holds them.
        #expect(throws: CallSlots.AdmissionsInMemory.self) { try CallSlots.admit(db, call("a2")) }
        second.refusedByDatabase(db)
        // Given back once the database says so (the first stops admitting in memory a moment
        // before its writes commit; calls meanwhile are refused by the database and retried).
        #expect(waitUntil(seconds: 5) { (try? CallSlots.authority(db, holder: "test").mode) == "database" })
        #expect(first.mode == .database)
        // Everything the first admitted was written before it gave them back.
        #expect(try CallSlots.inUse(db, accountID: id) == 1)
        #expect(try CallSlots.admit(db, call("a2")).verdict == .admitted(inUse: 2))
        #expect(try CallSlots.admit(db, call("a3")).verdict == .channelLimit(inUse: 2))
        #expect(first.admit(call("a3")) == nil, "given back: the first admits in the database too")
        // The first stops; the second takes the lease and the admissions with both slots.
        first.stop()
        #expect(waitUntil(seconds: 5) { second.mode == .memory })
        #expect(second.inUse(account: id) == 2)
        #expect(second.admit(call("a3"))?.verdict == .channelLimit(inUse: 2))
        #expect(second.release(["a1"]) == 1)
        #expect(second.admit(call("a3"))?.verdict == .admitted(inUse: 2))
        // Written within milliseconds: a1 gone, a3 there (in the journal: a call of a moment).
        #expect(waitUntil(seconds: 5) { (try? Set(CallSlots.slots(db, withJournal: true).keys)) == ["a2", "a3"] })
        second.stop()
        #expect(try CallSlots.authority(db, holder: "test").mode == "database")
        #expect(try CallSlots.admit(db, call("a4")).verdict == .channelLimit(inUse: 2))
    }

    /// Bindings in failover order: the switches ask the second instance while the first holds the
    /// lease and admits nothing itself. The first gives the admissions back when asked, then (idle)
    /// the lease too, and the second takes them into memory: the instance the switches ask holds them.
    @Test func anIdleHolderLetsTheLeaseGo() throws {
        let config = try TestDatabase.shared.freshDatabase()
        let db = try Connection(config)
        defer { db.close() }
        let id = try CallControlTests.account(db, "I1", channels: 3)
        let first = Self.authority(config, idleHolderSeconds: 0), second = Self.authority(config, idleHolderSeconds: 0)
        first.start()
        defer { first.stop() }
        second.start()
        defer { second.stop() }
        #expect(first.mode == .memory && second.mode == .none)
        let call = CallControlTests.admission(id, "b1", channels: 3)
        #expect(throws: CallSlots.AdmissionsInMemory.self) { try CallSlots.admit(db, call) }
        second.refusedByDatabase(db)
        #expect(waitUntil(seconds: 10) { second.mode == .memory }, "first \(first.mode), second \(second.mode)")
        #expect(waitUntil(seconds: 2) { first.mode == .none })
        #expect(second.admit(call)?.verdict == .admitted(inUse: 1))
        // The second stays: its own asking is not another instance's.
        Thread.sleep(forTimeInterval: 0.5)
        #expect(second.mode == .memory)
    }

    /// A reconciliation while the admissions are in memory (migration 0018): judged in the ledger,
    /// the database told only the switch's run; the slots gone leave the database with the next
    /// write, rows and journal entries alike, and an earlier run's slots go whatever their age.
    @Test func reconciliationInMemory() throws {
        let config = try TestDatabase.shared.freshDatabase()
        let db = try Connection(config)
        defer { db.close() }
        let id = try CallControlTests.account(db, "R1", channels: 5)
        // The switch's earlier run, seen by a listener before.
        #expect(try CallSlots.reconcile(db, endpoint: "host:8021", coreUUID: "core-q", before: "-infinity", live: []) == 0)
        let authority = Self.authority(config)
        authority.start()
        defer { authority.stop() }
        try #require(authority.mode == .memory)
        for (uuid, core) in [("live", "core-r"), ("gone", "core-r"), ("earlier", "core-q"), ("elsewhere", "core-x")] {
            #expect(authority.admit(CallControlTests.admission(id, uuid, core: core, channels: 5))?.verdict != nil)
        }
        let before = AdmissionAuthority.nowMicroseconds() + AdmissionLedger.second
        // An instance without the admissions reconciled the switch's new run first: the earlier
        // run's slots are still stale to the holder (migration 0018 remembers replaced runs).
        _ = try CallSlots.reconcile(db, endpoint: "host:8021", coreUUID: "core-r", before: "-infinity", live: [])
        let run = try CallSlots.switchRun(db, endpoint: "host:8021", core: "core-r")
        #expect(run.stale == ["core-q"] && run.known == ["core-r"])
        let judged = authority.reconcile(AdmissionLedger.Reconciliation(
            core: "core-r", before: before, live: ["live"], stale: run.stale, known: run.known,
            unknownBefore: AdmissionAuthority.nowMicroseconds() - 60 * AdmissionLedger.second))
        #expect(judged.released == 2 && judged.whole, "gone and earlier; elsewhere is a minute from judged")
        #expect(authority.inUse(account: id) == 2)
        #expect(waitUntil(seconds: 2) { (try? CallSlots.inUse(db, accountID: id)) == 2 }, "the database's count follows with the next write")
        #expect(try db.execute("SELECT count(*) FROM switch_cores WHERE core_uuid = 'core-q'").decode(0, 0, as: Int.self) == 0)
        #expect(try db.execute("SELECT endpoint FROM switch_runs_replaced WHERE core_uuid = 'core-q'").decode(0, 0, as: String.self) == "host:8021")
        // Given back: the database judges (the ledger does not hold them).
        authority.stop()
        #expect(authority.reconcile(AdmissionLedger.Reconciliation(core: "core-r", before: before, live: [], stale: [], known: [],
                                                                   unknownBefore: 0)) == (0, false))
    }

    /// A flush whose commit reached PostgreSQL but whose answer did not is written again by the
    /// next one (migration 0016 inserts without ON CONFLICT): the rows already there are skipped,
    /// the new ones and the releases still written, nothing refused.
    @Test func aFlushWrittenTwice() throws {
        let db = try Connection(try TestDatabase.shared.freshDatabase())
        defer { db.close() }
        let id = try CallControlTests.account(db, "F1", channels: 5)
        try #require(try CallSlots.tryLease(db))
        let epoch = try CallSlots.takeIntoMemory(db, holder: "test").epoch
        func slot(_ t: Int64) -> AdmissionLedger.Slot { AdmissionLedger.Slot(accountID: id, coreUUID: "core-f", destination: "4930", reservedAt: t) }
        let now = AdmissionAuthority.nowMicroseconds()
        var first = AdmissionLedger.Changes()
        first.rows = ["f1": slot(1_000_000), "f2": slot(2_000_000)]
        #expect(try CallSlots.flush(db, epoch: epoch, now: now, first) == .ok)
        var again = first
        again.rows["f3"] = slot(3_000_000)
        again.released = ["f1"]
        #expect(try CallSlots.flush(db, epoch: epoch, now: now + 1, again) == .ok)
        #expect(try CallSlots.slots(db) == ["f2": slot(2_000_000), "f3": slot(3_000_000)])
        #expect(try CallSlots.flush(db, epoch: epoch + 1, now: now + 2, again) == .lost, "another epoch's flush is refused")
        _ = try CallSlots.releaseLease(db)
    }

    /// Migration 0017: a call's slot is a journal entry until it has been up `rowAfter`; the
    /// database's count of an account's calls includes it; a release of it is a journal entry
    /// too; a journal row goes once its slots are rows or released; an instance that takes the
    /// admissions after a holder that died finds every slot of the journal.
    @Test func theJournalHoldsTheCallsOfAMoment() throws {
        let config = try TestDatabase.shared.freshDatabase()
        let db = try Connection(config)
        defer { db.close() }
        let id = try CallControlTests.account(db, "J1", channels: 5)
        try #require(try CallSlots.tryLease(db))
        let epoch = try CallSlots.takeIntoMemory(db, holder: "test").epoch
        func slot(_ t: Int64) -> AdmissionLedger.Slot { AdmissionLedger.Slot(accountID: id, coreUUID: "core-j", destination: "4930", reservedAt: t) }
        func journalRows() throws -> Int { try db.execute("SELECT count(*) FROM admission_journal").decode(0, 0) }
        let t = AdmissionAuthority.nowMicroseconds()
        var changes = AdmissionLedger.Changes()
        changes.reservedSlots = ["j1": slot(t), "j2": slot(t)]
        #expect(try CallSlots.flush(db, epoch: epoch, now: t, changes) == .ok)
        #expect(try CallSlots.slots(db).isEmpty, "no row for a call of a moment")
        #expect(try CallSlots.slots(db, withJournal: true) == ["j1": slot(t), "j2": slot(t)])
        #expect(try CallSlots.inUse(db, accountID: id) == 2)
        changes = AdmissionLedger.Changes()
        changes.forgotten = ["j1"]
        #expect(try CallSlots.flush(db, epoch: epoch, now: t + 1, changes) == .ok)
        #expect(try CallSlots.slots(db, withJournal: true) == ["j2": slot(t)])
        #expect(try CallSlots.inUse(db, accountID: id) == 1)
        #expect(try journalRows() == 2)
        // j2 has been up rowAfter: its row is made, and the journal rows of j1 and j2 go with it.
        changes = AdmissionLedger.Changes()
        changes.rows = ["j2": slot(t)]
        #expect(try CallSlots.flush(db, epoch: epoch, now: t + 1 + AdmissionLedger.journalKept, changes) == .ok)
        #expect(try journalRows() == 0)
        #expect(try CallSlots.slots(db) == ["j2": slot(t)])
        // Calls of a moment: j4 made a row (before a reconciliation) and ended, its reservation
        // still in the journal; j5 ended, heard by another instance (a release in the database);
        // j6 is on a switch that the other instance reconciles and no longer has; j3 is up.
        // Then the holder dies (its connection, and the lease, go).
        changes = AdmissionLedger.Changes()
        changes.reservedSlots = ["j3": slot(t + 10), "j4": slot(t + 10), "j5": slot(t + 10)]
        changes.rows = ["j4": slot(t + 10)]
        #expect(try CallSlots.flush(db, epoch: epoch, now: t + 10, changes) == .ok)
        changes = AdmissionLedger.Changes()
        changes.released = ["j4"]
        changes.reservedSlots = ["j6": AdmissionLedger.Slot(accountID: id, coreUUID: "core-k", destination: "4930", reservedAt: t + 11)]
        #expect(try CallSlots.flush(db, epoch: epoch, now: t + 11, changes) == .ok)
        let other = try Connection(config)
        defer { other.close() }
        #expect(try CallSlots.release(other, uniqueIDs: ["j5"]) == 0, "no row: j5 is in the journal")
        #expect(try CallSlots.slots(db, withJournal: true) == ["j2": slot(t), "j3": slot(t + 10), "j6": AdmissionLedger.Slot(accountID: id, coreUUID: "core-k", destination: "4930", reservedAt: t + 11)])
        let later = try db.execute("SELECT (clock_timestamp() + interval '1 second')::text").decode(0, 0, as: String.self)
        #expect(try CallSlots.reconcile(other, endpoint: "host-k:8021", coreUUID: "core-k", before: later, live: []) == 1, "j6, from the journal")
        db.close()
        let next = try Connection(config)
        defer { next.close() }
        try #require(try CallSlots.tryLease(next))
        let stored = try CallSlots.takeIntoMemory(next, holder: "next")
        #expect(stored.modeBefore == "memory")
        #expect(stored.slots == ["j2": slot(t), "j3": slot(t + 10)], "every slot the dead holder wrote, none that ended")
        #expect(try next.execute("SELECT count(*) FROM admission_journal").decode(0, 0, as: Int.self) == 0, "the journal is in call_slots")
        #expect(try CallSlots.slots(next) == ["j2": slot(t), "j3": slot(t + 10)])
        _ = try CallSlots.releaseLease(next)
    }

    /// The journal's lines: tab-separated fields, a destination's control bytes and '%'
    /// percent-encoded, so that no destination can end or split a line.
    @Test func journalLines() {
        var changes = AdmissionLedger.Changes()
        changes.reservedSlots = ["a-1": AdmissionLedger.Slot(accountID: 7, coreUUID: "core-1", destination: "49\n%1\t*#", reservedAt: 123)]
        changes.forgotten = ["b-2"]
        #expect(CallSlots.journalEntries(changes) == "R\ta-1\t7\t123\tcore-1\t49%0A%251%09*#\nX\tb-2\n")
        #expect(CallSlots.journalEntries(AdmissionLedger.Changes()) == "")
    }

    /// The holder's way: calls of a moment never become rows; a call up for `rowAfter` does; when
    /// the holder stops, the journal is applied and the database admits with every slot.
    @Test func aHolderWritesRowsOnlyForCallsThatLast() throws {
        let config = try TestDatabase.shared.freshDatabase()
        let db = try Connection(config)
        defer { db.close() }
        let id = try CallControlTests.account(db, "J2", channels: 3)
        let authority = Self.authority(config)
        authority.start()
        defer { authority.stop() }
        try #require(authority.mode == .memory)
        for uuid in ["short", "long"] {
            #expect(authority.admit(CallControlTests.admission(id, uuid, core: "core-j", channels: 3))?.verdict != nil)
        }
        #expect(waitUntil(seconds: 2) { (try? Set(CallSlots.slots(db, withJournal: true).keys)) == ["short", "long"] })
        #expect(try CallSlots.slots(db).isEmpty)
        #expect(authority.release(["short"]) == 1)
        #expect(waitUntil(seconds: 2) { (try? Set(CallSlots.slots(db, withJournal: true).keys)) == ["long"] })
        #expect(waitUntil(seconds: Double(AdmissionLedger.rowAfter / AdmissionLedger.second) + 3) {
            (try? Set(CallSlots.slots(db).keys)) == ["long"]
        }, "the call that lasts has its row")
        #expect(try CallSlots.slots(db, withJournal: true).count == 1)
        #expect(authority.admit(CallControlTests.admission(id, "moment", core: "core-j", channels: 3))?.verdict == .admitted(inUse: 2))
        authority.stop()
        #expect(try CallSlots.authority(db, holder: "test").mode == "database")
        #expect(try Set(CallSlots.slots(db).keys) == ["long", "moment"], "given back: the journal is in call_slots")
        #expect(try CallSlots.admit(db, CallControlTests.admission(id, "third", core: "core-j", channels: 3)).verdict == .admitted(inUse: 3))
    }
}
