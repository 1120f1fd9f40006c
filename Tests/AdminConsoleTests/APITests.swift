@testable import AdminConsole
import Foundation
import Postgres
import Store
import Testing

@Suite("console JSON API")
struct APITests {
    @Test func authenticationAndRoles() throws {
        let h = try ConsoleHarness()
        #expect(h.call("GET", "/api/v1/health", role: nil).status == 200)
        let anonymous = h.call("GET", "/api/v1/accounts", role: nil)
        #expect(anonymous.status == 401)
        #expect(anonymous.contentType == "application/problem+json")
        #expect(anonymous.json["type"] as? String == "/problems/unauthorized")
        #expect(anonymous.header("WWW-Authenticate") == "Bearer")
        #expect(h.call("GET", "/api/v1/accounts", role: nil, headers: [("Authorization", "Bearer sat_forged")]).status == 401)
        #expect(h.call("GET", "/api/v1/accounts", role: .readOnly).status == 200)
        let refused = h.call("POST", "/api/v1/accounts", json: ["number": "2000", "name": "X"], role: .readOnly)
        #expect(refused.status == 403)
        #expect((refused.json["detail"] as? String)?.contains("operator role") == true)
        #expect(h.call("POST", "/api/v1/accounts", json: ["number": "2000", "name": "X"], role: .operator).status == 201)
        #expect(h.call("DELETE", "/api/v1/accounts", role: .admin).status == 405)
        #expect(h.call("GET", "/api/v1/nothing", role: .admin).status == 404)
    }

    @Test func accountsLifecycleAndValidationSharedWithTheCLI() throws {
        let h = try ConsoleHarness()
        let created = h.call("POST", "/api/v1/accounts", json: ["number": "3000", "name": "Retail", "billing": "postpaid", "credit_limit": "50", "max_channels": 2])
        #expect(created.status == 201)
        #expect(created.json["billing"] as? String == "postpaid")
        #expect(created.json["credit_limit"] as? String == "50.000000")
        // The CLI's messages, unchanged.
        let dup = h.call("POST", "/api/v1/accounts", json: ["number": "3000", "name": "Again"])
        #expect(dup.status == 409 && dup.json["detail"] as? String == "account 3000 already exists")
        let bad = h.call("POST", "/api/v1/accounts", json: ["number": "bad number", "name": "X"])
        #expect(bad.status == 422 && (bad.json["detail"] as? String)?.hasPrefix("account number must be 1-40") == true)
        #expect(h.call("POST", "/api/v1/accounts", json: ["number": "3001", "name": "X", "max_channels": "two"]).status == 422)
        #expect(h.call("POST", "/api/v1/accounts", rawBody: Array("{not json".utf8)).status == 400)

        #expect(h.call("PATCH", "/api/v1/accounts/3000", json: ["name": "Retail 2", "max_channels": 5]).json["max_channels"] as? Int == 5)
        #expect(h.call("POST", "/api/v1/accounts/3000/suspend").json["status"] as? String == "suspended")
        #expect(h.call("POST", "/api/v1/accounts/3000/resume").json["status"] as? String == "active")
        #expect(h.call("POST", "/api/v1/accounts/3000/close").json["status"] as? String == "closed")
        #expect(h.call("GET", "/api/v1/accounts/nope").status == 404)

        let count: Int = try h.db.execute("SELECT count(*) FROM accounts WHERE number = 'bad number'").decode(0, 0)
        #expect(count == 0)
    }

    @Test func balanceAdjustmentsMoveOncePerIdempotencyKey() throws {
        let h = try ConsoleHarness()
        #expect(h.call("POST", "/api/v1/accounts/1001/balance-adjustments", json: ["amount": "5"]).status == 400)
        let first = h.call("POST", "/api/v1/accounts/1001/balance-adjustments", json: ["amount": "-2.50"], headers: [("Idempotency-Key", "k1")])
        #expect(first.status == 201)
        #expect(first.json["balance"] as? String == "97.500000")
        #expect(first.json["replayed"] as? Bool == false)
        let retry = h.call("POST", "/api/v1/accounts/1001/balance-adjustments", json: ["amount": "-2.50"], headers: [("Idempotency-Key", "k1")])
        #expect(retry.status == 200)
        #expect(retry.json["balance"] as? String == "97.500000")
        #expect(retry.json["replayed"] as? Bool == true)
        let reused = h.call("POST", "/api/v1/accounts/1001/balance-adjustments", json: ["amount": "10"], headers: [("Idempotency-Key", "k1")])
        #expect(reused.status == 409)
        #expect(h.call("POST", "/api/v1/accounts/1001/balance-adjustments", json: ["amount": "1e5"], headers: [("Idempotency-Key", "k2")]).status == 422)
        let balance: String = try h.db.execute("SELECT balance::text FROM accounts WHERE number = '1001'").decode(0, 0)
        #expect(balance == "97.500000")
    }

    @Test func concurrentRetriesOfOneKeyMoveTheBalanceOnce() throws {
        let h = try ConsoleHarness()
        let config = h.config
        DispatchQueue.concurrentPerform(iterations: 8) { _ in
            guard let c = try? Connection(config) else { return }
            _ = try? Admin(db: c).adjustBalance("1001", amount: "1", idempotencyKey: "same")
            c.close()
        }
        let balance: String = try h.db.execute("SELECT balance::text FROM accounts WHERE number = '1001'").decode(0, 0)
        #expect(balance == "101.000000")
    }

    @Test func ipSettingsDevicesDomainsLockouts() throws {
        let h = try ConsoleHarness()
        let ip = h.call("POST", "/api/v1/accounts/1012/ip-settings", json: ["name": "PBX12", "network": "203.0.113.10", "prefix": "92"])
        #expect(ip.status == 201)
        let id = try #require(ip.json["id"] as? Int)
        #expect(ip.json["network"] as? String == "203.0.113.10/32")
        let dup = h.call("POST", "/api/v1/accounts/1012/ip-settings", json: ["name": "again", "network": "203.0.113.10", "prefix": "92"])
        #expect(dup.status == 409)
        let badIP = h.call("POST", "/api/v1/accounts/1012/ip-settings", json: ["name": "x", "network": "203.0.113.0/16", "prefix": ""])
        #expect(badIP.status == 422 && (badIP.json["detail"] as? String)?.hasPrefix("invalid IP or CIDR") == true)
        let edited = h.call("PATCH", "/api/v1/ip-settings/\(id)", json: ["prefix": "93", "strip_prefix": true])
        #expect(edited.json["prefix"] as? String == "93" && edited.json["strip_prefix"] as? Bool == true)
        #expect(h.call("PATCH", "/api/v1/ip-settings/\(id)", json: ["prefix": "9x"]).status == 422)
        #expect(h.call("GET", "/api/v1/ip-settings?account=1012").items.count == 1)
        #expect(h.call("GET", "/api/v1/ip-settings?contains=203.0.113.10").items.count == 2)

        let gen = h.call("POST", "/api/v1/accounts/1001/devices", json: ["username": "1001", "domain": "voip.example.com", "generate_password": true])
        #expect(gen.status == 201)
        let password = try #require(gen.json["password"] as? String)
        #expect(password.count == 20)
        let shown = h.call("GET", "/api/v1/devices/1001@voip.example.com")
        #expect(shown.status == 200 && shown.json["password"] == nil && !shown.body.contains(password))
        let set = h.call("POST", "/api/v1/accounts/1001/devices", json: ["username": "1002", "domain": "voip.example.com", "password": "a-set-password"])
        #expect(set.status == 201 && set.json["password"] == nil)
        #expect(h.call("POST", "/api/v1/accounts/1001/devices", json: ["username": "1003", "domain": "voip.example.com", "password": "short"]).status == 422)
        #expect(h.call("PATCH", "/api/v1/devices/1002@voip.example.com", json: ["enabled": false]).json["enabled"] as? Bool == false)
        #expect(h.call("GET", "/api/v1/devices?account=1001").items.count == 2)
        #expect(h.call("GET", "/api/v1/devices?q=100&limit=1").json["next_cursor"] as? String != nil)
        #expect(h.call("DELETE", "/api/v1/devices/1002@voip.example.com").status == 204)

        #expect(h.call("POST", "/api/v1/domains", json: ["name": "sip.example.net"]).status == 201)
        #expect(h.call("POST", "/api/v1/domains/sip.example.net/aliases", json: ["alias": "198.51.100.7"]).status == 201)
        #expect(h.call("POST", "/api/v1/domains/voip.example.com/aliases", json: ["alias": "198.51.100.7"]).status == 409)
        let domains = h.call("GET", "/api/v1/domains").items
        #expect(domains.map { $0["name"] as? String } == ["sip.example.net", "voip.example.com"])

        try h.db.execute("INSERT INTO auth_failures (scope, subject, failures, locked_until) VALUES ('ip', '203.0.113.66', 10, now() + interval '10 minutes')")
        #expect(h.call("GET", "/api/v1/lockouts").items.first?["subject"] as? String == "203.0.113.66")
        #expect(h.call("DELETE", "/api/v1/lockouts/203.0.113.66", role: .readOnly).status == 403)
        #expect(h.call("DELETE", "/api/v1/lockouts/203.0.113.66", role: .operator).status == 200)
        #expect(h.call("GET", "/api/v1/lockouts").items.isEmpty)
        #expect(h.call("DELETE", "/api/v1/lockouts/203.0.113.66").status == 404)
    }

    @Test func listsArePaginatedAndFiltered() throws {
        let h = try ConsoleHarness(seed: false)
        let a = Admin(db: h.db)
        for i in 0..<25 { try a.addAccount(Admin.AccountInput(number: String(format: "5%03d", i), name: i % 2 == 0 ? "Even \(i)" : "Odd \(i)")) }
        var seen: [String] = []
        var cursor: String?
        repeat {
            let page = h.call("GET", "/api/v1/accounts?limit=10" + (cursor.map { "&cursor=\($0)" } ?? ""))
            seen += page.items.compactMap { $0["number"] as? String }
            cursor = page.json["next_cursor"] as? String
        } while cursor != nil
        #expect(seen == (0..<25).map { String(format: "5%03d", $0) })
        #expect(h.call("GET", "/api/v1/accounts?q=even&limit=200").items.count == 13)
        #expect(h.call("GET", "/api/v1/accounts?q=ODD%201").items.count == 6)   // 1, 11, 13, 15, 17, 19
        #expect(h.call("GET", "/api/v1/accounts?q=%25").items.isEmpty)          // a literal %, not a wildcard
        #expect(h.call("GET", "/api/v1/accounts?status=closed").items.isEmpty)
        #expect(h.call("GET", "/api/v1/accounts?limit=0").status == 400)
        #expect(h.call("GET", "/api/v1/accounts?status=gone").status == 400)
    }

    @Test func explainUsesTheServicesDecisions() throws {
        let h = try ConsoleHarness()
        let allowed = h.call("POST", "/api/v1/explain", json: ["ip": "203.0.113.10", "destination": "9112345"], role: .readOnly)
        #expect(allowed.status == 200)
        #expect(allowed.json["outcome"] as? String == "allowed")
        #expect((allowed.json["summary"] as? String)?.contains("accountcode 1001") == true)
        #expect((allowed.json["steps"] as? [String])?.contains { $0.contains("chosen") } == true)
        let rejected = h.call("POST", "/api/v1/explain", json: ["ip": "203.0.113.10", "destination": "9312345"])
        #expect(rejected.json["outcome"] as? String == "rejected" && rejected.json["sip_code"] as? Int == 403)
        #expect(rejected.json["reason"] as? String == "no_ip_match")
        _ = try Admin(db: h.db).addDevice(Admin.DeviceInput(account: "1012", domain: "voip.example.com", username: "1012", password: "pbx12-password"))
        let user = h.call("POST", "/api/v1/explain", json: ["user": "1012@voip.example.com", "destination": "15551234"])
        // PBX12 has no balance: registers, but calls get 402.
        #expect(user.json["outcome"] as? String == "rejected" && user.json["sip_code"] as? Int == 402)
        #expect(!(user.body.contains("a1-hash")))
        #expect(h.call("POST", "/api/v1/explain", json: [:]).status == 422)
    }

    @Test func everyChangeIsAuditedWithItsActorAndNoSecret() throws {
        let h = try ConsoleHarness()
        _ = h.call("POST", "/api/v1/accounts/1001/devices", json: ["username": "a1", "domain": "voip.example.com", "password": "a-secret-password"], role: .operator)
        _ = h.call("PATCH", "/api/v1/devices/a1@voip.example.com", json: ["password": "another-secret-pw"], role: .operator)
        _ = h.call("POST", "/api/v1/accounts/1001/suspend", role: .operator)
        _ = h.call("GET", "/api/v1/accounts/1001", role: .operator)
        let audit = h.call("GET", "/api/v1/audit?actor=api:oper")
        let entries = audit.items
        #expect(entries.count == 3)
        #expect(entries.first?["object_type"] as? String == "accounts")
        #expect((entries.first?["before"] as? [String: Any])?["status"] as? String == "active")
        #expect((entries.first?["after"] as? [String: Any])?["status"] as? String == "suspended")
        #expect((entries[1]["after"] as? [String: Any])?["password"] as? String == "changed")
        #expect(!audit.body.contains("ha1") && !audit.body.contains("secret-p"))
        #expect(h.call("GET", "/api/v1/audit?account=1001").items.count >= 3)
    }

    @Test func requestBodiesAreStrictAndCursorsChecked() throws {
        let h = try ConsoleHarness()
        let typo = h.call("POST", "/api/v1/accounts", json: ["number": "4000", "nmae": "Typo"])
        #expect(typo.status == 400 && typo.contentType == "application/problem+json")
        #expect((typo.json["detail"] as? String)?.contains("'nmae'") == true && typo.json["type"] as? String == "/problems/unknown-field")
        #expect(h.call("PATCH", "/api/v1/accounts/1001", json: ["name": "X", "colour": "red"]).status == 400)
        #expect(h.call("POST", "/api/v1/accounts/1001/suspend", json: ["why": "late"]).status == 400)
        #expect(h.call("POST", "/api/v1/accounts/1001/suspend", json: [String: String]()).status == 200)
        let count: Int = try h.db.execute("SELECT count(*) FROM accounts WHERE number = '4000'").decode(0, 0)
        #expect(count == 0)
        for path in ["/api/v1/accounts", "/api/v1/devices", "/api/v1/ip-settings", "/api/v1/audit", "/api/v1/domains", "/api/v1/lockouts"] {
            let bad = h.call("GET", path + "?cursor=%25%25garbage%20%00")
            #expect(bad.status == 400 && bad.json["type"] as? String == "/problems/bad-cursor", "\(path)")
        }
        #expect(h.call("GET", "/api/v1/devices?cursor=abc").status == 400)
        #expect(h.call("GET", "/api/v1/audit?cursor=-").status == 400)
    }

    @Test func pagesGoBothWaysWithTotals() throws {
        let h = try ConsoleHarness(seed: false)
        let a = Admin(db: h.db)
        for i in 0..<25 { try a.addAccount(Admin.AccountInput(number: String(format: "6%03d", i), name: "A \(i)")) }
        let p1 = h.call("GET", "/api/v1/accounts?limit=10")
        #expect(p1.json["total"] as? Int == 25 && p1.json["total_exact"] as? Bool == true && p1.json["limit"] as? Int == 10)
        #expect(p1.json["prev_cursor"] is NSNull)
        let p2 = h.call("GET", "/api/v1/accounts?limit=10&cursor=\(p1.json["next_cursor"] as? String ?? "")")
        #expect(p2.items.first?["number"] as? String == "6010")
        let prev = try #require(p2.json["prev_cursor"] as? String)
        let back = h.call("GET", "/api/v1/accounts?limit=10&cursor=" + prev.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!)
        #expect(back.items.compactMap { $0["number"] as? String } == (0..<10).map { String(format: "6%03d", $0) })
        #expect(back.json["prev_cursor"] is NSNull && back.json["next_cursor"] as? String == "6009")
        // The audit log (newest first) pages back too.
        let audit1 = h.call("GET", "/api/v1/audit?limit=2")
        let audit2 = h.call("GET", "/api/v1/audit?limit=2&cursor=\(audit1.json["next_cursor"] as? String ?? "")")
        let auditPrev = try #require(audit2.json["prev_cursor"] as? String)
        let audit1Again = h.call("GET", "/api/v1/audit?limit=2&cursor=" + auditPrev.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!)
        #expect(audit1Again.items.compactMap { $0["id"] as? Int } == audit1.items.compactMap { $0["id"] as? Int })
    }

    @Test func tokensOperatorsDashboardAndDomainRemoval() throws {
        let h = try ConsoleHarness()
        let tokens = h.call("GET", "/api/v1/tokens")
        #expect(tokens.status == 200 && tokens.items.count == 3 && !h.tokens.values.contains { tokens.body.contains($0) })
        #expect(h.call("GET", "/api/v1/tokens", role: .operator).status == 403)
        let viewerToken = try #require(tokens.items.first { $0["operator"] as? String == "viewer" }?["id"] as? Int)
        let revoked = h.call("DELETE", "/api/v1/tokens/\(viewerToken)")
        #expect(revoked.status == 200 && revoked.json["revoked_at"] is String)
        #expect(h.call("GET", "/api/v1/accounts", role: .readOnly).status == 401)
        #expect(h.call("DELETE", "/api/v1/tokens/\(viewerToken)").status == 409)
        #expect(h.call("DELETE", "/api/v1/tokens/999999").status == 404)

        #expect(h.call("GET", "/api/v1/operators").items.count == 3)
        #expect(h.call("POST", "/api/v1/operators/oper/disable").json["disabled"] as? Bool == true)
        #expect(h.call("GET", "/api/v1/accounts", role: .operator).status == 401)
        #expect(h.call("POST", "/api/v1/operators/oper/disable").status == 409)
        #expect(h.call("POST", "/api/v1/operators/root/disable").status == 422)   // yourself
        #expect(h.call("POST", "/api/v1/operators/oper/enable").json["disabled"] as? Bool == false)
        #expect(h.call("GET", "/api/v1/accounts", role: .operator).status == 200)
        let audit = h.call("GET", "/api/v1/audit?actor=api:root").items
        #expect(audit.contains { $0["object_type"] as? String == "console_tokens" && $0["action"] as? String == "update" })
        #expect(audit.filter { $0["object_type"] as? String == "console_operators" }.count == 2)

        let dash = h.call("GET", "/api/v1/dashboard", role: .operator)
        #expect(dash.status == 200 && (dash.json["accounts"] as? [String: Any])?["active"] as? Int == 2)
        #expect((dash.json["lockouts"] as? [String: Any])?["source"] as? Int == 0)
        // Taken at most every 15 s: a change elsewhere shows on refresh=1 (or after 15 s); one made through the console at once.
        try Admin(db: h.db).addAccount(Admin.AccountInput(number: "7777", name: "made elsewhere"))
        #expect((h.call("GET", "/api/v1/dashboard").json["accounts"] as? [String: Any])?["active"] as? Int == 2)
        #expect((h.call("GET", "/api/v1/dashboard?refresh=1").json["accounts"] as? [String: Any])?["active"] as? Int == 3)
        #expect(h.call("POST", "/api/v1/accounts", json: ["number": "7778", "name": "made here"]).status == 201)
        let after = h.call("GET", "/api/v1/dashboard")
        #expect((after.json["accounts"] as? [String: Any])?["active"] as? Int == 4 && after.header("Age") == "0")

        #expect(h.call("POST", "/api/v1/domains", json: ["name": "gone.example.com"]).status == 201)
        #expect(h.call("POST", "/api/v1/domains/gone.example.com/aliases", json: ["alias": "gone-alias.example.com"]).status == 201)
        #expect(h.call("DELETE", "/api/v1/domains/gone.example.com/aliases/gone-alias.example.com").status == 204)
        #expect(h.call("DELETE", "/api/v1/domains/gone.example.com/aliases/gone-alias.example.com").status == 404)
        #expect(h.call("DELETE", "/api/v1/domains/gone.example.com").status == 204)
        _ = try Admin(db: h.db).addDevice(Admin.DeviceInput(account: "1001", domain: "voip.example.com", username: "u1", password: "a-long-password"))
        #expect(h.call("DELETE", "/api/v1/domains/voip.example.com").status == 422)

        try h.db.execute("INSERT INTO auth_failures (scope, subject, failures, locked_until) VALUES ('ip', '203.0.113.66', 10, now() + interval '10 minutes')")
        #expect(h.call("GET", "/api/v1/lockouts?scope=source").items.first?["scope"] as? String == "source")
        #expect(h.call("GET", "/api/v1/lockouts?scope=ip").items.count == 1)
    }

    @Test func twoAdminsDisablingEachOtherAtOnceLeaveAnAdmin() throws {
        let h = try ConsoleHarness(seed: false)
        try OperatorStore(db: h.db).create(name: "root2", role: .admin, password: "root2-password-123", cost: testCost)
        let config = h.config
        for _ in 0..<5 {
            DispatchQueue.concurrentPerform(iterations: 2) { i in
                guard let c = try? Connection(config) else { return }
                _ = try? ConsoleStore(db: c).setOperatorDisabled(i == 0 ? "root2" : "root", true, by: i == 0 ? "root" : "root2")
                c.close()
            }
            let enabled: Int = try h.db.execute("SELECT count(*) FROM console_operators WHERE role = 'admin' AND NOT disabled").decode(0, 0)
            #expect(enabled == 1)
            try h.db.execute("UPDATE console_operators SET disabled = false")
        }
    }
}

@Suite("JSON bodies read without Foundation's Any")
struct JSONBodyTests {
    @Test func typesAreTold() throws {
        let b = try JSONBody(Array(#"{"s": "x", "t": true, "n": 5, "w": 5.0, "d": 10.50, "ds": "12.50", "big": 12345678901234567890.123, "z": null}"#.utf8))
        #expect(try b.string("s") == "x")
        #expect(try b.bool("t") == true)
        #expect(try b.int("n") == 5 && b.int("w") == 5)
        #expect(try b.decimal("d") == "10.5" && b.decimal("ds") == "12.50")
        #expect(try b.decimal("big") == "12345678901234567890.123", "no binary floating point on the way")
        #expect(try b.string("z") == nil && !b.has("z") && !b.has("missing"))
        #expect(throws: Problem.self) { try b.bool("n") }          // 1/0 are not booleans
        #expect(throws: Problem.self) { try b.int("t") }           // nor are booleans numbers
        #expect(throws: Problem.self) { try b.int("d") }           // 10.5 is not whole
        #expect(throws: Problem.self) { try b.string("n") }
        #expect(throws: Problem.self) { try JSONBody(Array("[1]".utf8)) }
        #expect(throws: Problem.self) { try JSONBody(Array("{".utf8)) }
    }
}
