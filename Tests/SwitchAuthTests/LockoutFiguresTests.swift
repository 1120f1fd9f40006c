import Foundation
import TestSupport
import Locking
import Postgres
import Store
import SwitchAuthService
import Testing

/// The figures of issue 13 (README, "Lockouts"): how many wrong digests are checked before the lock
/// at 1, 100 and 1,000 attempts per second, from one source and spread over many. Slow (about 25 s),
/// so it runs only with SWITCHAUTH_FIGURES=1:
///   SWITCHAUTH_FIGURES=1 swift test --filter LockoutFigures
@Suite("lockout figures", .enabled(if: ProcessInfo.processInfo.environment["SWITCHAUTH_FIGURES"] == "1"))
struct LockoutFiguresTests {
    /// Sends `attempts` wrong digests at `rate` per second (open loop: each at its scheduled time,
    /// from `threads` senders), the i-th from `source(i)`.
    static func flood(port: UInt16, rate: Int, attempts: Int, threads: Int, user: @escaping @Sendable (Int) -> String = { _ in "1001" },
                      source: @escaping @Sendable (Int) -> String) {
        let start = Date().addingTimeInterval(0.05)
        onThreads(threads) { t in
            var i = t
            while i < attempts {
                let wait = start.addingTimeInterval(Double(i) / Double(rate)).timeIntervalSinceNow
                if wait > 0 { Thread.sleep(forTimeInterval: wait) }
                _ = try? post(port, LockoutTests.register(password: "guess-\(i)", user: user(i), ip: source(i)))
                i += threads
            }
        }
    }

    /// Runs `body(0..<n)` on n threads of their own (concurrentPerform would run only as many at
    /// once as there are cores, two here, and the open loop would fall behind its schedule).
    static func onThreads(_ n: Int, _ body: @escaping @Sendable (Int) -> Void) {
        let group = DispatchGroup()
        for t in 0..<n {
            group.enter()
            Thread { body(t); group.leave() }.start()
        }
        group.wait()
    }

    @Test(arguments: [(1, 15, 1), (100, 300, 4), (1_000, 2_000, 16)])
    func oneSource(rate: Int, attempts: Int, threads: Int) throws {
        let (s, db) = try LockoutAttackTests.start()
        defer { s.stop() }
        let started = Date()
        Self.flood(port: s.port, rate: rate, attempts: attempts, threads: threads) { _ in "198.51.100.66" }
        let elapsed = Date().timeIntervalSince(started)
        Thread.sleep(forTimeInterval: 0.3)
        let checked = try LockoutAttackTests.failures(db, "ip", "198.51.100.66")
        let rightRefused = try !LockoutAttackTests.granted(s.port, ip: "198.51.100.66")
        print("FIGURE one source, \(rate)/s (\(attempts) wrong digests in \(String(format: "%.1f", elapsed)) s, \(threads) senders): \(checked) checked before the lock; right password afterwards refused: \(rightRefused)")
        #expect(checked <= 11 && rightRefused)
    }

    @Test(arguments: [(100, 300, 4), (1_000, 2_000, 16)])
    func spreadOverAddresses(rate: Int, attempts: Int, threads: Int) throws {
        let (s, db) = try LockoutAttackTests.start()
        defer { s.stop() }
        #expect(try LockoutAttackTests.granted(s.port, ip: "203.0.113.5"), "the victim registers")
        let started = Date()
        Self.flood(port: s.port, rate: rate, attempts: attempts, threads: threads) { i in "10.9.\(i / 250).\(i % 250 + 1)" }
        let elapsed = Date().timeIntervalSince(started)
        Thread.sleep(forTimeInterval: 0.3)
        let checked = try LockoutAttackTests.failures(db, "user", "1001@127.0.0.1")
        var victim = 0
        for _ in 0..<20 where try LockoutAttackTests.granted(s.port, ip: "203.0.113.5") { victim += 1 }
        let freshRefused = try !LockoutAttackTests.granted(s.port, ip: "203.0.113.200")
        print("FIGURE \(attempts) addresses, \(rate)/s against one user (\(String(format: "%.1f", elapsed)) s): \(checked) checked before the user lock; victim from its source \(victim)/20 granted; fresh source refused: \(freshRefused)")
        #expect(victim == 20)
    }

    /// Whether counting on the request path slows others: the victim's REGISTER latency (open loop,
    /// 200/s, from its trusted source) alone, then while 1,000 wrong digests/s for invented users
    /// arrive from rotating addresses (each one counted: a lookup and one upsert).
    @Test func othersLatencyUnderAFlood() throws {
        let (s, _) = try LockoutAttackTests.start()
        defer { s.stop() }
        let port = s.port
        #expect(try LockoutAttackTests.granted(port, ip: "203.0.113.5"))
        func measure() -> (p50: Double, p99: Double, failed: Int) {
            let rate = 200.0, n = 600
            let start = Date().addingTimeInterval(0.05)
            let results = Locked<[Double]>([])
            let failed = Locked(0)
            Self.onThreads(4) { t in
                var i = t
                while i < n {
                    let due = start.addingTimeInterval(Double(i) / rate)
                    let wait = due.timeIntervalSinceNow
                    if wait > 0 { Thread.sleep(forTimeInterval: wait) }
                    let ok = (try? LockoutAttackTests.granted(port, ip: "203.0.113.5")) ?? false
                    let latency = Date().timeIntervalSince(due)
                    results.withLock { $0.append(latency) }
                    if !ok { failed.withLock { $0 += 1 } }
                    i += 4
                }
            }
            let sorted = results.withLock { $0 }.sorted()
            return (sorted[sorted.count / 2] * 1000, sorted[Int(Double(sorted.count) * 0.99)] * 1000, failed.withLock { $0 })
        }
        let quiet = measure()
        let flooding = Thread {
            Self.flood(port: port, rate: 1_000, attempts: 4_000, threads: 8, user: { "ghost\($0)" }) { i in "10.7.\(i / 250).\(i % 250 + 1)" }
        }
        flooding.start()
        Thread.sleep(forTimeInterval: 0.3)
        let attacked = measure()
        print(String(format: "FIGURE victim REGISTER 200/s: alone p50 %.2f ms p99 %.2f ms (%d refused); beside 1,000 counted wrong digests/s p50 %.2f ms p99 %.2f ms (%d refused)",
                     quiet.p50, quiet.p99, quiet.failed, attacked.p50, attacked.p99, attacked.failed))
        #expect(attacked.failed == 0)
        _ = waitUntil(seconds: 10) { flooding.isFinished }
    }
}
