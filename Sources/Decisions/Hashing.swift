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

    private static let digits = Array("0123456789abcdef".utf8)

    static func hex<D: Sequence>(_ digest: D) -> String where D.Element == UInt8 {
        var out: [UInt8] = []
        out.reserveCapacity(64)
        for byte in digest {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
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
    public func verify(ha1: String, algorithm: DigestAlgorithm) -> Bool {
        let ha2 = algorithm.hash("\(method):\(uri)")
        let expected: String
        if let qop, !qop.isEmpty {
            guard qop.lowercased() == "auth", let cnonce, let nc else { return false }
            expected = algorithm.hash("\(ha1):\(nonce):\(nc):\(cnonce):\(qop):\(ha2)")
        } else {
            expected = algorithm.hash("\(ha1):\(nonce):\(ha2)")
        }
        return Hashing.constantTimeEquals(Array(expected.utf8), Array(response.lowercased().utf8))
    }
}
