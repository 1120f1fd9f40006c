import Decisions
import Foundation
import HTTPServer
import Postgres
import Store

/// A page's refusal: shown as an error banner on the page the form came from.
struct PageError: Error {
    var status: Int
    var message: String
}

/// The server-rendered console. Every page needs a session (cookie `sa_session`: HttpOnly,
/// SameSite=Strict); every POST carries the session's CSRF token and needs the operator role
/// (admin for nothing here yet); changes go through `Store.Admin`, the CLI's validation path.
enum Pages {
    static let sessionCookie = "sa_session"
    static let loginCookie = "sa_login"

    static let notices: [String: String] = [
        "created": "Account created.", "saved": "Saved.", "suspended": "Account suspended.", "active": "Account active.",
        "closed": "Account closed.", "ip-added": "IP setting added.", "ip-saved": "IP setting saved.", "ip-removed": "IP setting removed.",
        "device-removed": "Device removed.", "device-saved": "Device saved.", "domain-added": "Domain added.", "alias-added": "Alias added.",
        "lockout-cleared": "Lockout cleared.", "logged-out": "Logged out.",
    ]

    struct Ctx {
        let request: ConsoleRequest
        let db: Connection
        let app: ConsoleApp
        let session: Session
        var admin: Admin { Admin(db: db) }
        var queries: Queries { Queries(db: db) }
        var csrf: String { session.csrfToken }
        var canWrite: Bool { session.who.role >= .operator }
        var form: [String: String] { request.form }
        func q(_ k: String) -> String? { request.query[k].flatMap { $0.isEmpty ? nil : $0 } }
    }

    // MARK: responses

    static func html(_ body: String, status: Int = 200, headers: [(String, String)] = []) -> HTTPResponse {
        let reasons = [200: "OK", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 422: "Unprocessable Content", 429: "Too Many Requests", 500: "Internal Server Error", 503: "Service Unavailable"]
        return HTTPResponse(status: HTTPStatus(code: status, reason: reasons[status] ?? "Error"), contentType: "text/html; charset=utf-8",
                            body: Array(body.utf8), headers: headers.map { (name: $0.0, value: $0.1) } + ConsoleRequest.securityHeaders)
    }

    static func redirect(_ location: String, headers: [(String, String)] = []) -> HTTPResponse {
        HTTPResponse(status: HTTPStatus(code: 303, reason: "See Other"), headers: [(name: "Location", value: location)] + headers.map { (name: $0.0, value: $0.1) } + ConsoleRequest.securityHeaders)
    }

    static func cookie(_ name: String, _ value: String, maxAge: Int, app: ConsoleApp) -> (String, String) {
        ("Set-Cookie", "\(name)=\(value); Path=/; Max-Age=\(maxAge); HttpOnly; SameSite=Strict\(app.settings.secureCookies ? "; Secure" : "")")
    }

    static func layout(_ title: String, _ c: Ctx?, current: String = "", notice: String? = nil, error: String? = nil, _ body: String) -> String {
        var s = """
            <!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
            <title>\(HTML.esc(title)) · SwitchAuth</title><link rel="stylesheet" href="/static/console.css"><script src="/static/console.js" defer></script></head><body>
            """
        if let c {
            s += "<header><strong>SwitchAuth</strong>"
            for (path, label) in [("/accounts", "Accounts"), ("/domains", "Domains"), ("/lockouts", "Lockouts"), ("/audit", "Audit log"), ("/explain", "Explain")] {
                s += "<a href=\"\(path)\"\(current == path ? " class=\"current\"" : "")>\(label)</a>"
            }
            s += "<span class=\"who\" id=\"who\">\(HTML.esc(c.session.who.name)) (\(HTML.esc(c.session.who.role.rawValue)))</span>"
            s += HTML.button("/logout", "Log out", csrf: c.csrf) + "</header>"
        }
        s += "<main>"
        if let notice { s += "<div class=\"notice\" id=\"notice\">\(HTML.esc(notice))</div>" }
        if let error { s += "<div class=\"error\" id=\"error\" role=\"alert\">\(HTML.esc(error))</div>" }
        return s + body + "</main></body></html>"
    }

    // MARK: dispatch

    static func handle(_ request: ConsoleRequest, db: Connection, app: ConsoleApp) -> HTTPResponse {
        do {
            let segs = request.segments
            let method = request.method == "HEAD" ? "GET" : request.method
            if segs == ["login"] {
                return method == "POST" ? try login(request, db: db, app: app) : loginPage(request, app: app, error: nil)
            }
            guard let cookie = request.cookie(sessionCookie), let session = try OperatorStore(db: db).session(cookie: cookie) else {
                if method == "GET" { return redirect("/login") }
                return html(layout("Not logged in", nil, error: "Your session has ended; log in again.", "<p><a href=\"/login\">Log in</a></p>"), status: 403)
            }
            let c = Ctx(request: request, db: db, app: app, session: session)
            if method == "POST" {
                // CSRF: the session's token must come back in the form (SameSite=Strict is the second lock).
                guard let token = request.form["csrf"], Secrets.constantTimeEqual(Array(token.utf8), Array(session.csrfToken.utf8)) else {
                    return html(layout("Refused", c, error: "This form's CSRF token is missing or wrong: nothing was changed. Reload the page and try again.", ""), status: 403)
                }
                if segs == ["logout"] {
                    try OperatorStore(db: db).endSession(cookie: cookie)
                    return redirect("/login?notice=logged-out", headers: [Pages.cookie(sessionCookie, "", maxAge: 0, app: app)])
                }
                guard c.canWrite else {
                    return html(layout("Refused", c, error: "Your role (\(session.who.role.rawValue)) may not change anything: nothing was changed.", ""), status: 403)
                }
                try OperatorStore.setActor(db, "console:" + session.who.name)
                return try post(c, segs)
            }
            guard method == "GET" else { return html(layout("Not allowed", c, error: "method not allowed", ""), status: 405) }
            return try get(c, segs)
        } catch let e as PostgresError {
            return html(layout("Database", nil, error: Problem.from(e).detail, ""), status: 503)
        } catch {
            return html(layout("Error", nil, error: "unexpected error", ""), status: 500)
        }
    }

    /// Matches `segs` against a pattern like "accounts/*/edit"; returns the segments under `*`.
    static func match(_ segs: [String], _ pattern: String) -> [String]? {
        let p = pattern.split(separator: "/").map(String.init)
        guard p.count == segs.count else { return nil }
        var out: [String] = []
        for (a, b) in zip(p, segs) {
            if a == "*" { out.append(b) } else if a != b { return nil }
        }
        return out
    }

    static func get(_ c: Ctx, _ segs: [String]) throws -> HTTPResponse {
        if segs.isEmpty { return redirect("/accounts") }
        if match(segs, "accounts") != nil { return html(try accounts(c)) }
        if let m = match(segs, "accounts/*") { return try accountPage(c, m[0]) }
        if let m = match(segs, "ip-settings/*/edit") { return try ipEditPage(c, m[0]) }
        if match(segs, "domains") != nil { return html(try domains(c)) }
        if match(segs, "lockouts") != nil { return html(try lockouts(c)) }
        if match(segs, "audit") != nil { return html(try audit(c)) }
        if match(segs, "explain") != nil { return html(try explain(c)) }
        return html(layout("Not found", c, error: "no such page", ""), status: 404)
    }

    /// A change, then back to the page it belongs to; a refusal re-renders that page with the message.
    static func post(_ c: Ctx, _ segs: [String]) throws -> HTTPResponse {
        let f = c.form
        func v(_ k: String) -> String { (f[k] ?? "").trimmingCharacters(in: .whitespaces) }
        func opt(_ k: String) -> String? { let s = v(k); return s.isEmpty ? nil : s }
        do {
            if match(segs, "accounts") != nil {
                var a = Admin.AccountInput(number: v("number"), name: v("name"))
                guard let kind = AccountKind(rawValue: v("kind")), let billing = Billing(rawValue: v("billing")) else { throw AdminError("choose a kind and a billing") }
                a.kind = kind
                a.billing = billing
                a.balance = opt("balance") ?? "0"
                a.creditLimit = opt("credit_limit") ?? "0"
                guard let ch = Int(opt("max_channels") ?? "0") else { throw AdminError("max channels must be a whole number") }
                a.maxChannels = ch
                try c.admin.addAccount(a)
                return redirect("/accounts/\(HTML.seg(a.number))?notice=created")
            }
            if let m = match(segs, "accounts/*/edit") {
                let n = m[0]
                var u = Admin.AccountUpdate()
                u.name = v("name")
                u.billing = Billing(rawValue: v("billing"))
                u.creditLimit = opt("credit_limit")
                guard let ch = Int(v("max_channels")) else { throw AdminError("max channels must be a whole number") }
                u.maxChannels = ch
                if let e = opt("expires_at") { u.expiresAt = e } else { u.clearExpiry = true }
                try c.admin.updateAccount(n, u)
                return redirect("/accounts/\(HTML.seg(n))?notice=saved")
            }
            if let m = match(segs, "accounts/*/status") {
                let n = m[0]
                guard let s = AccountStatus(rawValue: v("status")) else { throw AdminError("unknown status") }
                try c.admin.setStatus(n, s)
                return redirect("/accounts/\(HTML.seg(n))?notice=\(s.rawValue)")
            }
            if let m = match(segs, "accounts/*/balance") {
                let n = m[0]
                let (balance, replayed) = try c.admin.adjustBalance(n, amount: v("amount"), idempotencyKey: v("idempotency_key"))
                return try accountPage(c, n, notice: replayed ? "This adjustment was already made (same form sent twice): balance \(balance), nothing moved."
                                                               : "Balance adjusted by \(v("amount")): now \(balance).")
            }
            if let m = match(segs, "accounts/*/ip-settings") {
                let n = m[0]
                try c.admin.addIP(account: n, name: v("name"), network: v("network"), prefix: v("prefix"), strip: f["strip_prefix"] == "1")
                return redirect("/accounts/\(HTML.seg(n))?notice=ip-added")
            }
            if let m = match(segs, "accounts/*/devices") {
                let n = m[0]
                let generate = f["generate"] == "1"
                let password = generate ? API.generatePassword() : (f["password"] ?? "")
                var d = Admin.DeviceInput(account: n, domain: v("domain"), username: v("username"), password: password)
                d.callerIDName = v("caller_id_name")
                d.callerIDNumber = v("caller_id_number")
                try c.admin.addDevice(d)
                // Shown once, on this answer only; never stored, never shown again.
                let shown = generate ? "<p>Password of <strong>\(HTML.esc(d.username))@\(HTML.esc(d.domain))</strong>, shown once: <span class=\"secret\" id=\"generated-password\">\(HTML.esc(password))</span></p>" : ""
                return try accountPage(c, n, notice: "Device \(d.username)@\(d.domain) added.", extra: shown)
            }
            if let m = match(segs, "ip-settings/*/delete") {
                let id = m[0]
                guard let i = Int64(id), let s = try c.queries.ipSetting(i) else { throw AdminError("unknown IP setting \(id)") }
                try c.admin.removeIP(id: i)
                return redirect("/accounts/\(HTML.seg(s["account"].flatMap { if case .string(let a) = $0 { a } else { nil } } ?? ""))?notice=ip-removed")
            }
            if let m = match(segs, "ip-settings/*") {
                let id = m[0]
                guard let i = Int64(id), let s = try c.queries.ipSetting(i), case .string(let account)? = s["account"] else { throw AdminError("unknown IP setting \(id)") }
                var u = Admin.IPUpdate()
                u.name = v("name")
                u.network = v("network")
                u.prefix = v("prefix")
                u.strip = f["strip_prefix"] == "1"
                u.enabled = f["enabled"] == "1"
                do {
                    try c.admin.updateIP(id: i, u)
                } catch let e as AdminError {
                    return try ipEditPage(c, id, error: e.message, status: 422)
                }
                return redirect("/accounts/\(HTML.seg(account))?notice=ip-saved")
            }
            if let m = match(segs, "devices/*/delete") {
                let address = m[0]
                let account = try deviceAccount(c, address)
                try c.admin.removeDevice(address)
                return redirect("/accounts/\(HTML.seg(account))?notice=device-removed")
            }
            if let m = match(segs, "devices/*/enabled") {
                let address = m[0]
                let account = try deviceAccount(c, address)
                try c.admin.setDeviceEnabled(address, v("enabled") == "1")
                return redirect("/accounts/\(HTML.seg(account))?notice=device-saved")
            }
            if match(segs, "domains") != nil {
                try c.admin.addDomain(v("name"))
                return redirect("/domains?notice=domain-added")
            }
            if let m = match(segs, "domains/*/aliases") {
                let d = m[0]
                try c.admin.addAlias(domain: d, alias: v("alias"))
                return redirect("/domains?notice=alias-added")
            }
            if match(segs, "lockouts/clear") != nil {
                guard try AuthFailures.clear(c.db, subject: v("subject")) > 0 else { throw AdminError("unknown lockout \(v("subject"))") }
                return redirect("/lockouts?notice=lockout-cleared")
            }
            return html(layout("Not found", c, error: "no such form", ""), status: 404)
        } catch let e as AdminError {
            // Back to the page the form is on, with the message and nothing changed.
            if segs.count == 3 && segs[0] == "accounts" { return try accountPage(c, segs[1], error: e.message, status: 422) }
            if segs == ["accounts"] { return html(try accounts(c, error: e.message), status: 422) }
            if segs.first == "domains" { return html(try domains(c, error: e.message), status: 422) }
            if segs.first == "lockouts" { return html(try lockouts(c, error: e.message), status: 422) }
            return html(layout("Refused", c, error: e.message, ""), status: 422)
        }
    }

    static func deviceAccount(_ c: Ctx, _ address: String) throws -> String {
        let id = try c.admin.deviceID(address)
        guard case .string(let a)? = try c.queries.device(id: id)?["account"] else { throw AdminError("unknown device \(address)") }
        return a
    }

    // MARK: login

    static func loginPage(_ r: ConsoleRequest, app: ConsoleApp, error: String?, status: Int = 200, headers: [(String, String)] = []) -> HTTPResponse {
        // Login CSRF: a random value in a cookie and in the form; the POST must bring both.
        // Kept while it lasts: a second GET /login (another tab, a redirected favicon fetch) must
        // not invalidate the form already shown.
        let existing = r.cookie(loginCookie).flatMap { $0.utf8.count == 43 && $0.utf8.allSatisfy { b in b != 59 && b != 32 } ? $0 : nil }
        let token = existing ?? Secrets.newToken(prefix: "")
        let notice = r.query["notice"].flatMap { notices[$0] }
        let body = """
            <div class="login"><h1>SwitchAuth console</h1>
            <section><form method="post" action="/login" id="login-form">
            <input type="hidden" name="login_csrf" value="\(HTML.esc(token))">
            \(HTML.input("name", "Operator", required: true, extra: " autocomplete=\"username\" autofocus"))
            \(HTML.input("password", "Password", type: "password", required: true, extra: " autocomplete=\"current-password\""))
            <button type="submit">Log in</button></form></section></div>
            """
        return html(layout("Log in", nil, notice: notice, error: error, body), status: status,
                    headers: headers + [cookie(loginCookie, token, maxAge: 3600, app: app)])
    }

    static func login(_ r: ConsoleRequest, db: Connection, app: ConsoleApp) throws -> HTTPResponse {
        let f = r.form
        guard let token = f["login_csrf"], let cookieToken = r.cookie(loginCookie), !token.isEmpty,
              Secrets.constantTimeEqual(Array(token.utf8), Array(cookieToken.utf8)) else {
            return loginPage(r, app: app, error: "This form's CSRF token is missing or wrong; try again.", status: 403)
        }
        let name = f["name"] ?? "", password = f["password"] ?? ""
        if let wait = app.throttle.retryAfter(name: name, client: r.client) {
            return loginPage(r, app: app, error: "Too many failed logins: wait \(wait) s.", status: 429, headers: [("Retry-After", String(wait))])
        }
        let store = OperatorStore(db: db)
        guard let who = try store.authenticate(name: name, password: password) else {
            app.throttle.failed(name: name, client: r.client)
            return loginPage(r, app: app, error: "Wrong operator name or password.", status: 403)
        }
        app.throttle.succeeded(name: name)
        let (cookie, _) = try store.createSession(for: who, ttlSeconds: app.settings.sessionSeconds)
        return redirect("/accounts", headers: [Pages.cookie(sessionCookie, cookie, maxAge: app.settings.sessionSeconds, app: app),
                                               Pages.cookie(loginCookie, "", maxAge: 0, app: app)])
    }

    // MARK: pages

    static func str(_ j: JSON?) -> String {
        switch j {
        case .string(let s)?: return s
        case .number(let n)?: return n
        case .bool(let b)?: return b ? "yes" : "no"
        default: return ""
        }
    }

    static func badge(_ s: String) -> String { "<span class=\"badge \(HTML.esc(s))\">\(HTML.esc(s))</span>" }

    static func pager(_ base: String, _ params: [(String, String?)], next: String?) -> String {
        guard let next else { return "" }
        return "<div class=\"pager\"><a id=\"next-page\" href=\"\(HTML.esc(base + HTML.query(params + [("cursor", next)])))\">Next page →</a></div>"
    }

    static func accounts(_ c: Ctx, error: String? = nil) throws -> String {
        let q = c.q("q"), status = c.q("status").flatMap { AccountStatus(rawValue: $0)?.rawValue }
        let page = try c.queries.accounts(q: q, status: status, kind: nil, cursor: c.q("cursor"), limit: Queries.defaultLimit)
        var body = "<h1>Accounts</h1><section><form method=\"get\" action=\"/accounts\" class=\"stack\" id=\"search\">"
            + HTML.input("q", "Search number or name", value: q ?? "", type: "search")
            + HTML.select("status", "Status", ["", "active", "suspended", "closed"], selected: status ?? "")
            + "<button type=\"submit\">Search</button></form></section><section>"
        let rows = page.items.map { a -> [String] in
            let n = str(a["number"])
            return ["<a href=\"/accounts/\(HTML.esc(HTML.seg(n)))\">\(HTML.esc(n))</a>", HTML.esc(str(a["name"])), HTML.esc(str(a["kind"])),
                    badge(str(a["status"])), HTML.esc(str(a["balance"])), HTML.esc(str(a["ip_settings"])), HTML.esc(str(a["devices"]))]
        }
        body += HTML.table(["Number", "Name", "Kind", "Status", "Balance", "IP settings", "Devices"], rows, id: "accounts")
        body += pager("/accounts", [("q", q), ("status", status)], next: page.nextCursor) + "</section>"
        if c.canWrite {
            let f = c.request.method == "POST" ? c.form : [:]
            body += "<h2>Add an account</h2><section><form method=\"post\" action=\"/accounts\" class=\"stack\" id=\"add-account\">" + HTML.csrfField(c.csrf)
                + HTML.input("number", "Number (accountcode)", value: f["number"] ?? "", required: true)
                + HTML.input("name", "Name", value: f["name"] ?? "", required: true)
                + HTML.select("kind", "Kind", ["customer", "carrier"], selected: f["kind"] ?? "customer")
                + HTML.select("billing", "Billing", ["prepaid", "postpaid"], selected: f["billing"] ?? "prepaid")
                + HTML.input("balance", "Balance", value: f["balance"] ?? "0", extra: " inputmode=\"decimal\"")
                + HTML.input("credit_limit", "Credit limit", value: f["credit_limit"] ?? "0", extra: " inputmode=\"decimal\"")
                + HTML.input("max_channels", "Max channels (0 = unlimited)", value: f["max_channels"] ?? "0", type: "number")
                + "<button type=\"submit\">Add account</button></form></section>"
        }
        return layout("Accounts", c, current: "/accounts", notice: c.q("notice").flatMap { notices[$0] }, error: error, body)
    }

    static func accountPage(_ c: Ctx, _ number: String, notice: String? = nil, error: String? = nil, extra: String = "", status: Int = 200) throws -> HTTPResponse {
        guard let a = try c.queries.account(number) else { return html(layout("Not found", c, error: "unknown account \(number)", ""), status: 404) }
        let base = "/accounts/" + HTML.seg(number)
        let ips = try c.queries.ipSettings(account: number, contains: nil, cursor: nil, limit: Queries.maxLimit)
        let devices = try c.queries.devices(account: number, domain: nil, q: nil, cursor: c.q("devices_cursor"), limit: Queries.defaultLimit)
        let history = try c.queries.audit(account: number, objectType: nil, actor: nil, cursor: nil, limit: 10)
        var body = "<h1>Account \(HTML.esc(number)) · \(HTML.esc(str(a["name"]))) \(badge(str(a["status"])))</h1>" + extra
        body += "<section><dl id=\"account-facts\">"
        for (k, label) in [("kind", "Kind"), ("billing", "Billing"), ("balance", "Balance"), ("credit_limit", "Credit limit"),
                           ("max_channels", "Max channels"), ("expires_at", "Expires"), ("created_at", "Created"), ("updated_at", "Updated")] {
            var value = str(a[k])
            if k == "max_channels" && value == "0" { value = "unlimited" }
            if k == "expires_at" && value.isEmpty { value = "never" }
            body += "<dt>\(label)</dt><dd id=\"account-\(k)\">\(HTML.esc(value))</dd>"
        }
        body += "</dl>"
        if c.canWrite {
            body += "<p>"
            let st = str(a["status"])
            if st != "suspended" { body += HTML.button(base + "/status", "Suspend", csrf: c.csrf, fields: [("status", "suspended")], cls: "plain") + " " }
            if st != "active" { body += HTML.button(base + "/status", "Resume", csrf: c.csrf, fields: [("status", "active")], cls: "plain") + " " }
            if st != "closed" { body += HTML.button(base + "/status", "Close", csrf: c.csrf, fields: [("status", "closed")], confirm: "Close account \(number)?", cls: "danger") }
            body += "</p>"
        }
        body += "</section>"

        body += "<h2>IP settings</h2><section>"
        let ipRows = ips.items.map { s -> [String] in
            let id = str(s["id"])
            var actions = ""
            if c.canWrite {
                actions = "<a href=\"/ip-settings/\(HTML.esc(id))/edit\">Edit</a> " + HTML.button("/ip-settings/\(id)/delete", "Remove", csrf: c.csrf, confirm: "Remove IP setting \(str(s["network"]))?", cls: "plain")
            }
            return [HTML.esc(str(s["name"])), HTML.esc(str(s["network"])), HTML.esc(str(s["prefix"]).isEmpty ? "(any)" : str(s["prefix"])),
                    HTML.esc(str(s["strip_prefix"])), HTML.esc(str(s["enabled"])), actions]
        }
        body += HTML.table(["Name", "IP or network", "Prefix", "Strip", "Enabled", ""], ipRows, id: "ip-settings")
        if c.canWrite {
            body += "<h2>Add IP setting</h2><form method=\"post\" action=\"\(HTML.esc(base))/ip-settings\" class=\"stack\" id=\"add-ip\">" + HTML.csrfField(c.csrf)
                + HTML.input("name", "Name (customer or carrier)", value: str(a["name"]), required: true)
                + HTML.input("network", "IP or CIDR", required: true, placeholder: "203.0.113.10 or 203.0.113.0/24")
                + HTML.input("prefix", "Destination prefix (empty = any)", extra: " inputmode=\"numeric\" pattern=\"[0-9]*\"")
                + HTML.checkbox("strip_prefix", "Strip the prefix", checked: false)
                + "<button type=\"submit\">Add IP setting</button></form>"
        }
        body += "</section><h2>SIP devices</h2><section>"
        let devRows = devices.items.map { d -> [String] in
            let addr = str(d["device"])
            var actions = ""
            if c.canWrite {
                let enabled = str(d["enabled"]) == "yes"
                actions = HTML.button("/devices/\(HTML.seg(addr))/enabled", enabled ? "Disable" : "Enable", csrf: c.csrf, fields: [("enabled", enabled ? "0" : "1")], cls: "plain")
                    + " " + HTML.button("/devices/\(HTML.seg(addr))/delete", "Remove", csrf: c.csrf, confirm: "Remove device \(addr)?", cls: "plain")
            }
            return [HTML.esc(addr), HTML.esc(str(d["enabled"])), HTML.esc(str(d["caller_id_name"])), HTML.esc(str(d["caller_id_number"])), actions]
        }
        body += HTML.table(["Device", "Enabled", "Caller ID name", "Caller ID number", ""], devRows, id: "devices")
        body += pager(base, [], next: devices.nextCursor).replacingOccurrences(of: "?cursor=", with: "?devices_cursor=")
        if c.canWrite {
            let domains = try c.queries.domains(cursor: nil, limit: Queries.maxLimit).items.map { str($0["name"]) }
            body += "<h2>Add device</h2><form method=\"post\" action=\"\(HTML.esc(base))/devices\" class=\"stack\" id=\"add-device\">" + HTML.csrfField(c.csrf)
                + HTML.input("username", "Username", required: true, extra: " autocomplete=\"off\"")
                + HTML.select("domain", "Domain", domains, selected: domains.first ?? "")
                + HTML.checkbox("generate", "Generate a password (shown once)", checked: true, id: "generate")
                + HTML.input("password", "Password (8+ characters)", type: "password", extra: " id=\"device-password\" autocomplete=\"new-password\"")
                + HTML.input("caller_id_name", "Caller ID name") + HTML.input("caller_id_number", "Caller ID number", extra: " inputmode=\"tel\"")
                + "<button type=\"submit\">Add device</button></form>"
        }
        body += "</section>"
        if c.canWrite {
            body += "<h2>Balance and settings</h2><section>"
            // A fresh key per rendered form: the same form sent twice moves the balance once.
            body += "<form method=\"post\" action=\"\(HTML.esc(base))/balance\" class=\"stack\" id=\"balance\">" + HTML.csrfField(c.csrf)
                + "<input type=\"hidden\" name=\"idempotency_key\" value=\"console-\(HTML.esc(Secrets.newToken(prefix: "")))\">"
                + HTML.input("amount", "Adjust balance by (negative to debit)", required: true, extra: " inputmode=\"decimal\"")
                + "<button type=\"submit\">Adjust balance</button></form><br>"
            body += "<form method=\"post\" action=\"\(HTML.esc(base))/edit\" class=\"stack\" id=\"edit-account\">" + HTML.csrfField(c.csrf)
                + HTML.input("name", "Name", value: str(a["name"]), required: true)
                + HTML.select("billing", "Billing", ["prepaid", "postpaid"], selected: str(a["billing"]))
                + HTML.input("credit_limit", "Credit limit", value: str(a["credit_limit"]))
                + HTML.input("max_channels", "Max channels (0 = unlimited)", value: str(a["max_channels"]), type: "number")
                + HTML.input("expires_at", "Expires (empty = never)", value: str(a["expires_at"]), placeholder: "2027-01-31T00:00:00Z")
                + "<button type=\"submit\">Save</button></form></section>"
        }
        body += "<h2>Recent changes</h2><section>" + auditTable(history.items)
            + "<p><a href=\"/audit?account=\(HTML.esc(HTML.seg(number)))\">Full history</a></p></section>"
        let n = notice ?? c.q("notice").flatMap { notices[$0] }
        return html(layout("Account \(number)", c, current: "/accounts", notice: n, error: error, body), status: status)
    }

    static func ipEditPage(_ c: Ctx, _ id: String, error: String? = nil, status: Int = 200) throws -> HTTPResponse {
        guard let i = Int64(id), let s = try c.queries.ipSetting(i) else { return html(layout("Not found", c, error: "unknown IP setting \(id)", ""), status: 404) }
        let f = c.request.method == "POST" ? c.form : [:]
        let account = str(s["account"])
        let body = "<h1>IP setting \(HTML.esc(id)) of account <a href=\"/accounts/\(HTML.esc(HTML.seg(account)))\">\(HTML.esc(account))</a></h1><section>"
            + "<form method=\"post\" action=\"/ip-settings/\(HTML.esc(id))\" class=\"stack\" id=\"edit-ip\">" + HTML.csrfField(c.csrf)
            + HTML.input("name", "Name", value: f["name"] ?? str(s["name"]), required: true)
            + HTML.input("network", "IP or CIDR", value: f["network"] ?? str(s["network"]), required: true)
            + HTML.input("prefix", "Destination prefix (empty = any)", value: f["prefix"] ?? str(s["prefix"]))
            + HTML.checkbox("strip_prefix", "Strip the prefix", checked: f.isEmpty ? str(s["strip_prefix"]) == "yes" : f["strip_prefix"] == "1")
            + HTML.checkbox("enabled", "Enabled", checked: f.isEmpty ? str(s["enabled"]) == "yes" : f["enabled"] == "1")
            + "<button type=\"submit\">Save</button></form></section>"
        return html(layout("IP setting \(id)", c, current: "/accounts", error: error, body), status: status)
    }

    static func domains(_ c: Ctx, error: String? = nil) throws -> String {
        let page = try c.queries.domains(cursor: c.q("cursor"), limit: Queries.defaultLimit)
        let rows = page.items.map { d -> [String] in
            let name = str(d["name"])
            let aliases: [String]
            if case .array(let a)? = d["aliases"] { aliases = a.map { str($0) } } else { aliases = [] }
            var aliasCell = HTML.esc(aliases.joined(separator: ", "))
            if c.canWrite {
                aliasCell += "<form method=\"post\" action=\"/domains/\(HTML.esc(HTML.seg(name)))/aliases\" class=\"stack\">" + HTML.csrfField(c.csrf)
                    + HTML.input("alias", "New alias", required: true, placeholder: "198.51.100.1") + "<button type=\"submit\" class=\"plain\">Add alias</button></form>"
            }
            return [HTML.esc(name), HTML.esc(str(d["enabled"])), aliasCell]
        }
        var body = "<h1>Domains and aliases</h1><section>" + HTML.table(["Domain (digest realm)", "Enabled", "Aliases"], rows, id: "domains")
            + pager("/domains", [], next: page.nextCursor) + "</section>"
        if c.canWrite {
            body += "<h2>Add a domain</h2><section><form method=\"post\" action=\"/domains\" class=\"stack\" id=\"add-domain\">" + HTML.csrfField(c.csrf)
                + HTML.input("name", "Domain name", required: true, placeholder: "voip.example.com") + "<button type=\"submit\">Add domain</button></form></section>"
        }
        return layout("Domains", c, current: "/domains", notice: c.q("notice").flatMap { notices[$0] }, error: error, body)
    }

    static func lockouts(_ c: Ctx, error: String? = nil) throws -> String {
        let page = try c.queries.lockouts(scope: nil, cursor: c.q("cursor"), limit: Queries.defaultLimit)
        let rows = page.items.map { l -> [String] in
            [HTML.esc(str(l["scope"])), HTML.esc(str(l["subject"])), HTML.esc(str(l["failures"])), HTML.esc(str(l["locked_until"])),
             c.canWrite ? HTML.button("/lockouts/clear", "Clear", csrf: c.csrf, fields: [("subject", str(l["subject"]))], cls: "plain") : ""]
        }
        let body = "<h1>Lockouts</h1><p class=\"muted\">Source IPs and user@domain locked after repeated wrong digests; they get 403 until the time shown.</p><section>"
            + HTML.table(["Scope", "Subject", "Failures", "Locked until (UTC)", ""], rows, id: "lockouts") + pager("/lockouts", [], next: page.nextCursor) + "</section>"
        return layout("Lockouts", c, current: "/lockouts", notice: c.q("notice").flatMap { notices[$0] }, error: error, body)
    }

    static func auditTable(_ items: [JSON]) -> String {
        let rows = items.map { e -> [String] in
            func diff() -> String {
                func object(_ j: JSON?) -> [String: Any]? {
                    guard case .raw(let t)? = j else { return nil }
                    return try? JSONSerialization.jsonObject(with: Data(t.utf8)) as? [String: Any]
                }
                let quiet: Set<String> = ["id", "created_at", "updated_at", "last_used_at"]
                func fmt(_ v: Any?) -> String {
                    guard let v else { return "∅" }
                    if v is NSNull { return "null" }
                    if JSONBody.isBool(v), let b = v as? Bool { return b ? "true" : "false" }
                    return "\(v)"
                }
                guard let a = object(e["after"]) else {
                    // Deleted: what it was.
                    guard let b = object(e["before"]) else { return "" }
                    return b.keys.sorted().filter { !quiet.contains($0) }.map { "\(HTML.esc($0)): \(HTML.esc(fmt(b[$0])))" }.joined(separator: "<br>")
                }
                guard let b = object(e["before"]) else {
                    // Created: what it is.
                    return a.keys.sorted().filter { !quiet.contains($0) }.map { "\(HTML.esc($0)): \(HTML.esc(fmt(a[$0])))" }.joined(separator: "<br>")
                }
                let changed = a.keys.sorted().filter { k in !quiet.contains(k) && fmt(b[k]) != fmt(a[k]) }
                return changed.map { k in "\(HTML.esc(k)): \(HTML.esc(fmt(b[k]))) → \(HTML.esc(fmt(a[k])))" }.joined(separator: "<br>")
            }
            let account = str(e["account"])
            return [HTML.esc(str(e["at"])), HTML.esc(str(e["actor"])), HTML.esc(str(e["action"])), HTML.esc(str(e["object_type"])),
                    HTML.esc(str(e["object"])),
                    account.isEmpty ? "" : "<a href=\"/accounts/\(HTML.esc(HTML.seg(account)))\">\(HTML.esc(account))</a>",
                    "<span class=\"wrap\">\(diff())</span>"]
        }
        return HTML.table(["When (UTC)", "Who", "Action", "Object", "Which", "Account", "Change"], rows, id: "audit")
    }

    static func audit(_ c: Ctx) throws -> String {
        let account = c.q("account"), actor = c.q("actor"), type = c.q("object_type")
        let page = try c.queries.audit(account: account, objectType: type, actor: actor, cursor: c.q("cursor"), limit: Queries.defaultLimit)
        let body = "<h1>Audit log</h1><section><form method=\"get\" action=\"/audit\" class=\"stack\">"
            + HTML.input("account", "Account", value: account ?? "") + HTML.input("actor", "Who", value: actor ?? "", placeholder: "console:alice")
            + HTML.select("object_type", "Object", ["", "accounts", "ip_settings", "sip_devices", "sip_domains", "sip_domain_aliases", "auth_failures", "console_operators", "console_tokens"], selected: type ?? "")
            + "<button type=\"submit\">Filter</button></form></section><section>" + auditTable(page.items)
            + pager("/audit", [("account", account), ("actor", actor), ("object_type", type)], next: page.nextCursor) + "</section>"
        return layout("Audit log", c, current: "/audit", body)
    }

    static func explain(_ c: Ctx) throws -> String {
        let ip = c.q("ip"), user = c.q("user"), dest = c.q("destination")
        var body = "<h1>Explain a call</h1><section><form method=\"get\" action=\"/explain\" class=\"stack\" id=\"explain-form\">"
            + HTML.input("ip", "Source IP (IP-authenticated call)", value: ip ?? "", placeholder: "203.0.113.10")
            + HTML.input("user", "or device user@domain", value: user ?? "", placeholder: "1001@voip.example.com")
            + HTML.input("destination", "Destination", value: dest ?? "", placeholder: "9112345")
            + "<button type=\"submit\">Explain</button></form></section>"
        var error: String?
        if ip != nil || user != nil {
            do {
                let e = try Explainer.explain(c.db, ip: ip, user: ip == nil ? user : nil, destination: dest,
                                              directory: c.app.settings.directory, dialplan: c.app.settings.dialplan)
                body += "<section id=\"explanation\"><h2>\(badge(e.outcome)) \(HTML.esc(e.summary))</h2><ol class=\"steps\">"
                    + e.steps.map { "<li>\(HTML.esc($0))</li>" }.joined() + "</ol>"
                if let xml = e.dialplanXML { body += "<details><summary>The dialplan answer FreeSWITCH gets</summary><pre>\(HTML.esc(xml))</pre></details>" }
                body += "</section>"
            } catch let p as Problem {
                error = p.detail
            }
        }
        return layout("Explain", c, current: "/explain", error: error, body)
    }
}
