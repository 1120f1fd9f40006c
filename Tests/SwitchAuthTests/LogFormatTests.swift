import DatabaseTestSupport
import Foundation
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
