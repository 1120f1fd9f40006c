import FormEncoding
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An IPv4 or IPv6 address as bytes (4 or 16). IPv4-mapped IPv6 addresses are folded to IPv4.
public struct IPAddress: Sendable, Hashable, Comparable, CustomStringConvertible {
    public let bytes: [UInt8]

    public var isIPv4: Bool { bytes.count == 4 }

    public init?(_ text: String) {
        guard !text.isEmpty, text.utf8.count <= 64 else { return nil }
        if let v4 = Self.parseIPv4(text) {
            bytes = v4
            return
        }
        // Strip an IPv6 zone ("%eth0") and brackets, which never name a configured network.
        var t = Substring(text)
        if t.hasPrefix("["), t.hasSuffix("]") { t = t.dropFirst().dropLast() }
        guard t.contains(":"), !t.contains("%") else { return nil }
        var buffer = [UInt8](repeating: 0, count: 16)
        let ok = String(t).withCString { p in inet_pton(AF_INET6, p, &buffer) }
        guard ok == 1 else { return nil }
        if buffer[0..<10].allSatisfy({ $0 == 0 }) && buffer[10] == 0xff && buffer[11] == 0xff {
            bytes = Array(buffer[12..<16])
        } else {
            bytes = buffer
        }
    }

    public init(bytes: [UInt8]) {
        precondition(bytes.count == 4 || bytes.count == 16)
        self.bytes = bytes
    }

    /// The network of this address with the first `length` bits kept (host bits cleared).
    public func masked(to length: Int) -> IPAddress {
        var out = bytes
        for i in out.indices {
            let kept = max(0, min(8, length - i * 8))
            out[i] &= kept == 0 ? 0 : UInt8(truncatingIfNeeded: 0xff << (8 - kept))
        }
        return IPAddress(bytes: out)
    }

    /// Strict dotted quad: four decimal parts 0-255, no leading zeros (which some parsers read as octal).
    /// Read as bytes: it runs for every lookup (the peer, the `ip` field), and Character's digit
    /// test looks up Unicode properties.
    static func parseIPv4(_ text: String) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(4)
        var value = 0, digits = 0
        for byte in text.utf8 {
            if byte == UInt8(ascii: ".") {
                guard digits > 0, out.count < 3 else { return nil }
                out.append(UInt8(value))
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
        guard digits > 0, out.count == 3 else { return nil }
        out.append(UInt8(value))
        return out
    }

    public var description: String {
        if isIPv4 { return DottedQuad.string(UInt32(bytes[0]) << 24 | UInt32(bytes[1]) << 16 | UInt32(bytes[2]) << 8 | UInt32(bytes[3])) }
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        var raw = bytes
        _ = inet_ntop(AF_INET6, &raw, &buffer, socklen_t(buffer.count))
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    public static func < (lhs: IPAddress, rhs: IPAddress) -> Bool {
        if lhs.bytes.count != rhs.bytes.count { return lhs.bytes.count < rhs.bytes.count }
        return lhs.bytes.lexicographicallyPrecedes(rhs.bytes)
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
        let maxLength = address.bytes.count * 8
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
        guard IPNetwork.hostBitsZero(address.bytes, length) else { return nil }
        self.address = address
        self.prefixLength = length
    }

    public init?(address: IPAddress, prefixLength: Int) {
        guard prefixLength >= 0, prefixLength <= address.bytes.count * 8,
              IPNetwork.hostBitsZero(address.bytes, prefixLength) else { return nil }
        self.address = address
        self.prefixLength = prefixLength
    }

    static func hostBitsZero(_ bytes: [UInt8], _ length: Int) -> Bool {
        for (i, byte) in bytes.enumerated() {
            let bitsKept = max(0, min(8, length - i * 8))
            let mask: UInt8 = bitsKept == 0 ? 0 : UInt8(truncatingIfNeeded: 0xff << (8 - bitsKept))
            if byte & ~mask != 0 { return false }
        }
        return true
    }

    public func contains(_ ip: IPAddress) -> Bool {
        guard ip.bytes.count == address.bytes.count else { return false }
        var remaining = prefixLength
        for i in 0..<ip.bytes.count {
            if remaining <= 0 { return true }
            let bits = min(8, remaining)
            let mask = UInt8(truncatingIfNeeded: 0xff << (8 - bits))
            if (ip.bytes[i] & mask) != (address.bytes[i] & mask) { return false }
            remaining -= bits
        }
        return true
    }

    /// Always with the length, as PostgreSQL's `cidr` prints it and FreeSWITCH's ACL nodes expect.
    public var description: String { "\(address)/\(prefixLength)" }

    /// IPv4 first, then by address, then by length: a deterministic order for acl.conf.
    public static func < (lhs: IPNetwork, rhs: IPNetwork) -> Bool {
        if lhs.address != rhs.address { return lhs.address < rhs.address }
        return lhs.prefixLength < rhs.prefixLength
    }
}
