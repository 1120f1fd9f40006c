import Decisions
import CLITestSupport
import DatabaseTestSupport
import Foundation
import TestSupport
import HTTPServer
import Locking
import Postgres
import Store
@testable import SwitchAuthService
import Testing

/// The lookups' memory copy (README, "Answering from memory"): its facts are the database's, it
/// follows every kind of change, and it stops answering the moment it cannot prove it is current.
@Suite("memory copy")
struct ReplicaTests {

    /// A seeded cluster, a service whose memory copy is current, and the captured REGISTER: the
    /// setup of the tests that stall or age the copy.
    struct CurrentCopy {
        let cluster: TemporaryCluster
        let service: RunningService
        let replica: Replica
        let register: [UInt8]
        func stop() {
            service.stop()
            cluster.stop()
        }
    }

    /// `answerTimeoutMilliseconds`: the lookups' deadline, when a test needs more room than the
    /// default 200 ms under a loaded suite.
    static func currentCopy(answerTimeoutMilliseconds: Int? = nil, maxQueuedLookups: Int? = nil) throws -> CurrentCopy {
        let register = try Fixtures.bytes("directory-sip_auth-register-udp-ok.http")
        let cluster = try seededCluster()
        do {
            let (s, replica) = try serviceWithCurrentReplica(cluster, answerTimeoutMilliseconds: answerTimeoutMilliseconds,
                                                             maxQueuedLookups: maxQueuedLookups)
            return CurrentCopy(cluster: cluster, service: s, replica: replica, register: register)
        } catch {
            cluster.stop()
            throw error
        }
    }

    /// The service on `cluster` with its memory copy on, once the copy is proven current.
    static func serviceWithCurrentReplica(_ cluster: TemporaryCluster, answerTimeoutMilliseconds: Int? = nil,
                                          maxQueuedLookups: Int? = nil) throws -> (RunningService, Replica) {
        var config = fixtureConfig(database: cluster.config())
        config.replica = true
        if let answerTimeoutMilliseconds { config.answerTimeoutMilliseconds = answerTimeoutMilliseconds }
        if let maxQueuedLookups { config.maxQueuedLookups = maxQueuedLookups }
        let s = try RunningService(config)
        guard let replica = s.service.replica, replica.waitUntilCurrent() else {
            s.stop()
            throw TestHTTPError(description: "the memory copy did not become current")
        }
        return (s, replica)
    }
    /// Everything a lookup can meet: aliases, a disabled domain, suspended/expired/broke accounts,
    /// disabled devices, nested IPv4 and IPv6 networks, a disabled setting, locks (one expired) and
    /// trust.
    static func seedVariety(_ db: Connection, fixtures: Bool = true) throws {
        if fixtures { try seedFixtureData(db) }
        let a = Admin(db: db)
        _ = try a.addDomain("example.org")
        try a.addAlias(domain: "example.org", alias: "SIP.Example.org")
        _ = try a.addDomain("off.example")
        try db.execute("UPDATE sip_domains SET enabled = false WHERE name = 'off.example'")
        for (number, status) in [("3001", AccountStatus.active), ("3002", .suspended), ("3003", .active), ("3004", .active)] {
            var input = Admin.AccountInput(number: number, name: "Account \(number)")
            input.balance = number == "3004" ? "0" : "25.5"
            input.maxChannels = 2
            _ = try a.addAccount(input)
            if status != .active { try a.setStatus(number, status) }
        }
        try db.execute("UPDATE accounts SET expires_at = now() - interval '1 minute' WHERE number = '3003'")
        try db.execute("UPDATE accounts SET expires_at = now() + interval '1 day' WHERE number = '3001'")
        for (account, domain, user) in [("3001", "example.org", "alice"), ("3002", "example.org", "bob"), ("3003", "example.org", "carol"),
                                        ("3004", "example.org", "dave"), ("3001", "off.example", "erin"), ("3001", "127.0.0.1", "frank")] {
            var d = Admin.DeviceInput(account: account, domain: domain, username: user, password: "password-\(user)")
            if user == "alice" { d.callerIDName = "Alice & <Co>"; d.callerIDNumber = "+15551234" }
            _ = try a.addDevice(d)
        }
        try a.setDeviceEnabled("frank@127.0.0.1", false)
        for (account, network, prefix) in [("3001", "10.1.0.0/16", ""), ("3001", "10.1.2.0/24", "44"), ("3002", "10.1.2.3", "91"),
                                           ("3003", "2001:db8::/32", ""), ("3004", "2001:db8:1::5", "1"), ("3001", "10.9.9.9", "")] {
            _ = try a.addIP(account: account, name: "net \(network)", network: network, prefix: prefix, strip: prefix == "44")
        }
        try db.execute("UPDATE ip_settings SET enabled = false WHERE network = '10.9.9.9/32'")
        try db.execute("""
            INSERT INTO auth_failures (scope, subject, failures, locked_until) VALUES
              ('ip', '198.51.100.7', 100, now() + interval '1 hour'),
              ('user', 'alice@example.org', 100, now() + interval '1 hour'),
              ('pair', '198.51.100.8|alice@example.org', 10, now() + interval '1 hour'),
              ('ip', '198.51.100.9', 100, now() - interval '1 minute'),
              ('ip', '2001:db8:7::/64', 100, now() + interval '1 hour')
            """)
        try db.execute("""
            INSERT INTO auth_trusted_sources (subject, source, last_success) VALUES
              ('alice@example.org', '198.51.100.7', now() - interval '10 seconds'),
              ('1001@127.0.0.1', '127.0.0.1', now() - interval '2 hours')
            """)
    }

    static let domains = ["127.0.0.1", "example.org", "EXAMPLE.ORG", "sip.example.org", "off.example", "nowhere.example"]
    static let users = ["1001", "alice", "bob", "carol", "dave", "erin", "frank", "nobody"]
    static let sources: [String?] = [nil, "127.0.0.1", "198.51.100.7", "198.51.100.8", "198.51.100.9", "2001:db8:7::1"]
    static let addresses = ["10.1.2.3", "10.1.2.4", "10.1.3.1", "10.2.0.1", "10.9.9.9", "127.0.0.2", "2001:db8::1", "2001:db8:1::5",
                            "2001:db9::1", "::ffff:10.1.2.3"]

    /// Directory facts equal, with the seconds since a success allowed one second of drift between the two reads.
    static func same(_ a: DirectoryFactsResult?, _ b: DirectoryFactsResult) -> Bool {
        guard var a else { return false }
        var b = b
        if let x = a.lockout.secondsSinceSuccess, let y = b.lockout.secondsSinceSuccess, abs(x - y) <= 1 {
            a.lockout.secondsSinceSuccess = nil
            b.lockout.secondsSinceSuccess = nil
        }
        return a == b
    }

    /// Compares the copy with the database's statements over every combination.
    static func expectSameFacts(_ tables: ReplicaTables, _ db: Connection, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        var compared = 0
        for domain in domains {
            for user in users {
                for source in sources {
                    let key = source.flatMap(IPAddress.init).map(LockoutKeys.source)
                    let fromDB = try DirectoryLookup.run(db, domain: domain, user: user, source: key)
                    let fromCopy = tables.directoryFacts(domain: domain, user: user, source: key, now: now)
                    #expect(same(fromCopy, fromDB), "\(user)@\(domain) from \(source ?? "-"): copy \(String(describing: fromCopy)) db \(fromDB)",
                            sourceLocation: sourceLocation)
                    // The dialplan's digest path reads the device alone.
                    #expect(tables.device(domain: domain, user: user, now: now) == .some(fromDB.device), "\(user)@\(domain)",
                            sourceLocation: sourceLocation)
                    compared += 1
                }
            }
        }
        for text in addresses {
            let address = try #require(IPAddress(text))
            let fromDB = try IPCandidatesLookup.run(db, source: address).sorted { $0.id < $1.id }
            #expect(tables.ipCandidates(address, now: now) == fromDB, "\(text)", sourceLocation: sourceLocation)
            compared += 1
        }
        #expect(compared == domains.count * users.count * sources.count + addresses.count)
    }

    @Test func snapshotFactsAreTheDatabasesFacts() throws {
        let db = try Connection(try TestDatabase.shared.freshDatabase())
        defer { db.close() }
        try Self.seedVariety(db)
        let tables = try ReplicaLoad.snapshot(db, batch: 3)
        #expect(tables.devices.count == 7)
        try Self.expectSameFacts(tables, db)
        // Spot checks that the comparison is not vacuous.
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let alice = try #require(tables.directoryFacts(domain: "sip.example.org", user: "alice", source: "198.51.100.7", now: now))
        #expect(alice.device?.callerIDName == "Alice & <Co>" && alice.device?.realm == "example.org")
        #expect(alice.lockout.sourceLocked && alice.lockout.userLocked && !alice.lockout.pairLocked)
        #expect(alice.lockout.secondsSinceSuccess.map { (9...12).contains($0) } == true)
        #expect(tables.directoryFacts(domain: "example.org", user: "carol", source: nil, now: now)?.device?.account.expired == true)
        #expect(tables.directoryFacts(domain: "off.example", user: "erin", source: nil, now: now)?.domainKnown == false)
        #expect(tables.ipCandidates(IPAddress("10.1.2.3")!, now: now)?.map(\.network.description) == ["10.1.0.0/16", "10.1.2.0/24", "10.1.2.3/32"])
        // A name PostgreSQL and Swift might lower-case differently is left to the database.
        #expect(tables.directoryFacts(domain: "EXAMPLE.\u{212A}", user: "alice", source: nil, now: now) == nil)
    }

    @Test func deviceTableSurvivesChurn() {
        var t = DeviceTable()
        var expected: [String: Int64] = [:]
        func record(_ id: Int64, _ user: String) -> DeviceTable.Record {
            DeviceTable.Record(id: id, accountID: 1, md5: (UInt64(id), 0), sha256: (0, 0, 0, UInt64(id)), username: user,
                               callerIDName: "", callerIDNumber: "", domainID: Int32(id % 3), enabled: true)
        }
        var rng = SystemRandomNumberGenerator()
        for step in 0..<20_000 {
            let id = Int64.random(in: 1...3_000, using: &rng)
            let user = "u\(id)"
            if Bool.random(using: &rng) || step < 2_000 {
                t.upsert(record(id, user))
                expected["\(id % 3)/\(user)"] = id
            } else {
                t.remove(domainID: Int32(id % 3), username: user)
                expected["\(id % 3)/\(user)"] = nil
            }
        }
        #expect(t.count == expected.count)
        for id in Int64(1)...3_000 {
            let found = t.find(domainID: Int32(id % 3), username: "u\(id)")
            #expect(found?.id == expected["\(id % 3)/u\(id)"])
            #expect(found.map { Hex.encode($0.md5) } == expected["\(id % 3)/u\(id)"].map { Hex.encode((UInt64($0), 0)) })
        }
    }

    @Test func payloadsParseAndJunkIsRefused() {
        #expect(ReplicaChange(payload: "a42") == .account(42))
        #expect(ReplicaChange(payload: "x7:alice") == .deviceKeyGone(domainID: 7, username: "alice"))
        #expect(ReplicaChange(payload: "lpair:1700000000000:1.2.3.4|a@b") == .lock(scope: "pair", subject: "1.2.3.4|a@b", until: 1_700_000_000_000))
        #expect(ReplicaChange(payload: "lip::1.2.3.4") == .lock(scope: "ip", subject: "1.2.3.4", until: nil))
        #expect(ReplicaChange(payload: "t5:a@b|2001:db8::/64") == .trust(subject: "a@b", source: "2001:db8::/64", lastSuccess: 5))
        #expect(ReplicaChange(payload: "Ta@b|1.2.3.4") == .trust(subject: "a@b", source: "1.2.3.4", lastSuccess: nil))
        for junk in ["", "a", "a-1x", "d", "x:alice", "x7:", "lip:12", "t:a|b", "Tab", "n1", "R!", "h", "z1", "acl", "account:1"] {
            #expect(ReplicaChange(payload: junk) == nil, "\(junk)")
        }
        #expect(TrustBatch.textArray(["a\"b", "c\\d", "e,f"]) == #"{"a\"b","c\\d","e,f"}"#)
    }

    /// A running service: the copy loads, proves itself current, follows every kind of change (its
    /// facts equal the database's after each), answers lookups (counted), writes trust in the
    /// background, and stops answering when its feed is cut.
    @Test func followsChangesAndAnswers() throws {
        let cluster = try seededCluster()
        defer { cluster.stop() }
        let db = try Connection(cluster.config())
        defer { db.close() }
        try Self.seedVariety(db, fixtures: false)
        let (s, replica) = try Self.serviceWithCurrentReplica(cluster)
        defer { s.stop() }

        func settle(_ what: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
            #expect(replica.waitUntilCurrent(), "\(what)", sourceLocation: sourceLocation)
            try Self.expectSameFacts(try tablesOf(replica), db, sourceLocation: sourceLocation)
        }
        func tablesOf(_ r: Replica) throws -> ReplicaTables { r.tablesForTests() }

        try settle("loaded")
        let a = Admin(db: db)
        try a.setStatus("3001", .suspended); try settle("status")
        _ = try a.balance("3004", set: "12", adjust: nil); try settle("balance")
        try a.setPassword("alice@example.org", password: "new-password"); try settle("password")
        try db.execute("UPDATE sip_devices SET username = 'alice2' WHERE username = 'alice'"); try settle("rename")
        try db.execute("UPDATE sip_devices SET username = 'alice' WHERE username = 'alice2'"); try settle("rename back")
        try a.removeDevice("bob@example.org"); try settle("remove device")
        var d = Admin.DeviceInput(account: "3003", domain: "example.org", username: "bob", password: "again-password")
        d.callerIDNumber = "123"
        _ = try a.addDevice(d); try settle("add device")
        try a.addAlias(domain: "127.0.0.1", alias: "nowhere.example"); try settle("alias")
        try db.execute("UPDATE sip_domains SET enabled = true WHERE name = 'off.example'"); try settle("domain enabled")
        _ = try a.addIP(account: "3004", name: "more", network: "10.2.0.0/15", prefix: "", strip: false); try settle("ip added")
        try db.execute("UPDATE ip_settings SET network = '10.1.3.0/24' WHERE network = '10.1.2.0/24'"); try settle("ip moved")
        try db.execute("DELETE FROM ip_settings WHERE network = '10.1.0.0/16'"); try settle("ip removed")
        try db.execute("UPDATE auth_failures SET locked_until = NULL WHERE subject = '198.51.100.7'"); try settle("unlocked")
        try db.execute("INSERT INTO auth_failures (scope, subject, failures, locked_until) VALUES ('user', 'dave@example.org', 100, now() + interval '5 minutes')")
        try settle("locked")
        try db.execute("DELETE FROM auth_trusted_sources WHERE subject = 'alice@example.org'"); try settle("trust removed")
        try db.execute("DELETE FROM accounts WHERE number = '3002'"); try settle("account deleted (cascade)")
        try db.execute("TRUNCATE auth_failures"); try settle("truncate")
        #expect(replica.isCurrent() && replica.facts(for: .acl) == nil, "acl.conf is always read from PostgreSQL")

        // Lookups are answered from the copy, with the same XML the database path gives.
        let register = try Fixtures.bytes("directory-sip_auth-register-udp-ok.http")
        let acl = try Fixtures.bytes("dialplan-after-acl-auth.http")
        let before = replica.answeredCount
        #expect(try exchange(s.port, register).text == FixtureReplayTests.user1001)
        #expect(try exchange(s.port, acl).text.contains(#"data="accountcode=2002""#))
        #expect(replica.answeredCount == before + 2)
        // The success was trusted in the background, through the feed back into the copy.
        var trusted = false
        for _ in 0..<200 where !trusted {
            trusted = try db.execute("SELECT 1 FROM auth_trusted_sources WHERE subject = '1001@127.0.0.1' AND source = '127.0.0.1' AND last_success > now() - interval '1 minute'").rowCount == 1
            if !trusted { usleep(10_000) }
        }
        #expect(trusted)
        // A wrong password is not answered from the copy: it is counted first, on the database path.
        #expect(try exchange(s.port, try Fixtures.bytes("directory-sip_auth-register-wrong-password.http")).text == FixtureReplayTests.domainOnly)
        #expect(replica.answeredCount == before + 2)
        #expect(try db.execute("SELECT failures FROM auth_failures WHERE scope = 'pair'").string(0, 0) == "1")

        // The feed cut (its session terminated): the copy stops answering at once and comes back.
        try db.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%pg_notify%' AND pid <> pg_backend_pid()")
        #expect(replica.waitUntilCurrent(timeoutMilliseconds: 10_000))
        try settle("after reconnect")
    }

    /// Issue 19: a statement over 10,000 rows announces one reload instead of a row each (migration
    /// 0008). Through a bulk insert, a bulk update and a TRUNCATE the copy becomes current again,
    /// holds what the database holds, and answers lookups for the rows just written. Fails if the
    /// copy stops answering after a bulk import (it did: 1.1M row notifications to read back).
    @Test func staysCurrentThroughBulkChanges() throws {
        let cluster = try seededCluster()
        defer { cluster.stop() }
        var long = cluster.config()
        long.queryTimeoutMilliseconds = 300_000
        let db = try Connection(long)
        defer { db.close() }
        let (s, replica) = try Self.serviceWithCurrentReplica(cluster)
        defer { s.stop() }
        let devicesBefore = replica.deviceCount
        let bulk = 25_000

        func answeredFromMemory(_ user: String, password: String) throws -> Bool {
            let before = replica.answeredCount
            let text = try post(s.port, LockoutTests.register(password: password, user: user, ip: "198.51.100.\(Int.random(in: 1...250))")).text
            return text.contains(#"<user id="\#(user)""#) && replica.answeredCount == before + 1
        }
        func settle(_ what: String, sourceLocation: SourceLocation = #_sourceLocation) -> Double {
            let started = Date()
            #expect(replica.waitUntilCurrent(timeoutMilliseconds: 30_000), "\(what)", sourceLocation: sourceLocation)
            return Date().timeIntervalSince(started)
        }

        let auditBefore: String = try db.execute("SELECT coalesce(max(id), 0) FROM audit_log").decode(0, 0)
        // The shape of `switchauth import`: one INSERT ... SELECT of every device.
        try db.execute("""
            INSERT INTO sip_devices (account_id, domain_id, username, ha1_md5, ha1_sha256)
            SELECT a.id, d.id, 'bulk' || g, md5('bulk' || g || ':127.0.0.1:bulk-password-' || g),
                   encode(sha256(convert_to('bulk' || g || ':127.0.0.1:bulk-password-' || g, 'UTF8')), 'hex')
              FROM generate_series(1, $1::int) g, accounts a, sip_domains d
             WHERE a.number = '1000042' AND d.name = '127.0.0.1'
            """, [String(bulk)])
        let afterInsert = settle("bulk insert")
        #expect(replica.deviceCount == devicesBefore + bulk)
        #expect(try answeredFromMemory("bulk777", password: "bulk-password-777"))
        #expect(try answeredFromMemory("bulk24999", password: "bulk-password-24999"))
        #expect(try answeredFromMemory("1001", password: "secret1001"), "a device from before the import")

        // Every new password at once.
        try db.execute("""
            UPDATE sip_devices SET ha1_md5 = md5(username || ':127.0.0.1:changed-' || username),
                   ha1_sha256 = encode(sha256(convert_to(username || ':127.0.0.1:changed-' || username, 'UTF8')), 'hex')
             WHERE username LIKE 'bulk%'
            """)
        let afterUpdate = settle("bulk update")
        #expect(try answeredFromMemory("bulk777", password: "changed-bulk777"))
        #expect(try !post(s.port, LockoutTests.register(password: "bulk-password-778", user: "bulk778", ip: "198.51.100.9")).text.contains("a1-hash"),
                "the old password no longer works")

        // The bookkeeping the bulk statements fire, per statement since 0008: the insert of more
        // than 10,000 devices is audited as one row (0013) naming its rows and their ids, and the
        // IP settings' prefix-length counts.
        let audited = try db.execute("""
            SELECT count(*), min(object_label), min(after->>'rows'),
                   bool_and((after->>'last_id')::bigint - (after->>'first_id')::bigint + 1 = (after->>'rows')::bigint)
              FROM audit_log WHERE object_type = 'sip_devices' AND action = 'create' AND id > $1::bigint
            """, [auditBefore])
        #expect(audited.string(0, 0) == "1" && audited.string(0, 1) == "\(bulk) rows in one statement" && audited.string(0, 2) == String(bulk)
                && audited.string(0, 3) == "t", "\((0..<4).map { audited.string(0, $0) ?? "nil" })")
        try db.execute("""
            INSERT INTO ip_settings (account_id, name, network, prefix)
            SELECT a.id, 'bulk' || g, CASE WHEN g % 3 = 0 THEN set_masklen('100.64.0.0'::inet + g::bigint * 256, 24)::cidr
                                           ELSE set_masklen('100.128.0.0'::inet + g, 32)::cidr END, '7'
              FROM generate_series(1, 12000) g, accounts a WHERE a.number = '1000042'
            """)
        try db.execute("UPDATE ip_settings SET network = set_masklen(network, 31) WHERE name LIKE 'bulk%' AND masklen(network) = 32 AND host(network)::inet - '100.128.0.0'::inet < 1000 AND (host(network)::inet - '100.128.0.0'::inet) % 2 = 0")
        try db.execute("DELETE FROM ip_settings WHERE name LIKE 'bulk%' AND masklen(network) = 24 AND (host(network)::inet - '100.64.0.0'::inet) / 256 % 2 = 0")
        let counted = try db.execute("SELECT family::text || '/' || masklen || ':' || settings FROM ip_setting_masklens WHERE settings > 0 ORDER BY 1")
        let actual = try db.execute("SELECT family(network)::text || '/' || masklen(network) || ':' || count(*) FROM ip_settings GROUP BY family(network), masklen(network) ORDER BY 1")
        #expect((0..<counted.rowCount).map { counted.string($0, 0) } == (0..<actual.rowCount).map { actual.string($0, 0) })
        _ = settle("bulk IP settings")
        try Self.expectSameFacts(replica.tablesForTests(), db)

        try db.execute("TRUNCATE sip_devices")
        let afterTruncate = settle("truncate")
        #expect(replica.deviceCount == 0)
        #expect(try !post(s.port, LockoutTests.register(password: "changed-bulk777", user: "bulk777", ip: "198.51.100.9")).text.contains("a1-hash"))
        try Self.expectSameFacts(replica.tablesForTests(), db)
        print("copy current again after: bulk insert of \(bulk) \(afterInsert) s, bulk update \(afterUpdate) s, truncate \(afterTruncate) s")
    }

    /// An operator's change is in force when the CLI returns, whatever the copies' feeds are doing:
    /// the command waits replica_staleness_ms after its commit, by when a copy that has not applied
    /// it has lost its proof. Without that wait the lookup below is answered from the stalled copy,
    /// with the suspended account's device and its HA1.
    @Test func aChangeIsInForceWhenTheCLIReturns() throws {
        let copy = try Self.currentCopy()
        defer { copy.stop() }
        let (cluster, s, replica, register) = (copy.cluster, copy.service, copy.replica, copy.register)
        #expect(try exchange(s.port, register).text == FixtureReplayTests.user1001)
        replica.feedPausedForTests.store(true, ordering: .relaxed) // its thread not scheduled
        let suspended = cli(["account", "suspend", "1000042"], db: cluster.config(), wait: true)
        #expect(suspended.code == 0, "\(suspended.err)")
        #expect(try !exchange(s.port, register).text.contains("a1-hash"), "not answered from the copy that lacks the suspension")
        replica.feedPausedForTests.store(false, ordering: .relaxed)
        #expect(replica.waitUntilCurrent())
        #expect(try !exchange(s.port, register).text.contains("a1-hash"), "the copy holds it once its feed runs")

        // Without the wait (--no-wait, for scripts) the command returns at its commit.
        replica.feedPausedForTests.store(true, ordering: .relaxed)
        let t0 = DispatchTime.now().uptimeNanoseconds
        #expect(cli(["account", "resume", "1000042"], db: cluster.config()).code == 0)
        let noWait = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
        replica.feedPausedForTests.store(false, ordering: .relaxed)
        #expect(replica.waitUntilCurrent())
        #expect(try exchange(s.port, register).text == FixtureReplayTests.user1001, "resumed")
        print("cli account resume --no-wait returned after \(String(format: "%.3f", noWait)) s")
    }

    /// Holds the copy's proof lapsed (the feed alive, as for a late heartbeat) and sends the
    /// REGISTER lookup from a thread of its own: its answer and seconds taken, once `done` signals.
    static func lookupWhileTheProofIsHeld(_ copy: CurrentCopy) -> (answer: Locked<(String, Double)?>, done: DispatchSemaphore) {
        let replica = copy.replica
        replica.proofHeldForTests.store(true, ordering: .relaxed)
        replica.ageProofForTests(nanoseconds: replica.stalenessNanoseconds + 1_000_000)
        let (port, register) = (copy.service.port, copy.register)
        let answer = Locked<(String, Double)?>(nil)
        let done = DispatchSemaphore(value: 0)
        Thread {
            let t0 = DispatchTime.now().uptimeNanoseconds
            let text = (try? exchange(port, register).text) ?? "no answer"
            answer.withLock { $0 = (text, Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9) }
            done.signal()
        }.start()
        return (answer, done)
    }

    /// A heartbeat back late (the proof lapsed, the feed alive): a lookup waits for it instead of
    /// reading PostgreSQL, and is answered from the copy once it is back, within its deadline.
    @Test func aLateHeartbeatParksLookupsUntilItIsBack() throws {
        let copy = try Self.currentCopy()
        defer { copy.stop() }
        let (s, replica, register) = (copy.service, copy.replica, copy.register)
        let answeredBefore = replica.answeredCount
        let (answer, done) = Self.lookupWhileTheProofIsHeld(copy)
        #expect(!replica.isCurrent())
        #expect(waitUntil(seconds: 2) { replica.parkedCount == 1 }, "the lookup waits for the heartbeat")
        usleep(30_000)
        #expect(answer.withLock { $0 } == nil, "not answered while the proof is held")
        replica.proofHeldForTests.store(false, ordering: .relaxed)
        done.wait()
        let (text, seconds) = try #require(answer.withLock { $0 })
        #expect(text == FixtureReplayTests.user1001, "answered with its user, not fail-closed")
        #expect(seconds < 0.2, "within the deadline (\(seconds) s)")
        #expect(replica.answeredCount == answeredBefore + 1, "from the copy")
        #expect(replica.parkedTotal.load(ordering: .relaxed) == 1 && replica.parkedResumed.load(ordering: .relaxed) == 1)

        // Held past the deadline: the fail-closed answer at 200 ms, and nothing later.
        replica.proofHeldForTests.store(true, ordering: .relaxed)
        replica.ageProofForTests(nanoseconds: replica.stalenessNanoseconds + 1_000_000)
        let t0 = DispatchTime.now().uptimeNanoseconds
        #expect(try exchange(s.port, register).text == FixtureReplayTests.domainOnly)
        let waited = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
        #expect(waited >= 0.19 && waited < 1.0, "answered at its deadline (\(waited) s)")
        replica.proofHeldForTests.store(false, ordering: .relaxed)
        #expect(replica.waitUntilCurrent())
        #expect(replica.parkedCount == 0 && replica.parkedResumed.load(ordering: .relaxed) == 1, "the expired one was dropped")

        // The prober's circuit open (its probe failed in the same stall): a young lapse still
        // waits for the heartbeat; a lapse older than another staleness bound does not wait.
        replica.proofHeldForTests.store(true, ordering: .relaxed)
        replica.ageProofForTests(nanoseconds: replica.stalenessNanoseconds + 1_000_000)
        s.service.health.markDown()
        let t1 = DispatchTime.now().uptimeNanoseconds
        Thread { usleep(50_000); replica.proofHeldForTests.store(false, ordering: .relaxed) }.start()
        #expect(try exchange(s.port, register).text == FixtureReplayTests.user1001, "answered from the copy once the heartbeat is back")
        #expect(Double(DispatchTime.now().uptimeNanoseconds - t1) / 1e9 < 0.2)
        #expect(replica.parkedTotal.load(ordering: .relaxed) == 3)
        #expect(replica.waitUntilCurrent())
        // Which lapses wait with the circuit open: only one younger than another staleness bound
        // (the handler asks this; the prober's own state is not the test's to hold).
        replica.proofHeldForTests.store(true, ordering: .relaxed)
        let stale = replica.stalenessNanoseconds
        replica.ageProofForTests(nanoseconds: stale + 10_000_000)
        #expect(replica.isLapsed() && replica.isRecentlyLapsed())
        replica.ageProofForTests(nanoseconds: 2 * stale + 10_000_000)
        #expect(replica.isLapsed() && !replica.isRecentlyLapsed())
        replica.ageProofForTests(nanoseconds: stale / 2)
        #expect(!replica.isLapsed() && !replica.isRecentlyLapsed())
        replica.proofHeldForTests.store(false, ordering: .relaxed)
    }

    /// A heartbeat whose proof is over again before the lookup it resumed is decided (one back
    /// after 249 ms proves the copy for 1 ms more): the lookup waits for the next heartbeat, as the
    /// first time, rather than reading PostgreSQL in the stall that delayed it (two full compares
    /// had one keep-alive lookup each answered fail-closed at its deadline in such a moment).
    @Test func aResumedLookupThatFindsTheProofLapsedAgainWaitsAgain() throws {
        // Its steps (park, resume, park again, heartbeat) must all fall within the lookup's
        // deadline, which a loaded suite's scheduling could pass at 200 ms.
        let copy = try Self.currentCopy(answerTimeoutMilliseconds: 2_000)
        defer { copy.stop() }
        let replica = copy.replica
        let answeredBefore = replica.answeredCount
        let (answer, done) = Self.lookupWhileTheProofIsHeld(copy)
        #expect(waitUntil(seconds: 2) { replica.parkedCount == 1 }, "the lookup waits for the heartbeat")
        // Resumed while the proof is (again) lapsed.
        replica.resumeParked()
        #expect(waitUntil(seconds: 2) { replica.parkedCount == 1 && replica.parkedTotal.load(ordering: .relaxed) == 2 },
                "resumed, it waits again instead of reading PostgreSQL")
        #expect(answer.withLock { $0 } == nil)
        replica.proofHeldForTests.store(false, ordering: .relaxed)
        done.wait()
        #expect(answer.withLock { $0 }?.0 == FixtureReplayTests.user1001, "answered with its user, not fail-closed")
        #expect(replica.answeredCount == answeredBefore + 1, "from the copy")
        #expect(replica.parkedResumed.load(ordering: .relaxed) == 2)
    }

    /// Lookups parked in a lapse are all answered from the copy when the heartbeat is back, however
    /// many more there are than `max_queued_lookups`: they were admitted already and are decided
    /// from the copy. Refused by the bounded queue, each waited for its deadline and got the
    /// fail-closed answer (at 53,000 lookups/s a lapse of 5 ms parks more than 256: the full
    /// compares' one keep-alive lookup answered fail-closed at 200 ms, in runs without a long lapse).
    @Test func parkedLookupsAreAllAnsweredWhenTheHeartbeatIsBack() throws {
        let copy = try Self.currentCopy(answerTimeoutMilliseconds: 3_000, maxQueuedLookups: 2)
        defer { copy.stop() }
        let replica = copy.replica
        let lookups = (0..<40).map { _ in Self.lookupWhileTheProofIsHeld(copy) }
        #expect(waitUntil(seconds: 5) { replica.parkedCount == 40 }, "\(replica.parkedCount) waiting")
        replica.proofHeldForTests.store(false, ordering: .relaxed)
        for (_, done) in lookups { done.wait() }
        let answers = lookups.compactMap { $0.answer.withLock { $0 } }
        #expect(answers.count == 40)
        #expect(answers.filter { $0.0 == FixtureReplayTests.user1001 }.count == 40, "answered with their user, none fail-closed")
        #expect(answers.allSatisfy { $0.1 < 2.0 }, "none waited for its deadline: \(answers.map(\.1).max() ?? 0) s")
    }

    /// PostgreSQL hung: the copy's proof lapses within replica_staleness_ms and lookups fail closed
    /// on the database path (bounded there); it answers again once PostgreSQL is back.
    @Test func provesNothingWhileTheDatabaseHangs() throws {
        let cluster = try seededCluster()
        defer { cluster.thaw(); cluster.stop() }
        let (s, replica) = try Self.serviceWithCurrentReplica(cluster)
        defer { s.stop() }
        let register = try Fixtures.bytes("directory-sip_auth-register-udp-ok.http")
        #expect(try exchange(s.port, register).text == FixtureReplayTests.user1001)
        cluster.freeze()
        var lapsed = false
        let t0 = DispatchTime.now().uptimeNanoseconds
        while !lapsed && DispatchTime.now().uptimeNanoseconds - t0 < 2_000_000_000 {
            lapsed = !replica.isCurrent()
            usleep(2_000)
        }
        #expect(lapsed)
        // Fail-closed from now on: the domain without the user.
        #expect(try exchange(s.port, register).text == FixtureReplayTests.domainOnly)
        cluster.thaw()
        #expect(replica.waitUntilCurrent(timeoutMilliseconds: 20_000))
        #expect(try exchange(s.port, register).text == FixtureReplayTests.user1001)
    }
}

@Suite("replica hex")
struct ReplicaHexTests {
    @Test(arguments: ["00000000000000000000000000000000", "0123456789abcdef0123456789abcdef", "ffffffffffffffffffffffffffffffff",
                      "d41d8cd98f00b204e9800998ecf8427e"])
    func md5RoundTrip(text: String) throws {
        #expect(Hex.encode(try #require(Hex.md5(text))) == text)
    }

    @Test func sha256RoundTrip() throws {
        let text = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        #expect(Hex.encode(try #require(Hex.sha256(text))) == text)
        #expect(Hex.md5(text) == nil)
        #expect(Hex.md5("D41D8CD98F00B204E9800998ECF8427E") == nil)   // stored lower-case only
    }
}
