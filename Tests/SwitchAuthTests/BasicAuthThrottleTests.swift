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
        // Issue 20: the right secret is never refused, not even from a throttled source (a wrong
        // password sent from the switch's own address locked the switch out for the minute).
        #expect(try post(s.port, body, extraHeaders: Self.auth("fs:s3cret"), source: "127.0.0.8").status == 200)
        #expect(try post(s.port, body, extraHeaders: Self.auth("fs:guess"), source: "127.0.0.8").status == 429)
        // Other sources are unaffected.
        #expect(try post(s.port, body, extraHeaders: Self.auth("fs:s3cret"), source: "127.0.0.9").status == 200)
        let m = try exchange(s.port, Array("GET /metrics HTTP/1.1\r\nHost: x\r\n\(Self.auth("fs:s3cret"))\r\n".utf8), source: "127.0.0.9").text
        #expect(m.contains(#"switchauth_basic_auth_refusals_total{cause="wrong"} 10"#), "\(m)")
        #expect(m.contains(#"switchauth_basic_auth_refusals_total{cause="throttled"} 21"#))
    }

    /// Issue 20: the switch keeps being answered while a local process sends wrong credentials from
    /// the switch's own address all along.
    @Test func wrongCredentialsFromTheSwitchsAddressDoNotLockTheSwitchOut() throws {
        let (s, _) = try ServerTests.service { $0.basicAuthUser = "fs"; $0.basicAuthPassword = "s3cret-0123456789abcdef" }
        defer { s.stop() }
        let body = "hostname=vm&section=configuration&tag_name=configuration&key_name=name&key_value=acl.conf"
        var switchAnswered = 0, attackerRefused = 0
        for i in 0..<100 {
            if try post(s.port, body, extraHeaders: Self.auth("fs:old-password-\(i)")).status != 200 { attackerRefused += 1 }
            if try post(s.port, body, extraHeaders: Self.auth("fs:s3cret-0123456789abcdef")).status == 200 { switchAnswered += 1 }
        }
        #expect(switchAnswered == 100)
        #expect(attackerRefused == 100)
    }

    /// Issue 20: after `gateway-secret --rotate`, the previous secret is accepted until its stated
    /// end, so that switches not yet reloaded lose no lookup; after it, it is refused.
    @Test func previousSecretIsAcceptedUntilItsEnd() throws {
        let body = "hostname=vm&section=configuration&tag_name=configuration&key_name=name&key_value=acl.conf"
        let (s, _) = try ServerTests.service {
            $0.basicAuthUser = "fs"; $0.basicAuthPassword = "new-secret-0123456789"
            $0.basicAuthPrevious = "fs:old-secret-0123456789"
            $0.basicAuthPreviousUntil = Date().timeIntervalSince1970 + 3_600
        }
        defer { s.stop() }
        #expect(try post(s.port, body, extraHeaders: Self.auth("fs:new-secret-0123456789")).status == 200)
        #expect(try post(s.port, body, extraHeaders: Self.auth("fs:old-secret-0123456789")).status == 200)
        #expect(try post(s.port, body, extraHeaders: Self.auth("fs:other-secret-012345")).status == 401)

        let (ended, _) = try ServerTests.service {
            $0.basicAuthUser = "fs"; $0.basicAuthPassword = "new-secret-0123456789"
            $0.basicAuthPrevious = "fs:old-secret-0123456789"
            $0.basicAuthPreviousUntil = Date().timeIntervalSince1970 - 1
        }
        defer { ended.stop() }
        #expect(try post(ended.port, body, extraHeaders: Self.auth("fs:old-secret-0123456789")).status == 401)
        #expect(try post(ended.port, body, extraHeaders: Self.auth("fs:new-secret-0123456789")).status == 200)
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

    /// Issue 20: refusals write one line per interval, however many sources rotate.
    @Test func refusalLinesAreLimitedPerInterval() {
        var l = LogLineLimiter(intervalSeconds: 10)
        #expect(l.admit(now: 0) == 0, "the first refusal is logged at once")
        for i in 1...500 { #expect(l.admit(now: UInt64(i) * 1_000_000) == nil) }
        #expect(l.admit(now: 10 * Self.s) == 500, "the next line says how many were not logged")
        #expect(l.admit(now: 10 * Self.s + 1) == nil)
        #expect(l.admit(now: 25 * Self.s) == 1)
    }

    @Test func sourcesAreIPv4AddressesAndIPv6_64s() {
        #expect(BasicAuthThrottle.source(peer: "127.0.0.8") == "127.0.0.8")
        #expect(BasicAuthThrottle.source(peer: "2001:db8:1:2:aaaa::1") == "2001:db8:1:2::/64")
        #expect(BasicAuthThrottle.source(peer: "::ffff:192.0.2.1") == "192.0.2.1")
    }
}
