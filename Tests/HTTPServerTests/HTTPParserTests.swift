import Foundation
import TestSupport
import HTTPServer
import Testing

/// Parser tests in the NIO style: every fixture whole, byte by byte and split at every index gives
/// the same result; every byte value in header names; smuggling shapes; limits; random mutations.
@Suite("HTTP/1.1 request parser")
struct HTTPParserTests {
    static func parseAll(_ chunks: [ArraySlice<UInt8>], limits: HTTPLimits = HTTPLimits()) -> [HTTPParserEvent] {
        var p = HTTPRequestParser(limits: limits)
        var out: [HTTPParserEvent] = []
        for c in chunks { out += p.feed(c) }
        return out.filter { if case .head = $0 { return false } else { return true } }
    }

    static func requests(_ events: [HTTPParserEvent]) -> [HTTPRequest] {
        events.compactMap { if case .request(let r) = $0 { return r } else { return nil } }
    }

    @Test(arguments: Fixtures.httpFiles)
    func fixtureWholeBytewiseAndEverySplit(name: String) throws {
        let bytes = try Fixtures.bytes(name)
        let whole = Self.parseAll([bytes[...]])
        let reqs = Self.requests(whole)
        try #require(reqs.count == 1)
        #expect(reqs[0].head.method == "POST")
        #expect(reqs[0].head.target == "/fs")
        #expect(reqs[0].head.keepAlive)
        #expect(reqs[0].body == (try Fixtures.body(name)))
        #expect(reqs[0].head.header("content-type") == "application/x-www-form-urlencoded")
        let bytewise = Self.parseAll(bytes.indices.map { bytes[$0...$0] })
        #expect(bytewise == whole)
        for i in 0...bytes.count {
            #expect(Self.parseAll([bytes[..<i], bytes[i...]]) == whole, "split at \(i)")
        }
    }

    @Test func pipelinedRequestsInOrder() throws {
        let a = try Fixtures.bytes("configuration-acl.conf.http"), b = try Fixtures.bytes("directory-lookup-no-action-1001.http")
        let all = a + b + a
        let reqs = Self.requests(Self.parseAll([all[...]]))
        #expect(reqs.count == 3)
        #expect(reqs.map(\.body.count) == [89, 556, 89])
        let bytewise = Self.requests(Self.parseAll(all.indices.map { all[$0...$0] }))
        #expect(bytewise == reqs)
    }

    static func req(_ head: String, body: String = "") -> [UInt8] {
        Array((head.replacingOccurrences(of: "\n", with: "\r\n") + "\r\n" + body).utf8)
    }

    static func firstError(_ bytes: [UInt8], limits: HTTPLimits = HTTPLimits()) -> HTTPParseError? {
        for e in parseAll([bytes[...]], limits: limits) { if case .error(let x) = e { return x } }
        return nil
    }

    @Test func everyByteInHeaderNames() {
        for b in 0...255 {
            let byte = UInt8(b)
            var bytes = Array("GET / HTTP/1.1\r\nHost: x\r\nX".utf8)
            bytes.append(byte)
            bytes += Array("Y: v\r\n\r\n".utf8)
            let events = Self.parseAll([bytes[...]])
            let isToken = HTTPRequestParserTChar.isTChar(byte)
            if isToken {
                #expect(Self.requests(events).first?.head.headers.last?.name == "X\(Character(Unicode.Scalar(byte)))Y", "byte \(b)")
            } else if byte == UInt8(ascii: ":") {
                #expect(Self.requests(events).first?.head.headers.last?.name == "X", "byte \(b)")
            } else {
                #expect(events.count == 1 && { if case .error(.badRequest) = events[0] { return true } else { return false } }(), "byte \(b) must be refused")
            }
        }
    }

    @Test(arguments: [
        ("POST / HTTP/1.1\nHost: x\nContent-Length: 3\nTransfer-Encoding: chunked\n", HTTPParseError.badRequest("Transfer-Encoding with Content-Length")),
        ("POST / HTTP/1.1\nHost: x\nTransfer-Encoding: chunked\n", .notImplemented("Transfer-Encoding")),
        ("POST / HTTP/1.1\nHost: x\nContent-Length: 3\nContent-Length: 4\n", .badRequest("conflicting Content-Length")),
        ("POST / HTTP/1.1\nHost: x\nContent-Length: 3, 3\n", .badRequest("Content-Length")),
        ("POST / HTTP/1.1\nHost: x\nContent-Length: -1\n", .badRequest("Content-Length")),
        ("POST / HTTP/1.1\nHost: x\nContent-Length: +3\n", .badRequest("Content-Length")),
        ("GET / HTTP/1.1\nHost: x\nX-A: a\n  folded\n", .badRequest("obs-fold")),
        ("GET / HTTP/1.1\nHost: x\nX-A : a\n", .badRequest("header name")),
        ("GET / HTTP/1.1\nX-A: a\n", .badRequest("Host")),
        ("GET / HTTP/1.1\nHost: a\nHost: b\n", .badRequest("Host")),
        ("GET / HTTP/2.0\nHost: x\n", .versionNotSupported),
        ("GET / FOO/1.1\nHost: x\n", .badRequest("version")),
        ("GET  / HTTP/1.1\nHost: x\n", .badRequest("request line")),
        ("GET / HTTP/1.1 \nHost: x\n", .badRequest("request line")),
        (" GET / HTTP/1.1\nHost: x\n", .badRequest("request line")),
        ("GET /a b HTTP/1.1\nHost: x\n", .badRequest("request line")),
        ("GET /HTTP/1.1\nHost: x\n", .badRequest("request line")),
        ("GET\nHost: x\n", .badRequest("request line")),
        ("GET / \nHost: x\n", .badRequest("version")),
        ("G(T / HTTP/1.1\nHost: x\n", .badRequest("method")),
        ("GET / HTTP/1.1\nHost: x\nExpect: 200-ok\n", .expectationFailed),
    ])
    func refuses(head: String, error: HTTPParseError) {
        #expect(Self.firstError(Self.req(head)) == error)
    }

    @Test func bareLFAndCRAreRefused() {
        #expect(Self.firstError(Array("GET / HTTP/1.1\nHost: x\r\n\r\n".utf8)) == .badRequest("bare LF"))
        #expect(Self.firstError(Array("GET / HTTP/1.1\r\nHost: x\ry\r\n\r\n".utf8)) == .badRequest("bare CR"))
        // In the last line, in the first, and a CR that ends the head's last line early.
        #expect(Self.firstError(Array("GET / HTTP/1.1\r\nHost: x\r\nA: b\nc\r\n\r\n".utf8)) == .badRequest("bare LF"))
        #expect(Self.firstError(Array("GET /\n HTTP/1.1\r\nHost: x\r\n\r\n".utf8)) == .badRequest("bare LF"))
        #expect(Self.firstError(Array("GET / HTTP/1.1\r\nHost: x\r\nA: b\r\r\n\r\n".utf8)) == .badRequest("bare CR"))
        // Versions: 1.0 and 1.1 only; "HTTP/1.1" with a byte changed is not 1.1.
        #expect(Self.firstError(Array("GET / HTTP/1.2\r\nHost: x\r\n\r\n".utf8)) == .versionNotSupported)
        #expect(Self.firstError(Array("GET / HTTP/1,1\r\nHost: x\r\n\r\n".utf8)) == .badRequest("version"))
        #expect(Self.firstError(Array("GET / HTTP/1.11\r\nHost: x\r\n\r\n".utf8)) == .badRequest("version"))
        #expect(Self.firstError(Array("GET / HTTP/1.1\r\nHost: x\u{1}\r\n\r\n".utf8)) == .badRequest("control character in header value"))
    }

    @Test func limits() {
        let small = HTTPLimits(maxHeaderBytes: 256, maxHeaderCount: 4, maxBodyBytes: 10)
        #expect(Self.firstError(Self.req("POST / HTTP/1.1\nHost: x\nX: " + String(repeating: "a", count: 300) + "\n"), limits: small) == .headerTooLarge)
        #expect(Self.firstError(Array(("GET /" + String(repeating: "a", count: 400)).utf8), limits: small) == .uriTooLong)
        #expect(Self.firstError(Self.req("GET / HTTP/1.1\nHost: x\nA: 1\nB: 1\nC: 1\nD: 1\n"), limits: small) == .headerTooLarge)
        #expect(Self.firstError(Self.req("POST / HTTP/1.1\nHost: x\nContent-Length: 11\n"), limits: small) == .bodyTooLarge)
        #expect(Self.firstError(Self.req("POST / HTTP/1.1\nHost: x\nContent-Length: 10\n", body: "0123456789"), limits: small) == nil)
        // Endless header bytes without a terminator are cut at the limit, not buffered forever.
        var p = HTTPRequestParser(limits: small)
        var sawError = false
        for _ in 0..<100 where !sawError {
            sawError = p.feed(Array("X-Long: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n".utf8)).contains { if case .error = $0 { return true } else { return false } }
        }
        #expect(sawError)
    }

    @Test func keepAliveAndExpect() {
        let r10 = Self.requests(Self.parseAll([Self.req("GET / HTTP/1.0\n")[...]])).first
        #expect(r10?.head.keepAlive == false)
        let r10ka = Self.requests(Self.parseAll([Self.req("GET / HTTP/1.0\nConnection: keep-alive\n")[...]])).first
        #expect(r10ka?.head.keepAlive == true)
        let close = Self.requests(Self.parseAll([Self.req("GET / HTTP/1.1\nHost: x\nConnection: close\n")[...]])).first
        #expect(close?.head.keepAlive == false)
        var p = HTTPRequestParser()
        let events = p.feed(Self.req("POST / HTTP/1.1\nHost: x\nExpect: 100-continue\nContent-Length: 4\n"))
        guard case .head(let h) = events.first else { Issue.record("no head event"); return }
        #expect(h.expectContinue)
        #expect(Self.requests(p.feed(Array("abcd".utf8))).first?.body == Array("abcd".utf8))
    }

    /// `Connection` is a comma-separated list of tokens in any case, with optional whitespace;
    /// `Expect` accepts 100-continue in any case and nothing else (read as bytes, no copies).
    @Test(arguments: [
        ("HTTP/1.1", "Connection: close", false), ("HTTP/1.1", "Connection: CLOSE", false),
        ("HTTP/1.1", "Connection: keep-alive , close", false), ("HTTP/1.1", "Connection: te,\tclose\t", false),
        ("HTTP/1.1", "Connection: closed", true), ("HTTP/1.1", "Connection: ,,", true), ("HTTP/1.1", "Connection:", true),
        ("HTTP/1.1", "Connection: keep-alive", true), ("HTTP/1.0", "Connection: Keep-Alive", true),
        ("HTTP/1.0", "Connection: upgrade, keep-alive", true), ("HTTP/1.0", "Connection: keep-alive, close", false),
        ("HTTP/1.0", "Connection: keep-alives", false), ("HTTP/1.0", "X-A: b", false),
    ])
    func connectionTokens(version: String, header: String, keepAlive: Bool) {
        let r = Self.requests(Self.parseAll([Self.req("GET / \(version)\nHost: x\n\(header)\n")[...]])).first
        #expect(r?.head.keepAlive == keepAlive, "\(version) \(header)")
    }

    @Test(arguments: [("100-Continue", true), ("100-CONTINUE", true), ("100-continue ", true), ("100-continues", false), ("200-ok", false)])
    func expectValues(value: String, accepted: Bool) {
        var p = HTTPRequestParser()
        let events = p.feed(Self.req("POST / HTTP/1.1\nHost: x\nExpect: \(value)\nContent-Length: 4\n"))
        switch events.first {
        case .head(let h)?: #expect(accepted && h.expectContinue, "\(value)")
        case .error(let e)?: #expect(!accepted && e == .expectationFailed, "\(value)")
        default: Issue.record("\(value): \(events)")
        }
    }

    /// Random mutations of the fixtures never trap, and the parser never returns more than it got.
    @Test func randomMutationsNeverCrash() throws {
        var rng = SeededGenerator(seed: 0x5eed)
        let fixtures = try Fixtures.httpFiles.map { try Fixtures.bytes($0) }
        for _ in 0..<3000 {
            var bytes = fixtures[Int(rng.next() % UInt64(fixtures.count))]
            for _ in 0..<(1 + Int(rng.next() % 8)) {
                let i = Int(rng.next() % UInt64(bytes.count))
                switch rng.next() % 4 {
                case 0: bytes[i] = UInt8(truncatingIfNeeded: rng.next())
                case 1: bytes.remove(at: i)
                case 2: bytes.insert(UInt8(truncatingIfNeeded: rng.next()), at: i)
                default: bytes.insert(contentsOf: [13, 10], at: i)
                }
            }
            var p = HTTPRequestParser()
            var total = 0
            var offset = 0
            while offset < bytes.count {
                let n = 1 + Int(rng.next() % 700)
                for case .request(let r) in p.feed(bytes[offset..<min(bytes.count, offset + n)]) { total += r.body.count }
                offset += n
            }
            #expect(total <= bytes.count)
        }
    }
}

/// The token rule, restated here so the 256-byte test does not trust the parser's own table.
enum HTTPRequestParserTChar {
    static func isTChar(_ b: UInt8) -> Bool {
        if (48...57).contains(b) || (65...90).contains(b) || (97...122).contains(b) { return true }
        return "!#$%&'*+-.^_`|~".utf8.contains(b)
    }
}

/// Deterministic xorshift generator for repeatable mutation tests.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed == 0 ? 0x9E3779B97F4A7C15 : seed }
    mutating func next() -> UInt64 {
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        return state
    }
}

@Suite("form decoding")
struct FormDecoderTests {
    @Test func fixtureFieldsDecode() throws {
        let fields = FormDecoder.decode(try Fixtures.body("directory-sip_auth-register-udp-ok.http"))
        let dict = Dictionary(fields.map { ($0.name, $0.value) }, uniquingKeysWith: { a, _ in a })
        #expect(dict["sip_auth_uri"] == "sip:127.0.0.1:5080")
        #expect(dict["sip_call_id"] == "1-29186@127.0.0.1")
        #expect(dict["Event-Date-Local"] == "2026-11-27 16:37:44")
        #expect(dict["FreeSWITCH-IPv6"] == "fd00::2")
        #expect(dict["ip"] == "127.0.0.1")
        #expect(fields.first?.name == "hostname")
        #expect(fields.last?.name == "ip")
    }

    @Test(arguments: [
        ("a=1+2", "1 2"), ("a=%2B15551234", "+15551234"), ("a=%26%3D%25", "&=%"), ("a=%zz", "%zz"), ("a=%4", "%4"), ("a=%", "%"),
        ("a=", ""), ("a", ""), ("a=%E2%98%8E", "☎"), ("a=%C0%80", "\u{FFFD}\u{FFFD}"), ("a=x%00y", "x\u{0}y"),
    ])
    func values(body: String, value: String) {
        #expect(FormDecoder.decode(Array(body.utf8)).first?.value == value)
    }

    @Test func duplicatesAndEmptyPairsKept() {
        let f = FormDecoder.decode(Array("a=1&&b=2&a=3&".utf8))
        #expect(f.map(\.name) == ["a", "b", "a"])
        #expect(f.map(\.value) == ["1", "2", "3"])
    }
}

@Suite("HTTP header names and responses")
struct HTTPHeaderCaseTests {
    static func head(_ text: String, body: String = "") -> HTTPRequestHead? {
        var p = HTTPRequestParser()
        for e in p.feed(HTTPParserTests.req(text, body: body)) { if case .request(let r) = e { return r.head } }
        return nil
    }

    @Test func namesTheParserActsOnInAnyCase() throws {
        let h = try #require(Self.head("POST /x HTTP/1.1\nhOsT: x\nCONTENT-length: 3\nconnection: Keep-Alive, CLOSE\n", body: "abc"))
        #expect(h.contentLength == 3)
        #expect(!h.keepAlive)
        #expect(h.header("Content-Length") == "3")
        #expect(h.header("HOST") == "x")
        #expect(h.header("Hosts") == nil)
        #expect(h.path == "/x")
        // Near misses are ordinary headers: no length, and the HTTP/1.1 Host rule still applies.
        let near = try #require(Self.head("GET /y?q=1 HTTP/1.1\nHost: x\nContent-Lengtx: 3\nConnectio: close\n"))
        #expect(near.contentLength == 0)
        #expect(near.keepAlive)
        #expect(near.path == "/y")
        #expect(Self.head("GET / HTTP/1.1\nHosx: x\n") == nil)
        #expect(HTTPParserTests.firstError(HTTPParserTests.req("GET / HTTP/1.1\nHOST: x\nexpect: 100-Continue\n")) == nil)
        #expect(HTTPParserTests.firstError(HTTPParserTests.req("GET / HTTP/1.1\nHOST: x\nEXPECT: 100-continuex\n")) == .expectationFailed)
        #expect(HTTPParserTests.firstError(HTTPParserTests.req("GET / HTTP/1.1\nHOST: x\nTRANSFER-encoding: chunked\n")) == .notImplemented("Transfer-Encoding"))
        let typed = try #require(Self.head("POST / HTTP/1.1\nHost: x\nContent-Type: Application/X-WWW-Form-Urlencoded; charset=utf-8\nContent-Length: 1\n", body: "a"))
        #expect(typed.header("content-type", hasCaseInsensitivePrefix: "application/x-www-form-urlencoded"))
        #expect(!typed.header("content-type", hasCaseInsensitivePrefix: "application/json"))
        #expect(!typed.header("accept", hasCaseInsensitivePrefix: ""))
    }

    @Test(arguments: [0, 7, 9, 10, 99, 100, 758, 65_536, 1_000_000])
    func serializedLengths(length: Int) {
        var out: [UInt8] = []
        HTTPResponse(status: .ok, contentType: "text/xml", body: [UInt8](repeating: 120, count: length),
                     headers: [(name: "X-A", value: "b")]).serialize(keepAlive: length % 2 == 0, into: &out)
        let text = String(decoding: out.prefix(200), as: UTF8.self)
        #expect(text.hasPrefix("HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: \(length)\r\nX-A: b\r\nConnection: \(length % 2 == 0 ? "keep-alive" : "close")\r\n\r\n"))
        let headLength = (0..<out.count - 3).first { out[$0..<$0 + 4].elementsEqual("\r\n\r\n".utf8) }.map { $0 + 4 }
        #expect(headLength.map { $0 + length } == out.count)
        var head: [UInt8] = []
        HTTPResponse(status: .serviceUnavailable, text: "x").serialize(keepAlive: false, headOnly: true, into: &head)
        #expect(String(decoding: head, as: UTF8.self) == "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 1\r\nConnection: close\r\n\r\n")
    }
}
