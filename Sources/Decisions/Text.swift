import ByteBuffers

extension String {
    /// `lowercased()`, without making a new string when there is nothing to lower: a lookup's
    /// domain names are usually lower-case ASCII already.
    public var lowercasedIfNeeded: String {
        var s = self
        let plain = s.withUTF8 { bytes in !bytes.contains { $0 >= 0x80 || ($0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z")) } }
        return plain ? self : lowercased()
    }

    /// `lowercased() == other.lowercased()`, compared in place when both are ASCII.
    public func equalsIgnoringCase(_ other: String) -> Bool {
        var a = self, b = other
        let answer: Bool? = a.withUTF8 { x in
            b.withUTF8 { y -> Bool? in
                guard x.count == y.count else {
                    // Lengths can differ only where lowering changes a length (beyond ASCII).
                    return x.allSatisfy({ $0 < 0x80 }) && y.allSatisfy({ $0 < 0x80 }) ? false : nil
                }
                for i in 0..<x.count {
                    let p = x[i], q = y[i]
                    if p >= 0x80 || q >= 0x80 { return nil }
                    if p == q { continue }
                    let lp = p >= UInt8(ascii: "A") && p <= UInt8(ascii: "Z") ? p | 0x20 : p
                    let lq = q >= UInt8(ascii: "A") && q <= UInt8(ascii: "Z") ? q | 0x20 : q
                    if lp != lq { return false }
                }
                return true
            }
        }
        return answer ?? (lowercased() == other.lowercased())
    }
}

/// A line of text built from pieces into one byte buffer, then made a String once: a decision's
/// `detail` (written in the log line of every call at the default level) interpolated from ten
/// pieces cost ~400 instructions a piece in String's general append.
struct TextBuilder: ~Copyable {
    private var bytes: ByteWriter

    init(capacity: Int) { bytes = ByteWriter(capacity: capacity) }

    mutating func add(_ s: StaticString) { bytes.append(s) }

    mutating func add(_ s: String) { bytes.append(s) }

    mutating func add(_ n: Int64) { add(String(n)) }

    var string: String { bytes.withBytes { String(decoding: $0, as: UTF8.self) } }
}
