import FormEncoding
import SystemCalls
#if canImport(Glibc)
import Glibc
#endif

/// Where a connection comes from, for the per-source connection cap: an IPv4 address (`bits`, the
/// address) or an IPv6 /64 (`bits`, the prefix; `v6`).
struct SourceKey: Hashable, Sendable {
    var bits: UInt64
    var v6: Bool
}

/// A socket address parsed from a numeric host and a port, IPv4 or IPv6.
struct SocketAddress {
    var storage = sockaddr_storage()
    var length: socklen_t = 0
    var family: Int32 = AF_INET

    init?(host: String, port: UInt16) {
        var v4 = sockaddr_in()
        if host.withCString({ inet_pton(AF_INET, $0, &v4.sin_addr) }) == 1 {
            v4.sin_family = sa_family_t(AF_INET)
            v4.sin_port = port.bigEndian
            withUnsafeBytes(of: v4) { src in
                withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: src) }
            }
            length = socklen_t(MemoryLayout<sockaddr_in>.size)
            family = AF_INET
            return
        }
        var v6 = sockaddr_in6()
        var h = host
        if h.hasPrefix("["), h.hasSuffix("]") { h = String(h.dropFirst().dropLast()) }
        if h.withCString({ inet_pton(AF_INET6, $0, &v6.sin6_addr) }) == 1 {
            v6.sin6_family = sa_family_t(AF_INET6)
            v6.sin6_port = port.bigEndian
            withUnsafeBytes(of: v6) { src in
                withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: src) }
            }
            length = socklen_t(MemoryLayout<sockaddr_in6>.size)
            family = AF_INET6
            return
        }
        return nil
    }

    /// The source a peer counts against: its IPv4 address (IPv4-mapped IPv6 too) or its IPv6 /64.
    static func source(_ storage: sockaddr_storage) -> SourceKey {
        var s = storage
        switch Int32(s.ss_family) {
        case AF_INET:
            return withUnsafePointer(to: &s) { p in
                p.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { SourceKey(bits: UInt64(UInt32(bigEndian: $0.pointee.sin_addr.s_addr)), v6: false) }
            }
        case AF_INET6:
            return withUnsafePointer(to: &s) { p in
                p.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { sin6 in
                    withUnsafeBytes(of: sin6.pointee.sin6_addr) { b in
                        let high = b.prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
                        let low = b.suffix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
                        if high == 0 && low >> 32 == 0xFFFF { return SourceKey(bits: low & 0xFFFF_FFFF, v6: false) }
                        return SourceKey(bits: high, v6: true)
                    }
                }
            }
        default:
            return SourceKey(bits: 0, v6: false)
        }
    }

    /// Numeric host of a peer address (IPv4-mapped IPv6 shown as IPv4).
    static func describe(_ storage: sockaddr_storage) -> (host: String, port: UInt16) {
        var s = storage
        switch Int32(s.ss_family) {
        case AF_INET:
            // Every accepted connection: the dotted quad is written straight into a small String.
            return withUnsafePointer(to: &s) { p in
                p.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { sin in
                    let a = UInt32(bigEndian: sin.pointee.sin_addr.s_addr)
                    return (DottedQuad.string(a), UInt16(bigEndian: sin.pointee.sin_port))
                }
            }
        case AF_INET6:
            var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
            return withUnsafePointer(to: &s) { p in
                p.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { sin6 in
                    var addr = sin6.pointee.sin6_addr
                    inet_ntop(AF_INET6, &addr, &buffer, socklen_t(buffer.count))
                    var host = cString(buffer)
                    if host.hasPrefix("::ffff:"), host.contains(".") { host.removeFirst(7) }
                    return (host, UInt16(bigEndian: sin6.pointee.sin6_port))
                }
            }
        default:
            return ("", 0)
        }
    }
}

func cString(_ buffer: [CChar]) -> String {
    buffer.withUnsafeBufferPointer { b in
        let n = b.firstIndex(of: 0) ?? b.count
        return b.baseAddress!.withMemoryRebound(to: UInt8.self, capacity: n) {
            String(decoding: UnsafeBufferPointer(start: $0, count: n), as: UTF8.self)
        }
    }
}

