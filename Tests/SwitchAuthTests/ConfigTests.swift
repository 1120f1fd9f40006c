import Decisions
import Foundation
import HTTPServer
import SwitchAuthService
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite("configuration")
struct ConfigTests {
    @Test func fileThenEnvironment() throws {
        let c = try ServiceConfig.load(fileText: """
            # comment
            database_url = "postgresql://switchauth@db/switchauth"
            listen_port = 9000
            owned_contexts = switchauth, other
            lockout_threshold = 3
            lockout_source_threshold = 40
            lockout_user_threshold = 60
            lockout_trust_s = 86400
            basic_auth = fs:pa:ss
            allow_clients = 10.0.0.0/8, 2001:db8::/32
            event_sockets = 127.0.0.1:8021, [::1]:8022
            cacheable_ms = 60000
            """, environment: ["SWITCHAUTH_LISTEN_PORT": "9100", "SWITCHAUTH_LOG_LEVEL": "debug", "PATH": "/bin"])
        #expect(c.databaseURL == "postgresql://switchauth@db/switchauth")
        #expect(c.server.port == 9100, "the environment wins")
        #expect(c.logLevel == "debug")
        #expect(c.dialplan.ownedContexts == ["switchauth", "other"])
        #expect(c.lockout.threshold == 3)
        #expect(c.lockout.sourceThreshold == 40 && c.lockout.userThreshold == 60 && c.lockout.trustSeconds == 86400)
        #expect(c.directory.lockout == c.lockout, "the decision reads the same policy")
        #expect(c.basicAuthUser == "fs" && c.basicAuthPassword == "pa:ss")
        #expect(c.allowClients.map(\.description) == ["10.0.0.0/8", "2001:db8::/32"])
        #expect(c.eventSockets.map(\.description) == ["127.0.0.1:8021", "::1:8022"])
        #expect(c.directory.cacheableMilliseconds == 60000)
        #expect(try ServiceConfig.load(fileText: nil, environment: ["SWITCHAUTH_EVENT_SOCKETS": ""]).eventSockets.isEmpty)
    }

    @Test(arguments: [
        ("listen_port = 70000", "listen_port"), ("nonsense", "line 1"), ("colour = blue", "unknown setting 'colour'"),
        ("allow_clients = 10.0.0.1/8", "not an address or network"), ("basic_auth = nocolon", "user:password"),
        ("event_sockets = host", "host:port"), ("path = relative", "must start with /"),
    ])
    func refusesBadInput(text: String, message: String) {
        do {
            _ = try ServiceConfig.load(fileText: text, environment: [:])
            Issue.record("accepted: \(text)")
        } catch let e as ConfigError {
            #expect(e.message.contains(message), "\(e.message)")
        } catch {
            Issue.record("\(error)")
        }
    }

    @Test func refusesToExposeHashes() throws {
        var c = ServiceConfig()
        c.server.host = "0.0.0.0"
        #expect(throws: ConfigError.self) { try c.validate() }
        c.basicAuthUser = "fs"
        c.basicAuthPassword = "x"
        try c.validate()
        c.basicAuthUser = nil
        c.allowClients = [IPNetwork("192.0.2.0/24")!]
        try c.validate()
        c.allowClients = []
        c.forcePublic = true
        try c.validate()
        var loop = ServiceConfig()
        loop.dialplan.routingContext = "switchauth"
        #expect(throws: ConfigError.self) { try loop.validate() }
    }

    @Test func servesOnIPv6Loopback() throws {
        let dbConfig = try TestDatabase.shared.freshDatabase()
        var c = fixtureConfig(database: dbConfig)
        c.server.host = "::1"
        let s = try RunningService(c)
        defer { s.stop() }
        let client = try RawClient6(port: s.port)
        client.send(Array("GET /healthz HTTP/1.1\r\nHost: [::1]\r\n\r\n".utf8))
        #expect(client.readAll().hasPrefix("HTTP/1.1 200 OK"))
    }
}

/// Minimal IPv6 client for the ::1 test.
final class RawClient6 {
    let fd: Int32
    init(port: UInt16) throws {
        fd = socket(AF_INET6, Int32(SOCK_STREAM.rawValue), 0)
        var a = sockaddr_in6()
        a.sin6_family = sa_family_t(AF_INET6)
        a.sin6_port = port.bigEndian
        inet_pton(AF_INET6, "::1", &a.sin6_addr)
        let rc = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) } }
        if rc != 0 { close(fd); throw TestHTTPError(description: "connect ::1 failed") }
        var tv = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }
    deinit { close(fd) }
    func send(_ b: [UInt8]) { _ = b.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, 0) } }
    func readAll() -> String {
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n > 0 { out += buf[0..<n] }
        return String(decoding: out, as: UTF8.self)
    }
}
