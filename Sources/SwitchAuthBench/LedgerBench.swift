import ArgumentParser
import Decisions
import Foundation
import SystemCalls

/// The admission ledger alone (no sockets, no database), at the sizes an operator's switches hold:
/// what a limited call costs it (admit and release), and how long a reconciliation with a switch
/// (judged in the ledger) holds the lock the event loops admit under.
struct LedgerBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ledger",
        abstract: "The admission ledger's costs: a call's admit and release, and a reconciliation's time under the lock.")

    @Option(help: "Calls up (comma-separated sizes).") var slots = "10000,30000,100000"
    @Option(help: "Repetitions per size (the median is printed).") var rounds = 5

    func run() throws {
        for n in slots.split(separator: ",").compactMap({ Int($0) }) {
            var admitRelease: [Double] = [], walk: [Double] = [], whole: [Double] = [], rowsAtOnce: [Double] = []
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
                // A reconciliation with the switch judged in the ledger (migration 0018): 1 % of
                // the calls gone, walked as the service walks it, a part of the slab per hold of the
                // lock (the longest hold is what a lookup waits).
                let now = 1_800_000_000_000_000 + Int64(calls)
                let judge = AdmissionLedger.Reconciliation(
                    core: "c939fdc8-75e6-4f02-92d7-a9442cbff922", before: now, live: Set(ids.dropFirst(n / 100).map { CallKey($0) }),
                    stale: [], known: ["c939fdc8-75e6-4f02-92d7-a9442cbff922"], unknownBefore: now - 60_000_000)
                var (longest, released, from) = (0.0, 0, 0)
                let t2 = MonotonicClock.now()
                while from < ledger.slabCount {
                    let t = MonotonicClock.now()
                    let end = min(from + AdmissionLedger.reconcilePart, ledger.slabCount)
                    released += ledger.release(keys: ledger.gone(in: from..<end, judge))
                    longest = max(longest, Double(MonotonicClock.now() - t) / 1e6)
                    from = end
                }
                whole.append(Double(MonotonicClock.now() - t2) / 1e6)
                walk.append(longest)
                guard released == n / 100 else { throw BenchError("released \(released) slots, not \(n / 100)") }
                // What a reconciliation did before 0018, for the record: every slot made a row first,
                // all at once under the lock (the service took them 256 at a time).
                var other = AdmissionLedger()
                calls = 0
                for id in ids { admit(id, into: &other) }
                _ = other.takeChanges(now: now)
                let t3 = MonotonicClock.now()
                _ = other.takeChanges(now: now, allRows: true)
                rowsAtOnce.append(Double(MonotonicClock.now() - t3) / 1e6)
            }
            func median(_ v: [Double]) -> Double { v.sorted()[v.count / 2] }
            print(String(format: "%7d calls up: admit + release %.2f µs a call; a reconciliation in the ledger %.2f ms, holding the lock at most %.3f ms (before 0018: %.2f ms to make every slot a row, then PostgreSQL's insert, delete and read of them)",
                         n, median(admitRelease), median(whole), median(walk), median(rowsAtOnce)))
        }
    }
}
