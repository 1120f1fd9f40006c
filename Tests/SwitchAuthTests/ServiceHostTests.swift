import DatabaseTestSupport
import Foundation
import HTTPServer
import Locking
import Postgres
import Store
import SwitchAuthService
import Synchronization
import TestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A stand-in for systemd's notification socket: a unix datagram socket the test reads.
final class NotifySocket {
    let path: String
    let fd: Int32

    init() throws {
        path = NSTemporaryDirectory() + "notify-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).sock"
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        var a = sockaddr_un()
        a.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &a.sun_path) { p in for (i, b) in path.utf8.enumerated() { p[i] = b } }
        let rc = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        if rc != 0 { close(fd); throw TestHTTPError(description: "bind \(path): errno \(errno)") }
        var tv = timeval(tv_sec: 0, tv_usec: 100_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit {
        close(fd)
        unlink(path)
    }

    private var received: [String] = []

    /// Every message so far (each read within 100 ms of arriving).
    func messages() -> [String] {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            received.append(String(decoding: buffer[0..<n], as: UTF8.self))
        }
        return received
    }

    func waitFor(_ seconds: Double, _ condition: ([String]) -> Bool) -> Bool {
        let end = Date().addingTimeInterval(seconds)
        while Date() < end {
            if condition(messages()) { return true }
        }
        return condition(messages())
    }
}

@Suite("systemd: readiness, watchdog, reload", .serialized)
struct ServiceHostTests {
    static func seeded() throws -> (ServiceConfig, Connection) {
        let dbConfig = try TestDatabase.shared.freshDatabase()
        let db = try Connection(dbConfig)
        try seedFixtureData(db)
        var config = fixtureConfig(database: dbConfig)
        config.basicAuthUser = "freeswitch"
        config.basicAuthPassword = "first-secret-0123456789"
        return (config, db)
    }

    static func lookup(_ port: UInt16, credentials: String) throws -> TestResponse {
        let body = "hostname=vm&section=configuration&tag_name=configuration&key_name=name&key_value=acl.conf"
        let auth = Data(credentials.utf8).base64EncodedString()
        return try exchange(port, Array("POST /fs HTTP/1.1\r\nHost: x\r\nAuthorization: Basic \(auth)\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)".utf8))
    }

    @Test func readyWatchdogReloadWithoutDroppingARequestAndStopping() throws {
        let (config, _) = try Self.seeded()
        let notify = try NotifySocket()
        let host = ServiceHost(logger: quietLogger, notifier: SystemdNotifier(path: notify.path), watchdogNanoseconds: 200_000_000)
        try host.start(config)
        let port = try #require(host.service?.port)
        #expect(notify.waitFor(2) { $0.contains { $0.hasPrefix("READY=1") } }, "READY=1 once listening and PostgreSQL answered")
        #expect(notify.waitFor(2) { $0.filter { $0 == "WATCHDOG=1" }.count >= 3 }, "watchdog pinged at half its 200 ms interval")

        // Clients keep asking (a connection each, as mod_xml_curl) while the configuration is reloaded.
        let stop = Atomic<Bool>(false), ok = Atomic<Int>(0), failed = Atomic<Int>(0)
        let failures = Locked<[String]>([])
        let clients = (0..<4).map { _ in
            Thread {
                while !stop.load(ordering: .relaxed) {
                    let r = try? Self.lookup(port, credentials: "freeswitch:first-secret-0123456789")
                    if r?.status == 200 {
                        ok.wrappingAdd(1, ordering: .relaxed)
                    } else {
                        failed.wrappingAdd(1, ordering: .relaxed)
                        failures.withLock { $0.append(r.map { "\($0.status) \($0.text)" } ?? "no answer") }
                    }
                }
            }
        }
        for c in clients { c.start() }
        Thread.sleep(forTimeInterval: 0.3)
        var next = config
        next.lockout.threshold = 7
        try host.reload(next)
        Thread.sleep(forTimeInterval: 0.5)
        stop.store(true, ordering: .relaxed)
        while !clients.allSatisfy(\.isFinished) { usleep(10_000) }
        #expect(failed.load(ordering: .relaxed) == 0, "requests dropped across the reload (\(ok.load(ordering: .relaxed)) answered): \(failures.withLock { $0 })")
        #expect(ok.load(ordering: .relaxed) > 50)
        #expect(host.service?.port == port, "the same listening socket")
        #expect(host.service?.config.lockout.threshold == 7)
        let auth = Data("freeswitch:first-secret-0123456789".utf8).base64EncodedString()
        let metrics = try exchange(port, Array("GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Basic \(auth)\r\n\r\n".utf8)).text
        #expect(metrics.contains(#"switchauth_lockout_budget{scope="source_user"} 7"#), "the new configuration answers")
        let messages = notify.messages()
        let reloading = try #require(messages.firstIndex { $0.hasPrefix("RELOADING=1") })
        #expect(messages[reloading...].contains { $0.hasPrefix("READY=1") }, "READY=1 after RELOADING=1")

        host.stop()
        #expect(notify.waitFor(1) { $0.contains { $0.hasPrefix("STOPPING=1") } })
        #expect((try? Self.lookup(port, credentials: "x:y")) == nil, "stopped: the listener is closed")
    }

    @Test func readyOnlyOncePostgreSQLAnswers() throws {
        let cluster = try TemporaryCluster()
        defer { cluster.stop() }
        let admin = try Connection(cluster.config())
        try Migrator(directory: TestDatabase.migrationsDirectory).migrate(admin)
        admin.close()
        try cluster.stopServer()
        var config = fixtureConfig(database: cluster.config())
        config.connectTimeoutMilliseconds = 200
        let notify = try NotifySocket()
        let host = ServiceHost(logger: quietLogger, notifier: SystemdNotifier(path: notify.path), watchdogNanoseconds: nil)
        try host.start(config)
        defer { host.stop() }
        #expect(notify.waitFor(0.5) { $0.contains { $0.contains("waiting for PostgreSQL") } })
        #expect(!notify.messages().contains { $0.hasPrefix("READY=1") }, "not ready while the database does not answer")
        try cluster.startServer()
        #expect(notify.waitFor(5) { $0.contains { $0.hasPrefix("READY=1") } }, "ready once it does")
    }
}
