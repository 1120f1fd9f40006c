import ByteBuffers
import Foundation
import Logging
import SystemCalls

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
            if let escaped = twoCharacterEscapes[scalar] {
                out += escaped
            } else if scalar.value >= 0x20 && scalar.value < 0x7f {
                out.unicodeScalars.append(scalar)
            } else {
                out += "\\u{" + String(scalar.value, radix: 16) + "}"
            }
        }
        return out + "\""
    }

    /// What a quoted value writes for a backslash, a quote, and the three control characters that
    /// have a letter (every other one is written `\u{XXXX}`).
    static let twoCharacterEscapes: [Unicode.Scalar: String] = ["\\": "\\\\", "\"": "\\\"", "\n": "\\n", "\r": "\\r", "\t": "\\t"]

    /// Letters, digits and `._:/@+-|[]%`: written without quotes. One bit per ASCII byte.
    @inline(__always)
    static func isBare(_ b: UInt8) -> Bool {
        b < 64 ? (0x07ff_e820_0000_0000 as UInt64) >> UInt64(b) & 1 == 1
            : b < 128 && (0x17ff_fffe_afff_ffff as UInt64) >> UInt64(b - 64) & 1 == 1
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
        var out = ByteWriter(capacity: 320)
        append(into: &out, timestamp: Array(timestamp.utf8), level: level, label: label, message: message, metadata: metadata)
        return String(decoding: out.bytes, as: UTF8.self)
    }

    /// The same line as bytes, appended to `out` (the handler's path: no intermediate Strings for
    /// the values that need no quoting, which is nearly all of them).
    static func append(into out: inout ByteWriter, timestamp: [UInt8], level: Logger.Level, label: String, message: String,
                       metadata: Logger.Metadata) {
        out.append(timestamp)
        appendHeader(into: &out, level: level, label: label)
        if message.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7f }) { out.append(message) } else { out.append(value(message)) }
        for k in metadata.keys.sorted() {
            switch metadata[k]! {
            case .string(let s): appendField(k, s, into: &out)
            case let other: appendField(k, text(other), into: &out)
            }
        }
    }

    /// ` level label: ` after the timestamp.
    private static func appendHeader(into out: inout ByteWriter, level: Logger.Level, label: String) {
        out.append(UInt8(ascii: " "))
        out.append(level.rawValue)
        out.append(UInt8(ascii: " "))
        out.append(label)
        out.append(": " as StaticString)
    }

    /// ` key=value`, the key made safe and the value quoted as needed.
    private static func appendField(_ k: String, _ v: String, into out: inout ByteWriter) {
        out.append(UInt8(ascii: " "))
        var k = k
        // withUTF8: contiguous bytes for small strings too (their utf8 view is not).
        let safe = k.withUTF8 { key -> Bool in
            for b in key where !isBare(b) || b == UInt8(ascii: "|") { return false }
            out.append(key)
            return true
        }
        if !safe { out.append(Self.key(k)) }
        out.append(UInt8(ascii: "="))
        appendValue(v, into: &out)
    }

    /// ` key=value` for a key of ours (bare by construction).
    private static func appendField(_ k: StaticString, _ v: String, into out: inout ByteWriter) {
        out.append(UInt8(ascii: " "))
        out.append(k)
        out.append(UInt8(ascii: "="))
        appendValue(v, into: &out)
    }

    /// The same line from fields already in key order (the decision line's path: no dictionary,
    /// no sort, the timestamp written in place).
    static func append(into out: inout ByteWriter, level: Logger.Level, label: String, message: StaticString, fields: LogFields) {
        append(into: &out, level: level, label: label, message: message, fields: fields, extra: [])
    }

    /// The same, with `extra` fields of ours (keys sorted) merged into `fields` in key order as
    /// they are written: the decision line's own fields (section, reason, peer, ...) join the
    /// decision's without a copy of its fields or an insertion into them.
    static func append(into out: inout ByteWriter, level: Logger.Level, label: String, message: StaticString, fields: LogFields,
                       extra: [(key: StaticString, value: String)]) {
        LogTimestamp.append(into: &out)
        appendHeader(into: &out, level: level, label: label)
        out.append(message)
        var e = 0
        for (k, v) in fields.pairs {
            while e < extra.count, LogFields.precedes(extra[e].key, k) {
                appendField(extra[e].key, extra[e].value, into: &out)
                e += 1
            }
            if e < extra.count, LogFields.same(extra[e].key, k) {
                // Replaces the decision's field of that key.
                appendField(extra[e].key, extra[e].value, into: &out)
                e += 1
                continue
            }
            appendField(k, v, into: &out)
        }
        while e < extra.count {
            appendField(extra[e].key, extra[e].value, into: &out)
            e += 1
        }
    }

    /// The same into an array (tests).
    public static func appendValue(_ s: String, into out: inout [UInt8]) {
        var writer = ByteWriter(capacity: s.utf8.count + 8)
        appendValue(s, into: &writer)
        out += writer.bytes
    }

    static func appendValue(_ s: String, into out: inout ByteWriter) {
        // One pass over the bytes (withUTF8: contiguous for small strings too): a bare value is
        // copied in one append; a quoted ASCII one in runs between the bytes it escapes (a
        // dialplan decision's `detail` is one, written byte by byte it was a third of the line).
        var s = s
        let written = s.withUTF8 { buf -> Bool in
            var i = 0
            while i < buf.count, isBare(buf[i]) { i += 1 }
            if i == buf.count, i > 0 {
                out.append(buf)
                return true
            }
            for j in i..<buf.count where buf[j] >= 0x80 { return false }
            // Quoted, ASCII only (a caller name with a space, an empty value): escaped exactly as
            // `value` escapes it.
            out.append(UInt8(ascii: "\""))
            var run = 0
            for j in i..<buf.count {
                let b = buf[j]
                if b >= 0x20 && b < 0x7f && b != UInt8(ascii: "\\") && b != UInt8(ascii: "\"") { continue }
                if j > run { out.append(buf.baseAddress! + run, count: j - run) }
                run = j + 1
                switch b {
                case UInt8(ascii: "\\"): out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "\\"))
                case UInt8(ascii: "\""): out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "\""))
                case UInt8(ascii: "\n"): out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "n"))
                case UInt8(ascii: "\r"): out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "r"))
                case UInt8(ascii: "\t"): out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "t"))
                default: out.append("\\u{\(String(b, radix: 16))}")
                }
            }
            if buf.count > run { out.append(buf.baseAddress! + run, count: buf.count - run) }
            out.append(UInt8(ascii: "\""))
            return true
        }
        if !written { out.append(value(s)) }
    }
}

/// `2026-12-05T08:08:04.117Z` (RFC 3339, UTC, milliseconds) from the realtime clock, written as
/// bytes. Foundation's `ISO8601DateFormatter` builds an ICU formatter per call: ~100 µs, half the
/// CPU of a lookup when every decision was logged.
/// The date is computed from the day number (H. Hinnant's `civil_from_days`), not by `gmtime_r`.
public enum LogTimestamp {
    public static func now() -> [UInt8] {
        var out = ByteWriter(capacity: 24)
        append(into: &out)
        return out.bytes
    }

    /// The current time appended to `out`.
    public static func append(into out: inout ByteWriter) {
        let t = WallClock.now()
        append(seconds: t.seconds, milliseconds: t.nanoseconds / 1_000_000, into: &out)
    }

    public static func format(seconds: Int, milliseconds: Int) -> [UInt8] {
        var out = ByteWriter(capacity: 24)
        append(seconds: seconds, milliseconds: milliseconds, into: &out)
        return out.bytes
    }

    /// `seconds` since the epoch (UTC, any sign) and `milliseconds` (0...999), 24 bytes.
    static func append(seconds: Int, milliseconds: Int, into out: inout ByteWriter) {
        var days = seconds / 86_400
        var second = seconds % 86_400
        if second < 0 { second += 86_400; days -= 1 }
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1_460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        var stamp: (UInt64, UInt64, UInt64) = (0, 0, 0)
        withUnsafeMutableBytes(of: &stamp) { b in
            func put(_ v: Int, _ at: Int, _ width: Int) {
                var v = v
                for i in stride(from: at + width - 1, through: at, by: -1) {
                    b[i] = UInt8(ascii: "0") + UInt8(v % 10)
                    v /= 10
                }
            }
            put(year, 0, 4); b[4] = UInt8(ascii: "-")
            put(month, 5, 2); b[7] = UInt8(ascii: "-")
            put(day, 8, 2); b[10] = UInt8(ascii: "T")
            put(second / 3600, 11, 2); b[13] = UInt8(ascii: ":")
            put(second / 60 % 60, 14, 2); b[16] = UInt8(ascii: ":")
            put(second % 60, 17, 2); b[19] = UInt8(ascii: ".")
            put(milliseconds, 20, 3); b[23] = UInt8(ascii: "Z")
            out.append(b.baseAddress!, count: 24)
        }
    }
}

/// The fields of a line, kept in key order as they are set (keys are few and ours, so an array
/// searched in place beats a dictionary that is hashed into and then sorted for every line).
/// Written by the request path for its decision line; a `Logger.Metadata` for any other handler.
public struct LogFields: Sendable, ExpressibleByDictionaryLiteral {
    /// Values are kept as their text: moving a `Logger.Metadata.Value` (an enum with a boxed
    /// existential case) costs generic copies, a String is moved as two words.
    public private(set) var pairs: [(key: String, value: String)] = []

    public init() {}

    /// Empty, with room for `capacity` fields (one allocation for a whole decision's fields).
    public init(capacity: Int) { pairs.reserveCapacity(capacity) }

    public init(dictionaryLiteral elements: (String, Logger.Metadata.Value)...) {
        pairs.reserveCapacity(elements.count + 4)
        for (k, v) in elements { self[k] = v }
    }

    public var isEmpty: Bool { pairs.isEmpty }
    public mutating func reserveCapacity(_ n: Int) { pairs.reserveCapacity(n) }

    public subscript(key: String) -> Logger.Metadata.Value? {
        get { pairs.first(where: { $0.key == key }).map { .string($0.value) } }
        set { set(key, newValue.map(LogFormat.text)) }
    }

    /// Sets (or with nil removes) `key`, keeping the keys in byte order.
    public mutating func set(_ key: String, _ value: String?) {
        // Fields are mostly set in key order: a key after the last is appended after one compare.
        if let v = value, let last = pairs.last, LogFields.precedes(last.key, key) {
            pairs.append((key, v))
            return
        }
        var i = 0
        while i < pairs.count, LogFields.precedes(pairs[i].key, key) { i += 1 }
        let present = i < pairs.count && pairs[i].key == key
        switch (value, present) {
        case (let v?, true): pairs[i].value = v
        case (let v?, false): pairs.insert((key, v), at: i)
        case (nil, true): pairs.remove(at: i)
        case (nil, false): break
        }
    }

    static func precedes(_ a: StaticString, _ b: String) -> Bool {
        var b = b
        return a.withUTF8Buffer { x in b.withUTF8 { y in order(x, y) < 0 } }
    }

    static func same(_ a: StaticString, _ b: String) -> Bool {
        var b = b
        return a.withUTF8Buffer { x in b.withUTF8 { y in order(x, y) == 0 } }
    }

    static func precedes(_ a: String, _ b: String) -> Bool {
        var a = a, b = b
        return a.withUTF8 { x in b.withUTF8 { y in order(x, y) < 0 } }
    }

    /// Byte order of two keys: negative, zero or positive.
    private static func order(_ x: UnsafeBufferPointer<UInt8>, _ y: UnsafeBufferPointer<UInt8>) -> Int {
        let n = min(x.count, y.count)
        let c = n == 0 ? 0 : Int(memcmp(x.baseAddress!, y.baseAddress!, n))
        return c != 0 ? c : x.count - y.count
    }

    public var metadata: Logger.Metadata {
        Logger.Metadata(pairs.map { ($0.key, Logger.Metadata.Value.string($0.value)) }, uniquingKeysWith: { _, new in new })
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
    /// Holds the sink; `sinkForCalls` is the same object, called without a retain and release
    /// of it per line (every event loop shares it: an atomic on one cache line for all).
    let sink: LogSink?
    private let sinkForCalls: Unmanaged<LogSink>?
    let write: (@Sendable (String) -> Void)?

    public init(label: String, sink: LogSink = .standardError) {
        self.label = label
        self.sink = sink
        self.sinkForCalls = Unmanaged.passUnretained(sink)
        self.write = nil
    }

    public init(label: String, write: @escaping @Sendable (String) -> Void) {
        self.label = label
        self.sink = nil
        self.sinkForCalls = nil
        self.write = write
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    /// True when this handler adds nothing of its own to a line (no metadata, no provider), so a
    /// caller's `LogFields` are the whole line and can be written by `write(level:message:fields:)`.
    public var writesFieldsDirectly: Bool { metadata.isEmpty && metadataProvider == nil }

    /// A line from fields already in key order: the decision line's path (no `Logger.Metadata`
    /// dictionary, no sort, the timestamp written in place). Same bytes as `log(event:)`.
    public func write(level: Logger.Level, message: StaticString, fields: LogFields) {
        write(level: level, message: message, fields: fields, extra: [])
    }

    /// `extra`: fields of ours, keys sorted, merged into `fields` in key order (one of `fields`
    /// with the same key is replaced).
    public func write(level: Logger.Level, message: StaticString, fields: LogFields, extra: [(key: StaticString, value: String)]) {
        guard level >= logLevel else { return }
        var line = ByteWriter(capacity: 320)
        LogFormat.append(into: &line, level: level, label: label, message: message, fields: fields, extra: extra)
        emit(&line)
    }

    public func log(event: LogEvent) {
        var all = self.metadata
        if let provided = metadataProvider?.get() { all.merge(provided) { _, new in new } }
        if let explicit = event.metadata {
            if all.isEmpty { all = explicit } else { all.merge(explicit) { _, new in new } }
        }
        var line = ByteWriter(capacity: 320)
        LogFormat.append(into: &line, timestamp: LogTimestamp.now(), level: event.level, label: label,
                         message: event.message.description, metadata: all)
        emit(&line)
    }

    private func emit(_ line: inout ByteWriter) {
        if let sinkForCalls {
            line.append(UInt8(ascii: "\n"))
            // Alive as long as this handler: `sink` holds it.
            line.withBytes { bytes in sinkForCalls._withUnsafeGuaranteedRef { $0.append(bytes) } }
        } else if let write {
            write(String(decoding: line.bytes, as: UTF8.self))
        }
    }
}
