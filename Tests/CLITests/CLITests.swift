import ArgumentParser
import Decisions
import DatabaseTestSupport
import Foundation
import TestSupport
import Postgres
import Store
import SwitchAuthCLI
import SwitchAuthService
import Testing
import CLITestSupport

@Suite("switchauth CLI")
struct CLITests {
    static func seeded() throws -> (ConnectionConfig, Connection) {
        let config = try TestDatabase.shared.freshDatabase()
        let db = try Connection(config)
        #expect(cli(["domain", "add", "voip.example.com"], db: config).code == 0)
        #expect(cli(["account", "add", "1001", "--name", "PBX1", "--balance", "100"], db: config).code == 0)
        #expect(cli(["account", "add", "1012", "--name", "PBX12", "--billing", "postpaid", "--credit-limit", "50"], db: config).code == 0)
        #expect(cli(["ip", "add", "1001", "--name", "PBX1", "--ip", "203.0.113.10", "--prefix", "91"], db: config).code == 0)
        return (config, db)
    }

    static func snapshot(_ db: Connection) throws -> String {
        let r = try db.execute("""
            SELECT (SELECT count(*) FROM accounts) || '/' || (SELECT count(*) FROM ip_settings) || '/' ||
                   (SELECT count(*) FROM sip_devices) || '/' || (SELECT count(*) FROM sip_domains)
            """)
        return try r.decode(0, 0)
    }

    @Test func seedExampleAndListing() throws {
        let (config, _) = try Self.seeded()
        #expect(cli(["ip", "add", "1012", "--name", "PBX12", "--ip", "203.0.113.10", "--prefix", "92"], db: config).code == 0)
        let list = cli(["ip", "list"], db: config)
        #expect(list.code == 0)
        #expect(list.out.contains("PBX1 ") && list.out.contains("203.0.113.10/32  91"))
        let json = cli(["ip", "list", "--json"], db: config)
        // The console's rows as its API writes them: typed values, not text.
        let parsed = try JSONSerialization.jsonObject(with: Data(json.out.utf8)) as? [[String: Any]]
        #expect(parsed?.count == 2)
        #expect(parsed?.map { $0["prefix"] as? String ?? "" }.sorted() == ["91", "92"])
        #expect(parsed?.allSatisfy { $0["enabled"] as? Bool == true && $0["id"] is Int } == true)
        #expect(cli(["ip", "list", "--account", "9999"], db: config).err.contains("unknown account 9999"))
        let accounts = cli(["account", "list"], db: config).out
        #expect(accounts.split(separator: "\n").first?.hasPrefix("NUMBER") == true)
        #expect(cli(["account", "suspend", "1001"], db: config).code == 0)
        #expect(cli(["account", "show", "1001", "--json"], db: config).out.contains(#""status" : "suspended""#))
        #expect(cli(["account", "show", "nobody"], db: config).err.contains("unknown account nobody"))
        #expect(cli(["account", "balance", "1012", "--add=-12.50"], db: config).out == "-12.500000\n")
        let explain = cli(["explain", "--ip", "203.0.113.10", "--destination", "9212345"], db: config).out
        #expect(explain.contains("=> allowed (ok): accountcode 1012"))
        #expect(cli(["explain", "--ip", "203.0.113.10", "--destination", "9112345"], db: config).out.contains("=> rejected: 403 Forbidden (account_suspended)"))
        #expect(cli(["explain", "--ip", "203.0.113.10", "--destination", "9312345"], db: config).out.contains("=> rejected: 403 Forbidden (no_ip_match)"))
    }

    @Test func badInputIsRefusedClearlyAndChangesNothing() throws {
        let (config, db) = try Self.seeded()
        let before = try Self.snapshot(db)
        let cases: [([String], String)] = [
            (["ip", "add", "1001", "--name", "x", "--ip", "203.0.113.300"], "invalid IP or CIDR"),
            (["ip", "add", "1001", "--name", "x", "--ip", "10.0.0.1/24"], "invalid IP or CIDR"),
            (["ip", "add", "1001", "--name", "x", "--ip", "203.0.113.11", "--prefix", "9a"], "prefix must be digits only"),
            (["ip", "add", "1012", "--name", "dup", "--ip", "203.0.113.10", "--prefix", "91"], "already exists"),
            (["ip", "add", "9999", "--name", "x", "--ip", "203.0.113.12"], "unknown account 9999"),
            (["device", "add", "1001", "--username", "1001", "--domain", "nowhere.example.com", "--password-stdin"], "unknown domain nowhere.example.com"),
            (["device", "add", "9999", "--username", "1001", "--domain", "voip.example.com", "--password-stdin"], "unknown account 9999"),
            (["device", "add", "1001", "--username", "bad user", "--domain", "voip.example.com", "--password-stdin"], "username must be"),
            (["device", "add", "1001", "--username", "1001", "--domain", "voip.example.com", "--password-stdin"], "at least 8 characters"),
            (["account", "add", "1001", "--name", "again"], "account 1001 already exists"),
            (["account", "add", "x y", "--name", "bad"], "account number must be"),
            (["account", "balance", "1001", "--set", "ten"], "decimal number"),
            (["account", "suspend", "nobody"], "unknown account nobody"),
            (["domain", "alias", "nowhere.example.com", "198.51.100.1"], "unknown domain"),
            (["domain", "add", "voip.example.com"], "already exists"),
        ]
        for (args, message) in cases {
            let r = cli(args, db: config, input: ["short"])
            #expect(r.code != 0, "\(args)")
            #expect(r.err.contains(message), "\(args): \(r.err)")
        }
        #expect(try Self.snapshot(db) == before)
    }

    @Test func devicePasswordsAreHashedNeverStored() throws {
        let (config, db) = try Self.seeded()
        let r = cli(["device", "add", "1001", "--username", "1001", "--domain", "voip.example.com", "--password-stdin", "--caller-id-number", "15550100"], db: config, input: ["correct horse battery"])
        #expect(r.code == 0, "\(r.err)")
        let row = try db.execute("SELECT ha1_md5, ha1_sha256 FROM sip_devices")
        #expect(row.string(0, 0) == Decisions_md5("1001:voip.example.com:correct horse battery"))
        let dump = try db.execute("SELECT string_agg(t::text, ',') FROM sip_devices t").string(0, 0) ?? ""
        #expect(!dump.contains("correct horse"))
        let generated = cli(["device", "add", "1001", "--username", "1002", "--domain", "voip.example.com", "--generate-password"], db: config)
        #expect(generated.out.contains("generated secret (shown once): "))
        #expect(cli(["device", "passwd", "1001@voip.example.com", "--password-stdin"], db: config, input: ["another pass"]).code == 0)
        #expect(try db.execute("SELECT ha1_md5 FROM sip_devices WHERE username = '1001'").string(0, 0) == Decisions_md5("1001:voip.example.com:another pass"))
        #expect(cli(["device", "disable", "1001@voip.example.com"], db: config).code == 0)
        #expect(cli(["explain", "--user", "1001@voip.example.com"], db: config).out.contains("refused: device_disabled"))
        #expect(cli(["device", "list", "--json"], db: config).out.contains(#""device" : "1001@voip.example.com""#))
    }

    @Test func importIsAllOrNothingWithLineNumbers() throws {
        let (config, db) = try Self.seeded()
        let before = try Self.snapshot(db)
        let dir = FileManager.default.temporaryDirectory
        let bad = dir.appendingPathComponent("bad-\(UUID().uuidString).csv")
        try """
            record,account,name,ip,prefix,username,domain,password
            account,2001,Carrier A,,,,,
            ip,2001,Carrier A,198.51.100.0/24,4x,,,
            device,2001,,,,2001,voip.example.com,long-enough-pass
            """.write(to: bad, atomically: true, encoding: .utf8)
        let r = cli(["import", bad.path], db: config)
        #expect(r.code != 0)
        #expect(r.err.contains("line 3: prefix must be digits only"))
        #expect(r.err.contains("nothing was imported"))
        #expect(try Self.snapshot(db) == before)

        let good = dir.appendingPathComponent("good-\(UUID().uuidString).csv")
        try """
            record,account,name,ip,prefix,username,domain,password,kind
            domain,,sip.example.net,,,,,,
            account,2001,"Carrier A, Inc.",,,,,,carrier
            ip,2001,Carrier A,2001:db8::/48,,,,,
            device,2001,,,,2001,sip.example.net,long-enough-pass,
            """.write(to: good, atomically: true, encoding: .utf8)
        let ok = cli(["import", good.path], db: config)
        #expect(ok.code == 0, "\(ok.err)")
        #expect(ok.out.contains("imported 1 domain, 1 account, 1 ip, 1 device"))
        #expect(try db.execute("SELECT name, kind FROM accounts WHERE number = '2001'").string(0, 0) == "Carrier A, Inc.")
    }

    static func importCSV(_ text: String, _ config: ConnectionConfig) throws -> CLIResult {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("import-\(UUID().uuidString).csv")
        try text.write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        return cli(["import", file.path], db: config)
    }

    /// Every record type, an alias as a device's domain (the HA1 realm is the primary name), quoted
    /// fields with commas, doubled quotes and a line break, CRLF line ends; the HA1s are the ones
    /// `Admin` computes (a password set again by `device passwd` leaves them as they are).
    @Test func importOfEveryRecordTypeWithAliasRealmQuotesAndCRLF() throws {
        let (config, db) = try Self.seeded()
        let text = [
            "record,account,name,ip,prefix,username,domain,password,alias,caller_id_name,kind,strip,caller_id_number",
            "domain,,sip.example.net,,,,,,,,,,",
            "domain,,sip.example.net,,,,,,Sip-Alias.example.net,,,,",
            "account,2001,\"Carrier A, Inc.\",,,,,,,,carrier,,",
            "ip,2001,\"two\r\nlines\",198.51.100.0/24,44,,,,,,,yes,",
            "ip,1001,v6,2001:db8::/48,,,,,,,,,",
            "device,2001,,,,d1,sip-alias.example.net,long-enough-pass,,\"Desk, \"\"front\"\"\",,,+15550100",
            "device,1001,,,,d2,VOIP.example.com,other-long-pass,,,,,",
            ",,,,,,,,,,,,",
            "",
        ].joined(separator: "\r\n")
        let r = try Self.importCSV(text, config)
        #expect(r.code == 0, "\(r.err)")
        #expect(r.out.contains("imported 2 domain, 1 account, 2 ip, 2 device in "), "\(r.out)")
        #expect(try db.execute("SELECT name || '|' || kind FROM accounts WHERE number = '2001'").string(0, 0) == "Carrier A, Inc.|carrier")
        #expect(try db.execute("SELECT name || '|' || network::text || '|' || prefix || '|' || strip_prefix FROM ip_settings WHERE prefix = '44'").string(0, 0)
                == "two\r\nlines|198.51.100.0/24|44|true")
        #expect(try db.execute("SELECT d.name FROM sip_domain_aliases a JOIN sip_domains d ON d.id = a.domain_id WHERE a.alias = 'Sip-Alias.example.net'").string(0, 0) == "sip.example.net")
        let d1 = try db.execute("""
            SELECT v.ha1_md5, v.ha1_sha256, d.name, v.caller_id_name, v.caller_id_number, a.number
              FROM sip_devices v JOIN sip_domains d ON d.id = v.domain_id JOIN accounts a ON a.id = v.account_id WHERE v.username = 'd1'
            """)
        #expect(d1.string(0, 0) == Hashing.md5Hex("d1:sip.example.net:long-enough-pass"))
        #expect(d1.string(0, 1) == Hashing.sha256Hex("d1:sip.example.net:long-enough-pass"))
        #expect(d1.string(0, 2) == "sip.example.net" && d1.string(0, 3) == "Desk, \"front\"" && d1.string(0, 4) == "+15550100" && d1.string(0, 5) == "2001")
        // Admin.digests (through `device passwd` with the same passwords) gives the same HA1s.
        let before = try db.execute("SELECT string_agg(username || ha1_md5 || ha1_sha256, ',' ORDER BY username) FROM sip_devices").string(0, 0)
        #expect(cli(["device", "passwd", "d1@sip-alias.example.net", "--password-stdin"], db: config, input: ["long-enough-pass"]).code == 0)
        #expect(cli(["device", "passwd", "d2@voip.example.com", "--password-stdin"], db: config, input: ["other-long-pass"]).code == 0)
        #expect(try db.execute("SELECT string_agg(username || ha1_md5 || ha1_sha256, ',' ORDER BY username) FROM sip_devices").string(0, 0) == before)
        #expect(try db.execute("SELECT ha1_md5 FROM sip_devices WHERE username = 'd2'").string(0, 0) == Hashing.md5Hex("d2:voip.example.com:other-long-pass"))
        // The audit log names the CLI user as the actor of every imported row; no password anywhere.
        #expect(try db.execute("""
            SELECT count(*) FILTER (WHERE actor LIKE 'cli:%') || '/' || count(*) FROM audit_log
             WHERE action = 'create' AND object_type IN ('sip_devices', 'sip_domain_aliases')
            """).string(0, 0) == "3/3")
        #expect(try db.execute("SELECT count(*) FROM audit_log WHERE actor NOT LIKE 'cli:%'").string(0, 0) == "0")
        let dump = try db.execute("SELECT coalesce(string_agg(t::text, ','), '') FROM audit_log t").string(0, 0) ?? ""
        #expect(!dump.contains("long-enough-pass") && !dump.contains("other-long-pass"))
        // The same file again: the first line already in the database is named.
        let again = try Self.importCSV(text, config)
        #expect(again.err == "line 2: domain or alias sip.example.net already exists; nothing was imported", "\(again.err)")
    }

    /// Every kind of refusal names its line and leaves the database as it was.
    @Test func importErrorsNameTheLineAndChangeNothing() throws {
        let (config, db) = try Self.seeded()
        #expect(cli(["device", "add", "1001", "--username", "1001", "--domain", "voip.example.com", "--password-stdin"], db: config, input: ["correct horse battery"]).code == 0)
        let before = try Self.snapshot(db)
        let header = "record,account,name,ip,prefix,username,domain,password,alias,balance"
        let cases: [([String], String)] = [
            (["widget,1,x,,,,,,,"], "line 2: unknown record type 'widget' (domain, account, ip, device)"),
            (["account,3001,A,,,,,,,", "account,,Name,,,,,,,"], "line 3: 'account' is required for record account"),
            (["device,1001,,,,u1,voip.example.com,,,"], "line 2: 'password' is required for record device"),
            (["account,3001,A,,,,,,,ten"], "line 2: balance must be a decimal number: ten"),
            (["account,x y,A,,,,,,,"], "line 2: account number must be 1-40"),
            (["ip,1001,x,198.51.100.0/24,4x,,,,,"], "line 2: prefix must be digits only"),
            (["ip,1001,x,10.0.0.1/24,,,,,,"], "line 2: invalid IP or CIDR: 10.0.0.1/24"),
            (["ip,1001,x,203.0.113.300,,,,,,"], "line 2: invalid IP or CIDR"),
            (["device,1001,,,,bad user,voip.example.com,long-enough-pass,,"], "line 2: username must be"),
            (["device,1001,,,,u1,voip.example.com,short,,"], "line 2: password must be at least 8 characters"),
            (["device,9999,,,,u1,voip.example.com,long-enough-pass,,"], "line 2: unknown account 9999"),
            (["device,1001,,,,u1,nowhere.example.com,long-enough-pass,,"], "line 2: unknown domain nowhere.example.com"),
            (["ip,3001,x,198.51.100.7,,,,,,", "account,3001,Later,,,,,,,"], "line 2: unknown account 3001"),
            (["domain,,nowhere.example.com,,,,,,alias.example.com,"], "line 2: unknown domain nowhere.example.com"),
            (["domain,,bad_name,,,,,,,"], "line 2: invalid domain name: bad_name"),
            (["account,3001,A,,,,,,,", "account,3001,B,,,,,,,"], "line 3: account 3001 already exists"),
            (["account,1001,Again,,,,,,,"], "line 2: account 1001 already exists"),
            (["domain,,VOIP.example.com,,,,,,,"], "line 2: domain or alias VOIP.example.com already exists"),
            (["ip,1001,x,198.51.100.7,9,,,,,", "ip,1012,y,198.51.100.7/32,9,,,,,"], "line 3: an IP setting for 198.51.100.7/32 with prefix '9' already exists"),
            (["device,1001,,,,u1,voip.example.com,long-enough-pass,,", "device,1012,,,,u1,voip.example.com,long-enough-pass,,"], "line 3: device u1@voip.example.com already exists"),
            // Already in the database (found by the set-based checks), before a later bad line.
            (["account,3001,A,,,,,,,", "ip,1012,dup,203.0.113.10,91,,,,,", "ip,1001,x,198.51.100.0/24,4x,,,,,"],
             "line 3: an IP setting for 203.0.113.10/32 with prefix '91' already exists"),
            (["device,1001,,,,u2,voip.example.com,long-enough-pass,,", "device,1012,,,,1001,VOIP.example.com,long-enough-pass,,", "widget,,,,,,,,,"],
             "line 3: device 1001@VOIP.example.com already exists"),
            (["account,3001,A,,,,,,,,"], "line 2: more fields than columns"),
            (["account,3001,A,,,,,,,", "account,3002,\"open"], "line 3: unterminated quoted field"),
            (["account,3001,\"two", "lines\",,,,,,,", "widget,,,,,,,,,"], "line 4: unknown record type 'widget'"),
        ]
        for (lines, message) in cases {
            let r = try Self.importCSV(([header] + lines).joined(separator: "\n") + "\n", config)
            #expect(r.code != 0, "\(lines)")
            #expect(r.err.hasPrefix(message) && r.err.hasSuffix("; nothing was imported"), "\(lines): \(r.err)")
            #expect(try Self.snapshot(db) == before, "\(lines)")
        }
        #expect(try Self.importCSV("name,account\n", config).err == "line 1: no 'record' column")
    }

    /// `-` reads standard input.
    @Test func importFromStandardInput() throws {
        let (config, db) = try Self.seeded()
        let r = cli(["import", "-", "--json"], db: config, input: ["record,account,name", "account,4001,From stdin"])
        #expect(r.code == 0, "\(r.err)")
        let json = try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: String]
        #expect(json?["account"] == "1" && json?["device"] == "0" && json?["result"] == "ok" && json?["seconds"] != nil, "\(r.out)")
        #expect(try db.execute("SELECT name FROM accounts WHERE number = '4001'").string(0, 0) == "From stdin")
    }

    /// The README's run command, as a new user would try it: the printed requests get the documented answers.
    @Test func demoAnswersAsDocumented() throws {
        let r = cli(["demo", "--self-test", "--port", "0", "--log-level", "error"], db: nil)
        #expect(r.code == 0, "\(r.err)")
        #expect(r.out.contains("All 8 demo answers are as documented."))
        #expect(!r.out.contains("MISMATCH"))
    }

    /// A misspelt level is refused, not taken for the default.
    @Test func demoRefusesAnUnknownLogLevel() {
        let r = cli(["demo", "--self-test", "--port", "0", "--log-level", "warn"], db: nil)
        #expect(r.code != 0)
        #expect(r.err.contains("--log-level must be one of trace, debug, info, notice, warning, error, critical (got 'warn')"), "\(r.err)")
    }

    @Test func migrateStatusAndLockouts() throws {
        let (config, _) = try Self.seeded()
        let status = cli(["migrate", "--status", "--migrations", TestDatabase.migrationsDirectory], db: config)
        #expect(status.out.contains("0001     schema") && status.out.contains("applied"))
        #expect(cli(["migrate", "--migrations", TestDatabase.migrationsDirectory], db: config).out == "up to date\n")
        #expect(cli(["lockouts", "list"], db: config).out.contains("(none)"))
        #expect(cli(["lockouts", "clear"], db: config).code != 0)
        #expect(cli(["lockouts", "clear", "--all"], db: config).out == "cleared 0\n")
        let policy = cli(["lockouts", "policy"], db: config).out
        #expect(policy.contains("source_user") && policy.contains("300") && policy.contains("900"), "\(policy)")
        #expect(policy.contains("2592000"))
    }
}

func Decisions_md5(_ s: String) -> String {
    Hashing.md5Hex(s)
}

@Suite("switchauth gateway-secret")
struct GatewaySecretTests {
    static func freeswitchConf() throws -> (dir: String, xml: String) {
        let dir = NSTemporaryDirectory() + "fsconf-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir + "/autoload_configs", withIntermediateDirectories: true)
        let shipped = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../freeswitch-conf/autoload_configs/xml_curl.conf.xml").standardized
        let xml = dir + "/autoload_configs/xml_curl.conf.xml"
        try FileManager.default.copyItem(atPath: shipped.path, toPath: xml)
        return (dir, xml)
    }

    static func credentials(_ xml: String) throws -> String {
        let text = try String(contentsOfFile: xml, encoding: .utf8)
        let r = try #require(text.range(of: #"name="gateway-credentials" value=""#))
        return String(text[r.upperBound...].prefix { $0 != "\"" })
    }

    static func basicAuth(_ config: String) throws -> String? {
        try String(contentsOfFile: config, encoding: .utf8).split(separator: "\n")
            .first { $0.hasPrefix("basic_auth") }.map { String($0.split(separator: "=", maxSplits: 1)[1]).trimmingCharacters(in: .whitespaces) }
    }

    @Test func writesOneSecretIntoBothAndTheServiceAcceptsIt() throws {
        let (dir, xml) = try Self.freeswitchConf()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let config = dir + "/switchauth.conf"
        try "database_url = postgresql:///switchauth\nbasic_auth = old:value\n".write(toFile: config, atomically: true, encoding: .utf8)
        chmod(config, 0o640)
        // Before: the shipped placeholder, which the service refuses.
        var placeholder = ServiceConfig()
        placeholder.basicAuthUser = "freeswitch"
        placeholder.basicAuthPassword = String(try Self.credentials(xml).dropFirst("freeswitch:".count))
        #expect(throws: ConfigError.self) { try placeholder.validate() }

        let r = cli(["gateway-secret", "--config", config, "--freeswitch-conf", dir], db: nil)
        #expect(r.code == 0, "\(r.err)")
        let written = try Self.credentials(xml)
        #expect(written.hasPrefix("freeswitch:") && written.count >= "freeswitch:".count + 43)
        #expect(try Self.basicAuth(config) == written, "the same secret on both sides")
        #expect(!r.out.contains(String(written.dropFirst("freeswitch:".count))), "the secret is never printed")
        #expect(try String(contentsOfFile: config, encoding: .utf8).contains("database_url = postgresql:///switchauth"), "other settings kept")
        var st = stat()
        #expect(stat(config, &st) == 0 && st.st_mode & 0o777 == 0o640, "an existing file keeps its mode (a package's root:switchauth 0640)")
        let loaded = try ServiceConfig.load(fileText: try String(contentsOfFile: config, encoding: .utf8), environment: [:])
        try loaded.validate()

        // Again: nothing changes; --rotate: a new secret on both sides.
        #expect(cli(["gateway-secret", "--config", config, "--freeswitch-conf", dir], db: nil).out.contains("already set"))
        #expect(try Self.credentials(xml) == written)
        #expect(cli(["gateway-secret", "--config", config, "--freeswitch-conf", dir, "--rotate"], db: nil).code == 0)
        let rotated = try Self.credentials(xml)
        let rotatedConfig = try Self.basicAuth(config)
        #expect(rotated != written && rotatedConfig == rotated)
        // Issue 20: the replaced secret stays accepted for the overlap (60 minutes by default).
        let afterRotation = try ServiceConfig.load(fileText: try String(contentsOfFile: config, encoding: .utf8), environment: [:])
        try afterRotation.validate()
        #expect(afterRotation.basicAuthPrevious == written)
        let until = try #require(afterRotation.basicAuthPreviousUntil)
        #expect(abs(until - Date().timeIntervalSince1970 - 3_600) < 120, "\(until)")
        // Rotating again replaces both lines (a key given twice would be refused).
        #expect(cli(["gateway-secret", "--config", config, "--freeswitch-conf", dir, "--rotate", "--overlap-minutes", "5"], db: nil).code == 0)
        let twice = try ServiceConfig.load(fileText: try String(contentsOfFile: config, encoding: .utf8), environment: [:])
        #expect(twice.basicAuthPrevious == rotated)
        #expect(abs((twice.basicAuthPreviousUntil ?? 0) - Date().timeIntervalSince1970 - 300) < 120)
        // A configuration file that does not exist yet is created readable by its owner only.
        let fresh = dir + "/new.conf"
        #expect(cli(["gateway-secret", "--config", fresh, "--freeswitch-conf", dir, "--rotate"], db: nil).code == 0)
        #expect(stat(fresh, &st) == 0 && st.st_mode & 0o777 == 0o600)
    }

    @Test func refusesAFreeSWITCHConfWithoutTheParamAndChangesNothing() throws {
        let dir = NSTemporaryDirectory() + "fsconf-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir + "/autoload_configs", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let config = dir + "/switchauth.conf"
        #expect(cli(["gateway-secret", "--config", config, "--freeswitch-conf", dir], db: nil).err.contains("cannot read"))
        try "<configuration name=\"xml_curl.conf\"/>".write(toFile: dir + "/autoload_configs/xml_curl.conf.xml", atomically: true, encoding: .utf8)
        let r = cli(["gateway-secret", "--config", config, "--freeswitch-conf", dir], db: nil)
        #expect(r.code != 0 && r.err.contains("gateway-credentials"))
        #expect(!FileManager.default.fileExists(atPath: config), "nothing written")
    }
}
