import DatabaseTestSupport
import Foundation
import Postgres
import Store
import SwitchAuthService
import Synchronization
import TestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Lookups from a hot standby (streaming replication from a throwaway primary, pg_basebackup),
/// writes to the primary, changes pushed only once the standby has them, and a promotion under load
/// with libpq's multi-host connection strings.
@Suite("PostgreSQL standby", .serialized)
struct StandbyTests {
    static func count(_ db: Connection, _ sql: String) -> Int {
        (try? db.execute(sql).decode(0, 0, as: Int.self)) ?? -1
    }

    @Test func lookupsFromTheStandbyAndAPromotionUnderLoad() throws {
        let primary = try TemporaryCluster()
        defer { primary.stop() }
        let admin = try Connection(primary.config())
        try Migrator(directory: TestDatabase.migrationsDirectory).migrate(admin)
        try seedFixtureData(admin)
        let standby = try TemporaryCluster(standbyOf: primary)
        defer { standby.stop() }
        let standbyDB = try Connection(standby.config())
        #expect(waitUntil(seconds: 10) { Self.count(standbyDB, "SELECT count(*) FROM sip_devices") == 1 }, "the standby has the data")
        #expect(Self.count(standbyDB, "SELECT pg_is_in_recovery()::int") == 1)

        let hosts = (p: primary.directory, s: standby.directory)
        var config = fixtureConfig(database: primary.config())
        config.databaseURL = "host=\(hosts.p),\(hosts.s) port=5432,5432 user=postgres dbname=postgres target_session_attrs=read-write"
        config.readDatabaseURL = "host=\(hosts.s),\(hosts.p) port=5432,5432 user=postgres dbname=postgres target_session_attrs=prefer-standby"
        config.connectTimeoutMilliseconds = 300
        let s = try RunningService(config)
        defer { s.stop() }
        let valid: @Sendable (String) -> String = { ip in LockoutTests.register(password: "secret1001", ip: ip) }

        // Lookups are read on the standby; the failure a wrong digest costs is written on the primary.
        #expect(try post(s.port, valid("192.0.2.1")).text == FixtureReplayTests.user1001)
        #expect(Self.count(standbyDB, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'switchauth' AND backend_type = 'client backend'") >= 1,
                "the service's lookups connected to the standby")
        #expect(!(try post(s.port, LockoutTests.register(password: "wrong", ip: "192.0.2.9")).text.contains("<user id=")))
        #expect(waitUntil(seconds: 3) { Self.count(admin, "SELECT count(*) FROM auth_failures WHERE subject LIKE '192.0.2.9%'") >= 1 },
                "counted on the primary")

        // A change made on the primary reaches lookups through the standby.
        try Admin(db: admin).addIP(account: "2002", name: "standby", network: "198.51.100.77", prefix: "", strip: false)
        let call = try Fixtures.body("dialplan-after-acl-auth.http")
        let callBody = String(decoding: call, as: UTF8.self)
            .replacingOccurrences(of: "127.0.0.2", with: "198.51.100.77")
        #expect(waitUntil(seconds: 3) { ((try? post(s.port, callBody).text) ?? "").contains("transfer") }, "new IP setting answered")

        // Promotion under load: valid digests keep asking, wrong ones too.
        let port = s.port
        let stop = Atomic<Bool>(false), wrongGrants = Atomic<Int>(0), refusedValid = Atomic<Int>(0), answered = Atomic<Int>(0)
        let slowestMicros = Atomic<Int>(0)
        let threads = (0..<4).map { i in
            Thread {
                var n = 0
                while !stop.load(ordering: .relaxed) {
                    n += 1
                    let wrong = i == 3
                    let t0 = DispatchTime.now().uptimeNanoseconds
                    guard let r = try? post(port, wrong ? LockoutTests.register(password: "wrong-\(n)", ip: "192.0.2.\(50 + n % 150)") : valid("192.0.2.\(10 + i)")) else { continue }
                    let us = Int((DispatchTime.now().uptimeNanoseconds - t0) / 1_000)
                    if us > slowestMicros.load(ordering: .relaxed) { slowestMicros.store(us, ordering: .relaxed) }
                    answered.wrappingAdd(1, ordering: .relaxed)
                    if wrong && r.text.contains("<user id=") { wrongGrants.wrappingAdd(1, ordering: .relaxed) }
                    if !wrong && r.text != FixtureReplayTests.user1001 { refusedValid.wrappingAdd(1, ordering: .relaxed) }
                }
            }
        }
        for t in threads { t.start() }
        Thread.sleep(forTimeInterval: 0.5)
        try primary.stopServer()
        let lostAt = Date()
        try standby.promote()
        let promotedAfter = Date().timeIntervalSince(lostAt)
        Thread.sleep(forTimeInterval: 2.0)
        stop.store(true, ordering: .relaxed)
        while !threads.allSatisfy(\.isFinished) { usleep(10_000) }
        print("promotion under load: \(answered.load(ordering: .relaxed)) answers, \(refusedValid.load(ordering: .relaxed)) valid digests answered fail-closed, slowest \(slowestMicros.load(ordering: .relaxed) / 1000) ms, promoted \(Int(promotedAfter * 1000)) ms after the primary stopped")
        #expect(wrongGrants.load(ordering: .relaxed) == 0, "no wrong digest granted, ever")
        #expect(slowestMicros.load(ordering: .relaxed) < 1_000_000, "every answer bounded")

        // After the promotion: reads and writes on the new primary, and changes arrive again.
        #expect(waitUntil(seconds: 5) { (try? post(port, valid("192.0.2.1")).text) == FixtureReplayTests.user1001 })
        let promoted = try Connection(standby.config())
        let failuresBefore = Self.count(promoted, "SELECT count(*) FROM auth_failures")
        // Each database thread's link to the lost primary fails once (a count whose fate is unknown
        // is not written twice), then reconnects to the new primary.
        var n = 0
        #expect(waitUntil(seconds: 5) {
            n += 1
            // (1001 itself is locked by now: the load's wrong digests spent its user budget.)
            _ = try? post(port, LockoutTests.register(password: "wrong", user: "9999", ip: "203.0.113.\(200 + n % 50)"))
            return Self.count(promoted, "SELECT count(*) FROM auth_failures") > failuresBefore
        }, "failures are counted on the promoted standby")
        #expect(n <= ServiceConfig().databaseConnections + 1, "at most one count lost per database thread (\(n) attempts)")
        try Admin(db: promoted).setStatus("1000042", .suspended)
        #expect(waitUntil(seconds: 3) { ((try? post(port, valid("192.0.2.1")).text) ?? "") == FixtureReplayTests.domainOnly },
                "a change on the new primary is answered")
    }
}
