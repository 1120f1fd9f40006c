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

    public subscript(key: String) -> JSON? {
        if case .object(let f) = self { return f.first { $0.0 == key }?.1 }
        return nil
    }
}

/// A request body's JSON object, read with type checks that become 400/422 problems.
public struct JSONBody {
    let fields: [String: Any]

    init(_ bytes: [UInt8]) throws {
        if bytes.isEmpty { fields = [:]; return }
        guard let any = try? JSONSerialization.jsonObject(with: Data(bytes)), let dict = any as? [String: Any] else {
            throw Problem(status: 400, title: "Bad Request", detail: "the body must be a JSON object")
        }
        fields = dict
    }

    /// JSON true/false (Foundation hands them over as NSNumber of a char, or as Bool).
    static func isBool(_ v: Any) -> Bool {
        if let n = v as? NSNumber, type(of: v) != Bool.self { return n.objCType.pointee == CChar(UInt8(ascii: "c")) }
        return v is Bool
    }

    func has(_ key: String) -> Bool { fields[key] != nil && !(fields[key] is NSNull) }

    func string(_ key: String) throws -> String? {
        guard let v = fields[key], !(v is NSNull) else { return nil }
        guard let s = v as? String else { throw Problem.invalid("\(key) must be a string") }
        return s
    }

    func requiredString(_ key: String) throws -> String {
        guard let s = try string(key) else { throw Problem.invalid("\(key) is required") }
        return s
    }

    /// A decimal given as a string or a JSON number.
    func decimal(_ key: String) throws -> String? {
        guard let v = fields[key], !(v is NSNull) else { return nil }
        if let s = v as? String { return s }
        if !Self.isBool(v), let n = v as? NSNumber { return n.stringValue }
        throw Problem.invalid("\(key) must be a decimal number (as a string, e.g. \"12.50\")")
    }

    func bool(_ key: String) throws -> Bool? {
        guard let v = fields[key], !(v is NSNull) else { return nil }
        guard Self.isBool(v), let b = v as? Bool else { throw Problem.invalid("\(key) must be true or false") }
        return b
    }

    func int(_ key: String) throws -> Int? {
        guard let v = fields[key], !(v is NSNull) else { return nil }
        guard !Self.isBool(v), let n = v as? NSNumber, let i = Int(exactly: n.doubleValue) else {
            throw Problem.invalid("\(key) must be a whole number")
        }
        return i
    }
}
