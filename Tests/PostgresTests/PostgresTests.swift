import DatabaseTestSupport
import Foundation
import Postgres
import Testing

@Suite("libpq wrapper against a real PostgreSQL")
struct PostgresTests {
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
