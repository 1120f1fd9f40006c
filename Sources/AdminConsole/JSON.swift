import Foundation

/// A JSON value written by hand: keys keep their order, numbers keep their text (balances are
/// decimals, never floats).
public indirect enum JSON: Sendable, Equatable {
    case null
    case bool(Bool)
    case number(String)
    case string(String)
    case array([JSON])
    case object([(String, JSON)])
    /// JSON text produced by PostgreSQL (jsonb::text), inserted as it is.
    case raw(String)

    public static func == (a: JSON, b: JSON) -> Bool { a.text == b.text }

    public static func int(_ i: Int) -> JSON { .number(String(i)) }
    public static func int64(_ i: Int64) -> JSON { .number(String(i)) }
    public static func optional(_ s: String?) -> JSON { s.map { .string($0) } ?? .null }

    public var text: String {
        var out = ""
        write(into: &out)
        return out
    }

    func write(into out: inout String) {
        switch self {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .number(let n): out += n
        case .string(let s): JSON.quote(s, into: &out)
        case .raw(let t): out += t
        case .array(let items):
            out += "["
            for (i, v) in items.enumerated() {
                if i > 0 { out += "," }
                v.write(into: &out)
            }
            out += "]"
        case .object(let fields):
            out += "{"
            for (i, (k, v)) in fields.enumerated() {
                if i > 0 { out += "," }
                JSON.quote(k, into: &out)
                out += ":"
                v.write(into: &out)
            }
            out += "}"
        }
    }

    static func quote(_ s: String, into out: inout String) {
        out += "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "<": out += "\\u003c"   // harmless in a script context too
            case _ where u.value < 0x20 || u.value == 0x2028 || u.value == 0x2029:
                out += String(format: "\\u%04x", u.value)
            default: out.unicodeScalars.append(u)
            }
        }
        out += "\""
    }

    /// Indented two spaces a level, `"key" : value` as the CLI has always printed it.
    public var pretty: String {
        var out = ""
        writePretty(into: &out, indent: "")
        return out
    }

    private func writePretty(into out: inout String, indent: String) {
        let inner = indent + "  "
        switch self {
        case .array(let items) where !items.isEmpty:
            out += "[\n"
            for (i, v) in items.enumerated() {
                out += inner
                v.writePretty(into: &out, indent: inner)
                out += i + 1 < items.count ? ",\n" : "\n"
            }
            out += indent + "]"
        case .object(let fields) where !fields.isEmpty:
            out += "{\n"
            for (i, (k, v)) in fields.enumerated() {
                out += inner
                JSON.quote(k, into: &out)
                out += " : "
                v.writePretty(into: &out, indent: inner)
                out += i + 1 < fields.count ? ",\n" : "\n"
            }
            out += indent + "}"
        default:
            write(into: &out)
        }
    }

    /// An object's keys in order (none for anything else).
    public var keys: [String] {
        if case .object(let f) = self { return f.map(\.0) }
        return []
    }

    public subscript(key: String) -> JSON? {
        if case .object(let f) = self { return f.first { $0.0 == key }?.1 }
        return nil
    }
}

/// JSON text read into the value type (request bodies, the audit log's rows): numbers keep their
/// exact decimal text (read as `Decimal`, never through a binary floating point), objects their
/// keys in byte order. No `Any`, no `NSNumber` to tell a boolean from a number.
extension JSON: Decodable {
    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() {
            self = .null
        } else if let b = try? c.decode(Bool.self) {
            self = .bool(b)
        } else if let i = try? c.decode(Int64.self) {
            self = .number(String(i))
        } else if let d = try? c.decode(Decimal.self) {
            self = .number(d.description)
        } else if let s = try? c.decode(String.self) {
            self = .string(s)
        } else if let a = try? c.decode([JSON].self) {
            self = .array(a)
        } else {
            let o = try c.decode([String: JSON].self)
            self = .object(o.sorted { $0.key < $1.key }.map { ($0.key, $0.value) })
        }
    }

    /// A JSON object's fields; nil when `bytes` are not one.
    static func object(_ bytes: [UInt8]) -> [String: JSON]? {
        try? JSONDecoder().decode([String: JSON].self, from: Data(bytes))
    }

    /// The value as an operator reads it: text as it is, numbers in their text, true/false as
    /// yes/no, null as "none", arrays and objects as JSON.
    var plain: String {
        switch self {
        case .null: return "none"
        case .bool(let b): return b ? "yes" : "no"
        case .string(let s): return s
        case .number(let n), .raw(let n): return n
        case .array, .object: return text
        }
    }
}

/// A request body's JSON object, read with type checks that become 400/422 problems.
public struct JSONBody {
    let fields: [String: JSON]

    init(_ bytes: [UInt8]) throws {
        if bytes.isEmpty { fields = [:]; return }
        guard let object = JSON.object(bytes) else {
            throw Problem(status: 400, title: "Bad Request", detail: "the body must be a JSON object")
        }
        fields = object
    }

    /// The field's value, nil when absent or null.
    private func value(_ key: String) -> JSON? {
        guard let v = fields[key], v != .null else { return nil }
        return v
    }

    func has(_ key: String) -> Bool { value(key) != nil }

    func string(_ key: String) throws -> String? {
        guard let v = value(key) else { return nil }
        guard case .string(let s) = v else { throw Problem.invalid("\(key) must be a string") }
        return s
    }

    func requiredString(_ key: String) throws -> String {
        guard let s = try string(key) else { throw Problem.invalid("\(key) is required") }
        return s
    }

    /// A decimal given as a string or a JSON number.
    func decimal(_ key: String) throws -> String? {
        switch value(key) {
        case nil: return nil
        case .string(let s)?, .number(let s)?: return s
        default: throw Problem.invalid("\(key) must be a decimal number (as a string, e.g. \"12.50\")")
        }
    }

    func bool(_ key: String) throws -> Bool? {
        guard let v = value(key) else { return nil }
        guard case .bool(let b) = v else { throw Problem.invalid("\(key) must be true or false") }
        return b
    }

    func int(_ key: String) throws -> Int? {
        guard let v = value(key) else { return nil }
        // A whole number, also when written with a fraction of zero (5.0: its text is "5").
        guard case .number(let n) = v, let i = Int(n) else { throw Problem.invalid("\(key) must be a whole number") }
        return i
    }
}
