@testable import AdminConsole
import Foundation
import Postgres
import Store
import Testing

/// A browser's view of the console, in-process: cookies kept, forms posted urlencoded.
final class Browser {
    let h: ConsoleHarness
    var cookies: [String: String] = [:]
    var client = "127.0.0.1"

    init(_ h: ConsoleHarness) { self.h = h }

    @discardableResult
    func go(_ method: String, _ target: String, form: [(String, String)] = []) -> ConsoleHarness.Answer {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        let body = form.map { "\($0.0)=\($0.1.addingPercentEncoding(withAllowedCharacters: allowed)!)" }.joined(separator: "&")
        let cookie = cookies.isEmpty ? nil : cookies.map { "\($0.key)=\($0.value)" }.sorted().joined(separator: "; ")
        let a = h.call(method, target, role: nil, rawBody: Array(body.utf8), cookie: cookie, client: client)
        for (name, value) in a.headers where name == "Set-Cookie" {
            let kv = value.split(separator: ";")[0].split(separator: "=", maxSplits: 1)
            let v = kv.count == 2 ? String(kv[1]) : ""
            if value.contains("Max-Age=0") || v.isEmpty { cookies[String(kv[0])] = nil } else { cookies[String(kv[0])] = v }
        }
        return a
    }

    static func field(_ html: String, _ name: String) -> String? {
        guard let r = html.range(of: "name=\"\(name)\" value=\"") else { return nil }
        return String(html[r.upperBound...].prefix { $0 != "\"" })
    }

    func login(_ name: String, _ password: String) -> ConsoleHarness.Answer {
        let page = go("GET", "/login")
        return go("POST", "/login", form: [("login_csrf", Self.field(page.body, "login_csrf") ?? ""), ("name", name), ("password", password)])
    }

    /// The CSRF token of the page at `target`.
    func csrf(_ target: String = "/accounts") -> String { Self.field(go("GET", target).body, "csrf") ?? "" }
}

@Suite("console HTML pages")
struct PageTests {
    @Test func loginSessionCookieAndLogout() throws {
        let h = try ConsoleHarness()
        let b = Browser(h)
        #expect(b.go("GET", "/accounts").status == 303)
        let wrong = b.login("root", "not-the-password")
        #expect(wrong.status == 403 && wrong.body.contains("Wrong operator name or password"))
        let ok = b.login("root", "root-password-123")
        #expect(ok.status == 303 && ok.header("Location") == "/dashboard")
        let set = try #require(ok.headers.first { $0.name == "Set-Cookie" && $0.value.hasPrefix("sa_session=") }?.value)
        #expect(set.contains("HttpOnly") && set.contains("SameSite=Strict"))
        let accounts = b.go("GET", "/accounts")
        #expect(accounts.status == 200 && accounts.body.contains("PBX12"))
        #expect(accounts.header("Content-Security-Policy")?.contains("default-src 'none'") == true)
        let out = b.go("POST", "/logout", form: [("csrf", Browser.field(accounts.body, "csrf") ?? "")])
        #expect(out.status == 303)
        #expect(b.go("GET", "/accounts").status == 303)
        // A login form without its token is refused.
        let forged = Browser(h)
        #expect(forged.go("POST", "/login", form: [("name", "root"), ("password", "root-password-123")]).status == 403)
    }

    @Test func loginThrottled() throws {
        let h = try ConsoleHarness()
        let b = Browser(h)
        for _ in 0..<3 { #expect(b.login("oper", "wrong-password").status == 403) }
        let throttled = b.login("oper", "oper-password-123")
        #expect(throttled.status == 429 && throttled.header("Retry-After") != nil)
        // From another address the operator logs in: failures elsewhere never lock an operator out.
        let elsewhere = Browser(h)
        elsewhere.client = "192.0.2.77"
        #expect(elsewhere.login("oper", "oper-password-123").status == 303)
        // Many failures for many names from one address do not refuse another operator there.
        let office = Browser(h)
        office.client = "192.0.2.80"
        for i in 0..<26 { _ = office.login("nobody\(i)", "wrong-password") }   // past the old per-address cap of 25
        #expect(office.login("viewer", "viewer-password-123").status == 303)
        // Every refusal is in the audit log (the name tried and the source; never the password).
        let failed: Int = try h.db.execute("SELECT count(*) FROM audit_log WHERE action = 'login_failed' AND object_label = 'oper' AND actor = 'login:127.0.0.1'").decode(0, 0)
        #expect(failed == 3)
        let text: String = try h.db.execute("SELECT string_agg(coalesce(after::text, ''), ' ') FROM audit_log WHERE action = 'login_failed'").decode(0, 0)
        #expect(!text.contains("wrong-password"))
    }

    @Test func markupEscapesEveryInterpolatedValue() {
        let value = "<script>alert('x')</script> & \"q\""
        let m: Markup = "<p title=\"\(value)\">\(value)\(Markup("<br>"))</p>"
        #expect(m.html == "<p title=\"&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;\">&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;<br></p>")
        #expect(HTML.input("n", value, value: value, error: value).html.contains("<script") == false)
        #expect(HTML.table([value], [["\(value)"]]).html.contains("<script") == false)
    }

    @Test func behindATrustedProxyTheSourceIsTheForwardedAddress() throws {
        let h = try ConsoleHarness()
        var settings = h.app.settings
        settings.trustedProxies = ["127.0.0.1"]
        let app = ConsoleApp(settings: settings)
        let via = { (xff: String?) in ConsoleRequest(method: "POST", target: "/login", headers: xff.map { [("X-Forwarded-For", $0)] } ?? [], body: [], client: "127.0.0.1") }
        #expect(app.source(of: via("198.51.100.1, 203.0.113.9")) == "203.0.113.9")   // the entry the proxy appended
        #expect(app.source(of: via(nil)) == "127.0.0.1")
        #expect(app.source(of: via("not-an-address")) == "127.0.0.1")
        // Not from a trusted proxy: the header is the client's own word and is ignored.
        #expect(h.app.source(of: via("203.0.113.9")) == "127.0.0.1")
    }

    @Test func aRefusedFormKeepsWhatWasTypedWithEveryErrorNextToItsField() throws {
        let h = try ConsoleHarness()
        let b = Browser(h)
        _ = b.login("oper", "oper-password-123")
        let csrf = b.csrf()
        let ip = b.go("POST", "/accounts/1001/ip-settings", form: [("csrf", csrf), ("name", "Typed name"), ("network", "203.0.113.0/16"), ("prefix", "9x")])
        #expect(ip.status == 422)
        #expect(ip.body.contains("value=\"Typed name\"") && ip.body.contains("value=\"203.0.113.0/16\"") && ip.body.contains("value=\"9x\""))
        #expect(ip.body.contains("id=\"error-network\"") && ip.body.contains("id=\"error-prefix\"") && ip.body.contains("2 fields need attention"))
        let dev = b.go("POST", "/accounts/1001/devices", form: [("csrf", csrf), ("username", "bad user"), ("domain", "voip.example.com"), ("password", "short"),
                                                                 ("caller_id_name", "Front desk"), ("caller_id_number", "12a")])
        #expect(dev.status == 422 && dev.body.contains("value=\"bad user\"") && dev.body.contains("value=\"Front desk\""))
        #expect(dev.body.contains("id=\"error-username\"") && dev.body.contains("id=\"error-password\"") && dev.body.contains("id=\"error-caller_id_number\""))
        #expect(!dev.body.contains("value=\"short\""))   // a typed password is never sent back
        let acc = b.go("POST", "/accounts", form: [("csrf", csrf), ("number", "bad number"), ("name", ""), ("kind", "customer"), ("billing", "prepaid"),
                                                  ("balance", "ten"), ("credit_limit", "0"), ("max_channels", "2")])
        #expect(acc.status == 422 && acc.body.contains("value=\"bad number\"") && acc.body.contains("value=\"ten\""))
        #expect(acc.body.contains("id=\"error-number\"") && acc.body.contains("id=\"error-name\"") && acc.body.contains("id=\"error-balance\""))
        let edit = b.go("POST", "/accounts/1001/edit", form: [("csrf", csrf), ("name", "Kept"), ("billing", "prepaid"), ("credit_limit", "-5"), ("max_channels", "x"), ("expires_at", "")])
        #expect(edit.status == 422 && edit.body.contains("value=\"Kept\"") && edit.body.contains("value=\"-5\"") && edit.body.contains("id=\"error-max_channels\""))
        let dup = b.go("POST", "/domains", form: [("csrf", csrf), ("name", "voip.example.com")])
        #expect(dup.status == 422 && dup.body.contains("id=\"error-name\"") && dup.body.contains("value=\"voip.example.com\""))
        let count: Int = try h.db.execute("SELECT count(*) FROM ip_settings").decode(0, 0)
        #expect(count == 1)
    }

    @Test func searchDashboardPagingAndMoney() throws {
        let h = try ConsoleHarness()
        let a = Admin(db: h.db)
        _ = try a.addDevice(Admin.DeviceInput(account: "1001", domain: "voip.example.com", username: "frontdesk", password: "a-long-password"))
        for i in 0..<30 { try a.addAccount(Admin.AccountInput(number: String(format: "8%03d", i), name: "Paged \(i)")) }
        let b = Browser(h)
        _ = b.login("viewer", "viewer-password-123")
        let devices = b.go("GET", "/devices?q=front")
        #expect(devices.status == 200 && devices.body.contains("frontdesk@voip.example.com"))
        let ips = b.go("GET", "/ip-settings?contains=203.0.113.10")
        #expect(ips.status == 200 && ips.body.contains("203.0.113.10/32"))
        #expect(b.go("GET", "/ip-settings?contains=nonsense").status == 400)
        let dash = b.go("GET", "/dashboard")
        #expect(dash.status == 200 && dash.body.contains("id=\"dash-accounts-active\">32<") && dash.body.contains("id=\"dash-devices\">1<"))
        let first = b.go("GET", "/accounts?q=paged&limit=10")
        #expect(first.body.contains("30 in all") && !first.body.contains("id=\"prev-page\"") && first.body.contains("id=\"next-page\""))
        func href(_ body: String, _ id: String) -> String? {
            guard let end = body.range(of: "\" id=\"\(id)\"")?.lowerBound, let start = body[..<end].range(of: "href=\"", options: .backwards)?.upperBound else { return nil }
            return String(body[start..<end])
        }
        let next = try #require(href(first.body, "next-page"))
        let second = b.go("GET", next.replacingOccurrences(of: "&amp;", with: "&"))
        #expect(second.body.contains("Paged 18") && !second.body.contains("Paged 0<") && second.body.contains("id=\"prev-page\""))
        let prev = try #require(href(second.body, "prev-page"))
        let back = b.go("GET", prev.replacingOccurrences(of: "&amp;", with: "&"))
        #expect(back.body.contains(">Paged 0<") && back.body.contains(">Paged 9<") && !back.body.contains(">Paged 10<"))
        #expect(b.go("GET", "/accounts?cursor=%00bad").status == 400)
        #expect(b.go("GET", "/accounts/1001").body.contains("100.00 USD"))
        #expect(Money.format("-1234567.500000", currency: "EUR") == "-1,234,567.50 EUR")
        #expect(Money.format("0.123400", currency: "USD") == "0.1234 USD")
        #expect(Money.format("12.000000", currency: "JPY") == "12 JPY")
    }

    @Test func adminsRevokeTokensAndDisableOperators() throws {
        let h = try ConsoleHarness()
        let b = Browser(h)
        _ = b.login("root", "root-password-123")
        let page = b.go("GET", "/operators")
        #expect(page.status == 200 && page.body.contains("id=\"tokens\""))
        let csrf = Browser.field(page.body, "csrf") ?? ""
        let id: Int64 = try h.db.execute("SELECT t.id FROM console_tokens t JOIN console_operators o ON o.id = t.operator_id WHERE o.name = 'viewer'").decode(0, 0)
        #expect(h.call("GET", "/api/v1/accounts", role: .readOnly).status == 200)
        #expect(b.go("POST", "/tokens/\(id)/revoke", form: [("csrf", csrf)]).header("Location") == "/operators?notice=token-revoked")
        #expect(h.call("GET", "/api/v1/accounts", role: .readOnly).status == 401)
        #expect(b.go("POST", "/operators/oper/disable", form: [("csrf", csrf)]).status == 303)
        #expect(Browser(h).login("oper", "oper-password-123").status == 403)
        #expect(h.call("GET", "/api/v1/accounts", role: .operator).status == 401)
        #expect(b.go("POST", "/operators/root/disable", form: [("csrf", csrf)]).body.contains("cannot disable yourself"))
        #expect(b.go("POST", "/operators/oper/enable", form: [("csrf", csrf)]).status == 303)
        #expect(Browser(h).login("oper", "oper-password-123").status == 303)
        // Operators (not admins) see neither the page nor the forms.
        let oper = Browser(h)
        _ = oper.login("oper", "oper-password-123")
        #expect(oper.go("GET", "/operators").status == 403)
        #expect(oper.go("POST", "/tokens/\(id)/revoke", form: [("csrf", oper.csrf())]).status == 403)
        let audited: Int = try h.db.execute("SELECT count(*) FROM audit_log WHERE actor = 'console:root' AND object_type IN ('console_tokens', 'console_operators')").decode(0, 0)
        #expect(audited == 3)
    }

    @Test func formsNeedTheCSRFTokenAndAWriterRole() throws {
        let h = try ConsoleHarness()
        let b = Browser(h)
        _ = b.login("oper", "oper-password-123")
        let noToken = b.go("POST", "/accounts", form: [("number", "7000"), ("name", "X"), ("kind", "customer"), ("billing", "prepaid")])
        #expect(noToken.status == 403 && noToken.body.contains("CSRF"))
        let wrongToken = b.go("POST", "/accounts", form: [("csrf", "forged"), ("number", "7000"), ("name", "X"), ("kind", "customer"), ("billing", "prepaid")])
        #expect(wrongToken.status == 403)
        let viewer = Browser(h)
        _ = viewer.login("viewer", "viewer-password-123")
        let page = viewer.go("GET", "/accounts")
        #expect(!page.body.contains("id=\"add-account\""))
        let refused = viewer.go("POST", "/accounts", form: [("csrf", Browser.field(page.body, "csrf") ?? ""), ("number", "7000"), ("name", "X"), ("kind", "customer"), ("billing", "prepaid")])
        #expect(refused.status == 403 && refused.body.contains("read-only"))
        let n: Int = try h.db.execute("SELECT count(*) FROM accounts WHERE number = '7000'").decode(0, 0)
        #expect(n == 0)
    }

    @Test func accountIPSettingDeviceAuditExplain() throws {
        let h = try ConsoleHarness()
        let b = Browser(h)
        _ = b.login("oper", "oper-password-123")
        let csrf = b.csrf()
        let created = b.go("POST", "/accounts", form: [("csrf", csrf), ("number", "7001"), ("name", "<script>alert(1)</script> & Co"),
                                                        ("kind", "customer"), ("billing", "prepaid"), ("balance", "10"), ("credit_limit", "0"), ("max_channels", "2")])
        #expect(created.status == 303 && created.header("Location") == "/accounts/7001?notice=created")
        let page = b.go("GET", "/accounts/7001?notice=created")
        #expect(page.body.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co") && !page.body.contains("<script>alert"))
        #expect(page.body.contains("Account created."))

        let bad = b.go("POST", "/accounts/7001/ip-settings", form: [("csrf", csrf), ("name", "PBX"), ("network", "203.0.113.0/16"), ("prefix", "")])
        #expect(bad.status == 422 && bad.body.contains("invalid IP or CIDR"))
        #expect(b.go("POST", "/accounts/7001/ip-settings", form: [("csrf", csrf), ("name", "PBX7"), ("network", "198.51.100.20"), ("prefix", "77"), ("strip_prefix", "1")]).status == 303)
        let id: Int64 = try h.db.execute("SELECT id FROM ip_settings WHERE network = '198.51.100.20'").decode(0, 0)
        #expect(b.go("GET", "/ip-settings/\(id)/edit").body.contains("value=\"198.51.100.20/32\""))
        #expect(b.go("POST", "/ip-settings/\(id)", form: [("csrf", csrf), ("name", "PBX7"), ("network", "198.51.100.20"), ("prefix", "78"), ("enabled", "1")]).status == 303)
        let prefix: String = try h.db.execute("SELECT prefix FROM ip_settings WHERE id = $1::bigint", [String(id)]).decode(0, 0)
        #expect(prefix == "78")

        let posted = b.go("POST", "/accounts/7001/devices", form: [("csrf", csrf), ("username", "7001"), ("domain", "voip.example.com"), ("generate", "1")])
        // Post/Redirect/Get: the password is on the page after the redirect, once.
        #expect(posted.status == 303 && posted.header("Location") == "/accounts/7001")
        let dev = b.go("GET", "/accounts/7001")
        #expect(dev.body.contains("Device 7001@voip.example.com added."))
        let password = try #require(dev.body.range(of: "id=\"generated-password\">").map { String(dev.body[$0.upperBound...].prefix { $0 != "<" }) })
        #expect(password.count == 20)
        #expect(!b.go("GET", "/accounts/7001").body.contains(password))

        let balanceForm = b.go("GET", "/accounts/7001").body
        let key = try #require(Browser.field(balanceForm, "idempotency_key"))
        for _ in 0..<2 { _ = b.go("POST", "/accounts/7001/balance", form: [("csrf", csrf), ("idempotency_key", key), ("amount", "5")]) }
        let balance: String = try h.db.execute("SELECT balance::text FROM accounts WHERE number = '7001'").decode(0, 0)
        #expect(balance == "15.000000")

        let audit = b.go("GET", "/audit?actor=console:oper")
        #expect(audit.body.contains("console:oper") && audit.body.contains("7001@voip.example.com") && audit.body.contains("prefix: 77 → 78"))
        // Names, not table names and ids; money in the platform's currency.
        #expect(audit.body.contains("<td>device</td>") && audit.body.contains("domain: voip.example.com") && !audit.body.contains("domain id"))
        #expect(!audit.body.contains("<td>sip_devices</td>") && audit.body.contains("balance: 10.00 USD → 15.00 USD"))
        #expect(!audit.body.contains(password))

        let explain = b.go("GET", "/explain?ip=198.51.100.20&destination=7812345")
        #expect(explain.body.contains("id=\"explanation\"") && explain.body.contains("allowed"))
        #expect(explain.body.contains("accountcode 7001"))
        let device = b.go("GET", "/explain?user=7001@voip.example.com&destination=15551234").body
        #expect(device.contains("user published with its HA1") && device.contains("accountcode 7001"))
        #expect(!device.contains("a1-hash"))   // the directory answer (with the HA1) is never shown
    }

    @Test func domainsAndLockoutsPages() throws {
        let h = try ConsoleHarness()
        let b = Browser(h)
        _ = b.login("oper", "oper-password-123")
        let csrf = b.csrf("/domains")
        #expect(b.go("POST", "/domains", form: [("csrf", csrf), ("name", "sip.example.org")]).status == 303)
        #expect(b.go("POST", "/domains/sip.example.org/aliases", form: [("csrf", csrf), ("alias", "192.0.2.5")]).status == 303)
        let dup = b.go("POST", "/domains", form: [("csrf", csrf), ("name", "192.0.2.5")])
        #expect(dup.status == 422 && dup.body.contains("already exists"))
        #expect(b.go("GET", "/domains").body.contains("192.0.2.5"))
        try h.db.execute("INSERT INTO auth_failures (scope, subject, failures, locked_until) VALUES ('user', '1001@voip.example.com', 10, now() + interval '5 minutes')")
        #expect(b.go("GET", "/lockouts").body.contains("1001@voip.example.com"))
        #expect(b.go("POST", "/lockouts/clear", form: [("csrf", csrf), ("subject", "1001@voip.example.com")]).status == 303)
        #expect(!b.go("GET", "/lockouts").body.contains("1001@voip.example.com"))
        // Removing: an alias, then the domain (refused while a device uses it).
        #expect(b.go("POST", "/domains/sip.example.org/aliases/192.0.2.5/delete", form: [("csrf", csrf)]).status == 303)
        #expect(!b.go("GET", "/domains").body.contains("192.0.2.5"))
        #expect(b.go("POST", "/domains/sip.example.org/delete", form: [("csrf", csrf)]).status == 303)
        #expect(!b.go("GET", "/domains").body.contains("sip.example.org"))
        _ = try Admin(db: h.db).addDevice(Admin.DeviceInput(account: "1001", domain: "voip.example.com", username: "d1", password: "a-long-password"))
        let refused = b.go("POST", "/domains/voip.example.com/delete", form: [("csrf", csrf)])
        #expect(refused.status == 422 && refused.body.contains("has 1 device(s)"))
        let actor: String = try h.db.execute("SELECT actor FROM audit_log WHERE object_type = 'auth_failures'").decode(0, 0)
        #expect(actor == "console:oper")
    }
}
