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

    /// Compares two strings in time that depends only on their lengths.
    public static func constantTimeEquals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var diff = UInt8(a.count == b.count ? 0 : 1)
        let n = max(a.count, b.count)
        for i in 0..<n {
            let x = i < a.count ? a[i] : 0
            let y = i < b.count ? b[i] : 0
            diff |= x ^ y
        }
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

    /// H(bytes) as lower-case hex bytes.
    func hexDigest(_ bytes: [UInt8]) -> [UInt8] {
        switch self {
        case .md5: return Hashing.hexBytes(Insecure.MD5.hash(data: bytes))
        case .sha256: return Hashing.hexBytes(SHA256.hash(data: bytes))
        }
    }

    /// HA1 = H(username:realm:password).
    public func ha1(username: String, realm: String, password: String) -> String {
        hash("\(username):\(realm):\(password)")
    }
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
        let ha2 = algorithm.hexDigest(text)
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
        text += ha2
        let expected = algorithm.hexDigest(text)
        // Hex digits in either case; anything else cannot match a lower-case digest anyway.
        let given = response.utf8.map { $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z") ? $0 | 0x20 : $0 }
        return Hashing.constantTimeEquals(expected, given)
    }
}
