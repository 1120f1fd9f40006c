import Decisions
import FormEncoding
import Foundation
import HTTPServer
import Store
import Testing

// MARK: Digest vectors

@Suite("digest authentication")
struct DigestTests {
    /// RFC 2617 §3.5: Mufasa / Circle Of Life, qop=auth.
    static let rfc2617 = DigestCredentials(
        username: "Mufasa", realm: "testrealm@host.com", nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093",
        uri: "/dir/index.html", method: "GET", qop: "auth", cnonce: "0a4f113b", nc: "00000001",
        response: "6629fae49393a05397450978507c4ef1")

    /// RFC 7616 §3.9.1: SHA-256, qop=auth.
    static let rfc7616 = DigestCredentials(
        username: "Mufasa", realm: "http-auth@example.org", nonce: "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
        uri: "/dir/index.html", method: "GET", qop: "auth", cnonce: "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
        nc: "00000001", response: "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1")

    @Test func rfc2617VectorVerifies() {
        let ha1 = DigestAlgorithm.md5.ha1(username: "Mufasa", realm: "testrealm@host.com", password: "Circle Of Life")
        #expect(Self.rfc2617.algorithm == .md5)
        #expect(Self.rfc2617.verify(ha1: ha1, algorithm: .md5))
    }

    @Test func rfc7616SHA256VectorVerifies() {
        let ha1 = DigestAlgorithm.sha256.ha1(username: "Mufasa", realm: "http-auth@example.org", password: "Circle of Life")
        #expect(Self.rfc7616.algorithm == .sha256)
        #expect(Self.rfc7616.verify(ha1: ha1, algorithm: .sha256))
    }

    /// The vector captured from FreeSWITCH (fixtures README).
    @Test func freeSwitchFixtureVectorVerifies() {
        let c = DigestCredentials(username: "1001", realm: "127.0.0.1", nonce: "df2600ad-33a9-4aeb-a2e8-522359a98b67",
                                  uri: "sip:127.0.0.1:5080", method: "REGISTER", qop: "auth", cnonce: "6b8b4567",
                                  nc: "00000001", response: "1a528ffb5f7260649cd3eac828b2def1")
        #expect(c.verify(ha1: DigestAlgorithm.md5.ha1(username: "1001", realm: "127.0.0.1", password: "secret1001"), algorithm: .md5))
        #expect(!c.verify(ha1: DigestAlgorithm.md5.ha1(username: "1001", realm: "127.0.0.1", password: "secret1002"), algorithm: .md5))
    }

    @Test func noQopForm() {
        let ha1 = DigestAlgorithm.md5.ha1(username: "u", realm: "r", password: "p")
        let ha2 = DigestAlgorithm.md5.hash("INVITE:sip:r")
        let resp = DigestAlgorithm.md5.hash("\(ha1):n:\(ha2)")
        let c = DigestCredentials(username: "u", realm: "r", nonce: "n", uri: "sip:r", method: "INVITE", qop: nil, cnonce: nil, nc: nil, response: resp.uppercased())
        #expect(c.verify(ha1: ha1, algorithm: .md5), "compared case-insensitively, as FreeSWITCH does")
    }

    /// A one-character change to any input fails.
    @Test(arguments: 0..<8)
    func oneCharacterChangeFails(field: Int) {
        var c = Self.rfc2617
        func flip(_ s: String) -> String { s.isEmpty ? "x" : String(s.dropLast()) + (s.last == "a" ? "b" : "a") }
        switch field {
        case 0: c.response = flip(c.response)
        case 1: c.nonce = flip(c.nonce)
        case 2: c.uri = flip(c.uri)
        case 3: c.method = "POST"
        case 4: c.cnonce = flip(c.cnonce!)
        case 5: c.nc = "00000002"
        case 6: c.qop = "auth-int"
        default: c.qop = nil
        }
        let ha1 = DigestAlgorithm.md5.ha1(username: "Mufasa", realm: "testrealm@host.com", password: "Circle Of Life")
        #expect(!c.verify(ha1: ha1, algorithm: .md5))
        #expect(!Self.rfc2617.verify(ha1: DigestAlgorithm.md5.ha1(username: "Mufasa", realm: "testrealm@host.com", password: "Circle Of Lifd"), algorithm: .md5))
    }
}

// MARK: IP networks

/// The basic-auth header and the digests are compared in constant time, through pointers when
/// both sides are contiguous and by iterators otherwise: the same answers either way.
@Suite("constant-time comparison")
struct ConstantTimeTests {
    static let cases: [(String, String, Bool)] = [
        ("", "", true), ("a", "", false), ("", "a", false), ("Basic Zm9vOmJhcg==", "Basic Zm9vOmJhcg==", true),
        ("Basic Zm9vOmJhcg==", "Basic Zm9vOmJhcg=", false), ("Basic Zm9vOmJhcg=", "Basic Zm9vOmJhcg==", false),
        ("Basic Zm9vOmJhcg==", "Basic Zm9vOmJhcG==", false), ("x\u{0}", "x", false), ("x", "x\u{0}", false), ("é", "é", true),
    ]

    @Test func contiguousAndIteratedAgree() {
        for (a, b, equal) in Self.cases {
            #expect(Hashing.constantTimeEquals(a.utf8, Array(b.utf8)) == equal, "\(a) / \(b)")
            #expect(Hashing.constantTimeEquals(Array(a.utf8), Array(b.utf8)) == equal, "\(a) / \(b)")
            // Not contiguous: a lazy view walks the iterator path.
            #expect(Hashing.constantTimeEquals(a.utf8.lazy.map { $0 }, b.utf8.lazy.map { $0 }) == equal, "\(a) / \(b)")
        }
    }
}

/// A field's value is refused for a control character or a byte that is not UTF-8 wherever it
/// stands (the printable-ASCII test reads eight bytes at a time, then the tail).
@Suite("field values")
struct FieldValueTests {
    @Test func everyByteAtEveryOffset() throws {
        for b in 0...255 {
            for offset in 0..<19 {
                var value = Array(repeating: "a", count: 19)
                value[offset] = String(format: "%%%02X", b)
                let request = try XMLCurlRequest(fields: FormFields(encoded: Array(("section=directory&x=" + value.joined()).utf8)))
                let problem: String?
                do {
                    _ = try request.value("x")
                    problem = nil
                } catch {
                    problem = error.problem
                }
                let expected: String? = b < 0x20 || b == 0x7f ? "contains a control character" : b >= 0x80 ? "contains invalid UTF-8" : nil
                #expect(problem == expected, "byte \(b) at \(offset)")
            }
        }
        // Valid UTF-8 beyond ASCII is accepted.
        let ok = try XMLCurlRequest(fields: FormFields(encoded: Array("x=caf%C3%A9+%E2%98%8E+12345678".utf8)))
        #expect(try ok.value("x") == "café ☎ 12345678")
    }
}

@Suite("IP addresses and networks")
struct IPNetworkTests {
    @Test(arguments: [
        ("203.0.113.10", "203.0.113.10/32"), ("203.0.113.0/24", "203.0.113.0/24"), ("2001:db8::/32", "2001:db8::/32"),
        ("2001:db8::1", "2001:db8::1/128"), ("::ffff:203.0.113.10", "203.0.113.10/32"), ("0.0.0.0/0", "0.0.0.0/0"),
        ("255.255.255.255", "255.255.255.255/32"), ("10.0.0.0/8", "10.0.0.0/8"), ("100.20.3.0/24", "100.20.3.0/24"),
    ])
    func parses(text: String, canonical: String) {
        #expect(IPNetwork(text)?.description == canonical)
    }

    @Test(arguments: ["203.0.113.300", "10.0.0.1/24", "203.0.113.10/33", "010.0.0.1", "1.2.3", "", "abc", "2001:db8::1/129", "1.2.3.4/", "1.2.3.4/ 8", "fe80::1%eth0", "1.2.3.4/-1",
                          "00.1.2.3", "1.2.3.4.", ".1.2.3", "1..2.3", "1.2.3.4.5", "256.0.0.1", "1.2.3.0255", "+1.2.3.4", " 1.2.3.4",
                          "1.2.3.4 ", "\u{0661}.2.3.4", "1.2.3.\u{FF14}", "1.2.3.4/\u{0661}", "1.2.3.4/08x"])
    func refuses(text: String) {
        #expect(IPNetwork(text) == nil)
    }

    /// The dotted quad written without inet_ntop is inet_ntop's, and parses back to the same bytes.
    @Test func ipv4TextMatchesInetNtop() throws {
        var rng = SystemRandomNumberGenerator()
        let fixed: [UInt32] = [0, 1, 9, 10, 99, 100, 255, 256, 0x0a00_0001, 0xffff_ffff, 0x7f00_0001, 0xc0a8_6401, 0x0102_0304, 0x640a_0a64]
        for a in fixed + (0..<2_000).map({ _ in UInt32.random(in: .min ... .max, using: &rng) }) {
            var n = in_addr(s_addr: a.bigEndian)
            var buffer = [CChar](repeating: 0, count: 16)
            inet_ntop(AF_INET, &n, &buffer, 16)
            let expected = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            let ip = IPAddress(bytes: [UInt8(a >> 24), UInt8(truncatingIfNeeded: a >> 16), UInt8(truncatingIfNeeded: a >> 8), UInt8(truncatingIfNeeded: a)])
            #expect(ip.description == expected)
            #expect(IPAddress(expected) == ip)
        }
    }

    @Test func containment() throws {
        let n = try #require(IPNetwork("203.0.113.0/25"))
        #expect(n.contains(try #require(IPAddress("203.0.113.127"))))
        #expect(!n.contains(try #require(IPAddress("203.0.113.128"))))
        #expect(!n.contains(try #require(IPAddress("2001:db8::1"))))
        let v6 = try #require(IPNetwork("2001:db8:abcd::/48"))
        #expect(v6.contains(try #require(IPAddress("2001:db8:abcd:12::1"))))
        #expect(!v6.contains(try #require(IPAddress("2001:db8:abce::1"))))
        #expect(try #require(IPNetwork("0.0.0.0/0")).contains(try #require(IPAddress("198.51.100.7"))))
    }

    /// The two-word address against the byte-wise rules it replaced (bytes round trip, the mask of
    /// every length, containment, order), over random addresses of both families.
    @Test func wordsAgreeWithBytes() throws {
        func maskedBytes(_ b: [UInt8], _ length: Int) -> [UInt8] {
            b.enumerated().map { i, byte in
                let kept = max(0, min(8, length - i * 8))
                return byte & (kept == 0 ? 0 : UInt8(truncatingIfNeeded: 0xff << (8 - kept)))
            }
        }
        var rng = SystemRandomNumberGenerator()
        for round in 0..<2_000 {
            let count = round % 2 == 0 ? 4 : 16
            var b = (0..<count).map { _ in UInt8.random(in: 0...255, using: &rng) }
            if count == 16 && b[0..<12].elementsEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]) { b[0] = 0x20 }
            let ip = IPAddress(bytes: b)
            #expect(ip.bytes == b && ip.isIPv4 == (count == 4))
            #expect(IPAddress(ip.description) == ip, "\(ip)")
            let length = Int.random(in: 0...(count * 8), using: &rng)
            #expect(ip.masked(to: length).bytes == maskedBytes(b, length), "\(ip)/\(length)")
            let network = try #require(IPNetwork(address: ip.masked(to: length), prefixLength: length))
            #expect(network.contains(ip))
            var other = b
            if length > 0 {
                let bit = Int.random(in: 0..<length, using: &rng)
                other[bit / 8] ^= 0x80 >> UInt8(bit % 8)
                #expect(!network.contains(IPAddress(bytes: other)), "\(IPAddress(bytes: other)) in \(network)")
            }
            let peer = IPAddress(bytes: (0..<count).map { _ in UInt8.random(in: 0...255, using: &rng) })
            #expect((ip < peer) == b.lexicographicallyPrecedes(peer.bytes) || ip == peer)
        }
        let v4 = try #require(IPAddress("203.0.113.10")), v6 = try #require(IPAddress("2001:db8::1"))
        #expect(v4 < v6 && !(v6 < v4), "IPv4 sorts first")
        #expect(IPAddress("::ffff:203.0.113.10") == v4, "a mapped address is folded")
        #expect(IPNetwork(address: v4, prefixLength: 24) == nil, "host bits set")
        #expect(LockoutKeys.source(try #require(IPAddress("2001:db8:1:2:3:4:5:6"))) == "2001:db8:1:2::/64")
    }
}

// MARK: Dialplan decision

func account(_ id: Int64, _ number: String, kind: AccountKind = .customer, status: AccountStatus = .active,
             billing: Billing = .prepaid, balance: Decimal = 10, credit: Decimal = 0, channels: Int = 0, expired: Bool = false) -> AccountFacts {
    AccountFacts(id: id, number: number, name: number, kind: kind, status: status, billing: billing, balance: balance,
                 creditLimit: credit, maxChannels: channels, expired: expired)
}

func setting(_ id: Int64, _ network: String, _ prefix: String, _ acct: AccountFacts, enabled: Bool = true, strip: Bool = false) -> IPSettingFacts {
    IPSettingFacts(id: id, name: "s\(id)", network: IPNetwork(network)!, prefix: prefix, stripPrefix: strip, enabled: enabled, account: acct)
}

@Suite("dialplan decision (pure)")
struct DialplanDecisionTests {
    static let pbx1 = account(1, "PBX1")
    static let pbx12 = account(2, "PBX12")
    static let seed = [setting(10, "203.0.113.10", "91", pbx1), setting(11, "203.0.113.10", "92", pbx12)]

    struct Row: Sendable, CustomTestStringConvertible {
        var name: String
        var source: String
        var destination: String
        var candidates: [IPSettingFacts]
        var expectReason: Reason
        var expectAccount: String?
        var expectSIP: Int?
        var expectDestination: String?
        var testDescription: String { name }
    }

    static let rows: [Row] = [
        Row(name: "seed: PBX1 prefix 91", source: "203.0.113.10", destination: "9112345", candidates: seed, expectReason: .ok, expectAccount: "PBX1"),
        Row(name: "seed: PBX12 prefix 92", source: "203.0.113.10", destination: "9212345", candidates: seed, expectReason: .ok, expectAccount: "PBX12"),
        Row(name: "seed: other prefix -> 403", source: "203.0.113.10", destination: "9312345", candidates: seed, expectReason: .noIPMatch, expectSIP: 403),
        Row(name: "seed: unknown IP -> 403", source: "203.0.113.11", destination: "9112345", candidates: seed, expectReason: .noIPMatch, expectSIP: 403),
        Row(name: "no prefix = any destination", source: "198.51.100.7", destination: "4420", candidates: [setting(1, "198.51.100.7", "", pbx1)], expectReason: .ok, expectAccount: "PBX1"),
        Row(name: "CIDR contains", source: "198.51.100.77", destination: "1", candidates: [setting(1, "198.51.100.0/24", "", pbx1)], expectReason: .ok, expectAccount: "PBX1"),
        Row(name: "CIDR does not contain", source: "198.51.101.77", destination: "1", candidates: [setting(1, "198.51.100.0/24", "", pbx1)], expectReason: .noIPMatch, expectSIP: 403),
        Row(name: "IPv6", source: "2001:db8::5", destination: "91", candidates: [setting(1, "2001:db8::/64", "9", pbx1)], expectReason: .ok, expectAccount: "PBX1"),
        Row(name: "IPv4-mapped source", source: "::ffff:203.0.113.10", destination: "9112345", candidates: seed, expectReason: .ok, expectAccount: "PBX1"),
        Row(name: "longest prefix wins over specific network", source: "10.1.1.1", destination: "9123",
            candidates: [setting(1, "10.1.1.1", "9", pbx1), setting(2, "10.0.0.0/8", "91", pbx12)], expectReason: .ok, expectAccount: "PBX12"),
        Row(name: "equal prefixes: most specific network wins", source: "10.1.1.1", destination: "9123",
            candidates: [setting(1, "10.0.0.0/8", "91", pbx1), setting(2, "10.1.1.0/24", "91", pbx12)], expectReason: .ok, expectAccount: "PBX12"),
        Row(name: "equal prefix and network length: lowest id", source: "10.1.1.1", destination: "9123",
            candidates: [setting(7, "10.1.0.0/16", "91", pbx12), setting(3, "10.1.0.0/16", "91", pbx1)], expectReason: .ok, expectAccount: "PBX1"),
        Row(name: "disabled setting ignored", source: "203.0.113.10", destination: "9112345",
            candidates: [setting(10, "203.0.113.10", "91", pbx1, enabled: false)], expectReason: .noIPMatch, expectSIP: 403),
        Row(name: "disabled longer prefix falls back to enabled shorter", source: "203.0.113.10", destination: "9112345",
            candidates: [setting(10, "203.0.113.10", "911", pbx12, enabled: false), setting(11, "203.0.113.10", "9", pbx1)], expectReason: .ok, expectAccount: "PBX1"),
        Row(name: "suspended account -> 403", source: "1.2.3.4", destination: "1", candidates: [setting(1, "1.2.3.4", "", account(1, "S", status: .suspended))], expectReason: .accountSuspended, expectSIP: 403),
        Row(name: "closed account -> 403", source: "1.2.3.4", destination: "1", candidates: [setting(1, "1.2.3.4", "", account(1, "C", status: .closed))], expectReason: .accountClosed, expectSIP: 403),
        Row(name: "expired account -> 403", source: "1.2.3.4", destination: "1", candidates: [setting(1, "1.2.3.4", "", account(1, "E", expired: true))], expectReason: .accountExpired, expectSIP: 403),
        Row(name: "prepaid zero balance -> 402", source: "1.2.3.4", destination: "1", candidates: [setting(1, "1.2.3.4", "", account(1, "P", balance: 0))], expectReason: .insufficientBalance, expectSIP: 402),
        Row(name: "prepaid negative -> 402", source: "1.2.3.4", destination: "1", candidates: [setting(1, "1.2.3.4", "", account(1, "P", balance: -1))], expectReason: .insufficientBalance, expectSIP: 402),
        Row(name: "prepaid positive", source: "1.2.3.4", destination: "1", candidates: [setting(1, "1.2.3.4", "", account(1, "P", balance: Decimal(string: "0.01")!))], expectReason: .ok, expectAccount: "P"),
        Row(name: "postpaid within credit", source: "1.2.3.4", destination: "1", candidates: [setting(1, "1.2.3.4", "", account(1, "Q", billing: .postpaid, balance: -50, credit: 100))], expectReason: .ok, expectAccount: "Q"),
        Row(name: "postpaid at credit limit -> 402", source: "1.2.3.4", destination: "1", candidates: [setting(1, "1.2.3.4", "", account(1, "Q", billing: .postpaid, balance: -100, credit: 100))], expectReason: .insufficientBalance, expectSIP: 402),
        Row(name: "carrier not balance-gated", source: "1.2.3.4", destination: "1", candidates: [setting(1, "1.2.3.4", "", account(1, "K", kind: .carrier, balance: -1000))], expectReason: .ok, expectAccount: "K"),
        Row(name: "suspended carrier -> 403", source: "1.2.3.4", destination: "1", candidates: [setting(1, "1.2.3.4", "", account(1, "K", kind: .carrier, status: .suspended))], expectReason: .accountSuspended, expectSIP: 403),
        Row(name: "strip on", source: "203.0.113.10", destination: "9112345", candidates: [setting(1, "203.0.113.10", "91", pbx1, strip: true)], expectReason: .ok, expectAccount: "PBX1", expectDestination: "12345"),
        Row(name: "strip off", source: "203.0.113.10", destination: "9112345", candidates: [setting(1, "203.0.113.10", "91", pbx1)], expectReason: .ok, expectAccount: "PBX1", expectDestination: "9112345"),
        Row(name: "strip leaving nothing -> 404", source: "203.0.113.10", destination: "91", candidates: [setting(1, "203.0.113.10", "91", pbx1, strip: true)], expectReason: .invalidDestination, expectSIP: 404),
        Row(name: "missing source -> 403", source: "", destination: "1", candidates: seed, expectReason: .invalidSourceAddress, expectSIP: 403),
        Row(name: "garbage source -> 403", source: "203.0.113.10' OR 1=1", destination: "1", candidates: seed, expectReason: .invalidSourceAddress, expectSIP: 403),
        Row(name: "destination with expansion -> 404", source: "203.0.113.10", destination: "91${x}", candidates: seed, expectReason: .invalidDestination, expectSIP: 404),
        Row(name: "empty destination -> 404", source: "203.0.113.10", destination: "", candidates: seed, expectReason: .invalidDestination, expectSIP: 404),
    ]

    @Test(arguments: rows)
    func decide(row: Row) {
        let d = DialplanDecider.decideIP(context: "switchauth", source: row.source, destination: row.destination,
                                         candidates: row.candidates, policy: DialplanPolicy())
        #expect(d.reason == row.expectReason)
        switch d.answer {
        case .allow(let ctx, let a):
            guard let account = row.expectAccount else {
                Issue.record("allowed (account \(a.account.number)); the row expects SIP \(row.expectSIP.map(String.init) ?? "?")")
                return
            }
            #expect(ctx == "switchauth")
            #expect(a.account.number == account)
            #expect(a.routingContext == "switchauth_routing")
            if let dest = row.expectDestination { #expect(a.destination == dest) }
        case .reject(let ctx, let r):
            guard let sip = row.expectSIP else {
                Issue.record("rejected with \(r.code); the row expects account \(row.expectAccount ?? "?")")
                return
            }
            #expect(ctx == "switchauth")
            #expect(r.code == sip)
            #expect(r == SIPRejection.forReason(d.reason), "the code follows the reason")
        case .notFound:
            Issue.record("unexpected not found")
        }
    }

    @Test func ruleDoesNotDependOnRowOrder() {
        for row in Self.rows {
            let a = DialplanDecider.decideIP(context: "c", source: row.source, destination: row.destination, candidates: row.candidates, policy: DialplanPolicy())
            let b = DialplanDecider.decideIP(context: "c", source: row.source, destination: row.destination, candidates: row.candidates.reversed(), policy: DialplanPolicy())
            #expect(a == b, "\(row.name)")
        }
    }

    static func device(enabled: Bool = true, acct: AccountFacts = account(5, "1000042")) -> DeviceFacts {
        DeviceFacts(id: 9, username: "1001", realm: "voip.example.com", enabled: enabled, ha1MD5: String(repeating: "a", count: 32),
                    ha1SHA256: String(repeating: "b", count: 64), callerIDName: "Desk ${x}", callerIDNumber: "15550101", account: acct)
    }

    @Test(arguments: [
        (device(), Reason.ok, 0),
        (device(enabled: false), .deviceDisabled, 403),
        (device(acct: account(5, "X", status: .suspended)), .accountSuspended, 403),
        (device(acct: account(5, "X", expired: true)), .accountExpired, 403),
        (device(acct: account(5, "X", balance: 0)), .insufficientBalance, 402),
    ])
    func digestPath(device: DeviceFacts, reason: Reason, sip: Int) {
        let d = DialplanDecider.decideDigest(context: "switchauth", destination: "15551234", device: device, policy: DialplanPolicy())
        #expect(d.reason == reason)
        if case .reject(_, let r) = d.answer { #expect(r.code == sip) }
    }

    /// The decision's `detail` is the log line's: pinned, field by field, for both paths (IPv4,
    /// IPv6 and an escaped-looking name are text only).
    @Test func detailsAsTheLogLineShowsThem() {
        let ip = DialplanDecider.decideIP(context: "c", source: "203.0.113.10", destination: "9112345", candidates: Self.seed, policy: DialplanPolicy())
        #expect(ip.detail == "ip_setting=10 name=s10 network=203.0.113.10/32 prefix=91 account=PBX1")
        let v6 = DialplanDecider.decideIP(context: "c", source: "2001:db8::5", destination: "91",
                                          candidates: [setting(3, "2001:db8::/64", "9", Self.pbx1)], policy: DialplanPolicy())
        #expect(v6.detail == "ip_setting=3 name=s3 network=2001:db8::/64 prefix=9 account=PBX1")
        let digest = DialplanDecider.decideDigest(context: "switchauth", destination: "15551234", device: Self.device(), policy: DialplanPolicy())
        #expect(digest.detail == "device=9 user=1001@voip.example.com account=1000042")
    }

    @Test func digestPathUnknownDevice() {
        let d = DialplanDecider.decideDigest(context: "switchauth", destination: "1", device: nil, policy: DialplanPolicy())
        #expect(d.reason == .unknownUser)
    }

    static func request(_ pairs: [(String, String)]) throws -> XMLCurlRequest {
        try XMLCurlRequest(fields: FormFields([("hostname", "h"), ("section", "dialplan"), ("tag_name", ""), ("key_name", ""), ("key_value", "")] + pairs.map { (name: $0.0, value: $0.1) }))
    }

    @Test func classifyPaths() throws {
        let p = DialplanPolicy()
        #expect(try DialplanDecider.classify(Self.request([("Hunt-Context", "public")]), policy: p) == .notOwned(context: "public"))
        #expect(try DialplanDecider.classify(Self.request([("Hunt-Context", "switchauth"), ("Hunt-Destination-Number", "91"),
                                                            ("variable_sip_acl_authed_by", "switchauth_ip"), ("variable_sip_network_ip", "203.0.113.10")]), policy: p)
                == .ip(context: "switchauth", source: "203.0.113.10", destination: "91"))
        // A spoofable header is never used as the source.
        #expect(try DialplanDecider.classify(Self.request([("Hunt-Context", "switchauth"), ("Hunt-Destination-Number", "91"),
                                                            ("variable_sofia_profile_name", "switchauth_ip"), ("variable_sip_h_P-Accountcode", "1001")]), policy: p)
                == .ip(context: "switchauth", source: "", destination: "91"))
        #expect(try DialplanDecider.classify(Self.request([("Hunt-Context", "switchauth"), ("Hunt-Destination-Number", "5"), ("variable_sip_authorized", "true"),
                                                            ("variable_user_name", "1001"), ("variable_domain_name", "voip.example.com")]), policy: p)
                == .digest(context: "switchauth", user: "1001", domain: "voip.example.com", destination: "5"))
        #expect(try DialplanDecider.classify(Self.request([("Hunt-Context", "switchauth"), ("Hunt-Destination-Number", "5")]), policy: p)
                == .unauthenticated(context: "switchauth", destination: "5"))
        #expect(throws: HostileRequest.self) {
            try DialplanDecider.classify(Self.request([("Hunt-Context", "switchauth"), ("variable_sip_acl_authed_by", "switchauth_ip"),
                                                        ("variable_sip_network_ip", "1.1.1.1"), ("variable_sip_network_ip", "203.0.113.10")]), policy: p)
        }
    }
}

// MARK: Directory decision

@Suite("directory decision (pure)")
struct DirectoryDecisionTests {
    static let ha1 = DigestAlgorithm.md5.ha1(username: "1001", realm: "voip.example.com", password: "right-password")
    static let ha1sha = DigestAlgorithm.sha256.ha1(username: "1001", realm: "voip.example.com", password: "right-password")

    static func device(enabled: Bool = true, status: AccountStatus = .active, expired: Bool = false, realm: String = "voip.example.com") -> DeviceFacts {
        DeviceFacts(id: 1, username: "1001", realm: realm, enabled: enabled,
                    ha1MD5: realm == "voip.example.com" ? ha1 : DigestAlgorithm.md5.ha1(username: "1001", realm: realm, password: "right-password"),
                    ha1SHA256: ha1sha,
                    account: account(4, "1000042", status: status, expired: expired))
    }

    static func credentials(password: String, algorithm: DigestAlgorithm = .md5, realm: String = "voip.example.com") -> DigestCredentials {
        let h1 = algorithm.ha1(username: "1001", realm: realm, password: password)
        let h2 = algorithm.hash("REGISTER:sip:voip.example.com")
        let r = algorithm.hash("\(h1):nonce:00000001:cn:auth:\(h2)")
        return DigestCredentials(username: "1001", realm: realm, nonce: "nonce", uri: "sip:voip.example.com", method: "REGISTER",
                                 qop: "auth", cnonce: "cn", nc: "00000001", response: r)
    }

    static func sipAuth(_ c: DigestCredentials?, domain: String = "voip.example.com", ip: String? = "198.51.100.20") -> DirectoryQuery {
        .sipAuth(SipAuthQuery(user: "1001", domain: domain, sourceIP: ip, credentials: c))
    }
    /// A success's effect: the source becomes trusted for the user.
    static let trustHere = AuthEffect.recordSuccess(source: "198.51.100.20", user: "1001@voip.example.com")

    struct Row: Sendable, CustomTestStringConvertible {
        var name: String
        var query: DirectoryQuery
        var domainKnown = true
        var device: DeviceFacts?
        var lockout = LockoutFacts.none
        var reason: Reason
        var answer: String // "user", "domain", "notfound"
        var effect: AuthEffect = .none
        /// The HA1 a granted user must carry (the algorithm the response was computed with).
        var a1: String = DirectoryDecisionTests.ha1
        var testDescription: String { name }
    }

    static let rows: [Row] = [
        Row(name: "REGISTER right password (MD5): source becomes trusted", query: sipAuth(credentials(password: "right-password")), device: device(),
            reason: .ok, answer: "user", effect: trustHere),
        Row(name: "REGISTER right password (SHA-256)", query: sipAuth(credentials(password: "right-password", algorithm: .sha256)), device: device(),
            reason: .ok, answer: "user", effect: trustHere, a1: ha1sha),
        Row(name: "success from a trusted source: no write", query: sipAuth(credentials(password: "right-password")), device: device(),
            lockout: LockoutFacts(secondsSinceSuccess: 3_600), reason: .ok, answer: "user"),
        Row(name: "success: trust older than the refresh interval is refreshed", query: sipAuth(credentials(password: "right-password")), device: device(),
            lockout: LockoutFacts(secondsSinceSuccess: 3_601), reason: .ok, answer: "user", effect: trustHere),
        Row(name: "success without a source address: nothing to trust", query: sipAuth(credentials(password: "right-password"), ip: nil), device: device(),
            reason: .ok, answer: "user"),
        Row(name: "IPv6 source counted per /64", query: sipAuth(credentials(password: "wrong"), ip: "2001:db8:1:2:3:4:5:6"), device: device(),
            reason: .digestMismatch, answer: "domain", effect: .countFailure(source: "2001:db8:1:2::/64", user: "1001@voip.example.com")),
        Row(name: "wrong password through an alias counted against the realm's user", query: sipAuth(credentials(password: "wrong", realm: "voip.example.com"), domain: "198.51.100.1"),
            device: device(), reason: .digestMismatch, answer: "domain", effect: .countFailure(source: "198.51.100.20", user: "1001@voip.example.com")),
        Row(name: "wrong password through a mixed-case domain counted against the lower-case realm", query: sipAuth(credentials(password: "wrong", realm: "VoIP.Example.COM"), domain: "VoIP.Example.COM"),
            device: device(realm: "VoIP.Example.COM"), reason: .digestMismatch, answer: "domain", effect: .countFailure(source: "198.51.100.20", user: "1001@voip.example.com")),
        Row(name: "source+user locked: refused even from a trusted source", query: sipAuth(credentials(password: "right-password")), device: device(),
            lockout: LockoutFacts(pairLocked: true, secondsSinceSuccess: 10), reason: .lockedOutSourceUser, answer: "domain"),
        Row(name: "source locked: a trusted source still works", query: sipAuth(credentials(password: "right-password")), device: device(),
            lockout: LockoutFacts(sourceLocked: true, secondsSinceSuccess: 10), reason: .ok, answer: "user"),
        Row(name: "user locked: a trusted source still works", query: sipAuth(credentials(password: "right-password")), device: device(),
            lockout: LockoutFacts(userLocked: true, secondsSinceSuccess: 10), reason: .ok, answer: "user"),
        Row(name: "user locked: trust that has expired does not exempt", query: sipAuth(credentials(password: "right-password")), device: device(),
            lockout: LockoutFacts(userLocked: true, secondsSinceSuccess: 30 * 86_400 + 1), reason: .lockedOutUser, answer: "domain"),
        Row(name: "source locked: unknown users refused and not counted", query: sipAuth(credentials(password: "x")), device: nil,
            lockout: LockoutFacts(sourceLocked: true), reason: .lockedOutIP, answer: "domain"),
        Row(name: "wrong password counted", query: sipAuth(credentials(password: "wrong")), device: device(), reason: .digestMismatch, answer: "domain",
            effect: .countFailure(source: "198.51.100.20", user: "1001@voip.example.com")),
        Row(name: "unknown user counted per source only", query: sipAuth(credentials(password: "x")), device: nil, reason: .unknownUser, answer: "domain",
            effect: .countFailure(source: "198.51.100.20", user: nil)),
        Row(name: "wrong password without an ip field: counted against the shared unknown source", query: sipAuth(credentials(password: "wrong"), ip: nil),
            device: device(), reason: .digestMismatch, answer: "domain", effect: .countFailure(source: "unknown", user: "1001@voip.example.com")),
        Row(name: "unknown user from an unparsable ip: counted against the shared unknown source", query: sipAuth(credentials(password: "x"), ip: "not-an-address"),
            device: nil, reason: .unknownUser, answer: "domain", effect: .countFailure(source: "unknown", user: nil)),
        Row(name: "unknown source locked: lookups without an ip refused", query: sipAuth(credentials(password: "right-password"), ip: nil), device: device(),
            lockout: LockoutFacts(sourceLocked: true), reason: .lockedOutIP, answer: "domain"),
        Row(name: "unknown domain -> not found", query: sipAuth(credentials(password: "x")), domainKnown: false, reason: .unknownDomain, answer: "notfound"),
        Row(name: "disabled device", query: sipAuth(credentials(password: "right-password")), device: device(enabled: false), reason: .deviceDisabled, answer: "domain"),
        Row(name: "suspended account", query: sipAuth(credentials(password: "right-password")), device: device(status: .suspended), reason: .accountSuspended, answer: "domain"),
        Row(name: "closed account", query: sipAuth(credentials(password: "right-password")), device: device(status: .closed), reason: .accountClosed, answer: "domain"),
        Row(name: "expired account", query: sipAuth(credentials(password: "right-password")), device: device(expired: true), reason: .accountExpired, answer: "domain"),
        Row(name: "source locked out: right password refused", query: sipAuth(credentials(password: "right-password")), device: device(),
            lockout: LockoutFacts(sourceLocked: true), reason: .lockedOutIP, answer: "domain"),
        Row(name: "user locked out: right password refused", query: sipAuth(credentials(password: "right-password")), device: device(),
            lockout: LockoutFacts(userLocked: true), reason: .lockedOutUser, answer: "domain"),
        Row(name: "missing digest fields", query: sipAuth(nil), device: device(), reason: .digestUnverifiable, answer: "domain"),
        Row(name: "realm other than the domain's", query: sipAuth(credentials(password: "right-password", realm: "198.51.100.1")), device: device(), reason: .realmMismatch, answer: "domain"),
        Row(name: "lookup without action", query: .user(user: "1001", domain: "voip.example.com", action: nil, sourceIP: nil), device: device(), reason: .ok, answer: "user"),
        Row(name: "user_call", query: .user(user: "1001", domain: "voip.example.com", action: "user_call", sourceIP: nil), device: device(), reason: .ok, answer: "user"),
        Row(name: "lookup of suspended", query: .user(user: "1001", domain: "voip.example.com", action: nil, sourceIP: nil), device: device(status: .suspended), reason: .accountSuspended, answer: "domain"),
        Row(name: "unsupported", query: .unsupported("action=message-count"), reason: .unsupported, answer: "notfound"),
    ]

    @Test(arguments: rows)
    func decide(row: Row) {
        let d = DirectoryDecider.decide(row.query, domainKnown: row.domainKnown, device: row.device, lockout: row.lockout, policy: DirectoryPolicy())
        #expect(d.reason == row.reason)
        #expect(d.effect == row.effect)
        switch d.answer {
        case .user(let domain, let u):
            #expect(row.answer == "user")
            #expect(domain == "voip.example.com")
            #expect(u.a1Hash == row.a1, "the HA1 of the response's algorithm")
            #expect(u.variables.contains(.init("user_context", "switchauth")))
            #expect(u.variables.contains(.init("accountcode", "1000042")))
        case .domainWithoutUser: #expect(row.answer == "domain")
        case .notFound: #expect(row.answer == "notfound")
        }
    }

    @Test func sha256ResponseGetsSHA256HA1() {
        let d = DirectoryDecider.decide(Self.sipAuth(Self.credentials(password: "right-password", algorithm: .sha256)), domainKnown: true,
                                        device: Self.device(), lockout: .none, policy: DirectoryPolicy())
        guard case .user(_, let u) = d.answer else { Issue.record("no user"); return }
        #expect(u.a1Hash == Self.ha1sha)
    }

    static func form(_ extra: [(String, String)], keyValue: String = "voip.example.com") -> FormFields {
        FormFields([("hostname", "h"), ("section", "directory"), ("tag_name", "domain"), ("key_name", "name"), ("key_value", keyValue)] + extra.map { (name: $0.0, value: $0.1) })
    }

    @Test func classifyVariants() throws {
        func q(_ f: FormFields) throws -> DirectoryQuery { try DirectoryDecider.classify(try XMLCurlRequest(fields: f)) }
        #expect(try q(Self.form([("purpose", "gateways")])) == .unsupported("purpose=gateways"))
        #expect(try q(Self.form([("purpose", "network-list")])) == .unsupported("purpose=network-list"))
        #expect(try q(Self.form([("action", "message-count"), ("user", "1001")])) == .unsupported("action=message-count"))
        #expect(try q(Self.form([("action", "group_call"), ("user", "1001")])) == .unsupported("action=group_call"))
        #expect(try q(Self.form([("action", "reverse-auth-lookup"), ("user", "1001")])) == .unsupported("action=reverse-auth-lookup"))
        #expect(try q(Self.form([("key", "id"), ("user", "1001"), ("domain", "voip.example.com")])) == .user(user: "1001", domain: "voip.example.com", action: nil, sourceIP: nil))
        #expect(try q(Self.form([("action", "user_call"), ("user", "1001")])) == .user(user: "1001", domain: "voip.example.com", action: "user_call", sourceIP: nil))
    }

    /// freeswitch-conf/PROTOCOL.md §1: a realm like `x&user=1001&ip=...` injects fields ahead of the real ones.
    @Test func realmInjectionIsRefused() throws {
        let injected = FormFields(FormDecoder.decode(Array("hostname=h&section=directory&tag_name=domain&key_name=name&key_value=x&user=1001&ip=10.0.0.1&action=sip_auth&user=1001&domain=x&ip=198.51.100.20".utf8)))
        #expect(throws: HostileRequest.self) { try DirectoryDecider.classify(try XMLCurlRequest(fields: injected)) }
        #expect(throws: HostileRequest.self) { try XMLCurlRequest(fields: Self.form([], keyValue: "a=b")) }
        #expect(throws: HostileRequest.self) {
            try DirectoryDecider.classify(try XMLCurlRequest(fields: Self.form([("user", "1001"), ("domain", "other.example.com")])))
        }
        #expect(throws: HostileRequest.self) { try XMLCurlRequest(fields: Self.form([("section", "dialplan")])) }
        #expect(throws: HostileRequest.self) {
            try DirectoryDecider.classify(try XMLCurlRequest(fields: Self.form([("user", "10\u{0}01")])))
        }
    }
}


@Suite("numeric parsing")
struct NumericTests {
    @Test(arguments: ["0", "0.000000", "100.000000", "-12.500000", "123456789012.123456", "-0.000001", "50"])
    func matchesFoundation(text: String) {
        #expect(StoreNumeric.parse(text) == Decimal(string: text, locale: Locale(identifier: "en_US_POSIX")))
    }

    @Test(arguments: ["", "-", "1.2.3", "1e5", "abc", "1234567890123456789012"])
    func refuses(text: String) {
        #expect(StoreNumeric.parse(text) == nil)
    }
}

/// A postpaid account may call while balance + credit limit is above zero; the gate compares the
/// balance with the negated limit instead of adding (the same answer for every pair of values).
@Suite("postpaid funds")
struct PostpaidFundsTests {
    @Test func comparisonEqualsTheSum() {
        let values: [Decimal] = [0, Decimal(string: "0.01")!, Decimal(string: "-0.01")!, 1, -1, Decimal(string: "99.99")!, 100, -100,
                                 Decimal(string: "100.0001")!, Decimal(string: "-100.0001")!, Decimal(string: "123456789012.3456")!,
                                 Decimal(string: "-123456789012.3456")!]
        for balance in values {
            for credit in values {
                let a = account(1, "Q", billing: .postpaid, balance: balance, credit: credit)
                #expect(AccountGate.funds(a) == (balance + credit > 0 ? nil : .insufficientBalance), "balance \(balance), credit \(credit)")
            }
        }
    }
}

/// The service reads fields from the encoded body (`FormFields(encoded:)`); it must answer every
/// lookup exactly as the eagerly decoded pairs do.
@Suite("lazy form fields")
struct LazyFormTests {
    static let bodies: [String] = [
        "hostname=h&section=directory&user=1001&user=1002",
        "us%65r=1001&user=1002",                 // a duplicate through an escaped name
        "a+b=1&a%20b=2&a b=3",                   // '+' and %20 are the same name
        "x=%zz&y=%4&z=%41%42+c&w==v=&&&",        // malformed escapes kept, '=' in values, empty pairs
        "noequals&noequals=&=empty-name&=",       // missing '=', empty names
        "bad=%ff%fe&n%C3%A9=1&\u{212A}=kelvin&K=k", // invalid UTF-8, non-ASCII names compared as bytes
        "%ff=1&\u{FFFD}=2",                        // an invalid byte in a name reads as U+FFFD, as eagerly
        // Long names: an escape, a '+' or a non-ASCII byte past the first eight bytes (the plain
        // test reads words), and the names they decode to.
        "variable_sip%5Fuser=1&variable_sip_user=2&Hunt-Caller+Name=a&Hunt-Caller Name=b&Event-Date-Timé=c&Event-Date-Time=d&abcdefgh%=e",
        "",
        "&",
    ]

    /// Every form three ways: indexed for the buckets learned so far (the service's), for every
    /// bucket, and for none (every lookup reads every pair).
    static func forms(_ body: [UInt8]) -> [(String, FormFields)] {
        [("learned", FormFields(encoded: body)), ("all", FormFields(encoded: body, indexing: .all)),
         ("none", FormFields(encoded: body, indexing: .none))]
    }

    @Test(arguments: bodies)
    func lazyLookupsEqualEagerOnes(_ text: String) {
        let body = Array(text.utf8)
        let eager = FormFields(FormDecoder.decode(body))
        let names = Set(eager.pairs.map(\.name)).union(["user", "a b", "K", "\u{212A}", "né", "", "missing", "\u{FFFD}", "\u{FFFD}\u{FFFD}",
                                                        "variable_sip_user", "Hunt-Caller Name", "Event-Date-Time", "abcdefgh%"])
        for (how, lazy) in Self.forms(body) {
            #expect(lazy == eager, "\(how)")
            for name in names {
                #expect(lazy.lookup(name) == eager.lookup(name), "\(name) (\(how))")
            }
        }
    }

    /// A form indexed before a name's bucket was learned reads every pair for it; the next form
    /// indexes the bucket. Both answer alike, a duplicate included.
    @Test func aNameLearnedAfterTheFormWasIndexed() {
        let body = Array("a=1&zq-learned-late=2&zq-learned-late=3&zq-once-only=4".utf8)
        let before = FormFields(encoded: body, indexing: .none)
        #expect(before.lookup("zq-learned-late") == .duplicated)
        #expect(before.lookup("zq-once-only") == .one("4"))
        let learned = FormFields(encoded: body)
        _ = learned.lookup("zq-learned-late")
        _ = learned.lookup("zq-once-only")
        let after = FormFields(encoded: body)
        #expect(after.lookup("zq-learned-late") == .duplicated)
        #expect(after.lookup("zq-once-only") == .one("4"))
        #expect(after.lookup("a") == .one("1"))
        #expect(EncodedForm.Buckets.learned != .none)
    }

    /// More names than the index has buckets, so that chains hold several names; every fifth name
    /// comes twice (one of those through an escape) and every lookup must still see it.
    @Test func manyFieldsShareBuckets() {
        var parts: [String] = []
        for i in 0..<700 {
            parts.append("Field-\(i)=v\(i)")
            if i % 5 == 0 { parts.append(i % 10 == 0 ? "Fi%65ld-\(i)=w" : "Field-\(i)=w") }
        }
        let body = Array(parts.joined(separator: "&").utf8)
        let eager = FormFields(FormDecoder.decode(body))
        for (how, lazy) in Self.forms(body) {
            for i in 0..<760 {
                let name = "Field-\(i)"
                #expect(lazy.lookup(name) == eager.lookup(name), "\(name) (\(how))")
                #expect(lazy.lookup(name) == (i >= 700 ? .absent : i % 5 == 0 ? .duplicated : .one("v\(i)")), "\(name) (\(how))")
            }
        }
    }

    /// Random bodies of every length up to 300 bytes (across the 16-byte steps and 64-byte words
    /// of the separator bitmaps, and their tails), dense in `&` and `=`: the index finds exactly the
    /// pairs the eager decoder finds, and every name reads the same.
    @Test func randomBodiesAcrossWordBoundaries() {
        let alphabet = Array("ab&&==%+41".utf8) + [0xC3, 0xA9]
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> Int {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Int(truncatingIfNeeded: state >> 33)
        }
        for length in 0...300 {
            for _ in 0..<4 {
                let body = (0..<length).map { _ in alphabet[next() % alphabet.count] }
                let eager = FormFields(FormDecoder.decode(body))
                for (how, lazy) in Self.forms(body) {
                    #expect(lazy == eager, "\(String(decoding: body, as: UTF8.self))")
                    for name in Set(eager.pairs.map(\.name)) {
                        #expect(lazy.lookup(name) == eager.lookup(name), "\(name) in \(String(decoding: body, as: UTF8.self)) (\(how))")
                    }
                }
            }
        }
    }

    @Test func expectedAnswers() {
        let f = FormFields(encoded: Array("us%65r=1001&user=1002&a+b=x%41&K=k".utf8))
        #expect(f.lookup("user") == .duplicated)
        #expect(f.lookup("a b") == .one("xA"))
        #expect(f.lookup("\u{212A}") == .absent, "names are bytes: the Kelvin sign is not K")
        #expect(f.lookup("K") == .one("k"))
        #expect(f.lookup("nothing") == .absent)
    }
}

@Suite("case-insensitive text")
struct TextTests {
    static let words = ["", "a", "A", "example.com", "Example.COM", "exbmple.com", "d1.bench.example", "D1.Bench.Example",
                        "auth", "AUTH", "Auth-int", "\u{00C9}cole.fr", "\u{00E9}cole.fr", "stra\u{00DF}e.de", "STRASSE.DE",
                        "\u{0130}stanbul", "i\u{0307}stanbul", "K", "\u{212A}", "k", "@[\\]^_`{", "`{|}~"]

    @Test func matchesLowercasedEverywhere() {
        for a in Self.words {
            #expect(a.lowercasedIfNeeded == a.lowercased(), "\(a)")
            for b in Self.words {
                #expect(a.equalsIgnoringCase(b) == (a.lowercased() == b.lowercased()), "\(a) vs \(b)")
            }
        }
    }
}

// MARK: Call controls (issue 21)

@Suite("call controls (pure)")
struct CallControlDecisionTests {
    static func rule(_ id: Int64, _ action: DestinationRule.Action, _ prefix: String, account: Int64? = nil) -> DestinationRule {
        DestinationRule(id: id, accountID: account, action: action, prefix: prefix)
    }

    struct Row: Sendable, CustomTestStringConvertible {
        var name: String
        var destination: String
        var rules: [DestinationRule]
        var expected: DestinationVerdict
        var testDescription: String { name }
    }

    static let premium = rule(1, .deny, "1900")
    static let rows: [Row] = [
        Row(name: "no rules", destination: "15551234", rules: [], expected: .allowed(by: nil)),
        Row(name: "global deny", destination: "19005551234", rules: [premium], expected: .denied(by: premium)),
        Row(name: "global deny, other destination", destination: "15551234", rules: [premium], expected: .allowed(by: nil)),
        Row(name: "account allow overrides a global deny of the same prefix", destination: "19005551234",
            rules: [premium, rule(2, .allow, "1900", account: 7)], expected: .allowed(by: rule(2, .allow, "1900", account: 7))),
        Row(name: "longer prefix wins: global allow 19005 over global deny 1900", destination: "19005551234",
            rules: [premium, rule(3, .allow, "19005")], expected: .allowed(by: rule(3, .allow, "19005"))),
        Row(name: "longer global deny beats a shorter account allow", destination: "19005551234",
            rules: [premium, rule(4, .allow, "1", account: 7)], expected: .denied(by: premium)),
        Row(name: "same scope and length: deny beats allow", destination: "4420", rules: [rule(5, .allow, "44"), rule(6, .deny, "44")],
            expected: .denied(by: rule(6, .deny, "44"))),
        Row(name: "account allow list: others not allowed", destination: "4930123", rules: [rule(7, .allow, "44", account: 7)],
            expected: .notAllowed),
        Row(name: "account allow list: its prefix allowed", destination: "4420123", rules: [rule(7, .allow, "44", account: 7)],
            expected: .allowed(by: rule(7, .allow, "44", account: 7))),
        Row(name: "a global allow alone does not make an allow list", destination: "4930123", rules: [rule(8, .allow, "44")],
            expected: .allowed(by: nil)),
        Row(name: "account allow list with a global allow for the destination", destination: "112",
            rules: [rule(7, .allow, "44", account: 7), rule(9, .allow, "112")], expected: .allowed(by: rule(9, .allow, "112"))),
    ]

    @Test(arguments: rows)
    func destinationLists(_ row: Row) {
        #expect(DestinationScreen.verdict(destination: row.destination, rules: row.rules) == row.expected)
    }

    static let policy = DialplanPolicy(callLimits: .global)

    /// The IP decision applies the lists to the destination as routed (after the strip) and names the rule.
    @Test func ipDecisionScreensTheRoutedDestination() {
        var acct = account(7, "7")
        acct.destinationRules = [Self.premium]
        let s = [setting(1, "192.0.2.0/24", "77", acct, strip: true)]
        let denied = DialplanDecider.decideIP(context: "switchauth", source: "192.0.2.5", destination: "7719005551234", candidates: s, policy: Self.policy)
        #expect(denied.reason == .destinationDenied)
        #expect(denied.answer == .reject(context: "switchauth", .forbidden))
        #expect(denied.detail.contains("deny 1900 (global, rule 1)"))
        let allowed = DialplanDecider.decideIP(context: "switchauth", source: "192.0.2.5", destination: "7715551234", candidates: s, policy: Self.policy)
        #expect(allowed.reason == .ok)
        let digestDenied = DialplanDecider.decideDigest(context: "switchauth", destination: "19001",
                                                        device: DeviceFacts(id: 1, username: "u", realm: "r", ha1MD5: "", ha1SHA256: "", account: acct),
                                                        policy: Self.policy)
        #expect(digestDenied.reason == .destinationDenied)
    }

    /// Which allowed calls need the shared counters, and what their verdicts become.
    @Test func admissionAndVerdicts() {
        let limited = account(7, "7", channels: 2)
        let s = [setting(1, "192.0.2.0/24", "", limited)]
        let allow = DialplanDecider.decideIP(context: "c", source: "192.0.2.5", destination: "123", candidates: s, policy: Self.policy)
        let admission = CallAdmission(uniqueID: "u-1", coreUUID: "core", accountID: 7, maxChannels: 2, accountCPS: 0, ipSettingID: 1, ipSettingCPS: 0, destination: "123")
        #expect(DialplanDecider.admission(for: allow, uniqueID: "u-1", coreUUID: "core") == .admit(admission))
        // Per switch: nothing to admit (the switch's limit hash counts).
        let perSwitch = DialplanDecider.decideIP(context: "c", source: "192.0.2.5", destination: "123", candidates: s, policy: DialplanPolicy())
        #expect(DialplanDecider.admission(for: perSwitch, uniqueID: "u-1", coreUUID: "core") == .none)
        // Unlimited account and setting: nothing to admit.
        let free = DialplanDecider.decideIP(context: "c", source: "192.0.2.5", destination: "123",
                                            candidates: [setting(1, "192.0.2.0/24", "", account(8, "8"))], policy: Self.policy)
        #expect(DialplanDecider.admission(for: free, uniqueID: nil, coreUUID: nil) == .none)
        // A limited call without a usable key for its slot is refused, never let through uncounted.
        for (uuid, core) in [(nil, "core"), ("u-1", nil), ("", "core"), ("u 1", "core"), ("u-1", "c$re")] as [(String?, String?)] {
            guard case .refuse(let d) = DialplanDecider.admission(for: allow, uniqueID: uuid, coreUUID: core) else {
                Issue.record("\(String(describing: uuid)) \(String(describing: core)) was not refused")
                continue
            }
            #expect(d.reason == .hostileRequest)
        }
        #expect(DialplanDecider.admitted(allow, .admitted(inUse: 1)).reason == .ok)
        #expect(DialplanDecider.admitted(allow, .alreadyHeld).reason == .ok)
        let busy = DialplanDecider.admitted(allow, .channelLimit(inUse: 2))
        #expect(busy.reason == .channelLimit && busy.answer == .reject(context: "c", .busyHere))
        let fast = DialplanDecider.admitted(allow, .cpsLimit(ipSetting: true))
        #expect(fast.reason == .cpsLimit && fast.answer == .reject(context: "c", .unavailable))
        for text in ["held", "ok:3", "channels:2", "cps:account", "cps:ip_setting"] {
            #expect(AdmissionVerdict(databaseText: text) != nil, "\(text)")
        }
        for text in ["", "ok:", "ok:x", "channels", "cps:other"] {
            #expect(AdmissionVerdict(databaseText: text) == nil, "\(text)")
        }
    }
}
