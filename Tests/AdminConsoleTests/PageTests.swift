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
        #expect(ok.status == 303 && ok.header("Location") == "/accounts")
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

        let dev = b.go("POST", "/accounts/7001/devices", form: [("csrf", csrf), ("username", "7001"), ("domain", "voip.example.com"), ("generate", "1")])
        #expect(dev.status == 200)
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
        let actor: String = try h.db.execute("SELECT actor FROM audit_log WHERE object_type = 'auth_failures'").decode(0, 0)
        #expect(actor == "console:oper")
    }
}
