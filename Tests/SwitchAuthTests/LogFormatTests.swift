import DatabaseTestSupport
import Foundation
import LogLines
import TestSupport
import Locking
import Logging
import Postgres
import Store
import SwitchAuthService
import Testing

/// Issue 13 item 7: values from a request cannot forge key=value pairs in a log line.
@Suite("log lines")
struct LogFormatTests {
    @Test(arguments: [
        ("1001", "1001"),
        ("voip.example.com", "voip.example.com"),
        ("2001:db8::1", "2001:db8::1"),
        ("203.0.113.5|1001@voip.example.com", "203.0.113.5|1001@voip.example.com"),
        ("", #""""#),
        ("9999 ip=203.0.113.77 reason=locked_out_ip", #""9999 ip=203.0.113.77 reason=locked_out_ip""#),
        ("a=b", #""a=b""#),
        ("line\nreason=ok", #""line\nreason=ok""#),
        ("cr\rx", #""cr\rx""#),
        ("tab\tx", #""tab\tx""#),
        ("quote\"x", #""quote\"x""#),
        ("back\\slash", #""back\\slash""#),
        ("nul\u{0}x", #""nul\u{0}x""#),
        ("ünï", #""\u{fc}n\u{ef}""#),
        ("rtl\u{202e}x", #""rtl\u{202e}x""#),
        ("esc\u{1b}[31m", #""esc\u{1b}[31m""#),
    ])
    func valueIsBareOrQuoted(input: String, expected: String) {
        #expect(LogFormat.value(input) == expected)
    }

    /// Splits a line into its key=value pairs the way a log reader would: on spaces outside quotes.
    static func pairs(_ line: String) -> [(String, String)] {
        var tokens: [String] = []
        var current = ""
        var quoted = false
        var escaped = false
        for ch in line {
            if escaped { current.append(ch); escaped = false; continue }
            if quoted && ch == "\\" { current.append(ch); escaped = true; continue }
            if ch == "\"" { quoted.toggle(); current.append(ch); continue }
            if ch == " " && !quoted { tokens.append(current); current = ""; continue }
            current.append(ch)
        }
        tokens.append(current)
        return tokens.compactMap { t in
            guard let eq = t.firstIndex(of: "="), !t.hasPrefix("\"") else { return nil }
            return (String(t[..<eq]), String(t[t.index(after: eq)...]))
        }
    }

    @Test func forgedUserNameStaysOneValue() throws {
        let lines = Locked<[String]>([])
        var logger = Logger(label: "switchauth") { label in
            KeyValueLogHandler(label: label) { line in lines.withLock { $0.append(line) } }
        }
        logger.logLevel = .info
        let dbConfig = try TestDatabase.shared.freshDatabase()
        let db = try Connection(dbConfig)
        try seedFixtureData(db)
        let service = try Service(config: fixtureConfig(database: dbConfig), logger: logger)
        try service.start()
        defer { service.stop() }
        let forged = "9999 ip=203.0.113.77 reason=locked_out_ip"
        let body = LockoutTests.register(password: "x", user: "1001", ip: "198.51.100.5")
            .replacingOccurrences(of: "&user=1001", with: "&user=" + forged.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!)
            .replacingOccurrences(of: "sip_auth_username=1001", with: "sip_auth_username=" + forged.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!)
        #expect(try post(service.port, body).status == 200)
        let decision = try #require(lines.withLock { $0 }.first { $0.contains(" decision ") || $0.contains(": decision") })
        let p = Self.pairs(decision)
        #expect(p.filter { $0.0 == "ip" }.map(\.1) == ["198.51.100.5"], "\(decision)")
        #expect(p.filter { $0.0 == "reason" }.map(\.1) == ["unknown_user"], "\(decision)")
        #expect(p.filter { $0.0 == "user" }.map(\.1) == [LogFormat.value(forged)], "\(decision)")
        #expect(!decision.contains("\n"))
    }
}

/// The decision log's cost (issue 19): timestamps written from the clock as bytes, lines handed to
/// a sink whose own thread writes them, bounded.
@Suite("log sink")
struct LogSinkTests {
    @Test(arguments: [
        (0, 0, "1970-01-01T00:00:00.000Z"),
        (1_796_457_600, 7, "2026-12-05T08:00:00.007Z"),
        (951_782_399, 999, "2000-02-28T23:59:59.999Z"),
        (951_868_800, 123, "2000-03-01T00:00:00.123Z"),
        (4_102_444_800, 50, "2100-01-01T00:00:00.050Z"),
    ])
    func timestampMatchesRFC3339(seconds: Int, milliseconds: Int, expected: String) {
        #expect(String(decoding: LogTimestamp.format(seconds: seconds, milliseconds: milliseconds), as: UTF8.self) == expected)
    }

    @Test func timestampAgreesWithFoundation() {
        let bytes = LogTimestamp.now()
        let text = String(decoding: bytes, as: UTF8.self)
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        let parsed = f.date(from: text)
        #expect(abs((parsed ?? .distantPast).timeIntervalSinceNow) < 2, "\(text)")
    }

    /// A pipe for a sink to write into, its read end non-blocking (`drain`).
    static func sinkPipe() -> (read: Int32, write: Int32) {
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        _ = fcntl(fds[0], F_SETFL, O_NONBLOCK)
        return (fds[0], fds[1])
    }

    /// Reads what the sink writes until `done` holds of all of it read so far, or `seconds` pass.
    static func drain(_ fd: Int32, until done: (String) -> Bool, seconds: UInt64) -> String {
        var text = ""
        let deadline = DispatchTime.now().uptimeNanoseconds + seconds * 1_000_000_000
        while !done(text), DispatchTime.now().uptimeNanoseconds < deadline {
            text += drain(fd)
            usleep(2_000)
        }
        return text
    }

    /// Reads what a sink wrote into a pipe.
    static func drain(_ fd: Int32) -> String {
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = read(fd, &buf, buf.count)
            if n <= 0 { break }
            out += buf[0..<n]
        }
        return String(decoding: out, as: UTF8.self)
    }

    @Test func linesArriveInOrderAfterFlush() throws {
        let fds = Self.sinkPipe()
        defer { close(fds.read) }
        let sink = LogSink(descriptor: fds.write, gatherMilliseconds: 5)
        var logger = Logger(label: "t") { KeyValueLogHandler(label: $0, sink: sink) }
        logger.logLevel = .info
        for i in 0..<500 { logger.info("decision", metadata: ["n": .stringConvertible(i), "user": "a b"]) }
        sink.flush()
        let lines = Self.drain(fds.read).split(separator: "\n")
        sink.stop()
        close(fds.write)
        #expect(lines.count == 500)
        #expect(lines.enumerated().allSatisfy { i, l in l.hasSuffix(" info t: decision n=\(i) user=\"a b\"") }, "\(lines.prefix(2))")
        #expect(sink.dropped == 0)
    }

    /// Four threads appending at once (each to its own shard): every line arrives once, each
    /// thread's lines in the order it appended them, written by the sink's thread (no flush), and
    /// a line appended after a quiet moment arrives without one too.
    @Test func linesOfSeveralThreadsArriveOnceAndInTheirOrder() throws {
        let fds = Self.sinkPipe()
        defer { close(fds.read) }
        let sink = LogSink(descriptor: fds.write, gatherMilliseconds: 2)
        let done = DispatchGroup()
        for t in 0..<4 {
            done.enter()
            Thread {
                for i in 0..<2_000 { sink.append(Array("t\(t) n=\(i)\n".utf8)) }
                done.leave()
            }.start()
        }
        done.wait()
        let text = Self.drain(fds.read, until: { $0.split(separator: "\n").count >= 8_000 }, seconds: 5)
        var next = [Int](repeating: 0, count: 4)
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: " ")
            guard parts.count == 2, let t = Int(parts[0].dropFirst()), let n = Int(parts[1].dropFirst(2)), (0..<4).contains(t) else {
                Issue.record("unexpected line \(line)")
                continue
            }
            #expect(n == next[t], "thread \(t): \(n) after \(next[t] - 1)")
            next[t] = n + 1
        }
        #expect(next == [2_000, 2_000, 2_000, 2_000])
        // Quiet, then one more line: the writer wakes for it.
        usleep(300_000)
        sink.append(Array("late\n".utf8))
        let late = Self.drain(fds.read, until: { $0.contains("late") }, seconds: 2)
        #expect(late == "late\n")
        sink.stop()
        close(fds.write)
        #expect(sink.dropped == 0)
    }

    /// Nobody reads the pipe: the service keeps going, lines past the bound are dropped and counted,
    /// and a line saying so follows once the reader is back.
    @Test func aStalledReaderCostsDroppedLinesNotAStall() throws {
        let fds = Self.sinkPipe()
        defer { close(fds.read); close(fds.write) }
        _ = fcntl(fds.write, 1031 /* F_SETPIPE_SZ: the smallest pipe, so the writer blocks soon */, 4096)
        let sink = LogSink(descriptor: fds.write, capacityBytes: 16_384, flushBytes: 1_024, gatherMilliseconds: 1)
        let line = [UInt8](repeating: UInt8(ascii: "x"), count: 99) + [10]
        let started = DispatchTime.now().uptimeNanoseconds
        for _ in 0..<10_000 { sink.append(line) }
        let elapsed = DispatchTime.now().uptimeNanoseconds - started
        #expect(elapsed < 2_000_000_000, "appending 10,000 lines took \(elapsed / 1_000_000) ms with nobody reading")
        // Read everything the writer has been able to put out, until the drop notice arrives.
        let text = Self.drain(fds.read, until: { $0.contains("log lines dropped") }, seconds: 5)
        #expect(text.contains("log lines dropped"))
        #expect(sink.dropped > 0)
        let written = text.split(separator: "\n").filter { $0.hasPrefix("xxx") }.count
        #expect(written + Int(sink.dropped) <= 10_000)
        #expect(written + Int(sink.dropped) >= 10_000 - 200, "written \(written), dropped \(sink.dropped)")
        // The writer may still be blocked on the full pipe: keep reading until it has stopped, so
        // closing the read end cannot raise SIGPIPE in it (that killed the test process in CI) and
        // no write reaches a descriptor number another test has reused.
        let reading = Locked(true)
        let readerDone = DispatchSemaphore(value: 0)
        let readEnd = fds.read
        Thread {
            while reading.withLock({ $0 }) {
                _ = Self.drain(readEnd)
                usleep(1_000)
            }
            readerDone.signal()
        }.start()
        sink.stop()
        reading.withLock { $0 = false }
        readerDone.wait()
        _ = Self.drain(readEnd)
        // Stopped means stopped: a later line is not written.
        sink.append(line)
        sink.flush()
        usleep(20_000)
        #expect(Self.drain(readEnd).isEmpty)
    }
}

/// The byte path of the log line writes every value exactly as `LogFormat.value` does.
@Suite("log values as bytes")
struct LogValueBytesTests {
    @Test(arguments: ["1001", "", "Extension 1000", "a=b", "tab\tx", "line\nreason=ok", "cr\rx", "quote\"x", "back\\slash",
                      "nul\u{0}x", "del\u{7f}x", "ünï", "rtl\u{202e}x", "esc\u{1b}[31m", "203.0.113.5|1001@voip.example.com"])
    func bytesMatchValue(input: String) {
        var out: [UInt8] = []
        LogFormat.appendValue(input, into: &out)
        #expect(String(decoding: out, as: UTF8.self) == LogFormat.value(input))
    }

    /// Every ASCII byte alone, and between two letters: unquoted exactly when it is a letter, a
    /// digit or one of `._:/@+-|[]%` (the table `isBare` holds as bits), on both paths.
    @Test func bareBytesAreTheDocumentedSet() {
        let bare = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:/@+-|[]%".utf8)
        for b in UInt8(0)..<128 {
            for s in [String(UnicodeScalar(b)), "a" + String(UnicodeScalar(b)) + "z"] {
                #expect((LogFormat.value(s) == s) == bare.contains(b), "byte \(b)")
                var out: [UInt8] = []
                LogFormat.appendValue(s, into: &out)
                #expect(String(decoding: out, as: UTF8.self) == LogFormat.value(s), "byte \(b)")
            }
        }
    }
}

/// The decision line's own path (issue 19): ordered `LogFields` written straight to bytes, a date
/// computed from the day number. Both must give exactly the bytes of the general path.
@Suite("decision line bytes")
struct DecisionLineBytesTests {
    /// What `gmtime_r` says of `seconds`, as the 24 bytes the log writes.
    static func reference(_ seconds: Int, _ ms: Int) -> String {
        var t = seconds
        var tm = tm()
        gmtime_r(&t, &tm)
        return String(format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", Int(tm.tm_year) + 1900, Int(tm.tm_mon) + 1,
                      Int(tm.tm_mday), Int(tm.tm_hour), Int(tm.tm_min), Int(tm.tm_sec), ms)
    }

    @Test(arguments: [
        -1, -86_400, -86_401, 0, 59, 86_399, 86_400,
        68_169_599, 68_169_600,                // 1972-02-29 (a leap day) and the day after
        951_782_400, 951_868_799,              // 2000-02-29, a leap day in a century divisible by 400
        4_107_542_399, 4_107_542_400,          // 2100-02-28 / 2100-03-01: 2100 is not a leap year
        253_402_300_799,                       // 9999-12-31T23:59:59
    ])
    func edgesAgreeWithGmtime(seconds: Int) {
        #expect(String(decoding: LogTimestamp.format(seconds: seconds, milliseconds: 5), as: UTF8.self) == Self.reference(seconds, 5))
    }

    @Test func randomSecondsAgreeWithGmtime() {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<20_000 {
            let s = Int.random(in: -2_208_988_800...253_402_300_799, using: &rng) // 1900 ... 9999
            let ms = Int.random(in: 0...999, using: &rng)
            let got = String(decoding: LogTimestamp.format(seconds: s, milliseconds: ms), as: UTF8.self)
            if got != Self.reference(s, ms) { Issue.record("\(s): \(got) != \(Self.reference(s, ms))"); return }
        }
    }

    /// Keys set in any order come out in byte order; setting twice replaces; nil removes.
    @Test func fieldsKeepByteOrder() {
        var f = LogFields()
        for k in ["user", "ip", "section", "a", "Z", "reason", "account", "peer", "detail", "aa", "uuid"] { f.set(k, k.uppercased()) }
        f.set("ip", "203.0.113.5")
        f.set("aa", nil)
        f.set("missing", nil)
        #expect(f.pairs.map(\.key) == ["Z", "a", "account", "detail", "ip", "peer", "reason", "section", "user", "uuid"])
        #expect(f["ip"] == .string("203.0.113.5"))
        #expect(f["aa"] == nil)
        #expect(f.metadata.count == 10)
    }

    /// Random sets, replacements and removals (in order, out of order, repeated) against a
    /// dictionary sorted by bytes.
    @Test func fieldsAgreeWithASortedDictionary() {
        let keys = ["a", "aa", "account", "detail", "ip", "peer", "reason", "section", "sip", "user", "uuid", "Z"]
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<500 {
            var f = LogFields(), reference: [String: String] = [:]
            for step in 0..<Int.random(in: 1...20, using: &rng) {
                let k = keys.randomElement(using: &rng)!
                let v: String? = Int.random(in: 0..<5, using: &rng) == 0 ? nil : "v\(step)"
                f.set(k, v)
                reference[k] = v
            }
            let expected = reference.sorted { Array($0.key.utf8).lexicographicallyPrecedes(Array($1.key.utf8)) }
            #expect(f.pairs.map(\.key) == expected.map(\.key))
            #expect(f.pairs.map(\.value) == expected.map(\.value))
        }
    }

    /// The decision line's own fields merged in as it is written (`extra`) give the line that
    /// setting them into the fields gives: random fields, some with the extra fields' keys (those
    /// are replaced), keys before, between and after them.
    @Test func extraFieldsMergeAsIfSet() {
        let keys = ["a", "account", "detail", "peer", "reason", "rz", "section", "served", "sip", "user", "uuid", "Z"]
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<300 {
            let lines = Locked<[String]>([])
            var handler = KeyValueLogHandler(label: "switchauth") { line in lines.withLock { $0.append(line) } }
            handler.logLevel = .info
            var fields = LogFields()
            for step in 0..<Int.random(in: 0...8, using: &rng) {
                fields.set(keys.randomElement(using: &rng)!, step == 0 ? "needs quoting=\(step)" : "v\(step)")
            }
            var extra: [(key: StaticString, value: String)] = [("peer", "127.0.0.1"), ("reason", "ok"), ("section", "directory")]
            if Bool.random(using: &rng) { extra.append(("served", "memory")) }
            var set = fields
            for (k, v) in extra { set.set(k.description, v) }
            handler.write(level: .info, message: "decision", fields: fields, extra: extra)
            handler.write(level: .info, message: "decision", fields: set)
            let got = lines.withLock { $0 }
            #expect(got.count == 2)
            if got.count == 2 { #expect(got[0].dropFirst(24) == got[1].dropFirst(24), "\(got[0])\n\(got[1])") }
        }
    }

    /// The same fields, through `write(level:message:fields:)` and through `Logger.log(metadata:)`:
    /// the lines agree byte for byte after the timestamp, hostile values included.
    @Test(arguments: ["1001", "", "a=b reason=ok", "line\nreason=ok", "quote\"x", "ünï", "esc\u{1b}[31m", "2001:db8::1"])
    func directLineEqualsGeneralLine(value: String) {
        let lines = Locked<[String]>([])
        var handler = KeyValueLogHandler(label: "switchauth") { line in lines.withLock { $0.append(line) } }
        handler.logLevel = .info
        #expect(handler.writesFieldsDirectly)
        var fields: LogFields = ["user": .string(value), "ip": "198.51.100.5", "domain": "voip.example.com"]
        fields.set("section", "directory")
        fields.set("reason", "unknown_user")
        fields.set("odd key=x", value)
        fields.set("peer", "127.0.0.1")
        handler.write(level: .info, message: "decision", fields: fields)
        handler.write(level: .debug, message: "decision", fields: fields) // below the level: nothing
        let logger = Logger(label: "switchauth") { _ in handler }
        logger.log(level: .info, "decision", metadata: fields.metadata)
        let got = lines.withLock { $0 }
        #expect(got.count == 2)
        guard got.count == 2 else { return }
        #expect(got[0].dropFirst(24) == got[1].dropFirst(24), "\(got[0])\n\(got[1])")
        #expect(got[0].hasSuffix(" user=\(LogFormat.value(value))"), "\(got[0])")
        #expect(!got[0].contains("\n"))
    }
}
