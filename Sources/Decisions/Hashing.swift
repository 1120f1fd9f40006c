import Crypto

/// Lower-case hex digests used by SIP digest authentication and migration checksums.
public enum Hashing {
    public static func md5Hex(_ text: String) -> String {
        hex(Insecure.MD5.hash(data: Array(text.utf8)))
    }

    public static func sha256Hex(_ text: String) -> String {
        hex(SHA256.hash(data: Array(text.utf8)))
    }

    public static func sha256Hex(bytes: [UInt8]) -> String {
        hex(SHA256.hash(data: bytes))
    }

    static func hex<D: Sequence>(_ digest: D) -> String where D.Element == UInt8 {
        String(decoding: hexBytes(digest), as: UTF8.self)
    }

    /// Lower-case hex of a digest, as bytes.
    static func hexBytes<D: Sequence>(_ digest: D) -> [UInt8] where D.Element == UInt8 {
        var out: [UInt8] = []
        out.reserveCapacity(64)
        for byte in digest {
            out.append(hexDigit(byte >> 4))
            out.append(hexDigit(byte & 0x0f))
        }
        return out
    }

    @inline(__always)
    static func hexDigit(_ nibble: UInt8) -> UInt8 {
        nibble < 10 ? UInt8(ascii: "0") + nibble : UInt8(ascii: "a") - 10 + nibble
    }

    /// Compares two byte sequences in time that depends only on their lengths. Inlinable: called
    /// from another module it is specialized there (unspecialized, it costs a witness call a byte).
    @inlinable
    public static func constantTimeEquals<A: Collection, B: Collection>(_ a: A, _ b: B) -> Bool
    where A.Element == UInt8, B.Element == UInt8 {
        // Contiguous bytes (arrays, native strings' UTF-8) compared through pointers: a String's
        // UTF-8 view read by its iterator cost ~45 instructions a byte (the basic-auth header, every
        // request).
        if let equal = a.withContiguousStorageIfAvailable({ x in b.withContiguousStorageIfAvailable { y in constantTimeEquals(x, y) } }),
           let equal {
            return equal
        }
        var diff = UInt8(a.count == b.count ? 0 : 1)
        var x = a.makeIterator(), y = b.makeIterator()
        while true {
            let p = x.next(), q = y.next()
            if p == nil && q == nil { return diff == 0 }
            diff |= (p ?? 0) ^ (q ?? 0)
        }
    }

    /// The same over two buffers: every byte of the longer one is read whatever the answer.
    @usableFromInline
    static func constantTimeEquals(_ a: UnsafeBufferPointer<UInt8>, _ b: UnsafeBufferPointer<UInt8>) -> Bool {
        var diff = UInt8(a.count == b.count ? 0 : 1)
        let common = min(a.count, b.count)
        for i in 0..<common { diff |= a[i] ^ b[i] }
        for i in common..<a.count { diff |= a[i] }
        for i in common..<b.count { diff |= b[i] }
        return diff == 0
    }
}

/// SIP digest authentication (RFC 2617 / RFC 7616 / RFC 8760), exactly as FreeSWITCH's
/// `sofia_reg_parse_auth` computes it: HA2 = H(method:uri); response = H(HA1:nonce:nc:cnonce:qop:HA2)
/// with qop=auth, H(HA1:nonce:HA2) without qop. auth-int is not supported (as in FreeSWITCH).
public enum DigestAlgorithm: String, Sendable, Equatable {
    case md5 = "MD5"
    case sha256 = "SHA-256"

    /// FreeSWITCH's request does not name the algorithm; the response length does.
    public init?(responseLength: Int) {
        switch responseLength {
        case 32: self = .md5
        case 64: self = .sha256
        default: return nil
        }
    }

    public func hash(_ text: String) -> String {
        switch self {
        case .md5: return Hashing.md5Hex(text)
        case .sha256: return Hashing.sha256Hex(text)
        }
    }

    /// H(bytes), held by value: its hex is written where it is needed (no array per digest).
    func digest(_ bytes: [UInt8]) -> DigestValue {
        switch self {
        case .md5: return DigestValue(Insecure.MD5.hash(data: bytes))
        case .sha256: return DigestValue(SHA256.hash(data: bytes))
        }
    }

    /// HA1 = H(username:realm:password).
    public func ha1(username: String, realm: String, password: String) -> String {
        hash("\(username):\(realm):\(password)")
    }
}

/// A digest of either algorithm (16 or 32 bytes) in fixed storage.
struct DigestValue {
    private let storage: (UInt64, UInt64, UInt64, UInt64)
    private let count: Int

    init<D: Digest>(_ digest: D) {
        var storage: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
        count = digest.withUnsafeBytes { raw in
            withUnsafeMutableBytes(of: &storage) { out in
                let n = min(raw.count, out.count)
                out.copyMemory(from: UnsafeRawBufferPointer(rebasing: raw[..<n]))
                return n
            }
        }
        self.storage = storage
    }

    private func withBytes<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R {
        withUnsafeBytes(of: storage) { body(UnsafeRawBufferPointer(rebasing: $0[..<count])) }
    }

    /// Appends the lower-case hex of the digest.
    func appendHex(to out: inout [UInt8]) {
        withBytes { raw in
            for byte in raw {
                out.append(Hashing.hexDigit(byte >> 4))
                out.append(Hashing.hexDigit(byte & 0x0f))
            }
        }
    }

    /// Whether `hex` spells this digest, in either case, compared in time that depends only on
    /// the lengths.
    func equalsHex(_ hex: String) -> Bool {
        withBytes { raw in
            guard hex.utf8.count == raw.count * 2 else { return false }
            var diff: UInt8 = 0
            var given = hex.utf8.makeIterator()
            for byte in raw {
                guard let high = given.next(), let low = given.next() else { return false }
                diff |= Self.lowered(high) ^ Hashing.hexDigit(byte >> 4)
                diff |= Self.lowered(low) ^ Hashing.hexDigit(byte & 0x0f)
            }
            return diff == 0
        }
    }

    private static func lowered(_ b: UInt8) -> UInt8 { b >= UInt8(ascii: "A") && b <= UInt8(ascii: "Z") ? b | 0x20 : b }
}

/// The digest fields FreeSWITCH forwards in a sip_auth lookup.
public struct DigestCredentials: Sendable, Equatable {
    public var username: String
    public var realm: String
    public var nonce: String
    public var uri: String
    public var method: String
    public var qop: String?
    public var cnonce: String?
    public var nc: String?
    public var response: String

    public init(username: String, realm: String, nonce: String, uri: String, method: String,
                qop: String?, cnonce: String?, nc: String?, response: String) {
        self.username = username
        self.realm = realm
        self.nonce = nonce
        self.uri = uri
        self.method = method
        self.qop = qop
        self.cnonce = cnonce
        self.nc = nc
        self.response = response
    }

    public var algorithm: DigestAlgorithm? { DigestAlgorithm(responseLength: response.utf8.count) }

    /// Verifies the response against a stored HA1 of the matching algorithm.
    /// Built as bytes, not interpolated Strings: this runs for every REGISTER and INVITE.
    public func verify(ha1: String, algorithm: DigestAlgorithm) -> Bool {
        var text: [UInt8] = []
        text.reserveCapacity(160 + nonce.utf8.count + uri.utf8.count + (cnonce?.utf8.count ?? 0))
        text += method.utf8
        text.append(UInt8(ascii: ":"))
        text += uri.utf8
        let ha2 = algorithm.digest(text)
        text.removeAll(keepingCapacity: true)
        text += ha1.utf8
        text.append(UInt8(ascii: ":"))
        text += nonce.utf8
        text.append(UInt8(ascii: ":"))
        if let qop, !qop.isEmpty {
            guard qop.equalsIgnoringCase("auth"), let cnonce, let nc else { return false }
            text += nc.utf8
            text.append(UInt8(ascii: ":"))
            text += cnonce.utf8
            text.append(UInt8(ascii: ":"))
            text += qop.utf8
            text.append(UInt8(ascii: ":"))
        }
        ha2.appendHex(to: &text)
        // Hex digits in either case; anything else cannot match a lower-case digest anyway.
        return algorithm.digest(text).equalsHex(response)
    }
}
