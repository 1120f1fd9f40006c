import Decisions
import DatabaseTestSupport
import Foundation
import TestSupport
import Postgres
import Store
import SwitchAuthService
import Testing

/// Hostile values in every form field of every captured request kind: SQL and XML metacharacters,
/// `$${...}`, CR/LF, NUL, overlong and invalid UTF-8, 100 KB values, duplicated and missing
/// fields. Every answer must be well-formed XML (a real parser), never contain `$${`, cause no
/// database error, and never grant (a user, or a transfer) when a field the decision rests on was
/// tampered with.
@Suite("hostile fields")
struct HostileInputTests {
    /// Percent-encoded, as FreeSWITCH would send them.
    static let hostileValues = [
        "%27%3B%20DROP%20TABLE%20accounts%3B--",            // '; DROP TABLE accounts;--
        "%3C%2Fparam%3E%3Cuser%20id%3D%22x%22%3E%26amp%3B",  // </param><user id="x">&amp;
        "%24%24%7Bhostname%7D",                            // $${hostname}
        "%24%7Bsystem(id)%7D",                             // ${system(id)}
        "a%0D%0Ab",                                        // CR LF
        "a%00b",                                           // NUL
        "%C0%AF%C0%AE",                                    // overlong UTF-8
        "%FF%FE%FD",                                       // invalid UTF-8
        String(repeating: "A", count: 100_000),            // 100 KB
    ]

    /// Fields a grant rests on, per section: tampering with any of them must never yield a grant.
    static func decisionFields(_ file: String) -> Set<String> {
        if file.hasPrefix("directory") {
            return ["section", "tag_name", "key_name", "key_value", "action", "purpose", "user", "domain",
                    "sip_auth_username", "sip_auth_realm", "sip_auth_nonce", "sip_auth_uri", "sip_auth_qop",
                    "sip_auth_cnonce", "sip_auth_nc", "sip_auth_response", "sip_auth_method"]
        }
        if file.contains("digest") {
            return ["section", "Hunt-Context", "Hunt-Destination-Number", "variable_sip_authorized", "variable_user_name", "variable_domain_name"]
        }
        return ["section", "Hunt-Context", "Hunt-Destination-Number", "variable_sip_network_ip"]
    }

    /// Decision fields whose absence still leaves a request that may be granted (the rest must not).
    /// Each by design: the dialplan falls back from Hunt-Context, Hunt-Destination-Number and
    /// variable_sip_network_ip to Caller-Context, Caller-Destination-Number and Caller-Network-Addr,
    /// which FreeSWITCH sends with the same values; a directory request without `domain` names the
    /// domain in key_value; one without `action` is a plain lookup (user_exists, ACL tokens), which
    /// publishes the user's HA1 to the switch for FreeSWITCH itself to check a digest against.
    static func missingMayGrant(_ file: String) -> Set<String> {
        if file.hasPrefix("directory") { return ["domain", "action"] }
        return ["Hunt-Context", "Hunt-Destination-Number", "variable_sip_network_ip"]
    }

    static func split(_ body: [UInt8]) -> [(String, String)] {
        String(decoding: body, as: UTF8.self).split(separator: "&", omittingEmptySubsequences: false).map { p in
            let kv = p.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            return (String(kv[0]), kv.count > 1 ? String(kv[1]) : "")
        }
    }

    static func join(_ pairs: [(String, String)]) -> String {
        pairs.map { "\($0.0)=\($0.1)" }.joined(separator: "&")
    }

    static func isGrant(_ text: String) -> Bool {
        text.contains("<user id=") || text.contains(#"application="transfer""#)
    }

    @Test func everyFieldOfEveryRequestKind() throws {
        let dbConfig = try TestDatabase.shared.freshDatabase()
        let db = try Connection(dbConfig)
        try seedFixtureData(db)
        var config = fixtureConfig(database: dbConfig)
        config.lockout = LockoutPolicy(threshold: 1_000_000, sourceThreshold: 1_000_000, userThreshold: 1_000_000, windowSeconds: 60, lockSeconds: 1)
        let s = try RunningService(config)
        defer { s.stop() }
        var checked = 0
        for file in Fixtures.httpFiles {
            let pairs = Self.split(try Fixtures.body(file))
            #expect(try post(s.port, Self.join(pairs)).status == 200)
            for (i, (name, _)) in pairs.enumerated() {
                var variants: [(String, [(String, String)])] = []
                for v in Self.hostileValues {
                    var p = pairs
                    p[i].1 = v
                    variants.append(("\(name)=hostile", p))
                }
                var dup = pairs
                dup.insert((name, "hostile"), at: 0)
                variants.append(("\(name) duplicated", dup))
                var missing = pairs
                missing.remove(at: i)
                variants.append(("\(name) missing", missing))
                for (label, p) in variants {
                    let r = try post(s.port, Self.join(p))
                    #expect(r.status == 200, "\(file) \(label): \(r.status)")
                    #expect(try XMLDocumentCheck.isWellFormed(r.body), "\(file) \(label)")
                    #expect(!r.text.contains("$${"), "\(file) \(label)")
                    if Self.decisionFields(file).contains(name) && !(label.hasSuffix("missing") && Self.missingMayGrant(file).contains(name)) {
                        #expect(!Self.isGrant(r.text), "\(file) \(label) must not grant")
                    }
                    checked += 1
                }
            }
        }
        #expect(checked > 3000)
        #expect(s.service.metrics.databaseErrors == 0, "no SQL error from any hostile value")
        // The database still holds exactly what was seeded.
        #expect(try db.execute("SELECT count(*) FROM accounts").decode(0, 0, as: Int.self) == 2)
    }
}
