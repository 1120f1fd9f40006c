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
        var out: [UInt8] = []
        append(into: &out, timestamp: Array(timestamp.utf8), level: level, label: label, message: message, metadata: metadata)
        return String(decoding: out, as: UTF8.self)
    }

    /// The same line as bytes, appended to `out` (the handler's path: no intermediate Strings for
    /// the values that need no quoting, which is nearly all of them).
    static func append(into out: inout [UInt8], timestamp: [UInt8], level: Logger.Level, label: String, message: String,
                       metadata: Logger.Metadata) {
        out.append(contentsOf: timestamp)
        out.append(UInt8(ascii: " "))
        out.append(contentsOf: level.rawValue.utf8)
        out.append(UInt8(ascii: " "))
        out.append(contentsOf: label.utf8)
        out.append(contentsOf: ": ".utf8)
        if message.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7f }) { out.append(contentsOf: message.utf8) } else { out.append(contentsOf: value(message).utf8) }
        guard !metadata.isEmpty else { return }
        for k in metadata.keys.sorted() {
            out.append(UInt8(ascii: " "))
            if k.utf8.allSatisfy({ isBare($0) && $0 != UInt8(ascii: "|") }) { out.append(contentsOf: k.utf8) } else { out.append(contentsOf: key(k).utf8) }
            out.append(UInt8(ascii: "="))
            switch metadata[k]! {
            case .string(let s): appendValue(s, into: &out)
            case let other: appendValue(text(other), into: &out)
            }
        }
    }

    public static func appendValue(_ s: String, into out: inout [UInt8]) {
        var ascii = true
        var bare = !s.isEmpty
        for b in s.utf8 {
            if b >= 0x80 { ascii = false; break }
            if bare && !isBare(b) { bare = false }
        }
        if bare && ascii { out.append(contentsOf: s.utf8); return }
        guard ascii else { out.append(contentsOf: value(s).utf8); return }
        // Quoted, ASCII only (a caller name with a space, an empty value): escaped byte by byte,
        // exactly as `value` escapes it.
        out.append(UInt8(ascii: "\""))
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "\\"): out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "\\"))
            case UInt8(ascii: "\""): out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "\""))
            case UInt8(ascii: "\n"): out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "n"))
            case UInt8(ascii: "\r"): out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "r"))
            case UInt8(ascii: "\t"): out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "t"))
            case 0x20..<0x7f: out.append(b)
            default: out.append(contentsOf: "\\u{\(String(b, radix: 16))}".utf8)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}

/// `2026-12-05T08:08:04.117Z` (RFC 3339, UTC, milliseconds) from the realtime clock, written as
/// bytes. Foundation's `ISO8601DateFormatter` builds an ICU formatter per call: ~100 µs, half the
/// CPU of a lookup when every decision was logged.
public enum LogTimestamp {
    public static func now() -> [UInt8] {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return format(seconds: ts.tv_sec, milliseconds: ts.tv_nsec / 1_000_000)
    }

    public static func format(seconds: Int, milliseconds: Int) -> [UInt8] {
        var t = seconds
        var tm = tm()
        gmtime_r(&t, &tm)
        var out = [UInt8](repeating: 0, count: 24)
        func put(_ v: Int, _ at: Int, _ width: Int) {
            var v = v
            for i in stride(from: at + width - 1, through: at, by: -1) {
                out[i] = UInt8(ascii: "0") + UInt8(v % 10)
                v /= 10
            }
        }
        put(Int(tm.tm_year) + 1900, 0, 4); out[4] = UInt8(ascii: "-")
        put(Int(tm.tm_mon) + 1, 5, 2); out[7] = UInt8(ascii: "-")
        put(Int(tm.tm_mday), 8, 2); out[10] = UInt8(ascii: "T")
        put(Int(tm.tm_hour), 11, 2); out[13] = UInt8(ascii: ":")
        put(Int(tm.tm_min), 14, 2); out[16] = UInt8(ascii: ":")
        put(Int(tm.tm_sec), 17, 2); out[19] = UInt8(ascii: ".")
        put(milliseconds, 20, 3); out[23] = UInt8(ascii: "Z")
        return out
    }
}

/// swift-log handler writing `LogFormat` lines to a `LogSink` (standard error by default), or to
/// `write`, for tests. A line costs its formatting and one append under a mutex: the write to the
/// descriptor happens on the sink's own thread (see `LogSink`).
public struct KeyValueLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    public var logLevel: Logger.Level = .info
    let label: String
    let sink: LogSink?
    let write: (@Sendable (String) -> Void)?

    public init(label: String, sink: LogSink = .standardError) {
        self.label = label
        self.sink = sink
        self.write = nil
    }

    public init(label: String, write: @escaping @Sendable (String) -> Void) {
        self.label = label
        self.sink = nil
        self.write = write
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var all = self.metadata
        if let provided = metadataProvider?.get() { all.merge(provided) { _, new in new } }
        if let explicit = event.metadata {
            if all.isEmpty { all = explicit } else { all.merge(explicit) { _, new in new } }
        }
        var line: [UInt8] = []
        line.reserveCapacity(320)
        LogFormat.append(into: &line, timestamp: LogTimestamp.now(), level: event.level, label: label,
                         message: event.message.description, metadata: all)
        if let sink {
            line.append(UInt8(ascii: "\n"))
            sink.append(line)
        } else if let write {
            write(String(decoding: line, as: UTF8.self))
        }
    }
}
