import Decisions
import DatabaseTestSupport
import Foundation
import TestSupport
import Postgres
import Store
import Testing

@Suite("libpq wrapper and migrations against a real PostgreSQL")
struct PostgresTests {
    @Test func migrationsApplyToEmptyDatabaseAndReapplyAsNoOp() throws {
        let db = try Connection(try TestDatabase.shared.emptyDatabase())
        let migrator = try Migrator(directory: TestDatabase.migrationsDirectory)
        let first = try migrator.migrate(db)
        #expect(first.map(\.version) == migrator.files.map(\.version))
        #expect(!first.isEmpty)
        let second = try migrator.migrate(db)
        #expect(second.isEmpty)
        #expect(try migrator.status(db).allSatisfy { $0.status == .applied })
    }

    @Test func editedMigrationIsRefused() throws {
        let db = try Connection(try TestDatabase.shared.emptyDatabase())
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mig-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("0001_t.sql")
        try "CREATE TABLE t (x int);".write(to: file, atomically: true, encoding: .utf8)
        try Migrator(directory: dir.path).migrate(db)
        try "CREATE TABLE t (x int, y int);".write(to: file, atomically: true, encoding: .utf8)
        let edited = try Migrator(directory: dir.path)
        #expect(throws: MigrationError.edited(version: "0001", name: "t")) { try edited.migrate(db) }
        #expect(try edited.status(db).first?.status == .edited)
        // A failing migration rolls back and is not recorded.
        try "CREATE TABLE t (x int);".write(to: file, atomically: true, encoding: .utf8)
        try "CREATE TABLE u (x int); SELECT 1/0;".write(to: dir.appendingPathComponent("0002_bad.sql"), atomically: true, encoding: .utf8)
        #expect(throws: PostgresError.self) { try Migrator(directory: dir.path).migrate(db) }
        #expect(try db.execute("SELECT to_regclass('u') IS NULL").decode(0, 0, as: Bool.self))
        #expect(try Migrator(directory: dir.path).status(db).map(\.status) == [.applied, .pending])
    }

    @Test(arguments: [
        ("INSERT INTO ip_settings (account_id, name, network, prefix) VALUES ($1, 'x', '203.0.113.300', '')", "22P02"),
        ("INSERT INTO ip_settings (account_id, name, network, prefix) VALUES ($1, 'x', '10.0.0.1/24', '')", "22P02"),
        ("INSERT INTO ip_settings (account_id, name, network, prefix) VALUES ($1, 'x', '203.0.113.10', '9a')", "23514"),
        ("INSERT INTO ip_settings (account_id, name, network, prefix) VALUES ($1, 'dup', '203.0.113.10', '91')", "23505"),
        ("UPDATE accounts SET status = 'frozen' WHERE id = $1", "23514"),
        ("UPDATE accounts SET kind = 'reseller' WHERE id = $1", "23514"),
        ("INSERT INTO ip_settings (account_id, name, network, prefix) VALUES ($1 + 1000, 'x', '203.0.113.11', '')", "23503"),
    ])
    func constraintsReject(sql: String, sqlState: String) throws {
        let db = try Connection(try TestDatabase.shared.freshDatabase())
        let id: String = try db.execute("INSERT INTO accounts (number, name) VALUES ('1000', 'PBX1') RETURNING id").decode(0, 0)
        try db.execute("INSERT INTO ip_settings (account_id, name, network, prefix) VALUES ($1, 'PBX1', '203.0.113.10', '91')", [id])
        do {
            try db.execute(sql, [id])
            Issue.record("statement was accepted: \(sql)")
        } catch let e as PostgresError {
            #expect(e.sqlState == sqlState, "\(e.debugDescription)")
        }
        // The connection is still usable after an error.
        #expect(db.healthCheck())
    }

    /// 0014 rewrote the device CHECKs without counted repetitions (13 s of a million-device import):
    /// every value a column's 0001 pattern accepted, and only those, is still accepted.
    @Test func deviceChecksAcceptWhatTheirPatternsDid() throws {
        let db = try Connection(try TestDatabase.shared.freshDatabase())
        try db.execute("INSERT INTO accounts (number, name) VALUES ('7000', 'checks')")
        try db.execute("INSERT INTO sip_domains (name) VALUES ('checks.example')")
        let md5 = String(repeating: "0123456789abcdef", count: 2), sha = String(repeating: "0123456789abcdef", count: 4)
        var generator = SystemRandomNumberGenerator()
        let alphabet = Array("aZ09._+-fgAF é€\u{7f}\t/@*")
        func random(_ base: String) -> String {
            var s = Array(base)
            switch Int.random(in: 0..<4, using: &generator) {
            case 0: if !s.isEmpty { s[Int.random(in: 0..<s.count, using: &generator)] = alphabet.randomElement(using: &generator)! }
            case 1: s.insert(alphabet.randomElement(using: &generator)!, at: Int.random(in: 0...s.count, using: &generator))
            case 2: if !s.isEmpty { s.remove(at: Int.random(in: 0..<s.count, using: &generator)) }
            default: s = (0..<Int.random(in: 0...70, using: &generator)).map { _ in alphabet.randomElement(using: &generator)! }
            }
            return String(s)
        }
        // Each column: its 0001 pattern, a valid value to mutate, and the edge cases.
        let columns: [(column: String, pattern: String, base: String, edges: [String])] = [
            ("username", "^[A-Za-z0-9._+-]{1,64}$", "A.b_c+d-e",
             ["", "a", String(repeating: "u", count: 64), String(repeating: "u", count: 65), "é", "a b", "a@b", "user\u{7f}"]),
            ("ha1_md5", "^[0-9a-f]{32}$", md5,
             [md5.uppercased(), String(md5.dropLast()), md5 + "0", String(md5.dropLast()) + "g", String(md5.dropLast(2)) + "é"]),
            ("ha1_sha256", "^[0-9a-f]{64}$", sha,
             [String(sha.dropLast()), sha + "a", String(sha.dropLast()) + "F", String(sha.dropLast(2)) + "é"]),
            ("caller_id_number", "^[+]?[0-9]{0,32}$", "+15550100",
             ["", "+", "1", "++1", "1+", String(repeating: "9", count: 32), String(repeating: "9", count: 33),
              "+" + String(repeating: "9", count: 32), "+" + String(repeating: "9", count: 33), "１２"]),
        ]
        var checked = 0
        for (column, pattern, base, edges) in columns {
            for value in [base] + edges + (0..<150).map({ _ in random(base) }) {
                let expected: Bool = try db.execute("SELECT $1::text ~ $2", [value, pattern]).decode(0, 0)
                var row = ["username": "u\(checked)", "ha1_md5": md5, "ha1_sha256": sha, "caller_id_number": ""]
                row[column] = value
                try db.execute("BEGIN")
                do {
                    try db.execute("""
                        INSERT INTO sip_devices (account_id, domain_id, username, ha1_md5, ha1_sha256, caller_id_number)
                        SELECT a.id, d.id, $1, $2, $3, $4 FROM accounts a, sip_domains d
                        """, [row["username"], row["ha1_md5"], row["ha1_sha256"], row["caller_id_number"]])
                    #expect(expected, "\(column) '\(value)' was accepted; \(pattern) refuses it")
                } catch let e as PostgresError {
                    #expect(!expected && e.sqlState == "23514", "\(column) '\(value)': \(e.debugDescription)")
                }
                try db.execute("ROLLBACK")
                checked += 1
            }
        }
        #expect(checked > 600)
    }

    /// 0013: an insert of up to 10,000 rows is audited per row, a larger one as one row.
    @Test func bulkInsertsAreAuditedOnce() throws {
        let db = try Connection(try TestDatabase.shared.freshDatabase())
        try db.execute("SELECT set_config('switchauth.actor', 'cli:tester', false)")
        try db.execute("INSERT INTO accounts (number, name) SELECT 'p' || g, 'per row ' || g FROM generate_series(1, 10000) g")
        try db.execute("INSERT INTO accounts (number, name) SELECT 'b' || g, 'bulk ' || g FROM generate_series(1, 10001) g")
        let r = try db.execute("""
            SELECT count(*) FILTER (WHERE object_label LIKE 'p%' AND after->>'name' LIKE 'per row %' AND account_id::text = object_id),
                   count(*) FILTER (WHERE object_label = '10001 rows in one statement'), count(*),
                   min(object_id) FILTER (WHERE object_label = '10001 rows in one statement'),
                   (SELECT min(id) || '..' || max(id) FROM accounts WHERE number LIKE 'b%'),
                   bool_and(actor = 'cli:tester')
              FROM audit_log WHERE object_type = 'accounts' AND action = 'create'
            """)
        #expect(r.string(0, 0) == "10000" && r.string(0, 1) == "1" && r.string(0, 2) == "10001", "\((0..<3).map { r.string(0, $0) ?? "nil" })")
        #expect(r.string(0, 3) == r.string(0, 4), "the bulk row names the ids it created")
        #expect(r.string(0, 5) == "t")
    }

    @Test func parametersRoundTrip() throws {
        let db = try Connection(try TestDatabase.shared.freshDatabase())
        let values = ["", "'", "''; DROP TABLE accounts; --", "back\\slash", "\"quoted\"", "ünïcødé ☎️ 电话", "$${hostname}", "a&b=c", String(repeating: "x", count: 100_000)]
        for v in values {
            let r = try db.execute("SELECT $1::text, length($1::text)", [v])
            #expect(r.string(0, 0) == v)
            #expect(try r.decode(0, 1, as: Int.self) == v.unicodeScalars.count)
        }
        #expect(try db.execute("SELECT $1::text IS NULL", [nil]).decode(0, 0, as: Bool.self))
        #expect(throws: PostgresError.self) { try db.execute("SELECT $1::text", ["nul\u{0}byte"]) }
    }

    @Test func failingStatementYieldsSQLState() throws {
        let db = try Connection(try TestDatabase.shared.freshDatabase())
        do {
            try db.execute("SELECT 1/0")
            Issue.record("no error")
        } catch let e as PostgresError {
            #expect(e.sqlState == "22012")
            #expect(e.kind == .server)
            #expect(!e.description.contains("division"), "description must stay generic")
        }
        do {
            try db.execute("SELECT * FROM no_such_table WHERE x = $1", ["secret"])
            Issue.record("no error for a missing table")
        } catch let e as PostgresError {
            #expect(e.sqlState == "42P01")
            #expect(!e.description.contains("secret"))
        }
    }

    @Test func statementTimeoutIsEnforced() throws {
        var config = try TestDatabase.shared.freshDatabase()
        config.queryTimeoutMilliseconds = 200
        let db = try Connection(config)
        let started = Date()
        #expect(throws: PostgresError.self) { try db.execute("SELECT pg_sleep(5)") }
        #expect(Date().timeIntervalSince(started) < 2)
        #expect(db.healthCheck())
    }

    @Test func listenReceivesNotifyFromAnotherConnection() throws {
        let config = try TestDatabase.shared.freshDatabase()
        let listener = try Connection(config)
        try listener.listen("switchauth_test")
        let sender = try Connection(config)
        try sender.execute("SELECT pg_notify($1, $2)", ["switchauth_test", "hello 'world'"])
        var got: [PostgresNotification] = []
        for _ in 0..<20 where got.isEmpty {
            got = try listener.notifications(timeoutMilliseconds: 100)
        }
        #expect(got.map(\.payload) == ["hello 'world'"])
        #expect(got.first?.channel == "switchauth_test")
        #expect(listener.socketDescriptor >= 0)
    }

    /// The console listens only around a change: after `unlisten` nothing arrives, and a reconnect
    /// does not listen again.
    @Test func unlistenStopsNotificationsAcrossAReconnect() throws {
        let config = try TestDatabase.shared.freshDatabase()
        let listener = try Connection(config)
        try listener.listen("switchauth_test")
        try listener.unlisten("switchauth_test")
        #expect(try listener.execute("SELECT count(*) FROM pg_listening_channels()").decode(0, 0, as: Int.self) == 0)
        try listener.reconnect()
        #expect(try listener.execute("SELECT count(*) FROM pg_listening_channels()").decode(0, 0, as: Int.self) == 0)
        let sender = try Connection(config)
        try sender.execute("SELECT pg_notify($1, $2)", ["switchauth_test", "nobody"])
        #expect(try listener.notifications(timeoutMilliseconds: 200).isEmpty)
    }
}

/// Issue 13 item 9: a statement runs at most once unless it is declared idempotent. A sequence is
/// not transactional, so `nextval` shows how many times the server ran a statement even when the
/// backend dies before answering (`pg_terminate_backend` of itself: the link drops after the work).
@Suite("at-most-once statements")
struct AtMostOnceTests {
    @Test func nonIdempotentStatementIsNotRetriedAfterTheLinkDrops() throws {
        let db = try Connection(try TestDatabase.shared.freshDatabase())
        try db.executeScript("CREATE SEQUENCE runs")
        #expect(throws: PostgresError.self) {
            try db.execute("SELECT nextval('runs'), pg_terminate_backend(pg_backend_pid())")
        }
        #expect(try db.execute("SELECT last_value FROM runs").decode(0, 0, as: Int.self) == 1, "ran exactly once")
    }

    @Test func idempotentStatementIsRetriedOnANewConnection() throws {
        let config = try TestDatabase.shared.freshDatabase()
        let db = try Connection(config)
        let pid: Int = try db.execute("SELECT pg_backend_pid()").decode(0, 0)
        let other = try Connection(config)
        try other.execute("SELECT pg_terminate_backend($1::int)", [String(pid)])
        Thread.sleep(forTimeInterval: 0.1)
        // The broken link is noticed by the statement itself; a read may run again.
        #expect(try db.execute("SELECT 7", retry: .idempotent).decode(0, 0, as: Int.self) == 7)
        #expect(db.connectCount == 2)
        // A non-idempotent statement on a link broken the same way fails; the next call reconnects.
        let pid2: Int = try db.execute("SELECT pg_backend_pid()").decode(0, 0)
        try other.execute("SELECT pg_terminate_backend($1::int)", [String(pid2)])
        Thread.sleep(forTimeInterval: 0.1)
        #expect(throws: PostgresError.self) { try db.execute("SELECT 8") }
        #expect(try db.execute("SELECT 9").decode(0, 0, as: Int.self) == 9)
    }
}

/// Restarting a server affects every connection to it: this test has a cluster of its own.
@Suite("reconnect")
struct ReconnectTests {
    @Test func connectionSurvivesServerRestart() throws {
        let cluster = try TemporaryCluster()
        defer { cluster.stop() }
        let db = try Connection(cluster.config())
        #expect(try db.execute("SELECT 41 + 1").decode(0, 0, as: Int.self) == 42)
        try cluster.restart()
        // The next (idempotent) call notices the broken connection and reconnects.
        #expect(try db.execute("SELECT 42", retry: .idempotent).decode(0, 0, as: Int.self) == 42)
        #expect(db.connectCount == 2)
        // Server down: a bounded, clear failure; back up: answering again without a new Connection.
        try cluster.stopServer()
        let started = Date()
        #expect(throws: PostgresError.self) { try db.execute("SELECT 1") }
        #expect(Date().timeIntervalSince(started) < 3)
        try cluster.startServer()
        Thread.sleep(forTimeInterval: 0.3)
        #expect(try db.execute("SELECT 43").decode(0, 0, as: Int.self) == 43)
    }
}

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
