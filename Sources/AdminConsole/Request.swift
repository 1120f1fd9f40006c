import Foundation
import HTTPServer

/// A console request as the application sees it: method, decoded path segments, query, the few
/// headers it reads, the body and the client's address.
public struct ConsoleRequest: Sendable {
    public var method: String
    public var path: String
    public var segments: [String]
    public var query: [String: String]
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]
    public var client: String

    public init(method: String, target: String, headers: [(name: String, value: String)], body: [UInt8], client: String) {
        self.method = method
        let parts = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        path = String(parts[0])
        segments = path.split(separator: "/").map { Self.percentDecode($0) }
        var q: [String: String] = [:]
        if parts.count == 2 {
            for (k, v) in FormDecoder.decode(Array(parts[1].utf8)) where q[k] == nil { q[k] = v }
        }
        query = q
        self.headers = headers
        self.body = body
        self.client = client
    }

    public init(_ r: HTTPRequest, context: RequestContext) {
        self.init(method: r.head.method, target: r.head.target, headers: r.head.headers, body: r.body, client: context.peerHost)
    }

    /// %XX decoding of a path segment ('+' stays '+': it is a valid character of SIP usernames).
    static func percentDecode(_ s: Substring) -> String {
        var out: [UInt8] = []
        let b = Array(s.utf8)
        var i = 0
        func hex(_ c: UInt8) -> UInt8? {
            switch c {
            case 48...57: c - 48
            case 65...70: c - 55
            case 97...102: c - 87
            default: nil
            }
        }
        while i < b.count {
            if b[i] == 37, i + 2 < b.count, let h = hex(b[i + 1]), let l = hex(b[i + 2]) {
                out.append(h << 4 | l)
                i += 3
            } else {
                out.append(b[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    public func header(_ name: String) -> String? {
        headers.first { $0.name.caseInsensitiveCompare(name) == .orderedSame }?.value
    }

    public func cookie(_ name: String) -> String? {
        guard let h = header("Cookie") else { return nil }
        for part in h.split(separator: ";") {
            let kv = part.trimmingCharacters(in: .whitespaces).split(separator: "=", maxSplits: 1)
            if kv.count == 2 && kv[0] == name { return String(kv[1]) }
        }
        return nil
    }

    public var bearerToken: String? {
        guard let h = header("Authorization"), h.lowercased().hasPrefix("bearer ") else { return nil }
        return String(h.dropFirst(7)).trimmingCharacters(in: .whitespaces)
    }

    /// The urlencoded form of a POST.
    public var form: [String: String] {
        var f: [String: String] = [:]
        for (k, v) in FormDecoder.decode(body) where f[k] == nil { f[k] = v }
        return f
    }

    /// Sent with every console answer.
    static let securityHeaders: [(name: String, value: String)] = [
        ("Cache-Control", "no-store"),
        ("X-Content-Type-Options", "nosniff"),
        ("X-Frame-Options", "DENY"),
        ("Referrer-Policy", "same-origin"),
        ("Content-Security-Policy", "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    ]
}
