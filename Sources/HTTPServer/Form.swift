/// `application/x-www-form-urlencoded` decoding (`+` is a space, then `%XX`), as FreeSWITCH's
/// bodies need (PROTOCOL.md §1). Pure. Names and values are kept in order with duplicates, so that
/// the caller can refuse a field that appears twice. Malformed escapes are kept literally (never
/// truncated); bytes that are not UTF-8 become U+FFFD, which callers treat as hostile.
public enum FormDecoder {
    public static func decode(_ body: some Collection<UInt8>) -> [(name: String, value: String)] {
        var out: [(name: String, value: String)] = []
        var pair: [UInt8] = []
        func flush() {
            guard !pair.isEmpty else { return }
            if let eq = pair.firstIndex(of: UInt8(ascii: "=")) {
                out.append((unescape(pair[..<eq]), unescape(pair[(eq + 1)...])))
            } else {
                out.append((unescape(pair[...]), ""))
            }
            pair.removeAll(keepingCapacity: true)
        }
        for b in body {
            if b == UInt8(ascii: "&") { flush() } else { pair.append(b) }
        }
        flush()
        return out
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
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var i = bytes.startIndex
        while i < bytes.endIndex {
            let b = bytes[i]
            if b == UInt8(ascii: "+") {
                out.append(32)
            } else if b == UInt8(ascii: "%"), i + 2 < bytes.endIndex,
                      let h = hexValue(bytes[i + 1]), let l = hexValue(bytes[i + 2]) {
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
