#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Limits the parser enforces. Every limit maps to a status code.
public struct HTTPLimits: Sendable, Equatable {
    /// Request line plus headers, including the blank line (431 past it; 414 when the request line alone is past it).
    public var maxHeaderBytes: Int
    public var maxHeaderCount: Int
    /// Content-Length above this gets 413 before the body is read.
    public var maxBodyBytes: Int

    public init(maxHeaderBytes: Int = 16 * 1024, maxHeaderCount: Int = 64, maxBodyBytes: Int = 256 * 1024) {
        self.maxHeaderBytes = maxHeaderBytes
        self.maxHeaderCount = maxHeaderCount
        self.maxBodyBytes = maxBodyBytes
    }
}

public struct HTTPRequestHead: Sendable, Equatable {
    public var method: String
    public var target: String
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    public var minorVersion: Int
    public var headers: [(name: String, value: String)]
    public var contentLength: Int
    public var keepAlive: Bool
    public var expectContinue: Bool

    public static func == (a: HTTPRequestHead, b: HTTPRequestHead) -> Bool {
        a.method == b.method && a.target == b.target && a.minorVersion == b.minorVersion
            && a.contentLength == b.contentLength && a.keepAlive == b.keepAlive && a.expectContinue == b.expectContinue
            && a.headers.count == b.headers.count
            && zip(a.headers, b.headers).allSatisfy { $0.name == $1.name && $0.value == $1.value }
    }

    /// First value of a header, case-insensitive name.
    public func header(_ name: String) -> String? {
        headers.first { asciiCaseInsensitiveEquals($0.name, name) }?.value
    }

    /// The path without the query string.
    public var path: Substring {
        guard let q = target.utf8.firstIndex(of: UInt8(ascii: "?")) else { return target[...] }
        return target[..<q]
    }

    /// Whether the header's first value starts with `prefix`, ignoring ASCII case (a media type's
    /// parameters may follow).
    public func header(_ name: String, hasCaseInsensitivePrefix prefix: String) -> Bool {
        guard let value = header(name) else { return false }
        guard value.utf8.count >= prefix.utf8.count else { return false }
        var v = value, p = prefix
        return v.withUTF8 { x in p.withUTF8 { y in asciiCaseInsensitiveEquals(UnsafeBufferPointer(rebasing: x[..<y.count]), y) } }
    }
}

public struct HTTPRequest: Sendable, Equatable {
    public var head: HTTPRequestHead
    public var body: [UInt8]
}

/// Why a request was refused; each carries the status to answer with before closing.
public enum HTTPParseError: Error, Sendable, Equatable {
    case badRequest(String)
    case headerTooLarge
    case uriTooLong
    case bodyTooLarge
    case notImplemented(String)
    case versionNotSupported
    case expectationFailed

    public var status: HTTPStatus {
        switch self {
        case .badRequest: return .badRequest
        case .headerTooLarge: return .requestHeaderFieldsTooLarge
        case .uriTooLong: return .uriTooLong
        case .bodyTooLarge: return .payloadTooLarge
        case .notImplemented: return .notImplemented
        case .versionNotSupported: return .httpVersionNotSupported
        case .expectationFailed: return .expectationFailed
        }
    }
}

public enum HTTPParserEvent: Sendable, Equatable {
    /// A head is complete and its body is still to come; `expectContinue` asks for `100 Continue`.
    case head(HTTPRequestHead)
    case request(HTTPRequest)
    /// Terminal: answer `error.status` and close.
    case error(HTTPParseError)
}

/// An incremental HTTP/1.1 request parser: pure, no I/O. Feed it bytes as they arrive, in any
/// split; it returns complete requests in order (pipelining) and refuses smuggling shapes:
/// Transfer-Encoding (501, or 400 together with Content-Length), differing Content-Lengths, obs-fold,
/// bare CR or LF, whitespace before a colon, control characters in values.
public struct HTTPRequestParser: Sendable {
    public let limits: HTTPLimits
    private var buffer: [UInt8] = []
    /// Start of unconsumed data in `buffer`.
    private var start = 0
    /// Where the search for the end of the header section resumes.
    private var scanned = 0
    private var state: State = .head

    private enum State: Sendable {
        case head
        case body(HTTPRequestHead)
        case failed
    }

    public init(limits: HTTPLimits = HTTPLimits()) {
        self.limits = limits
    }

    /// True when bytes of an unfinished request are buffered.
    public var hasPartialRequest: Bool {
        switch state {
        case .body: return true
        case .failed: return false
        case .head: return buffer[start...].contains { $0 != 13 && $0 != 10 }
        }
    }

    public var isFailed: Bool { if case .failed = state { return true } else { return false } }

    public mutating func feed<C: Collection>(_ bytes: C) -> [HTTPParserEvent] where C.Element == UInt8 {
        if case .failed = state { return [] }
        buffer.append(contentsOf: bytes)
        var events: [HTTPParserEvent] = []
        loop: while true {
            switch state {
            case .failed:
                break loop
            case .head:
                // Skip empty lines before a request line (RFC 9112 §2.2).
                while start + 1 < buffer.count, buffer[start] == 13, buffer[start + 1] == 10 { start += 2 }
                if scanned < start { scanned = start }
                guard let end = findHeaderEnd() else {
                    if buffer.count - start > limits.maxHeaderBytes {
                        let lineEnd = buffer[start...].firstIndex(of: 10)
                        fail(&events, lineEnd == nil ? .uriTooLong : .headerTooLarge)
                    }
                    break loop
                }
                if end - start > limits.maxHeaderBytes {
                    fail(&events, .headerTooLarge)
                    break loop
                }
                let parsed = parseHead(buffer[start..<end - 4])
                start = end
                scanned = end
                switch parsed {
                case .failure(let error):
                    fail(&events, error)
                    break loop
                case .success(let head):
                    if head.contentLength > 0 {
                        state = .body(head)
                        if buffer.count - start < head.contentLength { events.append(.head(head)) }
                    } else {
                        events.append(.request(HTTPRequest(head: head, body: [])))
                    }
                }
            case .body(let head):
                guard buffer.count - start >= head.contentLength else { break loop }
                let body = Array(buffer[start..<start + head.contentLength])
                start += head.contentLength
                scanned = start
                state = .head
                events.append(.request(HTTPRequest(head: head, body: body)))
            }
        }
        compact()
        return events
    }

    private mutating func fail(_ events: inout [HTTPParserEvent], _ error: HTTPParseError) {
        state = .failed
        buffer = []
        start = 0
        scanned = 0
        events.append(.error(error))
    }

    private mutating func compact() {
        if start > 0 && (start == buffer.count || start > 4096) {
            buffer.removeSubrange(0..<start)
            scanned -= start
            start = 0
        }
    }

    /// Index just past CRLFCRLF, scanning only bytes not scanned before.
    private mutating func findHeaderEnd() -> Int? {
        var i = max(start, scanned - 3)
        let n = buffer.count
        while i + 3 < n {
            if buffer[i + 3] != 10 { i += (buffer[i + 3] == 13 ? 1 : 4); continue }
            if buffer[i] == 13 && buffer[i + 1] == 10 && buffer[i + 2] == 13 { return i + 4 }
            i += 1
        }
        scanned = max(start, n - 3)
        return nil
    }

    // MARK: Head

    /// RFC 9110 tchar: ALPHA, DIGIT and ``!#$%&'*+-.^_`|~``, as two 64-bit masks over ASCII (bit
    /// c of `tcharLow` for c < 64, bit c - 64 of `tcharHigh`). Literals: a computed static is a
    /// `swift_once` call per byte of every header name (`everyByteInHeaderNames` checks them).
    static let tcharLow: UInt64 = 0x03ff_6cfa_0000_0000
    static let tcharHigh: UInt64 = 0x57ff_ffff_c7ff_fffe

    static func isTChar(_ b: UInt8) -> Bool {
        b < 64 ? tcharLow & (1 << UInt64(b)) != 0 : b < 128 && tcharHigh & (1 << UInt64(b - 64)) != 0
    }

    private func parseHead(_ bytes: ArraySlice<UInt8>) -> Result<HTTPRequestHead, HTTPParseError> {
        bytes.withUnsafeBufferPointer { parseHead($0) }
    }

    /// The head (without its final CRLFCRLF) read through a buffer pointer with integer indices:
    /// every slice of an ArraySlice retained and released its array, and the head cost more than
    /// the whole form of a directory lookup (5% of a lookup's CPU in a profile).
    private func parseHead(_ p: UnsafeBufferPointer<UInt8>) -> Result<HTTPRequestHead, HTTPParseError> {
        let n = p.count
        // Lines end in CRLF; a CR or LF anywhere else is refused. Checked and counted in one pass
        // first (no array of lines), then read line by line below.
        /// The first `byte` in `r` (memchr: word-wide, where a byte loop cost ~4 instructions a byte).
        func first(_ byte: UInt8, in r: Range<Int>) -> Int? {
            guard !r.isEmpty, let base = p.baseAddress,
                  let hit = memchr(base + r.lowerBound, Int32(byte), r.count) else { return nil }
            return UnsafePointer(hit.assumingMemoryBound(to: UInt8.self)) - base
        }
        var lineCount = 1
        var i = 0
        while i < n {
            // Each CR must be followed by LF, and no LF may stand anywhere else.
            let cr = first(13, in: i..<n) ?? n
            if first(10, in: i..<cr) != nil { return .failure(.badRequest("bare LF")) }
            guard cr < n else { break }
            guard cr + 1 < n, p[cr + 1] == 10 else { return .failure(.badRequest("bare CR")) }
            lineCount += 1
            i = cr + 2
        }
        guard lineCount - 1 <= limits.maxHeaderCount else { return .failure(.headerTooLarge) }
        func all(_ r: Range<Int>, _ accept: (UInt8) -> Bool) -> Bool {
            for j in r where !accept(p[j]) { return false }
            return true
        }
        func bytes(_ r: Range<Int>) -> UnsafeBufferPointer<UInt8> { UnsafeBufferPointer(rebasing: p[r]) }
        func string(_ r: Range<Int>) -> String { String(decoding: bytes(r), as: UTF8.self) }
        var lineStart = 0
        /// The next line (without its CRLF); nil past the last.
        func nextLine() -> Range<Int>? {
            guard lineStart <= n else { return nil }
            let end = first(13, in: lineStart..<n) ?? n
            defer { lineStart = end + 2 }
            return lineStart..<end
        }
        guard let requestLine = nextLine() else { return .failure(.badRequest("empty")) }

        // request-line = method SP request-target SP HTTP-version
        // Exactly two single spaces (no array of parts made for it).
        guard let sp1 = first(32, in: requestLine),
              let sp2 = first(32, in: (sp1 + 1)..<requestLine.upperBound),
              first(32, in: (sp2 + 1)..<requestLine.upperBound) == nil else { return .failure(.badRequest("request line")) }
        let method = requestLine.lowerBound..<sp1, target = (sp1 + 1)..<sp2, version = (sp2 + 1)..<requestLine.upperBound
        guard !method.isEmpty, all(method, Self.isTChar) else { return .failure(.badRequest("method")) }
        guard !target.isEmpty, all(target, { $0 > 32 && $0 < 127 }) else { return .failure(.badRequest("target")) }
        let minor: Int
        if version.count == 8, memcmp(p.baseAddress! + version.lowerBound, "HTTP/1.", 7) == 0, p[version.lowerBound + 7] == 49 {
            minor = 1
        } else if version.count == 8, memcmp(p.baseAddress! + version.lowerBound, "HTTP/1.", 7) == 0, p[version.lowerBound + 7] == 48 {
            minor = 0
        } else {
            let v = bytes(version)
            if v.count == 8, v.starts(with: "HTTP/".utf8), (48...57).contains(v[5]), v[6] == UInt8(ascii: "."), (48...57).contains(v[7]) {
                return .failure(.versionNotSupported)
            }
            return .failure(.badRequest("version"))
        }

        var headers: [(name: String, value: String)] = []
        headers.reserveCapacity(lineCount - 1)
        var contentLength: Int?
        var hasTransferEncoding = false
        var hostCount = 0
        var connectionClose = false
        var connectionKeepAlive = false
        var expectContinue = false
        while let line = nextLine() {
            guard !line.isEmpty else { return .failure(.badRequest("empty header line")) }
            if p[line.lowerBound] == 32 || p[line.lowerBound] == 9 { return .failure(.badRequest("obs-fold")) }
            guard let colon = first(UInt8(ascii: ":"), in: line) else { return .failure(.badRequest("header without colon")) }
            let name = line.lowerBound..<colon
            guard !name.isEmpty, all(name, Self.isTChar) else { return .failure(.badRequest("header name")) }
            var valueStart = colon + 1, valueEnd = line.upperBound
            while valueStart < valueEnd, p[valueStart] == 32 || p[valueStart] == 9 { valueStart += 1 }
            while valueEnd > valueStart, p[valueEnd - 1] == 32 || p[valueEnd - 1] == 9 { valueEnd -= 1 }
            let value = valueStart..<valueEnd
            guard all(value, { ($0 >= 32 || $0 == 9) && $0 != 127 }) else {
                return .failure(.badRequest("control character in header value"))
            }
            let valueText = string(value)
            headers.append((string(name), valueText))
            switch Self.knownHeader(bytes(name)) {
            case .contentLength:
                guard !value.isEmpty, value.count <= 12, all(value, { $0 >= 48 && $0 <= 57 }),
                      let n = Int(valueText) else { return .failure(.badRequest("Content-Length")) }
                if let existing = contentLength, existing != n { return .failure(.badRequest("conflicting Content-Length")) }
                contentLength = n
            case .transferEncoding:
                hasTransferEncoding = true
            case .host:
                hostCount += 1
            case .connection:
                // Comma-separated tokens, compared as bytes ignoring case (no lowered copy, no array).
                var tokenStart = value.lowerBound
                while tokenStart <= value.upperBound {
                    let comma = first(UInt8(ascii: ","), in: tokenStart..<value.upperBound) ?? value.upperBound
                    var a = tokenStart, b = comma
                    while a < b, p[a] == 32 || p[a] == 9 { a += 1 }
                    while b > a, p[b - 1] == 32 || p[b - 1] == 9 { b -= 1 }
                    if asciiCaseInsensitiveEquals(bytes(a..<b), "close") { connectionClose = true }
                    if asciiCaseInsensitiveEquals(bytes(a..<b), "keep-alive") { connectionKeepAlive = true }
                    tokenStart = comma + 1
                }
            case .expect:
                guard asciiCaseInsensitiveEquals(bytes(value), "100-continue") else { return .failure(.expectationFailed) }
                expectContinue = true
            case nil:
                break
            }
        }
        if hasTransferEncoding {
            if contentLength != nil { return .failure(.badRequest("Transfer-Encoding with Content-Length")) }
            return .failure(.notImplemented("Transfer-Encoding"))
        }
        if minor == 1 && hostCount != 1 { return .failure(.badRequest("Host")) }
        if hostCount > 1 { return .failure(.badRequest("Host")) }
        let length = contentLength ?? 0
        if length > limits.maxBodyBytes { return .failure(.bodyTooLarge) }
        let keepAlive = minor == 1 ? !connectionClose : (connectionKeepAlive && !connectionClose)
        return .success(HTTPRequestHead(
            method: string(method), target: string(target),
            minorVersion: minor, headers: headers, contentLength: length, keepAlive: keepAlive,
            expectContinue: expectContinue && length > 0))
    }
}

extension HTTPRequestParser {
    enum KnownHeader { case contentLength, transferEncoding, host, connection, expect }

    /// The headers the parser acts on, named case-insensitively (no String made for the comparison).
    static func knownHeader(_ name: UnsafeBufferPointer<UInt8>) -> KnownHeader? {
        switch name.count {
        case 4: return asciiCaseInsensitiveEquals(name, "host") ? .host : nil
        case 6: return asciiCaseInsensitiveEquals(name, "expect") ? .expect : nil
        case 10: return asciiCaseInsensitiveEquals(name, "connection") ? .connection : nil
        case 14: return asciiCaseInsensitiveEquals(name, "content-length") ? .contentLength : nil
        case 17: return asciiCaseInsensitiveEquals(name, "transfer-encoding") ? .transferEncoding : nil
        default: return nil
        }
    }
}

/// Equal as ASCII, ignoring case (bytes outside A-Z compared as they are).
func asciiCaseInsensitiveEquals(_ a: UnsafeBufferPointer<UInt8>, _ b: UnsafeBufferPointer<UInt8>) -> Bool {
    guard a.count == b.count else { return false }
    for i in 0..<a.count {
        let x = a[i], y = b[i]
        if x != y && !(x | 0x20 == y | 0x20 && (x | 0x20) >= UInt8(ascii: "a") && (x | 0x20) <= UInt8(ascii: "z")) { return false }
    }
    return true
}

func asciiCaseInsensitiveEquals(_ a: String, _ b: String) -> Bool {
    guard a.utf8.count == b.utf8.count else { return false }
    var a = a, b = b
    return a.withUTF8 { x in b.withUTF8 { y in asciiCaseInsensitiveEquals(x, y) } }
}

func asciiCaseInsensitiveEquals(_ a: UnsafeBufferPointer<UInt8>, _ b: StaticString) -> Bool {
    guard a.count == b.utf8CodeUnitCount else { return false }
    return b.withUTF8Buffer { y in asciiCaseInsensitiveEquals(a, y) }
}
