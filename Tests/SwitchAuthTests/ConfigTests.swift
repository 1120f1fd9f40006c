import Decisions
import DatabaseTestSupport
import Foundation
import TestSupport
import HTTPServer
import SwitchAuthService
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite("configuration")
struct ConfigTests {
    /// The README's configuration table lists exactly the settings `serve` knows, in the same order,
    /// with the defaults a default `ServiceConfig` has: the initialisers are the one source.
    @Test func readmeTableIsTheReference() throws {
        let readme = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../README.md").standardized
        let text = try String(contentsOf: readme, encoding: .utf8)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        let start = try #require(lines.firstIndex { $0 == "| key | default | meaning |" })
        var rows: [(String, String)] = []
        for line in lines[(start + 2)...] {
            guard line.hasPrefix("|") else { break }
            let cells = line.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces).trimmingCharacters(in: CharacterSet(charactersIn: "`")) }
            rows.append((cells[0], cells[1]))
        }
        let reference = ServiceConfig.reference
        #expect(rows.map(\.0) == reference.map(\.key))
        for (row, ref) in zip(rows, reference) {
            #expect(row.1 == ref.defaultValue, "README default of \(ref.key)")
        }
        // Every setting round-trips: the shown default, applied again, changes nothing.
        let text2 = reference.filter { !$0.defaultValue.hasPrefix("(") }.map { "\($0.key) = \($0.defaultValue)" }.joined(separator: "\n")
        #expect(try ServiceConfig.load(fileText: text2, environment: [:]) == ServiceConfig())
    }

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
        #expect(try ServiceConfig.load(fileText: "log_level = NOTICE", environment: [:]).logLevel == "notice", "any case, stored as swift-log spells it")
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

    /// call_limits (issue 21): global by default, per switch when no event socket could release a
    /// slot, and an error when global is asked for without one.
    @Test func callLimitsFollowTheEventSockets() throws {
        #expect(try ServiceConfig.load(fileText: nil, environment: [:]).dialplan.callLimits == .global)
        #expect(try ServiceConfig.load(fileText: "event_sockets =", environment: [:]).dialplan.callLimits == .perSwitch)
        #expect(try ServiceConfig.load(fileText: "call_limits = switch", environment: [:]).dialplan.callLimits == .perSwitch)
        #expect(throws: ConfigError.self) { try ServiceConfig.load(fileText: "call_limits = global\nevent_sockets =", environment: [:]) }
        #expect(throws: ConfigError.self) { try ServiceConfig.load(fileText: "call_limits = everywhere", environment: [:]) }
    }

    @Test(arguments: [
        ("listen_port = 70000", "listen_port"), ("nonsense", "line 1"), ("colour = blue", "unknown setting 'colour'"),
        ("allow_clients = 10.0.0.1/8", "not an address or network"), ("basic_auth = nocolon", "user:password"),
        ("event_sockets = host", "host:port"), ("path = relative", "must start with /"),
        // A misspelt level was taken for the default (info: a line per decision).
        ("log_level = warn", "log_level must be one of trace, debug, info, notice, warning, error, critical (got 'warn')"),
        // Issue 20: a key given twice names both lines (it was accepted, the last one winning).
        ("# switchauth\nbasic_auth = fs:aaaaaaaaaaaaaaaaaaaa\nlisten_port = 8081\n basic_auth = fs:bbbbbbbbbbbbbbbbbbbb", "line 4: basic_auth is already set on line 2"),
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
        // Secure by default: no basic_auth is refused even on loopback, unless chosen explicitly.
        var local = ServiceConfig()
        #expect(throws: ConfigError.self) { try local.validate() }
        local.basicAuthUser = "freeswitch"
        local.basicAuthPassword = ServiceConfig.placeholderSecret
        #expect(throws: ConfigError.self, "the shipped placeholder") { try local.validate() }
        local.basicAuthPassword = "short"
        #expect(throws: ConfigError.self, "a guessable secret") { try local.validate() }
        local.basicAuthPassword = "Xk3v9Qe2Lr7TnW4sZp8YhB1c"
        try local.validate()
        local.basicAuthUser = nil
        local.allowUnauthenticated = true
        try local.validate()

        var c = ServiceConfig()
        c.allowUnauthenticated = true
        c.server.host = "0.0.0.0"
        #expect(throws: ConfigError.self) { try c.validate() }
        c.basicAuthUser = "fs"
        c.basicAuthPassword = "Xk3v9Qe2Lr7TnW4sZp8YhB1c"
        try c.validate()
        c.basicAuthUser = nil
        c.allowClients = [IPNetwork("192.0.2.0/24")!]
        try c.validate()
        c.allowClients = []
        c.forcePublic = true
        try c.validate()
        var loop = ServiceConfig()
        loop.allowUnauthenticated = true
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
    let socket: TCPSocket
    init(port: UInt16) throws {
        socket = try TCPSocket.connect(host: "::1", port: port, timeoutMilliseconds: 5_000)
    }
    func send(_ b: [UInt8]) { try? socket.sendAll(b) }
    func readAll() -> String {
        String(decoding: (try? socket.receive(max: 4096, timeoutMilliseconds: 5_000)) ?? [], as: UTF8.self)
    }
}
