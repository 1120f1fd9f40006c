import FormEncoding
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An IPv4 or IPv6 address, held in two big-endian words (an IPv4 address in the low 32 bits of
/// `low`): no array per address, since one is parsed for every lookup. IPv4-mapped IPv6 addresses
/// are folded to IPv4. `bytes` gives the 4 or 16 bytes.
public struct IPAddress: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// The first 64 bits of an IPv6 address; 0 for IPv4.
    public let high: UInt64
    /// The last 64 bits of an IPv6 address, or the IPv4 address in the low 32 bits.
    public let low: UInt64
    public let isIPv4: Bool

    /// The address's bytes: 4 for IPv4, 16 for IPv6.
    public var bytes: [UInt8] {
        if isIPv4 { return (0..<4).map { UInt8(truncatingIfNeeded: low >> (24 - 8 * UInt64($0))) } }
        return (0..<16).map { i in UInt8(truncatingIfNeeded: (i < 8 ? high : low) >> (56 - 8 * UInt64(i % 8))) }
    }

    /// The bit length of the family: 32 or 128.
    public var bitCount: Int { isIPv4 ? 32 : 128 }

    public init?(_ text: String) {
        guard !text.isEmpty, text.utf8.count <= 64 else { return nil }
        if let v4 = Self.parseIPv4(text) {
            self.init(ipv4: v4)
            return
        }
        // Strip an IPv6 zone ("%eth0") and brackets, which never name a configured network.
        var t = Substring(text)
        if t.hasPrefix("["), t.hasSuffix("]") { t = t.dropFirst().dropLast() }
        guard t.contains(":"), !t.contains("%") else { return nil }
        var raw: (UInt64, UInt64) = (0, 0)
        let ok = String(t).withCString { p in withUnsafeMutableBytes(of: &raw) { inet_pton(AF_INET6, p, $0.baseAddress) } }
        guard ok == 1 else { return nil }
        let h = UInt64(bigEndian: raw.0), l = UInt64(bigEndian: raw.1)
        if h == 0 && l >> 32 == 0xffff {
            self.init(ipv4: UInt32(truncatingIfNeeded: l))
        } else {
            self.init(high: h, low: l)
        }
    }

    public init(ipv4: UInt32) {
        high = 0
        low = UInt64(ipv4)
        isIPv4 = true
    }

    /// An IPv6 address from its two big-endian halves (not folded: the caller's family is kept).
    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
        isIPv4 = false
    }

    public init(bytes: [UInt8]) {
        precondition(bytes.count == 4 || bytes.count == 16)
        if bytes.count == 4 {
            self.init(ipv4: bytes.reduce(0) { $0 << 8 | UInt32($1) })
        } else {
            self.init(high: bytes[0..<8].reduce(0) { $0 << 8 | UInt64($1) }, low: bytes[8..<16].reduce(0) { $0 << 8 | UInt64($1) })
        }
    }

    /// The network of this address with the first `length` bits kept (host bits cleared).
    public func masked(to length: Int) -> IPAddress {
        if isIPv4 { return IPAddress(ipv4: UInt32(truncatingIfNeeded: low & Self.mask(length, of: 32))) }
        return IPAddress(high: high & Self.mask(length, of: 64), low: low & Self.mask(length - 64, of: 64))
    }

    /// The first `length` bits of a `width`-bit field (32 or 64) set, right-aligned in a word.
    @inline(__always)
    static func mask(_ length: Int, of width: Int) -> UInt64 {
        let kept = max(0, min(width, length))
        guard kept > 0 else { return 0 }
        let field: UInt64 = width == 64 ? ~0 : (1 << UInt64(width)) - 1
        let hostBits: UInt64 = kept == width ? 0 : (1 << UInt64(width - kept)) - 1
        return field & ~hostBits
    }

    /// Strict dotted quad: four decimal parts 0-255, no leading zeros (which some parsers read as octal).
    /// Read as bytes: it runs for every lookup (the peer, the `ip` field), and Character's digit
    /// test looks up Unicode properties.
    static func parseIPv4(_ text: String) -> UInt32? {
        var out: UInt32 = 0
        var parts = 0
        var value = 0, digits = 0
        for byte in text.utf8 {
            if byte == UInt8(ascii: ".") {
                guard digits > 0, parts < 3 else { return nil }
                out = out << 8 | UInt32(value)
                parts += 1
                value = 0
                digits = 0
                continue
            }
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            // A digit after a leading "0".
            if digits == 1 && value == 0 { return nil }
            value = value * 10 + Int(byte - UInt8(ascii: "0"))
            digits += 1
            guard value <= 255 else { return nil }
        }
        guard digits > 0, parts == 3 else { return nil }
        return out << 8 | UInt32(value)
    }

    public var description: String {
        if isIPv4 { return DottedQuad.string(UInt32(truncatingIfNeeded: low)) }
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        var raw = (high.bigEndian, low.bigEndian)
        _ = withUnsafeBytes(of: &raw) { inet_ntop(AF_INET6, $0.baseAddress, &buffer, socklen_t(buffer.count)) }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// IPv4 before IPv6, then by address.
    public static func < (lhs: IPAddress, rhs: IPAddress) -> Bool {
        if lhs.isIPv4 != rhs.isIPv4 { return lhs.isIPv4 }
        return (lhs.high, lhs.low) < (rhs.high, rhs.low)
    }
}

/// A network in CIDR form. A bare address is a single host (/32 or /128). Host bits must be zero,
/// as in PostgreSQL's `cidr`.
public struct IPNetwork: Sendable, Hashable, Comparable, CustomStringConvertible {
    public let address: IPAddress
    public let prefixLength: Int

    public init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let address = IPAddress(String(parts[0])) else { return nil }
        let maxLength = address.bitCount
        var length = maxLength
        if parts.count == 2 {
            guard !parts[1].isEmpty, parts[1].utf8.count <= 3,
                  parts[1].utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
                  let l = Int(parts[1]), l <= maxLength else { return nil }
            // An IPv4-mapped address given with an IPv6 length: reduce it to the IPv4 length.
            if address.isIPv4 && String(parts[0]).contains(":") {
                guard l >= 96 else { return nil }
                length = l - 96
            } else {
                length = l
            }
        }
        guard address.masked(to: length) == address else { return nil }
        self.address = address
        self.prefixLength = length
    }

    public init?(address: IPAddress, prefixLength: Int) {
        guard prefixLength >= 0, prefixLength <= address.bitCount, address.masked(to: prefixLength) == address else { return nil }
        self.address = address
        self.prefixLength = prefixLength
    }

    public func contains(_ ip: IPAddress) -> Bool {
        ip.isIPv4 == address.isIPv4 && ip.masked(to: prefixLength) == address
    }

    /// Always with the length, as PostgreSQL's `cidr` prints it and FreeSWITCH's ACL nodes expect.
    /// (The address's own description appended: interpolating the struct went through
    /// `String(describing:)`'s dynamic casts, once per IP-authenticated call's log line.)
    public var description: String { address.description + "/" + String(prefixLength) }

    /// IPv4 first, then by address, then by length: a deterministic order for acl.conf.
    public static func < (lhs: IPNetwork, rhs: IPNetwork) -> Bool {
        if lhs.address != rhs.address { return lhs.address < rhs.address }
        return lhs.prefixLength < rhs.prefixLength
    }
}
