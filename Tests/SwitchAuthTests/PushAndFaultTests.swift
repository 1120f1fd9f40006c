import Decisions
import DatabaseTestSupport
import Foundation
import TestSupport
import HTTPServer
import Postgres
import Store
@testable import SwitchAuthService
import Locking
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A fake FreeSWITCH event socket speaking the handshake of fixtures/esl-transcript.txt, byte for
/// byte: auth/request, command/reply +OK accepted (or -ERR invalid and a disconnect notice),
/// api/response with Content-Length, and the goodbye on `exit`.
final class FakeEventSocket: Sendable {
    let port: UInt16
    private let listener: TCPSocket
    let password: String
    private let received = Locked<[String]>([])
    private let stopped = Atomic<Bool>(false)
    private let done = DispatchSemaphore(value: 0)

    var commands: [String] { received.withLock { $0 } }

    init(password: String = "ClueCon", port: UInt16 = 0) throws {
        self.password = password
        listener = try TCPSocket.listen(host: "127.0.0.1", port: port, backlog: 16)
        self.port = listener.localPort
        Thread { [self] in serve(); done.signal() }.start()
    }

    func stop() {
        stopped.store(true, ordering: .releasing)
        listener.shutdownBoth()
        done.wait()
        listener.close()
    }

    private func serve() {
        while !stopped.load(ordering: .acquiring) {
            var p = pollfd(fd: listener.fd, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, 100) > 0 else { continue }
            guard let (c, _, _) = (try? listener.accept()) ?? nil else { continue }
            try? c.setBlocking(true)
            session(c)
            c.close()
        }
    }

    private func write(_ c: TCPSocket, _ s: String) {
        try? c.sendAll(s)
    }

    private func readCommand(_ c: TCPSocket, _ buffer: inout [UInt8]) -> String? {
        while true {
            if let i = (0..<max(0, buffer.count - 1)).first(where: { buffer[$0] == 10 && buffer[$0 + 1] == 10 }) {
                let line = String(decoding: buffer[0..<i], as: UTF8.self)
                buffer.removeFirst(i + 2)
                return line
            }
            guard let chunk = try? c.receive(max: 4096, timeoutMilliseconds: 3000), !chunk.isEmpty else { return nil }
            buffer += chunk
        }
    }

    static let goodbye = "Content-Type: text/disconnect-notice\nContent-Length: 67\n\nDisconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n"

    private func session(_ c: TCPSocket) {
        var buffer: [UInt8] = []
        write(c, "Content-Type: auth/request\n\n")
        guard let auth = readCommand(c, &buffer) else { return }
        guard auth == "auth \(password)" else {
            write(c, "Content-Type: command/reply\nReply-Text: -ERR invalid\n\n" + Self.goodbye)
            return
        }
        write(c, "Content-Type: command/reply\nReply-Text: +OK accepted\n\n")
        while let cmd = readCommand(c, &buffer) {
            if cmd == "exit" {
                write(c, "Content-Type: command/reply\nReply-Text: +OK bye\n\n" + Self.goodbye)
                return
            }
            received.withLock { $0.append(cmd) }
            let body = cmd == "api reloadacl" ? "+OK acl reloaded\n" : (cmd.hasPrefix("api xml_flush_cache") ? "+OK cleared 0 entries\n" : "-ERR unknown\n")
            write(c, "Content-Type: api/response\nContent-Length: \(body.utf8.count)\n\n\(body)")
        }
    }
}

func waitUntil(seconds: Double, _ condition: () -> Bool) -> Bool {
    let end = Date().addingTimeInterval(seconds)
    while Date() < end {
        if condition() { return true }
        Thread.sleep(forTimeInterval: 0.05)
    }
    return condition()
}

@Suite("change notifications pushed to FreeSWITCH's event socket")
struct PushTests {
    @Test func clientSpeaksTheTranscript() throws {
        let fake = try FakeEventSocket()
        defer { fake.stop() }
        let replies = try EventSocketClient(endpoint: EventSocketEndpoint(host: "127.0.0.1", port: fake.port, password: "ClueCon"))
            .api(["reloadacl", "xml_flush_cache id 1001 127.0.0.1"])
        #expect(replies == ["+OK acl reloaded\n", "+OK cleared 0 entries\n"])
        #expect(fake.commands == ["api reloadacl", "api xml_flush_cache id 1001 127.0.0.1"])
        #expect(throws: EventSocketClient.Failure.self) {
            try EventSocketClient(endpoint: EventSocketEndpoint(host: "127.0.0.1", port: fake.port, password: "wrong")).api(["reloadacl"])
        }
    }

    @Test func notifyBecomesReloadAndFlushAndIsRetried() throws {
        let dbConfig = try TestDatabase.shared.freshDatabase()
        let db = try Connection(dbConfig)
        try seedFixtureData(db)
        let fake = try FakeEventSocket()
        var config = fixtureConfig(database: dbConfig)
        config.eventSockets = [EventSocketEndpoint(host: "127.0.0.1", port: fake.port, password: "ClueCon")]
        config.dialplan.callLimits = .perSwitch // the fake switch records every command: pushes only
        let s = try RunningService(config)
        defer { s.stop() }
        // Service start: every switch reloads its ACL (it may have started without us).
        #expect(waitUntil(seconds: 15) { fake.commands == ["api reloadacl"] }, "\(fake.commands)")
        try Admin(db: db).addAlias(domain: "127.0.0.1", alias: "sip.example.net")
        // An IP setting inserted: exactly one reloadacl.
        try Admin(db: db).addIP(account: "2002", name: "second", network: "198.51.100.0/24", prefix: "44", strip: false)
        #expect(waitUntil(seconds: 15) { fake.commands.count == 2 }, "\(fake.commands)")
        Thread.sleep(forTimeInterval: 0.5)
        #expect(fake.commands == ["api reloadacl", "api reloadacl"])
        // A device changed: its cache entry is flushed under every name of its domain.
        try Admin(db: db).setPassword("1001@127.0.0.1", password: "new-password-1")
        let flushes = ["api xml_flush_cache id 1001 127.0.0.1", "api xml_flush_cache id 1001 sip.example.net"]
        #expect(waitUntil(seconds: 15) { flushes.allSatisfy(fake.commands.contains) }, "\(fake.commands)")
        let reloadsBefore = fake.commands.filter { $0 == "api reloadacl" }.count
        // An account suspended: its IPs leave the list, so the switches reload.
        try Admin(db: db).setStatus("2002", .suspended)
        #expect(waitUntil(seconds: 15) { fake.commands.filter { $0 == "api reloadacl" }.count > reloadsBefore }, "\(fake.commands)")
        // The switch down: the push is retried until it is back.
        let port = fake.port
        fake.stop()
        try Admin(db: db).setIPEnabled(id: 1, false)
        Thread.sleep(forTimeInterval: 1.0)
        let back = try FakeEventSocket(port: port)
        defer { back.stop() }
        #expect(waitUntil(seconds: 10) { back.commands == ["api reloadacl"] })
        let metrics = try exchange(s.port, Array("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".utf8)).text
        #expect(metrics.contains(#"switchauth_esl_commands_total{result="error"}"#))
    }

    /// Two switches, the first one hung (it accepts and never speaks, each push waits out its 2 s
    /// deadline, again and again): the second still gets every push at once.
    @Test func aHungSwitchDelaysNoOther() throws {
        let dbConfig = try TestDatabase.shared.freshDatabase()
        let db = try Connection(dbConfig)
        try seedFixtureData(db)
        let hung = try TCPSocket.listen(host: "127.0.0.1", port: 0, backlog: 64) // never accepted
        defer { hung.close() }
        let good = try FakeEventSocket()
        defer { good.stop() }
        var config = fixtureConfig(database: dbConfig)
        config.dialplan.callLimits = .perSwitch // the fake switches record every command: pushes only
        config.eventSockets = [EventSocketEndpoint(host: "127.0.0.1", port: hung.localPort, password: "ClueCon"),
                               EventSocketEndpoint(host: "127.0.0.1", port: good.port, password: "ClueCon")]
        let s = try RunningService(config)
        defer { s.stop() }
        #expect(waitUntil(seconds: 5) { good.commands == ["api reloadacl"] }, "\(good.commands)")
        for i in 0..<3 {
            let t0 = Date()
            try Admin(db: db).addIP(account: "2002", name: "n\(i)", network: "198.51.10\(i).0/24", prefix: "4\(i)", strip: false)
            #expect(waitUntil(seconds: 5) { good.commands.count == i + 2 }, "\(good.commands)")
            // The debounce (200 ms) and the push, not the hung switch's 2 s deadline.
            #expect(Date().timeIntervalSince(t0) < 1.5, "push \(i) to the good switch took \(Date().timeIntervalSince(t0)) s")
        }
    }

    /// A switch told to reload its ACL fetches acl.conf at once: commands owed while the service
    /// does not answer (starting, or stopping) wait until it does, and none goes out once it stops.
    @Test func pushesOnlyWhileServing() throws {
        let fake = try FakeEventSocket()
        defer { fake.stop() }
        let pusher = SwitchPusher(endpoint: EventSocketEndpoint(host: "127.0.0.1", port: fake.port, password: "ClueCon"),
                                  metrics: Metrics(), logger: quietLogger)
        pusher.start()
        defer { pusher.stop() }
        pusher.owe(reload: true, flush: [])
        Thread.sleep(forTimeInterval: 0.5)
        #expect(fake.commands == [], "pushed before the service answered")
        pusher.setServing(true)
        #expect(waitUntil(seconds: 5) { fake.commands == ["api reloadacl"] }, "\(fake.commands)")
        pusher.setServing(false)
        pusher.owe(reload: true, flush: ["1001 voip.example.com"])
        Thread.sleep(forTimeInterval: 0.5)
        #expect(fake.commands == ["api reloadacl"], "pushed while stopping")
    }

    /// The lifecycle: a watcher stopped before it started returns at once.
    @Test func watcherStopsBeforeStart() {
        let w = ChangeWatcher(config: ServiceConfig(), acl: ACLCache(file: nil), metrics: Metrics(), logger: quietLogger)
        let t0 = Date()
        w.stop()
        #expect(Date().timeIntervalSince(t0) < 0.5)
    }
}

/// PostgreSQL stopped under the service: answers stay fail-closed and bounded; acl.conf comes from
/// the last known good list; PostgreSQL back: correct answers again without a restart.
@Suite("database faults")
struct DatabaseFaultTests {
    @Test func failClosedThenRecover() throws {
        let cluster = try seededCluster()
        defer { cluster.stop() }
        var config = fixtureConfig(database: cluster.config())
        config.queryTimeoutMilliseconds = 300
        config.connectTimeoutMilliseconds = 300
        let s = try RunningService(config)
        defer { s.stop() }
        let acl = try Fixtures.bytes("configuration-acl.conf.http")
        let register = try Fixtures.bytes("directory-sip_auth-register-udp-ok.http")
        let call = try Fixtures.bytes("dialplan-after-acl-auth.http")
        let goodACL = try exchange(s.port, acl).text
        #expect(goodACL.contains("127.0.0.2/32"))
        #expect(try exchange(s.port, register).text == FixtureReplayTests.user1001)

        // Under load: clients keep asking while PostgreSQL goes away.
        let port = s.port
        let stopLoad = Atomic<Bool>(false)
        let grants = Atomic<Int>(0), answered = Atomic<Int>(0), slowest = Atomic<Int>(0)
        let databaseDown = Atomic<Bool>(false)
        let loadDone = DispatchGroup()
        for t in 0..<4 {
            loadDone.enter()
            Thread {
                let body = t % 2 == 0 ? register : call
                let deadline = Date().addingTimeInterval(20)
                while !stopLoad.load(ordering: .relaxed) && Date() < deadline {
                    let t0 = Date()
                    let downBefore = databaseDown.load(ordering: .acquiring)
                    guard let r = try? exchange(port, body) else { continue }
                    let ms = Int(Date().timeIntervalSince(t0) * 1000)
                    if ms > slowest.load(ordering: .relaxed) { slowest.store(ms, ordering: .relaxed) }
                    answered.wrappingAdd(1, ordering: .relaxed)
                    // Asked and answered while the database was down: never a user, never a transfer.
                    if downBefore && databaseDown.load(ordering: .acquiring) && (r.text.contains("<user id=") || r.text.contains("transfer")) {
                        grants.wrappingAdd(1, ordering: .relaxed)
                    }
                }
                loadDone.leave()
            }.start()
        }
        Thread.sleep(forTimeInterval: 0.3)
        try cluster.stopServer()
        databaseDown.store(true, ordering: .releasing)
        Thread.sleep(forTimeInterval: 0.2)
        let before = answered.load(ordering: .relaxed)
        for _ in 0..<5 {
            let started = Date()
            let a = try exchange(s.port, acl)
            #expect(a.status == 200 && a.text == goodACL, "acl.conf from the last known good list")
            let r = try exchange(s.port, register)
            #expect(r.status == 200 && r.text == FixtureReplayTests.domainOnly, "no user without the database")
            let d = try exchange(s.port, call)
            #expect(d.text.contains(#"data="503 Service Unavailable""#) && !d.text.contains("transfer"))
            #expect(Date().timeIntervalSince(started) < 2.0)
        }
        #expect(try exchange(s.port, Array("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n".utf8)).status == 503)
        Thread.sleep(forTimeInterval: 0.5)
        #expect(answered.load(ordering: .relaxed) > before, "answers kept coming during the outage")

        databaseDown.store(false, ordering: .releasing)
        try cluster.startServer()
        let back = Date()
        #expect(waitUntil(seconds: 3) { (try? exchange(s.port, register).text) == FixtureReplayTests.user1001 })
        #expect(Date().timeIntervalSince(back) < 1.5, "answers correctly again within about a second")
        #expect(try exchange(s.port, call).text.contains("transfer"))
        #expect(try exchange(s.port, Array("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n".utf8)).status == 200)
        stopLoad.store(true, ordering: .relaxed)
        loadDone.wait()
        #expect(slowest.load(ordering: .relaxed) < 2000, "every answer under load within a bounded time (query_timeout_ms 300)")
        #expect(grants.load(ordering: .relaxed) == 0, "no grant the database did not just confirm")
    }

    /// The file is replaced whole (written, flushed, renamed, directory flushed); a write that
    /// fails is said and leaves the list in memory current.
    @Test func aclCacheFileIsReplacedWholeOrReportedBehind() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("acl-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let file = dir + "/acl.xml"
        let cache = ACLCache(file: file, logger: quietLogger)
        for list in ["<document>first</document>", "<document>second, longer than the first</document>", "<d/>"] {
            cache.store(Array(list.utf8))
            #expect(FileManager.default.contents(atPath: file) == Data(list.utf8))
            #expect(!cache.fileIsBehind)
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["acl.xml"], "no temporary file left beside it")
        #expect(ACLCache(file: file).lastGood == Array("<d/>".utf8), "read back at the next start")

        let unwritable = ACLCache(file: dir + "/missing/acl.xml", logger: quietLogger)
        unwritable.store(Array("<document>third</document>".utf8))
        #expect(unwritable.fileIsBehind)
        #expect(unwritable.lastGood == Array("<document>third</document>".utf8), "served from memory all the same")
    }

    @Test func aclCacheSurvivesRestartViaFile() throws {
        let dbConfig = try TestDatabase.shared.freshDatabase()
        let db = try Connection(dbConfig)
        try seedFixtureData(db)
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("acl-\(UUID().uuidString).xml").path
        defer { try? FileManager.default.removeItem(atPath: file) }
        var config = fixtureConfig(database: dbConfig)
        config.aclCacheFile = file
        let s = try RunningService(config)
        let good = try exchange(s.port, try Fixtures.bytes("configuration-acl.conf.http")).text
        s.stop()
        // A new service whose database is unreachable still answers the last known list.
        var broken = config
        broken.databaseURL = "host=/nonexistent port=1 user=nobody dbname=none"
        broken.connectTimeoutMilliseconds = 200
        let t = try RunningService(broken)
        defer { t.stop() }
        #expect(try exchange(t.port, try Fixtures.bytes("configuration-acl.conf.http")).text == good)
    }
}
