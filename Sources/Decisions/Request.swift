import FormEncoding

/// The fields of a mod_xml_curl form body, in the order they arrived: either decoded pairs, or the
/// body itself with only the fields read decoded (`init(encoded:)`, the service's path: a lookup
/// carries 80-200 fields and reads about twenty). Field names are compared as bytes.
public struct FormFields: Sendable, Equatable {
    private let decoded: [(name: String, value: String)]
    private let encoded: EncodedForm?

    public init(_ pairs: [(name: String, value: String)]) {
        decoded = pairs
        encoded = nil
    }

    /// An `application/x-www-form-urlencoded` body, decoded field by field as they are read.
    public init(encoded body: [UInt8]) {
        decoded = []
        encoded = EncodedForm(body)
    }

    /// The same with the name index of the given buckets only (tests: `.all`, `.none`).
    public init(encoded body: [UInt8], indexing: EncodedForm.Buckets) {
        decoded = []
        encoded = EncodedForm(body, indexing: indexing)
    }

    /// Every pair, decoded.
    public var pairs: [(name: String, value: String)] { encoded?.pairs ?? decoded }

    public static func == (lhs: FormFields, rhs: FormFields) -> Bool {
        let (l, r) = (lhs.pairs, rhs.pairs)
        return l.count == r.count && zip(l, r).allSatisfy { $0.name == $1.name && $0.value == $1.value }
    }

    public enum Lookup: Equatable, Sendable {
        case absent
        case one(String)
        /// The field came more than once: a sign of injection through a raw fixed field.
        case duplicated
    }

    public func lookup(_ name: String) -> Lookup {
        if let encoded {
            switch encoded.lookup(name) {
            case .absent: return .absent
            case .one(let v): return .one(v)
            case .duplicated: return .duplicated
            }
        }
        var found: String?
        let length = name.utf8.count
        // Bytes, as the encoded form compares them (the length first: O(1) for native strings).
        for pair in decoded where pair.name.utf8.count == length && pair.name.utf8.elementsEqual(name.utf8) {
            if found != nil { return .duplicated }
            found = pair.value
        }
        return found.map(Lookup.one) ?? .absent
    }
}

/// Why a request was refused as hostile before any decision was made.
public struct HostileRequest: Error, Sendable, Equatable {
    public var field: String
    public var problem: String
    public init(field: String, problem: String) {
        self.field = field
        self.problem = problem
    }
}

/// A mod_xml_curl lookup whose fields were checked for the injection shapes of freeswitch-conf/PROTOCOL.md §1.
/// Fields are read through `value(_:)`, which refuses duplicates, NUL and control characters.
public struct XMLCurlRequest: Sendable, Equatable {
    public enum Section: Sendable, Equatable {
        case directory, configuration, dialplan
        case other(String)
    }

    public var section: Section
    public var tagName: String
    public var keyName: String
    public var keyValue: String
    public let fields: FormFields

    /// Longest value accepted for any field we read.
    public static let maxFieldLength = 1024

    public init(fields: FormFields) throws(HostileRequest) {
        self.fields = fields
        // The five fixed fields are sent raw by FreeSWITCH: any of them appearing twice means a value
        // carried '&' or '=' (e.g. a realm like `x&user=1001`).
        let sectionName = try Self.read(fields, "section") ?? ""
        switch sectionName {
        case "directory": section = .directory
        case "configuration": section = .configuration
        case "dialplan": section = .dialplan
        default: section = .other(sectionName)
        }
        tagName = try Self.read(fields, "tag_name") ?? ""
        keyName = try Self.read(fields, "key_name") ?? ""
        keyValue = try Self.read(fields, "key_value") ?? ""
        _ = try Self.read(fields, "hostname")
        if keyValue.utf8.contains(UInt8(ascii: "=")) {
            throw HostileRequest(field: "key_value", problem: "contains '='")
        }
    }

    /// The value of a field FreeSWITCH sends at most once. Throws when it appears twice or holds a
    /// NUL, a control character or an oversized value.
    public func value(_ name: String) throws(HostileRequest) -> String? {
        try Self.read(fields, name)
    }

    /// The first of several fields that is present and not empty.
    public func firstValue(_ names: String...) throws(HostileRequest) -> String? {
        for name in names {
            if let v = try nonEmpty(name) { return v }
        }
        return nil
    }

    /// Like `value(_:)`, but an empty value counts as absent.
    public func nonEmpty(_ name: String) throws(HostileRequest) -> String? {
        guard let v = try value(name), !v.isEmpty else { return nil }
        return v
    }

    static func read(_ fields: FormFields, _ name: String) throws(HostileRequest) -> String? {
        switch fields.lookup(name) {
        case .absent:
            return nil
        case .duplicated:
            throw HostileRequest(field: name, problem: "sent more than once")
        case .one(var v):
            if v.utf8.count > maxFieldLength {
                throw HostileRequest(field: name, problem: "longer than \(maxFieldLength) bytes")
            }
            // One pass over the bytes: control characters, and U+FFFD (EF BF BD), which the form
            // decoder put where the bytes were not UTF-8.
            let problem: String? = v.withUTF8 { bytes in
                // Most values are printable ASCII: found eight bytes at a time (no byte below 0x20,
                // none at or above 0x7F), they need no byte loop.
                if Self.printableASCII(bytes) { return nil }
                var previous: (UInt8, UInt8) = (0, 0)
                for byte in bytes {
                    if byte < 0x20 || byte == 0x7f { return "contains a control character" }
                    if byte == 0xBD && previous == (0xEF, 0xBF) { return "contains invalid UTF-8" }
                    previous = (previous.1, byte)
                }
                return nil
            }
            if let problem { throw HostileRequest(field: name, problem: problem) }
            return v
        }
    }

    /// Whether every byte is in 0x20..<0x7F (words: has-less-than 0x20, and a high bit after
    /// adding 1 finds 0x7F, the high bit itself anything from 0x80; exact for "all").
    static func printableASCII(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        guard let p = bytes.baseAddress else { return true }
        let n = bytes.count
        let ones: UInt64 = 0x0101_0101_0101_0101, highs: UInt64 = 0x8080_8080_8080_8080
        var i = 0
        while i + 8 <= n {
            let w = UnsafeRawPointer(p + i).loadUnaligned(as: UInt64.self)
            // Bytes below 0x80 here (checked first), so adding 1 to each carries into no neighbour.
            if w & highs != 0 { return false }
            if (w &- ones &* 0x20) & ~w & highs != 0 { return false }
            if (w &+ ones) & highs != 0 { return false }
            i += 8
        }
        while i < n {
            if p[i] < 0x20 || p[i] >= 0x7f { return false }
            i += 1
        }
        return true
    }
}
