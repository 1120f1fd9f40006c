import Decisions
import Foundation
import Postgres

/// The benchmark dataset, generated inside PostgreSQL with `INSERT ... SELECT generate_series`
/// (faster than COPY from a client: no bytes cross the socket). Deterministic, so the load generator
/// can build valid requests from an index alone:
/// - domain k: `d<k>.bench.example`
/// - device g: user `u<g>` in domain `((g-1) % domains) + 1`, password `pw<g>`, account `((g-1) % accounts) + 1`
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
                  FROM (SELECT g, 'u' || g || ':d' || (((g - 1) % $3::int) + 1) || '.bench.example:pw' || g AS s
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

    // MARK: requests

    /// A random device's username, domain and password.
    func device(_ rng: inout Xoshiro) -> (user: String, domain: String, password: String) {
        let g = rng.int(1...devices)
        return ("u\(g)", "d\((g - 1) % domains + 1).bench.example", "pw\(g)")
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
        let ip = "192.0.2.\(rng.int(1...254))"
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
