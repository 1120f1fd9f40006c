@testable import AdminConsole
import Foundation
import Postgres
import Store
import Testing

/// Call controls (issue 21) in the API and the console: calls per second of accounts and IP
/// settings, calls up now, destination rules, fraud thresholds and fraud events.
@Suite("console call controls")
struct CallControlTests {
    @Test func maxCPSAndCallsUpOnAccountsAndIPSettings() throws {
        let h = try ConsoleHarness()
        let created = h.call("POST", "/api/v1/accounts", json: ["number": "4000", "name": "Carrier", "max_cps": 5], role: .operator)
        #expect(created.status == 201 && created.json["max_cps"] as? Int == 5 && created.json["calls_up"] as? Int == 0)
        #expect(h.call("PATCH", "/api/v1/accounts/4000", json: ["max_cps": 7]).json["max_cps"] as? Int == 7)
        let negative = h.call("PATCH", "/api/v1/accounts/4000", json: ["max_cps": -1])
        #expect(negative.status == 422 && negative.json["detail"] as? String == "max calls per second must be 0 (unlimited) or more")
        #expect(h.call("POST", "/api/v1/accounts", json: ["number": "4001", "name": "X", "max_cps": "fast"]).status == 422)

        // Calls up now: the account's call slots across every switch.
        let id = try Admin(db: h.db).accountID("4000")
        for u in ["a", "b"] {
            try h.db.execute("INSERT INTO call_slots (unique_id, account_id, core_uuid) VALUES ($1, $2::bigint, 'core')", [u, String(id)])
        }
        #expect(h.call("GET", "/api/v1/accounts/4000", role: .readOnly).json["calls_up"] as? Int == 2)
        #expect(try CallSlots.inUse(h.db, accountID: id) == 2)

        let ip = h.call("POST", "/api/v1/accounts/4000/ip-settings", json: ["name": "gw", "network": "198.51.100.0/24", "max_cps": 3])
        #expect(ip.status == 201 && ip.json["max_cps"] as? Int == 3)
        let ipID = try #require(ip.json["id"] as? Int)
        #expect(h.call("PATCH", "/api/v1/ip-settings/\(ipID)", json: ["max_cps": 0]).json["max_cps"] as? Int == 0)
        #expect(h.call("PATCH", "/api/v1/ip-settings/\(ipID)", json: ["max_cps": -2]).status == 422)
        #expect(h.call("GET", "/api/v1/ip-settings?account=4000").items.first?["max_cps"] as? Int == 0)
        let stored: Int = try h.db.execute("SELECT max_cps FROM accounts WHERE number = '4000'").decode(0, 0)
        #expect(stored == 7)
    }

    @Test func destinationRulesThroughTheAPI() throws {
        let h = try ConsoleHarness()
        let global = h.call("POST", "/api/v1/destination-rules", json: ["action": "deny", "prefix": "1900", "note": "premium rate"], role: .operator)
        #expect(global.status == 201)
        #expect(global.json["account"] is NSNull && global.json["action"] as? String == "deny" && global.json["note"] as? String == "premium rate")
        let own = h.call("POST", "/api/v1/destination-rules", json: ["action": "allow", "prefix": "44", "account": "1001"])
        #expect(own.status == 201 && own.json["account"] as? String == "1001")
        _ = h.call("POST", "/api/v1/destination-rules", json: ["action": "deny", "prefix": "882", "account": "1012"])

        // The CLI's words for every refusal.
        let dup = h.call("POST", "/api/v1/destination-rules", json: ["action": "deny", "prefix": "1900"])
        #expect(dup.status == 409 && dup.json["detail"] as? String == "a destination rule for prefix 1900 already exists globally")
        let bad = h.call("POST", "/api/v1/destination-rules", json: ["action": "deny", "prefix": "19x"])
        #expect(bad.status == 422 && bad.json["detail"] as? String == "destination prefix must be 1-32 of 0-9 + * #: 19x")
        #expect(h.call("POST", "/api/v1/destination-rules", json: ["action": "block", "prefix": "19"]).status == 422)
        #expect(h.call("POST", "/api/v1/destination-rules", json: ["action": "deny", "prefix": "19", "account": "nope"]).status == 404)
        #expect(h.call("POST", "/api/v1/destination-rules", json: ["action": "deny", "prefix": "19", "acount": "1001"]).status == 400)
        #expect(h.call("POST", "/api/v1/destination-rules", json: ["action": "deny", "prefix": "19"], role: .readOnly).status == 403)

        let all = h.call("GET", "/api/v1/destination-rules", role: .readOnly)
        #expect(all.status == 200 && all.items.map { $0["prefix"] as? String } == ["1900", "44", "882"])
        // The rules that apply to 1001: its own and the global ones, not 1012's.
        #expect(h.call("GET", "/api/v1/destination-rules?account=1001", role: .readOnly).items.map { $0["prefix"] as? String } == ["1900", "44"])
        #expect(h.call("GET", "/api/v1/destination-rules?account=nope", role: .readOnly).status == 404)
        // The CLI's table ('switchauth destination list') is made of the same typed rows.
        let table = try Admin(db: h.db).listDestinationRules(account: "1001")
        #expect(table.columns == ["id", "account", "action", "prefix", "note"])
        #expect(table.rows.map { Array($0.dropFirst()) } == [["(global)", "deny", "1900", "premium rate"], ["1001", "allow", "44", ""]])

        let id = try #require(own.json["id"] as? Int)
        #expect(h.call("DELETE", "/api/v1/destination-rules/\(id)", role: .readOnly).status == 403)
        #expect(h.call("DELETE", "/api/v1/destination-rules/\(id)", role: .operator).status == 204)
        #expect(h.call("DELETE", "/api/v1/destination-rules/\(id)", role: .operator).status == 404)
        #expect(h.call("GET", "/api/v1/destination-rules?account=1001").items.count == 1)

        // Audited (migration 0011) with the operator, a label and the account (none for a global rule).
        let audit = h.call("GET", "/api/v1/audit?object_type=destination_rules").items
        #expect(audit.map { "\($0["actor"] as? String ?? "") \($0["action"] as? String ?? "") \($0["object"] as? String ?? "") \($0["account"] as? String ?? "-")" }
            == ["api:oper delete allow 44 1001", "api:root create deny 882 1012", "api:root create allow 44 1001", "api:oper create deny 1900 (global) -"])
    }

    @Test func fraudThresholdsAndEventsThroughTheAPI() throws {
        let h = try ConsoleHarness()
        let set = h.call("PUT", "/api/v1/accounts/1001/fraud-thresholds", json: ["metric": "calls_per_minute", "warning": 30, "critical": 60], role: .operator)
        #expect(set.status == 200 && set.json["warning"] as? Int == 30 && set.json["critical"] as? Int == 60 && set.json["prefix"] as? String == "")
        // Setting it again replaces it (the same threshold); a level left out is unset.
        let again = h.call("PUT", "/api/v1/accounts/1001/fraud-thresholds", json: ["metric": "calls_per_minute", "critical": 90])
        #expect(again.json["id"] as? Int == set.json["id"] as? Int && again.json["warning"] is NSNull && again.json["critical"] as? Int == 90)
        _ = h.call("PUT", "/api/v1/accounts/1001/fraud-thresholds", json: ["metric": "attempts_per_day", "prefix": "882", "critical": 20])

        let inverted = h.call("PUT", "/api/v1/accounts/1001/fraud-thresholds", json: ["metric": "concurrent_calls", "warning": 10, "critical": 5])
        #expect(inverted.status == 422 && inverted.json["detail"] as? String == "warning (10) must be below critical (5)")
        #expect(h.call("PUT", "/api/v1/accounts/1001/fraud-thresholds", json: ["metric": "concurrent_calls"]).status == 422)
        #expect(h.call("PUT", "/api/v1/accounts/1001/fraud-thresholds", json: ["metric": "calls_per_hour", "critical": 5]).status == 422)
        #expect(h.call("PUT", "/api/v1/accounts/1001/fraud-thresholds", json: ["metric": "concurrent_calls", "critical": 0]).status == 422)
        #expect(h.call("PUT", "/api/v1/accounts/1001/fraud-thresholds", json: ["metric": "concurrent_calls", "prefix": "8a", "critical": 5]).status == 422)
        #expect(h.call("PUT", "/api/v1/accounts/nope/fraud-thresholds", json: ["metric": "concurrent_calls", "critical": 5]).status == 404)
        #expect(h.call("PUT", "/api/v1/accounts/1001/fraud-thresholds", json: ["metric": "concurrent_calls", "critical": 5, "level": 1]).status == 400)
        #expect(h.call("PUT", "/api/v1/accounts/1001/fraud-thresholds", json: ["metric": "concurrent_calls", "critical": 5], role: .readOnly).status == 403)

        let list = h.call("GET", "/api/v1/accounts/1001/fraud-thresholds", role: .readOnly)
        #expect(list.items.map { $0["metric"] as? String } == ["attempts_per_day", "calls_per_minute"])
        #expect(try Admin(db: h.db).listFraudThresholds(account: "1001").rows.map { Array($0.dropFirst()) }
            == [["1001", "attempts_per_day", "882", "", "20"], ["1001", "calls_per_minute", "", "", "90"]])
        #expect(h.call("GET", "/api/v1/accounts/1012/fraud-thresholds").items.isEmpty)

        // Events, newest first, of one account.
        let account = String(try Admin(db: h.db).accountID("1001"))
        for (level, value) in [("warning", 31), ("critical", 61)] {
            try h.db.execute("""
                INSERT INTO fraud_events (account_id, threshold_id, metric, prefix, level, value, level_value, window_start, unique_id)
                VALUES ($1::bigint, NULL, 'calls_per_minute', '', $2, $3::int, 30, now(), 'call-' || $3)
                """, [account, level, String(value)])
        }
        let events = h.call("GET", "/api/v1/fraud-events?account=1001", role: .readOnly)
        #expect(events.items.map { $0["level"] as? String } == ["critical", "warning"])
        #expect(events.items.first?["unique_id"] as? String == "call-61" && events.items.first?["level_value"] as? Int == 30)
        #expect(h.call("GET", "/api/v1/fraud-events?account=1012").items.isEmpty)
        #expect(h.call("GET", "/api/v1/fraud-events?account=nope").status == 404)
        #expect(h.call("GET", "/api/v1/fraud-events?limit=1").items.count == 1)

        let id = try #require(set.json["id"] as? Int)
        #expect(h.call("DELETE", "/api/v1/fraud-thresholds/\(id)", role: .readOnly).status == 403)
        #expect(h.call("DELETE", "/api/v1/fraud-thresholds/\(id)", role: .operator).status == 204)
        #expect(h.call("DELETE", "/api/v1/fraud-thresholds/\(id)", role: .operator).status == 404)

        // Audited: set, replaced (an update with the levels before and after), removed; on the account's history.
        let audit = h.call("GET", "/api/v1/audit?account=1001&object_type=fraud_thresholds").items
        #expect(audit.map { "\($0["actor"] as? String ?? "") \($0["action"] as? String ?? "") \($0["object"] as? String ?? "")" }
            == ["api:oper delete calls_per_minute", "api:root create attempts_per_day to 882", "api:root update calls_per_minute", "api:oper create calls_per_minute"])
    }

    @Test func operatorsSetCallControlsInTheConsole() throws {
        let h = try ConsoleHarness()
        let b = Browser(h)
        #expect(b.login("oper", "oper-password-123").status == 303)
        let csrf = b.csrf("/destination-rules")

        // A global deny rule; the note is shown as text.
        let added = b.go("POST", "/destination-rules", form: [("csrf", csrf), ("action", "deny"), ("prefix", "1900"), ("account", ""), ("note", "premium <b>rate</b>")])
        #expect(added.status == 303 && added.header("Location") == "/destination-rules?notice=rule-added")
        let list = b.go("GET", "/destination-rules?notice=rule-added")
        #expect(list.body.contains("Destination rule added.") && list.body.contains("<code>1900</code>"))
        #expect(list.body.contains("premium &lt;b&gt;rate&lt;/b&gt;") && !list.body.contains("<b>rate"))

        // A refused form keeps what was typed, each refusal next to its field.
        let refused = b.go("POST", "/destination-rules", form: [("csrf", csrf), ("action", "allow"), ("prefix", "19x"), ("account", "nope"), ("note", "kept")])
        #expect(refused.status == 422)
        #expect(refused.body.contains("id=\"error-prefix\"") && refused.body.contains("destination prefix must be 1-32"))
        #expect(refused.body.contains("value=\"19x\"") && refused.body.contains("value=\"nope\"") && refused.body.contains("value=\"kept\""))
        let unknown = b.go("POST", "/destination-rules", form: [("csrf", csrf), ("action", "allow"), ("prefix", "44"), ("account", "nope"), ("note", "")])
        #expect(unknown.status == 422 && unknown.body.contains("id=\"error-account\"") && unknown.body.contains("unknown account nope"))
        let dup = b.go("POST", "/destination-rules", form: [("csrf", csrf), ("action", "deny"), ("prefix", "1900"), ("account", ""), ("note", "")])
        #expect(dup.status == 422 && dup.body.contains("id=\"error-prefix\"") && dup.body.contains("already exists globally"))

        // The account's own rule, and the account page lists what applies to it.
        #expect(b.go("POST", "/destination-rules", form: [("csrf", csrf), ("action", "allow"), ("prefix", "44"), ("account", "1001"), ("note", "")]).status == 303)
        #expect(b.go("POST", "/destination-rules", form: [("csrf", csrf), ("action", "deny"), ("prefix", "882"), ("account", "1012"), ("note", "")]).status == 303)
        var page = b.go("GET", "/accounts/1001").body
        let rules = try #require(page.components(separatedBy: "id=\"account-destination-rules\"").last?.components(separatedBy: "</table>").first)
        #expect(rules.contains("1900") && rules.contains("44") && !rules.contains("882"))

        // A fraud threshold: refused with its input kept, then set.
        let badLevel = b.go("POST", "/accounts/1001/fraud-thresholds", form: [("csrf", csrf), ("metric", "calls_per_minute"), ("prefix", ""), ("warning", "10"), ("critical", "5")])
        #expect(badLevel.status == 422 && badLevel.body.contains("id=\"error-warning\"") && badLevel.body.contains("warning (10) must be below critical (5)"))
        #expect(badLevel.body.contains("name=\"warning\" value=\"10\"") && badLevel.body.contains("name=\"critical\" value=\"5\""))
        let notNumber = b.go("POST", "/accounts/1001/fraud-thresholds", form: [("csrf", csrf), ("metric", "concurrent_calls"), ("prefix", "8x"), ("warning", ""), ("critical", "ten")])
        #expect(notNumber.status == 422 && notNumber.body.contains("id=\"error-critical\"") && notNumber.body.contains("id=\"error-prefix\""))
        #expect(notNumber.body.contains("critical must be a whole number") && !notNumber.body.contains("give a warning level"))
        let set = b.go("POST", "/accounts/1001/fraud-thresholds", form: [("csrf", csrf), ("metric", "calls_per_minute"), ("prefix", ""), ("warning", "30"), ("critical", "60")])
        #expect(set.status == 303 && set.header("Location") == "/accounts/1001?notice=threshold-set")
        page = b.go("GET", "/accounts/1001?notice=threshold-set").body
        #expect(page.contains("Fraud threshold set.") && page.contains("calls per minute"))
        let thresholds = try #require(page.components(separatedBy: "id=\"fraud-thresholds\"").last?.components(separatedBy: "</table>").first)
        #expect(thresholds.contains("<td>30</td>") && thresholds.contains("<td>60</td>"))

        // Its removal, and the removal of the account's own rule, go back to the account page.
        let tid: Int64 = try h.db.execute("SELECT id FROM fraud_thresholds").decode(0, 0)
        #expect(b.go("POST", "/fraud-thresholds/\(tid)/delete", form: [("csrf", csrf)]).header("Location") == "/accounts/1001?notice=threshold-removed")
        let rid: Int64 = try h.db.execute("SELECT id FROM destination_rules WHERE prefix = '44'").decode(0, 0)
        #expect(b.go("POST", "/destination-rules/\(rid)/delete", form: [("csrf", csrf), ("from", "1001")]).header("Location") == "/accounts/1001?notice=rule-removed")
        #expect(b.go("POST", "/fraud-thresholds/\(tid)/delete", form: [("csrf", csrf)]).status == 404)
        #expect(b.go("POST", "/destination-rules/\(rid)/delete", form: [("csrf", csrf)]).status == 404)
        #expect(b.go("POST", "/destination-rules/x/delete", form: [("csrf", csrf)]).status == 404)
        let left: Int = try h.db.execute("SELECT count(*) FROM fraud_thresholds").decode(0, 0) + (try h.db.execute("SELECT count(*) FROM destination_rules").decode(0, 0) as Int)
        #expect(left == 2)

        // Calls per second on the account's forms.
        #expect(b.go("POST", "/accounts/1001/edit", form: [("csrf", csrf), ("name", "PBX1"), ("billing", "prepaid"), ("credit_limit", "0"),
                                                           ("max_channels", "0"), ("max_cps", "12"), ("expires_at", "")]).status == 303)
        page = b.go("GET", "/accounts/1001").body
        #expect(page.contains("<dd id=\"account-max_cps\">12</dd>") && page.contains("<dd id=\"account-calls_up\">0</dd>"))
        let badCPS = b.go("POST", "/accounts/1001/ip-settings", form: [("csrf", csrf), ("name", "gw"), ("network", "198.51.100.7"), ("prefix", ""), ("max_cps", "-1")])
        #expect(badCPS.status == 422 && badCPS.body.contains("id=\"error-max_cps\"") && badCPS.body.contains("value=\"-1\""))
        #expect(b.go("POST", "/accounts/1001/ip-settings", form: [("csrf", csrf), ("name", "gw"), ("network", "198.51.100.7"), ("prefix", ""), ("max_cps", "4")]).status == 303)
        let ipCPS: Int = try h.db.execute("SELECT max_cps FROM ip_settings WHERE network = '198.51.100.7/32'").decode(0, 0)
        #expect(ipCPS == 4)
        #expect(b.go("POST", "/accounts", form: [("csrf", csrf), ("number", "5000"), ("name", "N"), ("kind", "customer"), ("billing", "prepaid"),
                                                 ("balance", "0"), ("credit_limit", "0"), ("max_channels", "0"), ("max_cps", "9")]).status == 303)
        let acctCPS: Int = try h.db.execute("SELECT max_cps FROM accounts WHERE number = '5000'").decode(0, 0)
        #expect(acctCPS == 9)
    }

    @Test func readOnlyOperatorsSeeButCannotChange() throws {
        let h = try ConsoleHarness()
        try Admin(db: h.db).addDestinationRule(account: nil, action: .deny, prefix: "1900")
        try Admin(db: h.db).setFraudThreshold(account: "1001", metric: .concurrentCalls, prefix: "", warning: nil, critical: 4)
        let b = Browser(h)
        #expect(b.login("viewer", "viewer-password-123").status == 303)
        let list = b.go("GET", "/destination-rules")
        #expect(list.status == 200 && list.body.contains("1900") && !list.body.contains("id=\"add-rule\"") && !list.body.contains("/delete"))
        let account = b.go("GET", "/accounts/1001")
        #expect(account.status == 200 && account.body.contains("concurrent calls") && !account.body.contains("id=\"set-threshold\""))
        let csrf = Browser.field(list.body, "csrf") ?? ""
        #expect(b.go("POST", "/destination-rules", form: [("csrf", csrf), ("action", "deny"), ("prefix", "1"), ("account", ""), ("note", "")]).status == 403)
        #expect(b.go("POST", "/accounts/1001/fraud-thresholds", form: [("csrf", csrf), ("metric", "calls_per_minute"), ("critical", "5")]).status == 403)
        // Without the CSRF token, even an operator's form changes nothing.
        let o = Browser(h)
        _ = o.login("oper", "oper-password-123")
        #expect(o.go("POST", "/destination-rules", form: [("action", "deny"), ("prefix", "1"), ("account", ""), ("note", "")]).status == 403)
        let rules: Int = try h.db.execute("SELECT count(*) FROM destination_rules").decode(0, 0)
        #expect(rules == 1)
    }
}
