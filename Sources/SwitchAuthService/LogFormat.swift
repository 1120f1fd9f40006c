import Foundation
import Logging

/// How a log line is written: `<time> <level> <label>: <message> key=value key=value`, keys in
/// order. Values often come from a request (a user name, a domain, a header) and can hold anything:
/// a value is written bare only when every byte is one of `A-Z a-z 0-9 . _ : / @ + - | [ ] %`
/// (and it is not empty); otherwise it is written between double quotes with `\` and `"` escaped
/// and every control character, space-like or non-ASCII character as `\n`, `\r`, `\t` or `\u{XXXX}`.
/// A user named `9999 ip=203.0.113.77 reason=locked_out_ip` thus stays one quoted value and cannot
/// add `ip=` or `reason=` pairs to the line that fail2ban or a log pipeline would read.
public enum LogFormat {
    public static func value(_ s: String) -> String {
        if !s.isEmpty && s.utf8.allSatisfy(isBare) { return s }
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value >= 0x20 && scalar.value < 0x7f {
                    out.unicodeScalars.append(scalar)
                } else {
                    out += "\\u{" + String(scalar.value, radix: 16) + "}"
                }
            }
        }
        return out + "\""
    }

    static func isBare(_ b: UInt8) -> Bool {
        switch b {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        case UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: ":"), UInt8(ascii: "/"), UInt8(ascii: "@"), UInt8(ascii: "+"),
             UInt8(ascii: "-"), UInt8(ascii: "|"), UInt8(ascii: "["), UInt8(ascii: "]"), UInt8(ascii: "%"):
            return true
        default:
            return false
        }
    }

    /// A metadata value as text (nested values in a bracketed form), then quoted as needed.
    static func text(_ v: Logger.Metadata.Value) -> String {
        switch v {
        case .string(let s): return s
        case .stringConvertible(let c): return c.description
        case .array(let a): return "[" + a.map { value(text($0)) }.joined(separator: ",") + "]"
        case .dictionary(let d): return "{" + d.keys.sorted().map { "\(key($0))=\(value(text(d[$0]!)))" }.joined(separator: ",") + "}"
        }
    }

    /// Keys are ours, but a key from a dictionary might not be: anything outside the bare set becomes `_`.
    static func key(_ k: String) -> String {
        String(String.UnicodeScalarView(k.unicodeScalars.map { $0.isASCII && isBare(UInt8($0.value)) && $0 != "|" ? $0 : "_" }))
    }

    /// One line, without the newline. The message is ours; it is escaped the same way when it needs it.
    public static func line(timestamp: String, level: Logger.Level, label: String, message: String,
                            metadata: Logger.Metadata) -> String {
        var out = "\(timestamp) \(level) \(label): "
        out += message.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value < 0x7f }) ? message : value(message)
        for k in metadata.keys.sorted() {
            out += " \(key(k))=\(value(text(metadata[k]!)))"
        }
        return out
    }
}

/// swift-log handler writing `LogFormat` lines to standard error (or to `write`, for tests).
public struct KeyValueLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    public var logLevel: Logger.Level = .info
    let label: String
    let write: @Sendable (String) -> Void

    public init(label: String, write: @escaping @Sendable (String) -> Void = KeyValueLogHandler.standardError) {
        self.label = label
        self.write = write
    }

    public static let standardError: @Sendable (String) -> Void = { line in
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var all = self.metadata
        if let provided = metadataProvider?.get() { all.merge(provided) { _, new in new } }
        if let explicit = event.metadata { all.merge(explicit) { _, new in new } }
        let stamp = ISO8601DateFormatter.string(from: Date(), timeZone: TimeZone(identifier: "UTC")!,
                                                formatOptions: [.withInternetDateTime, .withFractionalSeconds])
        write(LogFormat.line(timestamp: stamp, level: event.level, label: label, message: event.message.description, metadata: all))
    }
}
