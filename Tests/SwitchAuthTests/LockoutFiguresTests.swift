import Foundation
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
    static func flood(port: UInt16, rate: Int, attempts: Int, threads: Int, source: @escaping @Sendable (Int) -> String) {
        let start = Date().addingTimeInterval(0.05)
        DispatchQueue.concurrentPerform(iterations: threads) { t in
            var i = t
            while i < attempts {
                let wait = start.addingTimeInterval(Double(i) / Double(rate)).timeIntervalSinceNow
                if wait > 0 { Thread.sleep(forTimeInterval: wait) }
                _ = try? post(port, LockoutTests.register(password: "guess-\(i)", ip: source(i)))
                i += threads
            }
        }
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
}
