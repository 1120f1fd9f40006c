import Foundation
import TestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// 1,000 connections that send half a request or nothing: each is cut at the deadline, while normal
/// requests keep being answered.
@Suite("slow and idle clients")
struct SlowClientTests {
    @Test func thousandSlowConnectionsAreCutWhileOthersAreServed() throws {
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        if limit.rlim_cur < 4096 {
            limit.rlim_cur = min(limit.rlim_max, 4096)
            setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        }
        let (s, _) = try ServerTests.service { $0.server.requestTimeoutMilliseconds = 1_000 }
        defer { s.stop() }
        let acl = try Fixtures.bytes("configuration-acl.conf.http")
        var slow: [RawClient] = []
        for i in 0..<1_000 {
            let c = try RawClient(port: s.port)
            if i % 2 == 0 { c.send("POST /fs HTTP/1.1\r\nHost: x\r\nContent-Length: 89\r\n\r\nhostname=") } // half a request
            slow.append(c) // the odd ones send nothing
        }
        // Normal requests meanwhile.
        var latencies: [Double] = []
        for _ in 0..<200 {
            let t0 = Date()
            let r = try exchange(s.port, acl)
            latencies.append(Date().timeIntervalSince(t0))
            #expect(r.status == 200)
        }
        latencies.sort()
        let p99 = latencies[Int(Double(latencies.count) * 0.99)]
        print("normal requests beside 1,000 slow connections: p50 \(String(format: "%.2f", latencies[100] * 1000)) ms, p99 \(String(format: "%.2f", p99 * 1000)) ms")
        #expect(p99 < 1.0, "a slow client must never block others")
        // Every slow connection is closed by the server at (about) the deadline.
        let started = Date()
        var closed = 0
        for c in slow {
            c.setReceiveTimeout(seconds: 10)
            if c.isClosedByPeer() { closed += 1 }
        }
        #expect(closed == slow.count)
        #expect(Date().timeIntervalSince(started) < 10)
        // The server's count follows its own closes, which may trail the clients' view by a sweep.
        #expect(waitUntil(seconds: 3) { s.service.server.counters.open.value <= 1 })
    }
}
