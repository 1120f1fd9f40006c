/// `application/x-www-form-urlencoded` decoding (`+` is a space, then `%XX`), as FreeSWITCH's
/// bodies need (freeswitch-conf/PROTOCOL.md §1). Pure. Names and values are kept in order with duplicates, so that
/// the caller can refuse a field that appears twice. Malformed escapes are kept literally (never
/// truncated); bytes that are not UTF-8 become U+FFFD, which callers treat as hostile.
public enum FormDecoder {
    public static func decode(_ body: some Collection<UInt8>) -> [(name: String, value: String)] {
        decode(Array(body))
    }

    /// The hot path: one pass over the bytes; values without `%` or `+` are copied straight into
    /// their String.
    public static func decode(_ body: [UInt8]) -> [(name: String, value: String)] {
        body.withUnsafeBufferPointer { buf in
            var out: [(name: String, value: String)] = []
            out.reserveCapacity(96)
            let n = buf.count
            var start = 0
            var i = 0
            while i <= n {
                if i == n || buf[i] == UInt8(ascii: "&") {
                    if i > start {
                        var eq = start
                        while eq < i && buf[eq] != UInt8(ascii: "=") { eq += 1 }
                        let name = unescape(buf, start, eq)
                        let value = eq < i ? unescape(buf, eq + 1, i) : ""
                        out.append((name, value))
                    }
                    start = i + 1
                }
                i += 1
            }
            return out
        }
    }

    static func hexValue(_ b: UInt8) -> UInt8? {
        switch b {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return b - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return b - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return b - UInt8(ascii: "A") + 10
        default: return nil
        }
    }

    public static func unescape(_ bytes: ArraySlice<UInt8>) -> String {
        Array(bytes).withUnsafeBufferPointer { unescape($0, 0, $0.count) }
    }

    static func unescape(_ buf: UnsafeBufferPointer<UInt8>, _ from: Int, _ to: Int) -> String {
        var plain = true
        for j in from..<to where buf[j] == UInt8(ascii: "%") || buf[j] == UInt8(ascii: "+") {
            plain = false
            break
        }
        if plain { return String(decoding: UnsafeBufferPointer(rebasing: buf[from..<to]), as: UTF8.self) }
        var out: [UInt8] = []
        out.reserveCapacity(to - from)
        var i = from
        while i < to {
            let b = buf[i]
            if b == UInt8(ascii: "+") {
                out.append(32)
            } else if b == UInt8(ascii: "%"), i + 2 < to,
                      let h = hexValue(buf[i + 1]), let l = hexValue(buf[i + 2]) {
                out.append(h << 4 | l)
                i += 2
            } else {
                out.append(b)
            }
            i += 1
        }
        return String(decoding: out, as: UTF8.self)
    }
}
