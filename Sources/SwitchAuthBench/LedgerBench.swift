import ArgumentParser
import Decisions
import Foundation
import SystemCalls

/// The admission ledger alone (no sockets, no database), at the sizes an operator's switches hold:
/// what a limited call costs it (admit and release), and how long a reconciliation with a switch
/// holds the lock the event loops admit under (the ledger brought to what the database has).
struct LedgerBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ledger",
        abstract: "The admission ledger's costs: a call's admit and release, and a reconciliation's time under the lock.")

    @Option(help: "Calls up (comma-separated sizes).") var slots = "10000,30000,100000"
    @Option(help: "Repetitions per size (the median is printed).") var rounds = 5

    func run() throws {
        for n in slots.split(separator: ",").compactMap({ Int($0) }) {
            var admitRelease: [Double] = [], replace: [Double] = [], rowsAtOnce: [Double] = [], rowsInParts: [Double] = []
            for _ in 0..<rounds {
                var ledger = AdmissionLedger()
                var calls = 0
                func admit(_ id: String, into ledger: inout AdmissionLedger) {
                    _ = ledger.admit(CallAdmission(uniqueID: id, coreUUID: "c939fdc8-75e6-4f02-92d7-a9442cbff922", accountID: Int64(calls % 100_000),
                                                   maxChannels: 1_000, accountCPS: 0, ipSettingID: nil, ipSettingCPS: 0, destination: "4930"),
                                     now: 1_800_000_000_000_000 + Int64(calls))
                    calls += 1
                }
                let ids = (0..<n).map { _ in UUID().uuidString.lowercased() }
                for id in ids { admit(id, into: &ledger) }
                let extra = (0..<1_000).map { _ in UUID().uuidString.lowercased() }
                let t1 = MonotonicClock.now()
                for id in extra { admit(id, into: &ledger) }
                ledger.release(extra)
                admitRelease.append(Double(MonotonicClock.now() - t1) / 1e3 / Double(extra.count))
                // Before a reconciliation every slot becomes a row (migration 0017): at once, and as
                // the service takes them, 256 at a time (each under one hold of the lock).
                let now = 1_800_000_000_000_000 + Int64(calls)
                _ = ledger.takeChanges(now: now)
                var longestPart = 0.0
                while true {
                    let t0 = MonotonicClock.now()
                    let part = ledger.takeRows(reservedBy: now, now: now, max: 256)
                    longestPart = max(longestPart, Double(MonotonicClock.now() - t0) / 1e6)
                    if part.done { break }
                }
                rowsInParts.append(longestPart)
                // A reconciliation that released 1 % of the calls: what the database then has.
                var stored = ledger.slots
                for id in ids.prefix(n / 100) { stored[id] = nil }
                // As the service does it: the keys under the lock, the difference outside, then
                // applied 256 slots at a time (the longest hold of the lock is what a lookup waits).
                var t2 = MonotonicClock.now()
                let keys = ledger.slotKeys
                var longest = Double(MonotonicClock.now() - t2) / 1e6
                let diff = AdmissionLedger.SlotsDiff(ledger: keys, stored: stored)
                for part in diff.parts() {
                    t2 = MonotonicClock.now()
                    ledger.apply(diff, removing: part.removing, adding: part.adding)
                    longest = max(longest, Double(MonotonicClock.now() - t2) / 1e6)
                }
                replace.append(longest)
                guard ledger.slotCount == stored.count else { throw BenchError("ledger \(ledger.slotCount) slots, database \(stored.count)") }
                // The same calls in a ledger of their own, made rows all at once (no copy shared
                // with the first: its first write would copy the whole ledger inside the timing).
                var other = AdmissionLedger()
                calls = 0
                for id in ids { admit(id, into: &other) }
                _ = other.takeChanges(now: now)
                let t3 = MonotonicClock.now()
                _ = other.takeChanges(now: now, allRows: true)
                rowsAtOnce.append(Double(MonotonicClock.now() - t3) / 1e6)
            }
            func median(_ v: [Double]) -> Double { v.sorted()[v.count / 2] }
            print(String(format: "%7d calls up: admit + release %.2f µs a call; a reconciliation holds the lock at most %.3f ms to match the ledger, %.3f ms to make its slots rows (%.2f ms all at once)",
                         n, median(admitRelease), median(replace), median(rowsInParts), median(rowsAtOnce)))
        }
    }
}
