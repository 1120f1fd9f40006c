import CByteScan
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `application/x-www-form-urlencoded` decoding (`+` is a space, then `%XX`), as FreeSWITCH's
/// bodies need (freeswitch-conf/PROTOCOL.md §1). Pure. Names and values are kept in order with duplicates, so that
/// the caller can refuse a field that appears twice. Malformed escapes are kept literally (never
/// truncated); bytes that are not UTF-8 become U+FFFD, which callers treat as hostile.
public enum FormDecoder {
    public static func decode(_ body: some Collection<UInt8>) -> [(name: String, value: String)] {
        decode(Array(body))
    }

    /// Every pair decoded (names and values as Strings), in order.
    public static func decode(_ body: [UInt8]) -> [(name: String, value: String)] {
        body.withUnsafeBufferPointer { EncodedForm.pairs($0) }
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
        return String(decoding: unescapeBytes(buf, from, to), as: UTF8.self)
    }

    /// `+` as a space, then `%XX`; a malformed escape is kept literally.
    static func unescapeBytes(_ buf: UnsafeBufferPointer<UInt8>, _ from: Int, _ to: Int) -> [UInt8] {
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
        return out
    }
}

/// A form body with its pairs located but not decoded: a mod_xml_curl lookup carries 80-200 fields
/// and reads about twenty, so only those are turned into Strings (`lookup`). Splitting and decoding
/// are exactly `FormDecoder.decode`'s: pairs are split on `&` (empty ones skipped), a name ends at
/// the first `=`, `+` is a space, then `%XX`. Names are compared as their decoded bytes.
///
/// Plain names (no `%`, `+` or non-ASCII byte: their own decoding) are chained in buckets by their
/// length and first and last bytes, so that a lookup compares the few names of one bucket instead of
/// every name of the body. Only the buckets of names that lookups have asked for are indexed (the
/// process learns them: `Buckets.learned`); the other plain names are skipped, and a lookup of a
/// name whose bucket the form did not index reads every pair instead (the first lookups of a name
/// after start). Escaped names are rare and kept apart; every lookup also compares them by their
/// decoding, so `sec%74ion` is still a second `section`.
public struct EncodedForm: Sendable {
    /// A pair's name and value in the body, and the next plain name of its bucket (C: the pair
    /// loop is `sa_form_index`).
    typealias Span = sa_form_span

    static let bucketCount = 256

    /// A set of buckets (256 bits).
    public struct Buckets: Sendable, Equatable {
        var w0: UInt64, w1: UInt64, w2: UInt64, w3: UInt64

        public static let all = Buckets(w0: ~0, w1: ~0, w2: ~0, w3: ~0)
        public static let none = Buckets(w0: 0, w1: 0, w2: 0, w3: 0)

        @inline(__always)
        func contains(_ bucket: Int) -> Bool {
            let word: UInt64
            switch bucket >> 6 {
            case 0: word = w0
            case 1: word = w1
            case 2: word = w2
            default: word = w3
            }
            return word >> UInt64(bucket & 63) & 1 != 0
        }

        /// The buckets of the names this process's lookups have asked for so far. A 5 KB dialplan
        /// request has ~180 pairs and a lookup reads ~20 names: indexing every pair cost 7 % of a
        /// dialplan lookup.
        public static var learned: Buckets { LearnedBuckets.shared.current }
    }

    /// The process's learned buckets: only ever grows (a bucket once asked for stays indexed).
    final class LearnedBuckets: Sendable {
        static let shared = LearnedBuckets()
        private let w0 = Atomic<UInt64>(0), w1 = Atomic<UInt64>(0), w2 = Atomic<UInt64>(0), w3 = Atomic<UInt64>(0)

        var current: Buckets {
            Buckets(w0: w0.load(ordering: .relaxed), w1: w1.load(ordering: .relaxed),
                    w2: w2.load(ordering: .relaxed), w3: w3.load(ordering: .relaxed))
        }

        func learn(_ bucket: Int) {
            let bit: UInt64 = 1 << UInt64(bucket & 63)
            switch bucket >> 6 {
            case 0: w0.bitwiseOr(bit, ordering: .relaxed)
            case 1: w1.bitwiseOr(bit, ordering: .relaxed)
            case 2: w2.bitwiseOr(bit, ordering: .relaxed)
            default: w3.bitwiseOr(bit, ordering: .relaxed)
            }
        }
    }

    public let body: [UInt8]
    let spans: [Span]
    /// The first span of each bucket's chain (-1: empty).
    let heads: [Int32]
    /// Spans whose names are escaped or not ASCII, in order.
    let escaped: [Int32]
    /// The buckets whose plain names are in `spans` (every other plain name was skipped).
    let indexed: Buckets
    /// Whether lookups of unindexed names teach the process their buckets (false: a form built
    /// with a fixed set, in tests).
    let learns: Bool

    /// The body indexed for the buckets the process's lookups asked for so far.
    public init(_ body: [UInt8]) {
        self.init(body, indexing: Buckets.learned, learns: true)
    }

    /// The body indexed for `indexing` only (tests: `.all`, `.none`); nothing is learned.
    public init(_ body: [UInt8], indexing: Buckets) {
        self.init(body, indexing: indexing, learns: false)
    }

    init(_ body: [UInt8], indexing: Buckets, learns: Bool) {
        self.body = body
        self.indexed = indexing
        self.learns = learns
        var heads = [Int32](repeating: -1, count: Self.bucketCount)
        var escaped: [Int32] = []
        var spans: [Span] = []
        let words = (body.count + 63) / 64
        heads.withUnsafeMutableBufferPointer { heads in
            body.withUnsafeBufferPointer { buf in
                guard let base = buf.baseAddress else { return }
                let n = buf.count
                // One pass over the body finds every `&`, `=` and escape (bitmaps, 64 bytes a word);
                // the pairs are then read off the bits (`sa_form_index`).
                withUnsafeTemporaryAllocation(of: UInt64.self, capacity: 3 * words + 4) { masks in
                    let amps = masks.baseAddress!, equals = amps + words, special = equals + words, wanted = special + words
                    sa_form_masks(base, n, amps, equals, special)
                    (wanted[0], wanted[1], wanted[2], wanted[3]) = (indexing.w0, indexing.w1, indexing.w2, indexing.w3)
                    let bound = sa_form_pair_bound(amps, words)
                    withUnsafeTemporaryAllocation(of: Int32.self, capacity: bound) { esc in
                        var escapedCount = 0
                        spans = [Span](unsafeUninitializedCapacity: bound) { out, written in
                            written = sa_form_index(base, n, amps, equals, special, wanted, out.baseAddress!,
                                                    heads.baseAddress!, esc.baseAddress!, &escapedCount)
                        }
                        if escapedCount > 0 { escaped = Array(UnsafeBufferPointer(rebasing: esc[0..<escapedCount])) }
                    }
                }
            }
        }
        self.spans = spans
        self.heads = heads
        self.escaped = escaped
    }

    /// A name's bucket: its length and its first and last bytes (the names of a lookup differ in
    /// those almost always; no pass over the bytes). `sa_form_index` computes the same.
    @inline(__always)
    static func bucket(_ p: UnsafePointer<UInt8>, _ count: Int) -> Int {
        guard count > 0 else { return 0 }
        return (count &* 31 &+ Int(p[0]) &* 7 &+ Int(p[count - 1])) & (bucketCount - 1)
    }

    /// No `%`, `+` or byte above 0x7F: the name is its own decoding.
    static func isPlain(_ buf: UnsafeBufferPointer<UInt8>, _ from: Int, _ to: Int) -> Bool {
        for j in from..<to {
            let b = buf[j]
            if b == UInt8(ascii: "%") || b == UInt8(ascii: "+") || b >= 0x80 { return false }
        }
        return true
    }

    /// Every pair of the body in order, indexed or not: (name start, name end, value start or -1,
    /// value end).
    static func forEachPair(_ buf: UnsafeBufferPointer<UInt8>, _ body: (Int, Int, Int, Int) -> Void) {
        let n = buf.count
        var start = 0
        while start <= n {
            var end = start
            while end < n, buf[end] != UInt8(ascii: "&") { end += 1 }
            if end > start {
                var eq = start
                while eq < end, buf[eq] != UInt8(ascii: "=") { eq += 1 }
                body(start, eq, eq < end ? eq + 1 : -1, end)
            }
            start = end + 1
        }
    }

    /// Every pair decoded, in order.
    public var pairs: [(name: String, value: String)] {
        body.withUnsafeBufferPointer { Self.pairs($0) }
    }

    /// Every pair of a body decoded, in order (no index needed: `FormDecoder.decode` builds none).
    static func pairs(_ buf: UnsafeBufferPointer<UInt8>) -> [(name: String, value: String)] {
        var out: [(name: String, value: String)] = []
        forEachPair(buf) { nameStart, nameEnd, valueStart, valueEnd in
            out.append((FormDecoder.unescape(buf, nameStart, nameEnd),
                        valueStart < 0 ? "" : FormDecoder.unescape(buf, valueStart, valueEnd)))
        }
        return out
    }

    public enum Lookup: Equatable, Sendable {
        case absent
        case one(String)
        case duplicated
    }

    /// The value of the pair named `name` (decoded), or whether it is absent or came more than once.
    public func lookup(_ name: String) -> Lookup {
        var target = name
        return target.withUTF8 { want in
            body.withUnsafeBufferPointer { buf -> Lookup in
                let bucket = want.isEmpty ? 0 : Self.bucket(want.baseAddress!, want.count)
                guard indexed.contains(bucket) else { return unindexedLookup(buf, want, bucket) }
                var found: Span?
                // A plain name can only equal a wanted name of the same bytes: its bucket's chain.
                var i = heads[bucket]
                while i >= 0 {
                    let s = spans[Int(i)]
                    if Self.plainNameEquals(buf, Int(s.nameStart), Int(s.nameEnd), want) {
                        if found != nil { return .duplicated }
                        found = s
                    }
                    i = s.next
                }
                // Rare: an escaped or non-ASCII name, compared as the String the eager decoding makes
                // of it (bytes that are not UTF-8 become U+FFFD there, which can make it longer than
                // its encoding).
                for e in escaped {
                    let s = spans[Int(e)]
                    if FormDecoder.unescape(buf, Int(s.nameStart), Int(s.nameEnd)).utf8.elementsEqual(want) {
                        if found != nil { return .duplicated }
                        found = s
                    }
                }
                guard let s = found else { return .absent }
                return .one(s.valueStart < 0 ? "" : FormDecoder.unescape(buf, Int(s.valueStart), Int(s.valueEnd)))
            }
        }
    }

    /// A name whose bucket this form did not index: every pair compared (and the bucket learned,
    /// so that the next forms index it).
    private func unindexedLookup(_ buf: UnsafeBufferPointer<UInt8>, _ want: UnsafeBufferPointer<UInt8>, _ bucket: Int) -> Lookup {
        if learns { LearnedBuckets.shared.learn(bucket) }
        var found: (Int, Int)?
        var duplicated = false
        Self.forEachPair(buf) { nameStart, nameEnd, valueStart, valueEnd in
            guard !duplicated else { return }
            let equal = Self.isPlain(buf, nameStart, nameEnd)
                ? Self.plainNameEquals(buf, nameStart, nameEnd, want)
                : FormDecoder.unescape(buf, nameStart, nameEnd).utf8.elementsEqual(want)
            guard equal else { return }
            if found != nil { duplicated = true }
            found = (valueStart, valueEnd)
        }
        if duplicated { return .duplicated }
        guard let (valueStart, valueEnd) = found else { return .absent }
        return .one(valueStart < 0 ? "" : FormDecoder.unescape(buf, valueStart, valueEnd))
    }

    @inline(__always)
    private static func plainNameEquals(_ buf: UnsafeBufferPointer<UInt8>, _ from: Int, _ to: Int, _ want: UnsafeBufferPointer<UInt8>) -> Bool {
        guard to - from == want.count else { return false }
        if want.isEmpty { return true }
        return memcmp(buf.baseAddress! + from, want.baseAddress!, want.count) == 0
    }
}

/// `a.b.c.d` as inet_ntop writes it, straight into a String (15 bytes at most: no heap storage).
/// The request path writes one per connection (the peer) and per lookup (a normalised source).
public enum DottedQuad {
    /// From a host-order address.
    public static func string(_ address: UInt32) -> String {
        String(unsafeUninitializedCapacity: 15) { out in
            var n = 0
            for shift in stride(from: 24, through: 0, by: -8) {
                if shift != 24 {
                    out[n] = UInt8(ascii: ".")
                    n += 1
                }
                let octet = UInt8(truncatingIfNeeded: address >> UInt32(shift))
                if octet >= 100 {
                    out[n] = UInt8(ascii: "0") + octet / 100
                    n += 1
                }
                if octet >= 10 {
                    out[n] = UInt8(ascii: "0") + octet / 10 % 10
                    n += 1
                }
                out[n] = UInt8(ascii: "0") + octet % 10
                n += 1
            }
            return n
        }
    }
}
