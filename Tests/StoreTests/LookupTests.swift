import DatabaseTestSupport
import Decisions
import Foundation
import Postgres
import Store
import Testing

@Suite("failure counters and lockout lookups")
struct FailureBatchTests {
    @Test func batchCountsLocksAndReportsCrossings() throws {
        let db = try Connection(try TestDatabase.shared.freshDatabase())
        let policy = LockoutPolicy(threshold: 3, sourceThreshold: 5, userThreshold: 7, windowSeconds: 60, lockSeconds: 60)
        let ip = AuthFailures.Count(scope: .source, subject: "198.51.100.9")
        let odd = AuthFailures.Count(scope: .user, subject: #"we"ird\user@x"#)
        #expect(try AuthFailures.record(db, batch: [ip: 3, odd: 1], policy: policy).allSatisfy { !$0.crossed })
        #expect(try AuthFailures.record(db, batch: [ip: 2], policy: policy).map(\.crossed) == [true])
        #expect(try AuthFailures.record(db, batch: [ip: 4], policy: policy).allSatisfy { !$0.crossed }, "already locked: no new crossing")
        let locked = try AuthFailures.locked(db)
        #expect(locked.map(\.subject) == ["198.51.100.9"])
        #expect(locked.first?.failures == 9)
        #expect(try db.execute("SELECT failures FROM auth_failures WHERE subject = $1", [odd.subject]).decode(0, 0, as: Int.self) == 1)
        // Each scope has its own budget: a pair locks at 3, a user at 7.
        let counted = try AuthFailures.record(db, batch: [AuthFailures.Count(scope: .pair, subject: "a|u@x"): 3,
                                                          AuthFailures.Count(scope: .user, subject: "u@x"): 6], policy: policy)
        #expect(counted.map { "\($0.count.scope.label) \($0.failures) \($0.locked)" } == ["source_user 3 true", "user 6 false"])
    }

    /// One failure per scope per attempt, in one statement; a pair only with both source and user.
    @Test func countersOfOneAttempt() {
        #expect(AuthFailures.counters(source: "198.51.100.9", user: "1001@x").map(\.subject) == ["198.51.100.9", "1001@x", "198.51.100.9|1001@x"])
        #expect(AuthFailures.counters(source: "198.51.100.9", user: nil).map(\.scope) == [.source])
        #expect(AuthFailures.counters(source: nil, user: "1001@x").map(\.scope) == [.user])
    }

    static func seeded(domain: String = "127.0.0.1") throws -> Connection {
        let db = try Connection(try TestDatabase.shared.freshDatabase())
        let a = Admin(db: db)
        try a.addDomain(domain)
        try a.addAccount(Admin.AccountInput(number: "1000042", name: "c"))
        try a.addDevice(Admin.DeviceInput(account: "1000042", domain: domain, username: "1001", password: "password1"))
        return db
    }

    /// Mutation `Lookups.swift:85` (issue 13 item 10): a source one failure below its budget is not locked.
    @Test func oneBelowTheBudgetIsNotALock() throws {
        let db = try Self.seeded()
        let policy = LockoutPolicy(threshold: 3, sourceThreshold: 4, userThreshold: 5, windowSeconds: 60, lockSeconds: 60)
        for _ in 0..<3 { try AuthFailures.countFailure(db, source: "198.51.100.9", user: nil, policy: policy) }
        let user = LockoutKeys.user("1001", realm: "127.0.0.1")
        for _ in 0..<2 { try AuthFailures.countFailure(db, source: "198.51.100.8", user: user, policy: policy) }
        for _ in 0..<2 { try AuthFailures.countFailure(db, source: "198.51.100.7", user: user, policy: policy) }
        var f = try DirectoryLookup.run(db, domain: "127.0.0.1", user: "1001", source: "198.51.100.9").lockout
        #expect(f == LockoutFacts(), "3 of 4 source failures, 4 of 5 user failures: nothing locked")
        f = try DirectoryLookup.run(db, domain: "127.0.0.1", user: "1001", source: "198.51.100.8").lockout
        #expect(!f.pairLocked, "2 of 3 for the pair")
        try AuthFailures.countFailure(db, source: "198.51.100.9", user: nil, policy: policy)
        #expect(try DirectoryLookup.run(db, domain: "127.0.0.1", user: "1001", source: "198.51.100.9").lockout.sourceLocked)
        try AuthFailures.countFailure(db, source: "198.51.100.8", user: user, policy: policy)
        f = try DirectoryLookup.run(db, domain: "127.0.0.1", user: "1001", source: "198.51.100.8").lockout
        #expect(f.pairLocked && f.userLocked, "3 for the pair, 5 for the user")
        #expect(!(try DirectoryLookup.run(db, domain: "127.0.0.1", user: "1001", source: "198.51.100.7").lockout.pairLocked))
    }

    /// Mutation `Lookups.swift:246` (item 10): the window is in seconds; failures older than it no longer count.
    @Test func failuresExpireWithTheWindow() throws {
        let db = try Self.seeded()
        let policy = LockoutPolicy(threshold: 5, sourceThreshold: 5, userThreshold: 5, windowSeconds: 1, lockSeconds: 60)
        for _ in 0..<4 { try AuthFailures.countFailure(db, source: "198.51.100.9", user: nil, policy: policy) }
        Thread.sleep(forTimeInterval: 1.3)
        let after = try AuthFailures.countFailure(db, source: "198.51.100.9", user: nil, policy: policy)
        #expect(after.map(\.failures) == [1], "the window passed: counting starts again")
        #expect(!(try DirectoryLookup.run(db, domain: "127.0.0.1", user: "1001", source: "198.51.100.9").lockout.sourceLocked))
    }

    /// Mutation `Lookups.swift:86` (item 10): a domain stored in mixed case, asked for in another
    /// case, finds the user's counter (keys are lower-case realms).
    @Test func mixedCaseDomainSharesTheUserLock() throws {
        let db = try Self.seeded(domain: "VoIP.Example.COM")
        let policy = LockoutPolicy(threshold: 2, sourceThreshold: 2, userThreshold: 2, windowSeconds: 60, lockSeconds: 60)
        let user = LockoutKeys.user("1001", realm: "VoIP.Example.COM")
        #expect(user == "1001@voip.example.com")
        try AuthFailures.countFailure(db, source: "198.51.100.9", user: user, policy: policy)
        try AuthFailures.countFailure(db, source: "198.51.100.8", user: user, policy: policy)
        for asked in ["voip.example.com", "VOIP.EXAMPLE.COM", "VoIP.Example.COM"] {
            let f = try DirectoryLookup.run(db, domain: asked, user: "1001", source: "198.51.100.1")
            #expect(f.domainKnown && f.lockout.userLocked, "\(asked)")
        }
        try AuthFailures.recordSuccess(db, source: "198.51.100.1", user: user)
        #expect(try DirectoryLookup.run(db, domain: "VOIP.example.com", user: "1001", source: "198.51.100.1").lockout.secondsSinceSuccess != nil)
    }

    /// Mutation `Lookups.swift:76` (item 10): a disabled SIP domain resolves neither by name nor by alias.
    @Test func disabledDomainDoesNotResolve() throws {
        let db = try Self.seeded(domain: "voip.example.com")
        try Admin(db: db).addAlias(domain: "voip.example.com", alias: "198.51.100.1")
        #expect(try DirectoryLookup.run(db, domain: "voip.example.com", user: "1001", source: nil).device != nil)
        #expect(try DirectoryLookup.run(db, domain: "198.51.100.1", user: "1001", source: nil).device?.realm == "voip.example.com")
        try db.execute("UPDATE sip_domains SET enabled = false")
        #expect(try !DirectoryLookup.run(db, domain: "voip.example.com", user: "1001", source: nil).domainKnown)
        #expect(try !DirectoryLookup.run(db, domain: "198.51.100.1", user: "1001", source: nil).domainKnown)
    }

    /// Mutation `Lookups.swift:118` (item 10): an IP setting on a CIDR range is found for an address inside it.
    @Test func ipSettingOnARangeIsFound() throws {
        let db = try Connection(try TestDatabase.shared.freshDatabase())
        let a = Admin(db: db)
        try a.addAccount(Admin.AccountInput(number: "1", name: "office"))
        try a.addIP(account: "1", name: "lan", network: "203.0.113.0/24", prefix: "", strip: false)
        try a.addIP(account: "1", name: "v6", network: "2001:db8:1::/48", prefix: "9", strip: false)
        #expect(try IPCandidatesLookup.run(db, source: IPAddress("203.0.113.77")!).map(\.name) == ["lan"])
        #expect(try IPCandidatesLookup.run(db, source: IPAddress("2001:db8:1:2::5")!).map(\.name) == ["v6"])
        #expect(try IPCandidatesLookup.run(db, source: IPAddress("203.0.114.1")!).isEmpty)
    }
}

@Suite("acl.conf from the database")
struct ACLLookupTests {
    @Test func deduplicatedOrderedAndGated() throws {
        let db = try Connection(try TestDatabase.shared.freshDatabase())
        let a = Admin(db: db)
        var active = Admin.AccountInput(number: "1", name: "active")
        active.balance = "0" // balance does not gate the ACL: calls are refused with 402 instead
        try a.addAccount(active)
        try a.addAccount(Admin.AccountInput(number: "2", name: "suspended"))
        try a.addIP(account: "1", name: "v6", network: "2001:db8::/32", prefix: "", strip: false)
        try a.addIP(account: "1", name: "pbx1", network: "203.0.113.10", prefix: "91", strip: false)
        try a.addIP(account: "1", name: "pbx12", network: "203.0.113.10", prefix: "92", strip: false)
        try a.addIP(account: "1", name: "wide", network: "10.0.0.0/8", prefix: "", strip: false)
        try a.addIP(account: "1", name: "narrow", network: "10.0.0.0/16", prefix: "", strip: false)
        let off = try a.addIP(account: "1", name: "off", network: "198.51.100.0/24", prefix: "", strip: false)
        try a.setIPEnabled(id: off, false)
        try a.addIP(account: "2", name: "gone", network: "192.0.2.1", prefix: "", strip: false)
        try a.setStatus("2", .suspended)
        #expect(try ACLNetworksLookup.run(db) == ["10.0.0.0/8", "10.0.0.0/16", "203.0.113.10/32", "2001:db8::/32"])
    }
}
