import DatabaseTestSupport
import Foundation
import TestSupport
import HTTPServer
import Postgres
import Store
import SwitchAuthService
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// PostgreSQL hung (SIGSTOP: connections open, statements never answered) or unreachable (a
/// listener that accepts and never speaks): every answer within its bound and fail-closed, from the
/// event loops that never wait for the database; correct again within a second of its return.
@Suite("database hung or unreachable", .serialized)
struct HungDatabaseTests {
    /// The bounds the service promises (README, "Reliability"): lookups 250 ms, acl.conf and
    /// /healthz 20 ms. The service runs with answer_timeout_ms 200 and acl_timeout_ms 10.
    /// Inside the parallel suite two cores are shared by dozens of tests and a client thread can
    /// wait 50 ms to be scheduled, so there the bounds are four times looser (still far below the
    /// seconds a blocked loop took); `.ci/run` runs this suite alone with
    /// SWITCHAUTH_STRICT_TIMING=1, where the promised bounds are asserted as they are.
    /// The 20 ms of acl.conf and /healthz is asserted on the service's own clock (its
    /// request-duration histogram, bucket 0.02): the test's client shares two cores with eight load
    /// threads and the service, and once in several CI runs its own wake-up added half a millisecond
    /// to a 10 ms answer (20.4 ms). Seen from the client those answers are held to 40 ms.
    static let strict = ProcessInfo.processInfo.environment["SWITCHAUTH_STRICT_TIMING"] == "1"
    static let lookupBound = strict ? 0.250 : 1.0
    static let fastBound = strict ? 0.040 : 0.080

    static func timed(_ port: UInt16, _ bytes: [UInt8]) throws -> (TestResponse, Double) {
        let t0 = DispatchTime.now().uptimeNanoseconds
        let r = try exchange(port, bytes)
        return (r, Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
    }

    @Test func hungThenBack() throws {
        let cluster = try seededCluster()
        defer { cluster.thaw(); cluster.stop() }
        var config = fixtureConfig(database: cluster.config())
        config.answerTimeoutMilliseconds = 200
        config.aclTimeoutMilliseconds = 10
        let s = try RunningService(config)
        defer { s.stop() }
        let acl = try Fixtures.bytes("configuration-acl.conf.http")
        let register = try Fixtures.bytes("directory-sip_auth-register-udp-ok.http")
        let call = try Fixtures.bytes("dialplan-after-acl-auth.http")
        let healthz = Array("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n".utf8)
        let goodACL = try exchange(s.port, acl).text
        #expect(goodACL.contains("127.0.0.2/32"))
        #expect(try exchange(s.port, register).text == FixtureReplayTests.user1001)
        #expect(try exchange(s.port, call).text.contains("transfer"))

        // Eight clients keep asking while PostgreSQL hangs, like the switch's SIP threads.
        let port = s.port
        let stopLoad = Atomic<Bool>(false)
        let frozen = Atomic<Bool>(false)
        let slowestMicros = Atomic<Int>(0), answered = Atomic<Int>(0), grants = Atomic<Int>(0)
        let loadDone = DispatchGroup()
        for t in 0..<8 {
            loadDone.enter()
            Thread {
                let body = t % 2 == 0 ? register : call
                let end = Date().addingTimeInterval(20)
                while !stopLoad.load(ordering: .relaxed) && Date() < end {
                    let wasFrozen = frozen.load(ordering: .acquiring)
                    guard let (r, seconds) = try? Self.timed(port, body) else { continue }
                    answered.wrappingAdd(1, ordering: .relaxed)
                    if wasFrozen && frozen.load(ordering: .acquiring) {
                        let us = Int(seconds * 1e6)
                        if us > slowestMicros.load(ordering: .relaxed) { slowestMicros.store(us, ordering: .relaxed) }
                        if r.text.contains("<user id=") || r.text.contains("transfer") { grants.wrappingAdd(1, ordering: .relaxed) }
                    }
                }
                loadDone.leave()
            }.start()
        }
        Thread.sleep(forTimeInterval: 0.2)
        cluster.freeze()
        frozen.store(true, ordering: .releasing)
        let frozeAt = Date()
        var slowestACL = 0.0, slowestHealth = 0.0, unhealthyAfter: Double?
        while Date().timeIntervalSince(frozeAt) < 2.0 {
            let (a, ta) = try Self.timed(s.port, acl)
            #expect(a.status == 200 && a.text == goodACL, "acl.conf from the last known good list")
            slowestACL = max(slowestACL, ta)
            let (h, th) = try Self.timed(s.port, healthz)
            slowestHealth = max(slowestHealth, th)
            if h.status == 503 && unhealthyAfter == nil { unhealthyAfter = Date().timeIntervalSince(frozeAt) }
            let (r, tr) = try Self.timed(s.port, register)
            #expect(r.status == 200 && r.text == FixtureReplayTests.domainOnly, "no user while the database hangs")
            #expect(tr < Self.lookupBound, "directory answer within the bound (took \(tr) s)")
            let (d, td) = try Self.timed(s.port, call)
            #expect(d.text.contains(#"data="503 Service Unavailable""#) && !d.text.contains("transfer"))
            #expect(td < Self.lookupBound, "dialplan answer within the bound (took \(td) s)")
            Thread.sleep(forTimeInterval: 0.02)
        }
        #expect(slowestACL < Self.fastBound, "acl.conf seen from the client while PostgreSQL hangs (slowest \(slowestACL) s)")
        #expect(slowestHealth < Self.fastBound, "/healthz seen from the client (slowest \(slowestHealth) s)")
        #expect(unhealthyAfter != nil && unhealthyAfter! < 1.0, "/healthz says unhealthy soon after the hang (\(unhealthyAfter ?? -1) s)")
        // Answers sent by the loop at their deadline are logged and counted like any decision.
        let metrics = try exchange(s.port, Array("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".utf8)).text
        func value(_ prefix: String) -> Double {
            metrics.split(separator: "\n").first { $0.hasPrefix(prefix) }.flatMap { Double($0.split(separator: " ").last ?? "") } ?? 0
        }
        // The promise on the service's clock: every acl.conf (the only configuration request here)
        // and /healthz answer within 20 ms, hang or not (in the parallel suite within 100 ms).
        let bucket = Self.strict ? "0.02" : "0.1"
        for section in ["configuration", "healthz"] {
            let all = value("switchauth_request_duration_seconds_count{section=\"\(section)\"}")
            let within = value("switchauth_request_duration_seconds_bucket{section=\"\(section)\",le=\"\(bucket)\"}")
            #expect(all >= 5 && within == all, "\(section): \(Int(all - within)) of \(Int(all)) answers over \(bucket) s on the service's clock")
        }
        let fallbacks = value("switchauth_lookups_deadline_fallbacks ")
        #expect(fallbacks > 0, "the hang was met by deadline fallbacks before the circuit opened")
        #expect(value(#"switchauth_requests_total{section="directory",outcome="database_unavailable"}"#)
                + value(#"switchauth_requests_total{section="dialplan",outcome="database_unavailable"}"#)
                + value(#"switchauth_requests_total{section="configuration",outcome="database_unavailable"}"#) >= fallbacks)
        let duringHang = answered.load(ordering: .relaxed)
        #expect(duringHang > 40, "the loops kept answering during the hang (\(duringHang) answers)")

        frozen.store(false, ordering: .releasing)
        cluster.thaw()
        let back = Date()
        #expect(waitUntil(seconds: 3) { (try? exchange(s.port, register).text) == FixtureReplayTests.user1001 })
        #expect(Date().timeIntervalSince(back) < 1.0, "correct answers within 1 s of the database's return")
        #expect(try exchange(s.port, call).text.contains("transfer"))
        #expect(try exchange(s.port, healthz).status == 200)
        stopLoad.store(true, ordering: .relaxed)
        loadDone.wait()
        let slowest = Double(slowestMicros.load(ordering: .relaxed)) / 1e6
        #expect(slowest < Self.lookupBound, "every loaded answer during the hang within the bound (slowest \(slowest) s)")
        #expect(grants.load(ordering: .relaxed) == 0, "no grant the database did not just confirm")
    }

    /// A database address that accepts TCP connections and never answers (a black-holed host).
    @Test func unreachableFromTheStart() throws {
        let listener = try TCPSocket.listen(host: "127.0.0.1", port: 0, backlog: 64)
        defer { listener.close() }
        let port = listener.localPort

        var config = fixtureConfig(database: ConnectionConfig(parameters: [
            .init("host", "127.0.0.1"), .init("port", String(port)), .init("user", "postgres"), .init("dbname", "switchauth")]))
        config.connectTimeoutMilliseconds = 150
        config.probeTimeoutMilliseconds = 100
        let cacheFile = NSTemporaryDirectory() + "switchauth-acl-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).xml"
        let cached = #"<document type="freeswitch/xml"><section name="configuration"><configuration name="acl.conf" description="Network Lists"><network-lists><list name="ipauth" default="deny"><node type="allow" cidr="192.0.2.1/32"/></list></network-lists></configuration></section></document>"#
        try cached.write(toFile: cacheFile, atomically: true, encoding: .utf8)
        defer { unlink(cacheFile) }
        config.aclCacheFile = cacheFile
        let s = try RunningService(config)
        defer { s.stop() }
        for _ in 0..<5 {
            let (r, tr) = try Self.timed(s.port, try Fixtures.bytes("directory-sip_auth-register-udp-ok.http"))
            #expect(r.text == FixtureReplayTests.domainOnly && tr < Self.lookupBound)
            let (d, td) = try Self.timed(s.port, try Fixtures.bytes("dialplan-after-acl-auth.http"))
            #expect(d.text.contains(#"data="503 Service Unavailable""#) && td < Self.lookupBound)
            let (a, ta) = try Self.timed(s.port, try Fixtures.bytes("configuration-acl.conf.http"))
            #expect(a.status == 200 && a.text == cached && ta < Self.fastBound, "acl.conf from the file's last known good list")
            let (h, th) = try Self.timed(s.port, Array("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
            #expect(h.status == 503 && th < Self.fastBound)
        }
    }
}
