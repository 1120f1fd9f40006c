import Foundation
import TestSupport
import SwitchAuthService
import Testing

/// Issue 13 item 6: wrong basic-auth passwords are throttled per source.
@Suite("basic auth throttling")
struct BasicAuthThrottleHTTPTests {
    static func auth(_ credentials: String) -> String {
        "Authorization: Basic \(Data(credentials.utf8).base64EncodedString())\r\n"
    }

    @Test func wrongPasswordsAreThrottledPerSource() throws {
        let (s, _) = try ServerTests.service { $0.basicAuthUser = "fs"; $0.basicAuthPassword = "s3cret" }
        defer { s.stop() }
        let body = "hostname=vm&section=configuration&tag_name=configuration&key_name=name&key_value=acl.conf"
        var statuses: [Int: Int] = [:]
        for i in 0..<30 {
            let r = try post(s.port, body, extraHeaders: Self.auth("fs:guess\(i)"), source: "127.0.0.8")
            statuses[r.status, default: 0] += 1
        }
        #expect(statuses[401] == 10, "\(statuses)")
        #expect(statuses[429] == 20, "\(statuses)")
        // Throttled: the right password from that source is not checked either (guessing is bounded).
        #expect(try post(s.port, body, extraHeaders: Self.auth("fs:s3cret"), source: "127.0.0.8").status == 429)
        // Other sources are unaffected.
        #expect(try post(s.port, body, extraHeaders: Self.auth("fs:s3cret"), source: "127.0.0.9").status == 200)
        let m = try exchange(s.port, Array("GET /metrics HTTP/1.1\r\nHost: x\r\n\(Self.auth("fs:s3cret"))\r\n".utf8), source: "127.0.0.9").text
        #expect(m.contains(#"switchauth_basic_auth_refusals_total{cause="wrong"} 10"#), "\(m)")
        #expect(m.contains(#"switchauth_basic_auth_refusals_total{cause="throttled"} 21"#))
    }
}

@Suite("basic auth throttle (pure)")
struct BasicAuthThrottleTests {
    static let s: UInt64 = 1_000_000_000

    @Test func throttlesAfterTheBudgetUntilTheWindowEnds() {
        var t = BasicAuthThrottle(policy: .init(maxFailures: 3, windowSeconds: 60, maxSources: 100))
        for i in 0..<3 {
            #expect(t.verdict(source: "a", now: UInt64(i) * Self.s) == .check)
            t.recordFailure(source: "a", now: UInt64(i) * Self.s)
        }
        #expect(t.verdict(source: "a", now: 3 * Self.s) == .throttled(retryAfterSeconds: 57))
        #expect(t.verdict(source: "b", now: 3 * Self.s) == .check, "per source")
        #expect(t.verdict(source: "a", now: 60 * Self.s) == .check, "the window ended")
        t.recordFailure(source: "a", now: 60 * Self.s)
        #expect(t.verdict(source: "a", now: 61 * Self.s) == .check, "a new window counts from one")
    }

    /// The analogue of mutation `FailureRecorder.swift:39` (issue 13 item 10): the table of sources
    /// is bounded, so rotating sources cannot exhaust memory.
    @Test func memoryIsBounded() {
        var t = BasicAuthThrottle(policy: .init(maxFailures: 3, windowSeconds: 60, maxSources: 50))
        for i in 0..<10_000 { t.recordFailure(source: "10.0.\(i / 256).\(i % 256)", now: UInt64(i)) }
        #expect(t.sourceCount == 50)
        // The newest sources are kept.
        for _ in 0..<2 { t.recordFailure(source: "10.0.39.15", now: 10_001) }
        #expect(t.verdict(source: "10.0.39.15", now: 10_002) == .throttled(retryAfterSeconds: 60))
    }

    @Test func sourcesAreIPv4AddressesAndIPv6_64s() {
        #expect(BasicAuthThrottle.source(peer: "127.0.0.8") == "127.0.0.8")
        #expect(BasicAuthThrottle.source(peer: "2001:db8:1:2:aaaa::1") == "2001:db8:1:2::/64")
        #expect(BasicAuthThrottle.source(peer: "::ffff:192.0.2.1") == "192.0.2.1")
    }
}
