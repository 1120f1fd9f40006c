import Decisions
import Testing

/// The admission ledger (migration 0015): the same verdicts as `switchauth_admit_call` (0009), over
/// plain values and a given time. `AdmissionLedgerAgreementTests` (SwitchAuthTests) compares the
/// two on random sequences against a real PostgreSQL.
@Suite("admission ledger")
struct AdmissionLedgerTests {
    static let t0: Int64 = 1_800_000_000_000_000 // µs since the epoch, a whole minute
    static let s = AdmissionLedger.second

    static func call(_ id: String, account: Int64 = 1, channels: Int = 0, cps: Int = 0, ip: Int64? = nil, ipCPS: Int = 0,
                     destination: String = "4930", track: Bool = false, fraud: [FraudThreshold] = []) -> CallAdmission {
        CallAdmission(uniqueID: id, coreUUID: "core-1", accountID: account, maxChannels: channels, accountCPS: cps,
                      ipSettingID: ip, ipSettingCPS: ipCPS, destination: destination, trackChannels: track, fraudThresholds: fraud)
    }

    /// One step: a call admitted at a time (µs after t0), or calls released; the verdict expected.
    enum Step {
        case admit(CallAdmission, at: Int64, AdmissionVerdict)
        case release([String], expect: Int)
    }

    static let tables: [(String, [Step])] = [
        ("max_channels 2: the third waits for a hangup; a second lookup of a call is held", [
            .admit(call("a", channels: 2), at: 0, .admitted(inUse: 1)),
            .admit(call("a", channels: 2), at: 1, .alreadyHeld),
            .admit(call("b", channels: 2), at: 2, .admitted(inUse: 2)),
            .admit(call("c", channels: 2), at: 3, .channelLimit(inUse: 2)),
            .release(["a", "zz"], expect: 1),
            .admit(call("c", channels: 2), at: 4, .admitted(inUse: 2)),
        ]),
        ("accounts count apart", [
            .admit(call("a", account: 1, channels: 1), at: 0, .admitted(inUse: 1)),
            .admit(call("b", account: 2, channels: 1), at: 0, .admitted(inUse: 1)),
            .admit(call("c", account: 1, channels: 1), at: 0, .channelLimit(inUse: 1)),
        ]),
        ("an untracked account without max_channels takes no slot", [
            .admit(call("a", cps: 5), at: 0, .admitted(inUse: 0)),
            .admit(call("a", cps: 5), at: 1, .admitted(inUse: 0)),
        ]),
        ("account max_cps 2: exact sliding window; a refused call spends nothing", [
            .admit(call("a", cps: 2), at: 0, .admitted(inUse: 0)),
            .admit(call("b", cps: 2), at: 500_000, .admitted(inUse: 0)),
            .admit(call("c", cps: 2), at: 999_999, .cpsLimit(ipSetting: false)),
            .admit(call("d", cps: 2), at: s, .admitted(inUse: 0)),
            .admit(call("e", cps: 2), at: s + 1, .cpsLimit(ipSetting: false)),
            .admit(call("f", cps: 2), at: s + 499_999, .cpsLimit(ipSetting: false)),
            // b (at 0.5 s) is out of the window from 1.5 s on: "in the last second" is (t - 1 s, t].
            .admit(call("g", cps: 2), at: s + 500_000, .admitted(inUse: 0)),
        ]),
        ("IP setting max_cps 1 across accounts, after the account's own", [
            .admit(call("a", account: 1, ip: 7, ipCPS: 1), at: 0, .admitted(inUse: 0)),
            .admit(call("b", account: 2, ip: 7, ipCPS: 1), at: 10, .cpsLimit(ipSetting: true)),
            .admit(call("c", account: 2, cps: 1, ip: 8, ipCPS: 1), at: 20, .admitted(inUse: 0)),
            .admit(call("d", account: 2, cps: 1, ip: 9, ipCPS: 1), at: 30, .cpsLimit(ipSetting: false)),
        ]),
        ("a CPS refusal takes no slot; a channel refusal spends no CPS", [
            .admit(call("a", channels: 1, cps: 1), at: 0, .admitted(inUse: 1)),
            .admit(call("b", channels: 1, cps: 1), at: 10, .cpsLimit(ipSetting: false)),
            .admit(call("c", channels: 1, cps: 5), at: s + 20, .channelLimit(inUse: 1)),
            .release(["a"], expect: 1),
            .admit(call("d", channels: 1, cps: 1), at: s + 30, .admitted(inUse: 1)),
        ]),
    ]

    @Test(arguments: tables)
    func verdicts(_ name: String, _ steps: [Step]) {
        var ledger = AdmissionLedger()
        for (i, step) in steps.enumerated() {
            switch step {
            case let .admit(c, at, verdict):
                #expect(ledger.admit(c, now: Self.t0 + at).verdict == verdict, "\(name), step \(i)")
            case let .release(ids, n):
                #expect(ledger.release(ids) == n, "\(name), step \(i)")
            }
        }
    }

    /// The slots live in a slab, chained per account: random admissions and releases (entries freed
    /// and reused, accounts emptied and refilled, a replacement from the copy midway) against a
    /// plain model. Every account's count, every concurrent-calls measurement and the slots agree.
    @Test func slotsAgreeWithAModel() {
        let concurrent = FraudThreshold(id: 9, prefix: "49", metric: .concurrentCalls, warning: 1000, critical: nil)
        var ledger = AdmissionLedger()
        var model: [String: (account: Int64, destination: String)] = [:]
        var state: UInt64 = 0x2545_F491_4F6C_DD1D
        func next(_ n: Int) -> Int {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            return Int(state % UInt64(n))
        }
        for step in 0..<4000 {
            let id = "call-\(next(300))"
            if next(3) == 0 {
                #expect(ledger.release([id]) == (model.removeValue(forKey: id) == nil ? 0 : 1), "step \(step)")
            } else {
                let account = Int64(next(7))
                let destination = next(2) == 0 ? "4930\(next(10))" : "3312\(next(10))"
                let answer = ledger.admit(Self.call(id, account: account, channels: 40, destination: destination, track: true,
                                                    fraud: destination.hasPrefix("49") ? [concurrent] : []), now: Self.t0 + Int64(step))
                if model[id] != nil {
                    #expect(answer.verdict == .alreadyHeld, "step \(step)")
                    continue
                }
                let up = model.values.filter { $0.account == account }.count
                if up >= 40 {
                    #expect(answer.verdict == .channelLimit(inUse: up), "step \(step)")
                } else {
                    model[id] = (account, destination)
                    #expect(answer.verdict == .admitted(inUse: up + 1), "step \(step)")
                }
                if destination.hasPrefix("49") {
                    let expected = model.values.filter { $0.account == account && $0.destination.hasPrefix("49") }.count
                    #expect(answer.measurements.map(\.value) == [expected], "step \(step)")
                }
            }
            if step % 97 == 0 {
                for account in Int64(0)..<7 {
                    #expect(ledger.inUse(account: account) == model.values.filter { $0.account == account }.count, "step \(step)")
                }
                #expect(Set(ledger.slots.keys) == Set(model.keys))
                #expect(ledger.slotCount == model.count)
            }
        }
    }

    @Test func fraudCountsByWindow() {
        let perMinute = FraudThreshold(id: 3, metric: .callsPerMinute, warning: 1, critical: nil)
        let perDay = FraudThreshold(id: 1, metric: .attemptsPerDay, warning: 5, critical: nil)
        let concurrent49 = FraudThreshold(id: 2, prefix: "49", metric: .concurrentCalls, warning: 1, critical: 2)
        let fraud = [perMinute, perDay, concurrent49]
        var ledger = AdmissionLedger()
        func admit(_ id: String, _ dest: String, at: Int64) -> AdmissionLedger.Answer {
            ledger.admit(Self.call(id, channels: 2, destination: dest, track: true, fraud: fraud.filter { dest.hasPrefix($0.prefix) }), now: Self.t0 + at)
        }
        // In threshold id order; the concurrent count includes the call; windows in epoch ms.
        let minute = Self.t0 / 1000, second = minute
        #expect(admit("a", "4930", at: 0).measurements == [
            FraudMeasurement(thresholdID: 1, value: 1, windowMilliseconds: (Self.t0 - Self.t0 % (86_400 * Self.s)) / 1000),
            FraudMeasurement(thresholdID: 2, value: 1, windowMilliseconds: second),
            FraudMeasurement(thresholdID: 3, value: 1, windowMilliseconds: minute),
        ])
        // Not to 49...: the concurrent threshold does not apply.
        #expect(admit("b", "3312", at: 1).measurements.map(\.value) == [2, 2])
        // Refused (max_channels 2): an attempt, not a call of the minute; concurrent counts the calls up.
        let refused = admit("c", "4931", at: 2)
        #expect(refused.verdict == .channelLimit(inUse: 2))
        #expect(refused.measurements.map(\.thresholdID) == [1, 2])
        #expect(refused.measurements.map(\.value) == [3, 1])
        // A new minute starts its count again.
        ledger.release(["b"])
        #expect(admit("d", "4932", at: 60 * Self.s).measurements.map(\.value) == [4, 2, 1])
        #expect(ledger.takeChanges(now: Self.t0).counts == [
            AdmissionLedger.CountKey(thresholdID: 1, windowStart: Self.t0 - Self.t0 % (86_400 * Self.s)): 4,
            AdmissionLedger.CountKey(thresholdID: 3, windowStart: Self.t0): 2,
            AdmissionLedger.CountKey(thresholdID: 3, windowStart: Self.t0 + 60 * Self.s): 1,
        ])
    }

    @Test func changesForTheCopy() {
        var ledger = AdmissionLedger(slots: ["old": .init(accountID: 1, coreUUID: "c", destination: "1", reservedAt: 5)])
        _ = ledger.admit(Self.call("a", channels: 9), now: Self.t0)
        _ = ledger.admit(Self.call("b", channels: 9), now: Self.t0)
        ledger.release(["b", "old"])
        var changes = ledger.takeChanges(now: Self.t0)
        // b came and went between two writes: the copy never hears of it.
        #expect(Set(changes.reservedSlots.keys) == ["a"])
        #expect(changes.released == ["old"], "old is a row of call_slots")
        #expect(changes.rows.isEmpty, "a is not up for rowAfter yet")
        #expect(!ledger.hasChanges)
        // A write that failed comes back under what changed since.
        ledger.release(["a"])
        ledger.restore(changes)
        changes = ledger.takeChanges(now: Self.t0)
        #expect(changes.reservedSlots.isEmpty, "a was released since: not written as reserved")
        #expect(changes.released == ["old"])
        #expect(changes.forgotten == ["a"], "a was only ever in the journal: released there")
    }

    /// Migration 0017: a slot is written to the journal at once and becomes a row of
    /// `call_slots` only once its call has been up `rowAfter`; its release goes where it is.
    @Test func slotsBecomeRowsOnlyOnceTheirCallsLast() {
        var ledger = AdmissionLedger()
        let after = AdmissionLedger.rowAfter
        _ = ledger.admit(Self.call("a", channels: 9), now: Self.t0)
        _ = ledger.admit(Self.call("b", channels: 9), now: Self.t0 + 2 * Self.s)
        var changes = ledger.takeChanges(now: Self.t0 + 3 * Self.s)
        #expect(Set(changes.reservedSlots.keys) == ["a", "b"])
        #expect(changes.rows.isEmpty)
        changes = ledger.takeChanges(now: Self.t0 + after)
        #expect(Set(changes.rows.keys) == ["a"])
        // That write failed; b ends meanwhile (a journal release); a's row is made at the next.
        ledger.restore(changes)
        ledger.release(["b"])
        changes = ledger.takeChanges(now: Self.t0 + after + 1)
        #expect(Set(changes.rows.keys) == ["a"])
        #expect(changes.forgotten == ["b"] && changes.released.isEmpty)
        // A row's release deletes it; a failed write whose row was released since becomes a
        // journal release (the row was never made).
        ledger.release(["a"])
        #expect(ledger.takeChanges(now: Self.t0 + after + 2).released == ["a"])
        _ = ledger.admit(Self.call("c", channels: 9), now: Self.t0 + 10 * Self.s)
        _ = ledger.takeChanges(now: Self.t0 + 10 * Self.s)
        changes = ledger.takeChanges(now: Self.t0 + 10 * Self.s + after)
        #expect(Set(changes.rows.keys) == ["c"])
        ledger.release(["c"])
        ledger.restore(changes)
        changes = ledger.takeChanges(now: Self.t0 + 10 * Self.s + after + 1)
        #expect(changes.forgotten == ["c"] && changes.released.isEmpty && changes.rows.isEmpty)
        // The slots reserved by a time become rows; ended calls are skipped; a slot reserved after
        // it waits for its time.
        var parts = AdmissionLedger()
        for i in 0..<600 { _ = parts.admit(Self.call("p\(i)", channels: 1_000), now: Self.t0 + Int64(i)) }
        _ = parts.admit(Self.call("late", channels: 9), now: Self.t0 + 10 * Self.s)
        parts.release(["p0", "p300"])
        _ = parts.takeChanges(now: Self.t0 + 5 * Self.s)
        let taken = parts.takeRows(reservedBy: Self.t0 + 5 * Self.s, now: Self.t0 + 5 * Self.s)
        #expect(taken.count == 256 + 255 + 87 && taken["p0"] == nil && taken["p300"] == nil && taken["late"] == nil,
                "p0 was due and ended before; p300 ended")
        #expect(parts.takeChanges(now: Self.t0 + 6 * Self.s).rows.isEmpty, "late is young; the others are rows")
        // Before a reconciliation every slot becomes a row.
        _ = ledger.admit(Self.call("d", channels: 9), now: Self.t0 + 20 * Self.s)
        changes = ledger.takeChanges(now: Self.t0 + 20 * Self.s, allRows: true)
        #expect(Set(changes.rows.keys) == ["d"] && Set(changes.reservedSlots.keys) == ["d"])
        // A slot stamped ahead of now (the clock stepped back since) holds no later slot back.
        _ = ledger.admit(Self.call("e", channels: 9), now: Self.t0 + 100 * Self.s)
        _ = ledger.admit(Self.call("f", channels: 9), now: Self.t0 + 21 * Self.s)
        changes = ledger.takeChanges(now: Self.t0 + 21 * Self.s + after)
        #expect(Set(changes.rows.keys) == ["e", "f"])
    }

    /// A reconciliation with a switch judged in the ledger (migration 0018): the rules of
    /// `switchauth_reconcile_slots`, one row per case.
    @Test(arguments: [
        // (core, reserved s, live, expected gone)
        ("run-2", 10, false, true),    // the switch's run, reserved before, no longer live
        ("run-2", 10, true, false),    // live
        ("run-2", 30, false, false),   // reserved after `before`: the next round judges it
        ("run-1", 30, true, true),     // a run the switch replaced: gone whatever its age
        ("run-x", 10, false, false),   // another switch's run
        ("run-unseen", 50, false, false),  // a run no listener knows, younger than a minute
        ("run-unseen", 5, false, true),    // ... older
        ("", 5, false, true),          // no core at all, older than a minute
    ] as [(String, Int64, Bool, Bool)])
    func reconciliationRules(core: String, reserved: Int64, live: Bool, gone: Bool) {
        let judge = AdmissionLedger.Reconciliation(core: "run-2", before: Self.t0 + 20 * Self.s, live: live ? ["call"] : [],
                                                   stale: ["run-1"], known: ["run-2", "run-x"], unknownBefore: Self.t0 + 10 * Self.s)
        let slot = AdmissionLedger.Slot(accountID: 1, coreUUID: core, destination: "4930", reservedAt: Self.t0 + reserved * Self.s)
        #expect(judge.isGone("call", slot) == gone)
    }

    /// Walked in parts while calls come and go between them (the service's way, a part per hold
    /// of the lock): what is released is what the rules find gone, nothing the walk passed twice
    /// or missed, and vacant entries are never released.
    @Test func aReconciliationWalkedInParts() {
        var ledger = AdmissionLedger()
        func admit(_ id: String, _ core: String, at seconds: Int64, account: Int64 = 1) {
            var call = Self.call(id, account: account, channels: 99)
            call.coreUUID = core
            _ = ledger.admit(call, now: Self.t0 + seconds * Self.s)
        }
        for i in 0..<40 { admit("old-\(i)", "run-2", at: 1, account: Int64(i % 3)) }
        for i in 0..<10 { admit("stale-\(i)", "run-1", at: 1) }
        ledger.release(["old-3", "old-4"])   // vacant entries in the slab
        let judge = AdmissionLedger.Reconciliation(core: "run-2", before: Self.t0 + 20 * Self.s, live: ["old-0", "old-1", "old-2"],
                                                   stale: ["run-1"], known: ["run-2"], unknownBefore: Self.t0)
        var (released, parts, from) = (0, 0, 0)
        while from < ledger.slabCount {
            parts += 1
            let end = min(from + 7, ledger.slabCount)
            released += ledger.release(keys: ledger.gone(in: from..<end, judge))
            // Between parts: a young call of the run, and a hangup of one not yet judged.
            admit("young-\(from)", "run-2", at: 30)
            ledger.release(["old-39"])
            from = end
        }
        #expect(released == 35 + 10 - 1, "old-3 to old-38 and every stale slot; old-39 hung up meanwhile")
        #expect(Set(ledger.slots.keys.filter { !$0.hasPrefix("young") }) == ["old-0", "old-1", "old-2"])
        #expect(ledger.slots.keys.filter { $0.hasPrefix("young") }.count == parts && parts > 5)
        #expect(ledger.inUse(account: 0) == 1 && ledger.inUse(account: 2) == 1 && ledger.inUse(account: 1) == 1 + parts, "old-0, old-2; old-1 and the young ones")
    }

    @Test func cpsUnknownAfterAnUncleanTakeover() {
        var ledger = AdmissionLedger(cpsUnknownUntil: Self.t0 + Self.s)
        #expect(ledger.admit(Self.call("a", cps: 5), now: Self.t0).verdict == .cpsLimit(ipSetting: false))
        #expect(ledger.admit(Self.call("b", ip: 3, ipCPS: 5), now: Self.t0).verdict == .cpsLimit(ipSetting: true))
        #expect(ledger.admit(Self.call("c", channels: 1), now: Self.t0).verdict == .admitted(inUse: 1), "no CPS limit: not concerned")
        #expect(ledger.admit(Self.call("d", cps: 5), now: Self.t0 + Self.s).verdict == .admitted(inUse: 0))
    }

    @Test func windowsLoadedAndGivenBack() {
        var ledger = AdmissionLedger(windows: [.account(1): [Self.t0 - 900_000, Self.t0 - 1_500_000]])
        #expect(ledger.admit(Self.call("a", cps: 2), now: Self.t0).verdict == .admitted(inUse: 0))
        #expect(ledger.admit(Self.call("b", cps: 2), now: Self.t0).verdict == .cpsLimit(ipSetting: false))
        let live = ledger.liveWindows(now: Self.t0 + 200_000)
        #expect(live.count == 1)
        #expect(live.first?.subject == .account(1))
        #expect(Array(live.first?.times ?? []) == [Self.t0])
        #expect(AdmissionLedger.Subject(text: "i:42") == .ipSetting(42))
        #expect(AdmissionLedger.Subject(text: "a:x") == nil)
        #expect(AdmissionLedger.Subject.account(7).text == "a:7")
    }

    /// A Unique-ID is one key, equal to another exactly when the texts are (as `call_slots`
    /// compares them): the canonical form as two words, anything else as text.
    @Test(arguments: [
        ("0bd5a1a8-3e2f-4c55-9d0e-a4f1c2b3d4e5", true),
        ("00000000-0000-0000-0000-000000000000", true),
        ("ffffffff-ffff-ffff-ffff-ffffffffffff", true),
        ("0BD5A1A8-3E2F-4C55-9D0E-A4F1C2B3D4E5", false), // upper case: another text, another key
        ("0bd5a1a83e2f4c559d0ea4f1c2b3d4e5", false),
        ("0bd5a1a8-3e2f-4c55-9d0e-a4f1c2b3d4e", false),
        ("0bd5a1a8-3e2f-4c55-9d0e-a4f1c2b3d4e5f", false),
        ("0bd5a1a8-3e2f-4c55-9d0ea-4f1c2b3d4e5", false),
        ("0bd5a1a8-3e2f-4c55-9d0e-a4f1c2b3d4eg", false),
        ("my-origination-uuid", false),
        ("", false),
    ])
    func callKeys(id: String, canonical: Bool) {
        let key = CallKey(id)
        if case .uuid = key { #expect(canonical) } else { #expect(!canonical) }
        #expect(key.text == id)
        #expect(CallKey(key.text) == key)
        #expect(key != CallKey(id.uppercased()) || id.uppercased() == id)
        #expect(Set([key, CallKey(id)]).count == 1)
    }

    @Test func canonicalAndOtherIDsShareTheLedger() {
        var ledger = AdmissionLedger()
        let lower = "0bd5a1a8-3e2f-4c55-9d0e-a4f1c2b3d4e5"
        #expect(ledger.admit(Self.call(lower, channels: 3), now: Self.t0).verdict == .admitted(inUse: 1))
        #expect(ledger.admit(Self.call(lower.uppercased(), channels: 3), now: Self.t0).verdict == .admitted(inUse: 2), "another text, another call")
        #expect(ledger.admit(Self.call("trunk-7-call", channels: 3), now: Self.t0).verdict == .admitted(inUse: 3))
        #expect(ledger.admit(Self.call(lower, channels: 3), now: Self.t0).verdict == .alreadyHeld)
        #expect(Set(ledger.slots.keys) == [lower, lower.uppercased(), "trunk-7-call"])
        #expect(Set(ledger.takeChanges(now: Self.t0).reservedSlots.keys.map(\.text)) == [lower, lower.uppercased(), "trunk-7-call"])
        #expect(ledger.release([lower.uppercased(), "trunk-7-call", "0bd5a1a8-3e2f-4c55-9d0e-a4f1c2b3d4e6"]) == 2)
        #expect(ledger.takeChanges(now: Self.t0).forgotten == [CallKey(lower.uppercased()), "trunk-7-call"])
        #expect(Set(ledger.slots.keys) == [lower])
    }
}
