/// A call's Unique-ID as the admission ledger keys it: the canonical UUID form (36 characters,
/// lower-case hex digits and dashes at 8, 13, 18 and 23: what FreeSWITCH generates) as two words,
/// any other ID (`origination_uuid` may be any name `isValidUUID` accepts) as its text. One text has
/// one key, and two keys are equal exactly when their texts are, as `call_slots.unique_id` compares
/// them: a canonical ID is hashed and compared as 16 bytes, with no string kept per slot.
public enum CallKey: Hashable, Sendable, CustomStringConvertible, ExpressibleByStringLiteral {
    case uuid(UInt64, UInt64)
    case text(String)

    public init(_ id: String) {
        var id = id
        self = id.withUTF8 { Self.canonical($0) } ?? .text(id)
    }

    public init(stringLiteral value: String) { self.init(value) }

    /// The two words of a canonical UUID; nil for anything else.
    static func canonical(_ u: UnsafeBufferPointer<UInt8>) -> CallKey? {
        guard u.count == 36 else { return nil }
        var words: (UInt64, UInt64) = (0, 0)
        var digits = 0
        for i in 0..<36 {
            let c = u[i]
            if i == 8 || i == 13 || i == 18 || i == 23 {
                guard c == UInt8(ascii: "-") else { return nil }
                continue
            }
            let v: UInt8
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): v = c &- UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): v = c &- UInt8(ascii: "a") &+ 10
            default: return nil
            }
            if digits < 16 { words.0 = words.0 << 4 | UInt64(v) } else { words.1 = words.1 << 4 | UInt64(v) }
            digits += 1
        }
        return .uuid(words.0, words.1)
    }

    /// The Unique-ID as the switch wrote it.
    public var text: String {
        switch self {
        case .text(let s): return s
        case let .uuid(high, low):
            return String(unsafeUninitializedCapacity: 36) { out in
                var at = 0
                for k in 0..<32 {
                    if k == 8 || k == 12 || k == 16 || k == 20 { out[at] = UInt8(ascii: "-"); at += 1 }
                    let word = k < 16 ? high : low
                    let nibble = UInt8(truncatingIfNeeded: word >> UInt64(60 - 4 * (k % 16))) & 0xf
                    out[at] = nibble < 10 ? UInt8(ascii: "0") + nibble : UInt8(ascii: "a") - 10 + nibble
                    at += 1
                }
                return 36
            }
        }
    }

    public var description: String { text }

    public func hash(into hasher: inout Hasher) {
        switch self {
        case let .uuid(high, low):
            hasher.combine(high)
            hasher.combine(low)
        case .text(let s):
            hasher.combine(s)
        }
    }
}
