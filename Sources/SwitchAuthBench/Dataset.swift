import Decisions
import Foundation
import Postgres

/// The benchmark dataset, generated inside PostgreSQL with `INSERT ... SELECT generate_series`
/// (faster than COPY from a client: no bytes cross the socket). Deterministic, so the load generator
/// can build valid requests from an index alone:
/// - domain k: `d<k>.bench.example`
/// - device g: user `u<g>` in domain `((g-1) % domains) + 1`, password `pw<g>-bench`, account `((g-1) % accounts) + 1`
/// - IP setting g (g % 10): 0-5 an IPv4 host `10.0.0.0 + g/2` with prefix `9<g%2>` (two accounts
///   share each address, told apart by prefix), 6-7 an IPv4 /24, 8 an IPv6 /64 (prefix 44),
///   9 an IPv6 /128.
struct Dataset {
    var devices: Int
    var accounts: Int
    var ipSettings: Int
    var domains: Int

    static let full = Dataset(devices: 1_000_000, accounts: 100_000, ipSettings: 100_000, domains: 100)
    static let smoke = Dataset(devices: 2_000, accounts: 200, ipSettings: 200, domains: 10)
    static let tinyIP = Dataset(devices: 100, accounts: 10, ipSettings: 10, domains: 1)

    func load(_ db: Connection) throws -> Double {
        let started = Date()
        try db.transaction { tx in
            try tx.execute("INSERT INTO sip_domains (name) SELECT 'd' || g || '.bench.example' FROM generate_series(1, $1::int) g", [String(domains)])
            try tx.execute("""
                INSERT INTO accounts (number, name, kind, billing, balance, credit_limit)
                SELECT 'A' || g, 'Account ' || g, CASE WHEN g % 10 = 0 THEN 'carrier' ELSE 'customer' END,
                       CASE WHEN g % 3 = 0 THEN 'postpaid' ELSE 'prepaid' END, 100, 50
                  FROM generate_series(1, $1::int) g
                """, [String(accounts)])
            try tx.execute("""
                INSERT INTO sip_devices (account_id, domain_id, username, ha1_md5, ha1_sha256)
                SELECT ((g - 1) % $2::int) + 1, ((g - 1) % $3::int) + 1, 'u' || g,
                       md5(s), encode(sha256(convert_to(s, 'UTF8')), 'hex')
                  FROM (SELECT g, 'u' || g || ':d' || (((g - 1) % $3::int) + 1) || '.bench.example:pw' || g || '-bench' AS s
                          FROM generate_series(1, $1::int) g) x
                """, [String(devices), String(accounts), String(domains)])
            try tx.execute("""
                INSERT INTO ip_settings (account_id, name, network, prefix)
                SELECT ((g - 1) % $2::int) + 1, 'ip' || g,
                       CASE WHEN g % 10 < 6 THEN set_masklen('10.0.0.0'::inet + (g / 2), 32)::cidr
                            WHEN g % 10 < 8 THEN set_masklen('100.64.0.0'::inet + (g::bigint * 256), 24)::cidr
                            WHEN g % 10 = 8 THEN ('2001:db8:' || to_hex(g / 65536) || ':' || to_hex(g % 65536) || '::/64')::cidr
                            ELSE ('2001:db8:ffff:' || to_hex(g / 65536) || '::' || to_hex(g % 65536) || '/128')::cidr END,
                       CASE WHEN g % 10 < 6 THEN '9' || (g % 2) WHEN g % 10 = 8 THEN '44' ELSE '' END
                  FROM generate_series(1, $1::int) g
                """, [String(ipSettings), String(accounts)])
        }
        let loaded = Date().timeIntervalSince(started)
        // Leave nothing for autovacuum or the checkpointer to do during the measured runs.
        try db.executeScript("VACUUM ANALYZE")
        try db.executeScript("CHECKPOINT")
        return loaded
    }

    // MARK: the same dataset as a `switchauth import` file

    /// A device's password, in the CSV and in `load` alike: `pw<g>-bench` (every import and
    /// `device add` require 8 characters at least).
    static func csvPassword(_ g: Int) -> String { "pw\(g)-bench" }

    /// Writes the dataset `load` builds (same names, owners, networks and prefixes) as one CSV file
    /// in the `switchauth import` format: domains, then accounts, IP settings, devices.
    func writeCSV(to path: String) throws {
        guard let f = fopen(path, "w") else { throw BenchError("cannot write \(path)") }
        defer { fclose(f) }
        var out = ""
        out.reserveCapacity(1 << 20)
        func flush(_ force: Bool = false) throws {
            guard force || out.utf8.count >= 1 << 20 else { return }
            let n = out.utf8.count
            guard fwrite(out, 1, n, f) == n else { throw BenchError("cannot write \(path)") }
            out.removeAll(keepingCapacity: true)
        }
        out += "record,account,name,ip,prefix,username,domain,password,kind,billing,balance,credit_limit\n"
        for k in stride(from: 1, through: domains, by: 1) {
            out += "domain,,d\(k).bench.example,,,,,,,,,\n"
        }
        for g in stride(from: 1, through: accounts, by: 1) {
            out += "account,A\(g),Account \(g),,,,,,\(g % 10 == 0 ? "carrier" : "customer"),\(g % 3 == 0 ? "postpaid" : "prepaid"),100,50\n"
            try flush()
        }
        for g in stride(from: 1, through: ipSettings, by: 1) {
            let network: String
            switch g % 10 {
            case 0..<6:
                let n = UInt32(10 << 24) + UInt32(g / 2)
                network = "\(n >> 24).\((n >> 16) & 255).\((n >> 8) & 255).\(n & 255)/32"
            case 6..<8:
                let n = UInt32(100 << 24 | 64 << 16) &+ UInt32(g) &* 256
                network = "\(n >> 24).\((n >> 16) & 255).\((n >> 8) & 255).0/24"
            case 8:
                network = "2001:db8:\(String(g / 65536, radix: 16)):\(String(g % 65536, radix: 16))::/64"
            default:
                network = "2001:db8:ffff:\(String(g / 65536, radix: 16))::\(String(g % 65536, radix: 16))/128"
            }
            let prefix = g % 10 < 6 ? "9\(g % 2)" : g % 10 == 8 ? "44" : ""
            out += "ip,A\((g - 1) % accounts + 1),ip\(g),\(network),\(prefix),,,,,,,\n"
            try flush()
        }
        for g in stride(from: 1, through: devices, by: 1) {
            out += "device,A\((g - 1) % accounts + 1),,,,u\(g),d\((g - 1) % domains + 1).bench.example,\(Self.csvPassword(g)),,,,\n"
            try flush()
        }
        try flush(true)
    }

    /// Runs `<switchauth> import <file>` (the CSV `writeCSV` wrote, `<workDir>/bench.csv`, written
    /// first when missing) against `databaseURL` (a libpq conninfo or URL, passed as
    /// SWITCHAUTH_DATABASE_URL) and returns its wall-clock seconds; then VACUUM ANALYZE and
    /// CHECKPOINT through `connection`, as `load` does. The import's output goes to
    /// `<workDir>/import.log`.
    func importCSV(switchauth: String, databaseURL: String, workDir: String, connection: Connection) throws -> Double {
        let csv = "\(workDir)/bench.csv"
        if !FileManager.default.fileExists(atPath: csv) { try writeCSV(to: csv) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: switchauth)
        process.arguments = ["import", csv]
        var env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("SWITCHAUTH_") }
        env["SWITCHAUTH_DATABASE_URL"] = databaseURL
        process.environment = env
        _ = FileManager.default.createFile(atPath: "\(workDir)/import.log", contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: "\(workDir)/import.log"))
        defer { try? log.close() }
        process.standardOutput = log
        process.standardError = log
        let started = Date()
        try process.run()
        process.waitUntilExit()
        let seconds = Date().timeIntervalSince(started)
        guard process.terminationStatus == 0 else {
            throw BenchError("switchauth import failed (status \(process.terminationStatus)); see \(workDir)/import.log")
        }
        try connection.executeScript("VACUUM ANALYZE")
        try connection.executeScript("CHECKPOINT")
        return seconds
    }

    // MARK: requests

    /// A random device's username, domain and password.
    func device(_ rng: inout Xoshiro) -> (user: String, domain: String, password: String) {
        let g = rng.int(1...devices)
        return ("u\(g)", "d\((g - 1) % domains + 1).bench.example", Self.csvPassword(g))
    }

    /// A random IPv4 host IP setting's address and a destination its prefix allows.
    func ipCall(_ rng: inout Xoshiro) -> (source: String, destination: String) {
        let decades = max(1, ipSettings / 10)
        var g = 0
        repeat {
            g = 10 * rng.int(0...(decades - 1)) + rng.int(0...5)
        } while g < 1 || g > ipSettings
        let n = g / 2
        let source = "10.\((n >> 16) & 255).\((n >> 8) & 255).\(n & 255)"
        return (source, "9\(g % 2)\(rng.int(1_000_000...9_999_999))")
    }
}

/// Request bodies built from the captured FreeSWITCH requests, with the identifying fields replaced.
struct RequestShapes {
    let directoryTemplate: [(String, String)]
    let dialplanTemplate: [(String, String)]
    let aclBody: String
    let path: String
    let port: UInt16
    let aclList: String
    let context: String

    static func fixture(_ name: String) throws -> [(String, String)] {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../Tests/SwitchAuthTests/Fixtures/\(name)").standardized
        let bytes = [UInt8](try Data(contentsOf: url))
        guard let i = (0..<bytes.count - 3).first(where: { bytes[$0] == 13 && bytes[$0 + 1] == 10 && bytes[$0 + 2] == 13 && bytes[$0 + 3] == 10 }) else {
            throw BenchError("fixture \(name) has no body")
        }
        let body = String(decoding: bytes[(i + 4)...], as: UTF8.self)
        return body.split(separator: "&").map { p in
            let kv = p.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            return (String(kv[0]), kv.count > 1 ? String(kv[1]) : "")
        }
    }

    init(path: String, port: UInt16, aclList: String = "switchauth_ip", context: String = "switchauth") throws {
        directoryTemplate = try Self.fixture("directory-sip_auth-register-udp-ok.http")
        dialplanTemplate = try Self.fixture("dialplan-after-acl-auth.http")
        aclBody = "hostname=vm&section=configuration&tag_name=configuration&key_name=name&key_value=acl.conf"
        self.path = path
        self.port = port
        self.aclList = aclList
        self.context = context
    }

    static func encode(_ s: String) -> String {
        s.addingPercentEncoding(withAllowedCharacters: CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")) ?? s
    }

    static func render(_ template: [(String, String)], _ replace: [String: String], raw: Set<String> = []) -> String {
        template.map { k, v in
            guard let n = replace[k] else { return "\(k)=\(v)" }
            return "\(k)=\(raw.contains(k) ? n : encode(n))"
        }.joined(separator: "&")
    }

    /// The credentials the benchmark's services are started with (`basic_auth`), sent as FreeSWITCH's
    /// gateway-credentials would be.
    static let credentials = "freeswitch:bench-secret-0123456789abcdef"
    static var authorization: String { "Basic " + Data(credentials.utf8).base64EncodedString() }

    func wrap(_ body: String, path: String? = nil) -> [UInt8] {
        Array("POST \(path ?? self.path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nUser-Agent: freeswitch-xml/1.0\r\nAccept: */*\r\nAuthorization: \(Self.authorization)\r\nContent-Length: \(body.utf8.count)\r\nContent-Type: application/x-www-form-urlencoded\r\n\r\n\(body)".utf8)
    }

    func directory(_ d: (user: String, domain: String, password: String), rng: inout Xoshiro) -> String {
        let nonce = "\(rng.next())-bench", cnonce = String(rng.next() % 0xffffffff, radix: 16), nc = "00000001"
        let uri = "sip:\(d.domain)"
        let ha1 = DigestAlgorithm.md5.ha1(username: d.user, realm: d.domain, password: d.password)
        let ha2 = DigestAlgorithm.md5.hash("REGISTER:\(uri)")
        let response = DigestAlgorithm.md5.hash("\(ha1):\(nonce):\(nc):\(cnonce):auth:\(ha2)")
        // A source of its own per request, as random callers are: 198.51.0.0/16.
        let ip = "198.51.\(rng.int(0...255)).\(rng.int(1...254))"
        return Self.render(directoryTemplate, [
            "key_value": d.domain, "sip_auth_username": d.user, "sip_auth_realm": d.domain, "sip_auth_nonce": nonce,
            "sip_auth_uri": uri, "sip_contact_user": d.user, "sip_to_user": d.user, "sip_to_host": d.domain,
            "sip_from_user": d.user, "sip_from_host": d.domain, "sip_request_host": d.domain, "sip_auth_cnonce": cnonce,
            "sip_auth_response": response, "user": d.user, "domain": d.domain, "ip": ip,
        ], raw: ["key_value"])
    }

    func dialplan(_ c: (source: String, destination: String)) -> String {
        Self.render(dialplanTemplate, [
            "Caller-Network-Addr": c.source, "variable_sip_network_ip": c.source, "variable_sip_received_ip": c.source,
            "Caller-Destination-Number": c.destination, "Hunt-Destination-Number": c.destination,
            "variable_sip_req_user": c.destination, "variable_sip_to_user": c.destination,
            "Caller-Context": context, "Hunt-Context": context, "variable_sip_acl_authed_by": aclList,
        ])
    }
}

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}
