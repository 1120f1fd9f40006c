import Decisions
import Foundation
import HTTPServer
import Postgres
import Store
import SystemCalls

/// The server-rendered console. Every page but the login needs a session (cookie `sa_session`:
/// HttpOnly, SameSite=Strict); every POST carries the session's CSRF token and needs its route's
/// role (operator for changes, admin for operators and tokens); changes go through `Store.Admin`
/// (the CLI's validation path) and `Store.ConsoleStore`. A change answers 303 to the page it
/// belongs to (Post/Redirect/Get: a reload sends nothing again); a refused form is shown again as it
/// was typed, every refusal next to its field. Pages are `Markup`: values are escaped by construction.
enum Pages {
    static let sessionCookie = "sa_session"
    static let loginCookie = "sa_login"

    static let notices: [String: String] = [
        "created": "Account created.", "saved": "Saved.", "suspended": "Account suspended.", "active": "Account active.",
        "closed": "Account closed.", "ip-added": "IP setting added.", "ip-saved": "IP setting saved.", "ip-removed": "IP setting removed.",
        "device-removed": "Device removed.", "device-saved": "Device saved.", "domain-added": "Domain added.", "alias-added": "Alias added.",
        "domain-removed": "Domain removed.", "alias-removed": "Alias removed.",
        "rule-added": "Destination rule added.", "rule-removed": "Destination rule removed.",
        "threshold-set": "Fraud threshold set.", "threshold-removed": "Fraud threshold removed.",
        "lockout-cleared": "Lockout cleared.", "logged-out": "Logged out.", "token-revoked": "API token revoked: it no longer works.",
        "operator-disabled": "Operator disabled: their sessions ended and their API tokens no longer work.", "operator-enabled": "Operator enabled.",
    ]

    struct Ctx {
        let request: ConsoleRequest
        let db: Connection
        let app: ConsoleApp
        let session: Session
        var params: [String: String] = [:]
        var admin: Admin { Admin(db: db) }
        var store: ConsoleStore { ConsoleStore(db: db) }
        var queries: ConsoleQueries { ConsoleQueries(db: db) }
        var csrf: String { session.csrfToken }
        var canWrite: Bool { session.who.role >= .operator }
        var isAdmin: Bool { session.who.role >= .admin }
        var form: [String: String] { request.form }
        func param(_ k: String) -> String { params[k] ?? "" }
        func q(_ k: String) -> String? { request.query[k].flatMap { $0.isEmpty ? nil : $0 } }
        func money(_ amount: String) -> String { Money.format(amount, currency: app.settings.currency) }
        /// The page size asked for (`limit`, 1-200), else the default.
        var limit: Int { q("limit").flatMap(Int.init).flatMap { (1...ConsoleQueries.maxLimit).contains($0) ? $0 : nil } ?? ConsoleQueries.defaultLimit }
        /// The notice after a redirect: the flash the POST left, else a known `notice` code.
        func notice(_ flash: ConsoleApp.Flash? = nil) -> String? { flash?.notice ?? q("notice").flatMap { notices[$0] } }
        /// A form field, trimmed.
        func v(_ k: String) -> String { (form[k] ?? "").trimmingCharacters(in: .whitespaces) }
        func opt(_ k: String) -> String? { let s = v(k); return s.isEmpty ? nil : s }
    }

    // MARK: responses

    static func html(_ page: Markup, status: Int = 200, headers: [(String, String)] = []) -> HTTPResponse {
        let reasons = [200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 422: "Unprocessable Content", 429: "Too Many Requests", 500: "Internal Server Error", 503: "Service Unavailable"]
        return HTTPResponse(status: HTTPStatus(code: status, reason: reasons[status] ?? "Error"), contentType: "text/html; charset=utf-8",
                            body: Array(page.html.utf8), headers: headers.map { (name: $0.0, value: $0.1) } + ConsoleRequest.securityHeaders)
    }

    static func redirect(_ location: String, headers: [(String, String)] = []) -> HTTPResponse {
        HTTPResponse(status: HTTPStatus(code: 303, reason: "See Other"), headers: [(name: "Location", value: location)] + headers.map { (name: $0.0, value: $0.1) } + ConsoleRequest.securityHeaders)
    }

    static func cookie(_ name: String, _ value: String, maxAge: Int, app: ConsoleApp) -> (String, String) {
        ("Set-Cookie", "\(name)=\(value); Path=/; Max-Age=\(maxAge); HttpOnly; SameSite=Strict\(app.settings.secureCookies ? "; Secure" : "")")
    }

    static func layout(_ title: String, _ c: Ctx?, current: String = "", notice: String? = nil, error: String? = nil, _ body: Markup) -> Markup {
        var s: Markup = """
            <!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
            <title>\(title) · SwitchAuth</title><link rel="stylesheet" href="/static/console.css"><script src="/static/console.js" defer></script></head><body>
            """
        if let c {
            s += "<header><strong>SwitchAuth</strong>"
            var nav = [("/dashboard", "Dashboard"), ("/accounts", "Accounts"), ("/devices", "Devices"), ("/ip-settings", "IP settings"), ("/destination-rules", "Destination rules"), ("/domains", "Domains"),
                       ("/lockouts", "Lockouts"), ("/audit", "Audit log"), ("/explain", "Explain")]
            if c.isAdmin { nav.append(("/operators", "Operators")) }
            for (path, label) in nav {
                s += "<a href=\"\(path)\"\(current == path ? " class=\"current\"" as Markup : .empty)>\(label)</a>"
            }
            s += "<span class=\"who\" id=\"who\">\(c.session.who.name) (\(c.session.who.role.rawValue))</span>"
            s += HTML.button("/logout", "Log out", csrf: c.csrf) + "</header>"
        }
        s += "<main>"
        if let notice { s += "<div class=\"notice\" id=\"notice\">\(notice)</div>" }
        if let error { s += "<div class=\"error\" id=\"error\" role=\"alert\">\(error)</div>" }
        return s + body + "</main></body></html>"
    }

    static func refused(_ c: Ctx?, _ message: String, status: Int) -> HTTPResponse {
        html(layout("Refused", c, error: message, .empty), status: status)
    }

    // MARK: routes

    /// Every page and form. GETs are for every role; changes need the operator role, operators and
    /// tokens the admin role; `/login` needs no session.
    static let routes: [Route<Ctx>] = [
        Route("GET", "/", role: .readOnly) { _ in redirect("/dashboard") },
        Route("GET", "/dashboard", role: .readOnly) { c in html(try dashboard(c)) },
        Route("GET", "/accounts", role: .readOnly) { c in html(try accounts(c)) },
        Route("POST", "/accounts", role: .operator) { c in try addAccount(c) },
        Route("GET", "/accounts/{number}", role: .readOnly) { c in try accountPage(c, c.param("number")) },
        Route("POST", "/accounts/{number}/edit", role: .operator) { c in try editAccount(c) },
        Route("POST", "/accounts/{number}/status", role: .operator) { c in try setStatus(c) },
        Route("POST", "/accounts/{number}/balance", role: .operator) { c in try adjustBalance(c) },
        Route("POST", "/accounts/{number}/ip-settings", role: .operator) { c in try addIP(c) },
        Route("POST", "/accounts/{number}/devices", role: .operator) { c in try addDevice(c) },
        Route("GET", "/ip-settings", role: .readOnly) { c in try ipSettings(c) },
        Route("GET", "/ip-settings/{id}/edit", role: .readOnly) { c in try ipEditPage(c, c.param("id")) },
        Route("POST", "/ip-settings/{id}", role: .operator) { c in try editIP(c) },
        Route("POST", "/ip-settings/{id}/delete", role: .operator) { c in try removeIP(c) },
        Route("GET", "/destination-rules", role: .readOnly) { c in html(try destinationRules(c)) },
        Route("POST", "/destination-rules", role: .operator) { c in try addDestinationRule(c) },
        Route("POST", "/destination-rules/{id}/delete", role: .operator) { c in try removeDestinationRule(c) },
        Route("POST", "/accounts/{number}/fraud-thresholds", role: .operator) { c in try setFraudThreshold(c) },
        Route("POST", "/fraud-thresholds/{id}/delete", role: .operator) { c in
            let t: FraudThresholdRow
            do {
                guard let id = Int64(c.param("id")) else { throw AdminError.notFound("unknown fraud threshold \(c.param("id"))") }
                t = try c.admin.fraudThreshold(id: id)
            } catch let e as AdminError {
                return html(layout("Not found", c, error: e.message, .empty), status: 404)
            }
            try c.admin.removeFraudThreshold(id: t.id)
            return redirect("/accounts/\(HTML.seg(t.account))?notice=threshold-removed")
        },
        Route("GET", "/devices", role: .readOnly) { c in try devices(c) },
        Route("POST", "/devices/{device}/delete", role: .operator) { c in
            let account = try deviceAccount(c, c.param("device"))
            try c.admin.removeDevice(c.param("device"))
            return redirect("/accounts/\(HTML.seg(account))?notice=device-removed")
        },
        Route("POST", "/devices/{device}/enabled", role: .operator) { c in
            let account = try deviceAccount(c, c.param("device"))
            try c.admin.setDeviceEnabled(c.param("device"), c.v("enabled") == "1")
            return redirect("/accounts/\(HTML.seg(account))?notice=device-saved")
        },
        Route("GET", "/domains", role: .readOnly) { c in html(try domains(c)) },
        Route("POST", "/domains", role: .operator) { c in
            var form = FormState(id: "add-domain", values: c.form)
            try attempt(&form, fields: ["name"]) { _ = try c.admin.addDomain(c.v("name")) }
            if form.failed { return html(try domains(c, form: form), status: 422) }
            return redirect("/domains?notice=domain-added")
        },
        Route("POST", "/domains/{domain}/aliases", role: .operator) { c in
            var form = FormState(id: "add-alias-" + c.param("domain").lowercased(), values: c.form)
            try attempt(&form, fields: ["alias"]) { try c.admin.addAlias(domain: c.param("domain"), alias: c.v("alias")) }
            if form.failed { return html(try domains(c, form: form), status: 422) }
            return redirect("/domains?notice=alias-added")
        },
        Route("POST", "/domains/{domain}/delete", role: .operator) { c in
            do { try c.store.removeDomain(c.param("domain")) } catch let e as AdminError { return html(try domains(c, error: e.message), status: 422) }
            return redirect("/domains?notice=domain-removed")
        },
        Route("POST", "/domains/{domain}/aliases/{alias}/delete", role: .operator) { c in
            do { try c.store.removeAlias(domain: c.param("domain"), alias: c.param("alias")) } catch let e as AdminError { return html(try domains(c, error: e.message), status: 422) }
            return redirect("/domains?notice=alias-removed")
        },
        Route("GET", "/lockouts", role: .readOnly) { c in html(try lockouts(c)) },
        Route("POST", "/lockouts/clear", role: .operator) { c in
            guard try AuthFailures.clear(c.db, subject: c.v("subject")) > 0 else { return html(try lockouts(c, error: "unknown lockout \(c.v("subject"))"), status: 422) }
            return redirect("/lockouts?notice=lockout-cleared")
        },
        Route("GET", "/audit", role: .readOnly) { c in html(try audit(c)) },
        Route("GET", "/explain", role: .readOnly) { c in html(try explain(c)) },
        Route("GET", "/operators", role: .admin) { c in html(try operators(c)) },
        Route("POST", "/tokens/{id}/revoke", role: .admin) { c in
            guard let id = Int64(c.param("id")) else { return html(try operators(c, error: "unknown token \(c.param("id"))"), status: 404) }
            do { try c.store.revokeToken(id) } catch let e as AdminError { return html(try operators(c, error: e.message), status: 422) }
            return redirect("/operators?notice=token-revoked")
        },
        Route("POST", "/operators/{name}/disable", role: .admin) { c in try setOperatorDisabled(c, true) },
        Route("POST", "/operators/{name}/enable", role: .admin) { c in try setOperatorDisabled(c, false) },
        Route("POST", "/logout", role: .readOnly) { c in
            if let cookie = c.request.cookie(sessionCookie) { try OperatorStore(db: c.db).endSession(cookie: cookie) }
            return redirect("/login?notice=logged-out", headers: [Pages.cookie(sessionCookie, "", maxAge: 0, app: c.app)])
        },
    ]

    // MARK: dispatch

    static func handle(_ request: ConsoleRequest, db: Connection, app: ConsoleApp) -> HTTPResponse {
        var ctx: Ctx?
        do {
            let method = request.method == "HEAD" ? "GET" : request.method
            if request.segments == ["login"] {
                switch method {
                case "POST": return try login(request, db: db, app: app)
                case "GET": return loginPage(request, app: app, error: nil)
                default: return refused(nil, "method not allowed", status: 405)
                }
            }
            guard let cookie = request.cookie(sessionCookie), let session = try OperatorStore(db: db).session(cookie: cookie) else {
                if method == "GET" { return redirect("/login") }
                return html(layout("Not logged in", nil, error: "Your session has ended; log in again.", "<p><a href=\"/login\">Log in</a></p>"), status: 403)
            }
            var c = Ctx(request: request, db: db, app: app, session: session)
            ctx = c
            if method == "POST" {
                // CSRF: the session's token must come back in the form (SameSite=Strict is the second lock).
                guard let token = request.form["csrf"], Hashing.constantTimeEquals(Array(token.utf8), Array(session.csrfToken.utf8)) else {
                    return refused(c, "This form's CSRF token is missing or wrong: nothing was changed. Reload the page and try again.", status: 403)
                }
            }
            switch Router.find(routes, method: request.method, segments: request.segments) {
            case .notFound:
                return html(layout("Not found", c, error: method == "POST" ? "no such form" : "no such page", .empty), status: 404)
            case .methodNotAllowed:
                return refused(c, "method not allowed", status: 405)
            case .route(let route, let params):
                let role = route.role ?? .readOnly
                guard session.who.role >= role else {
                    if role == .admin { return refused(c, "Operators and API tokens are managed by admins: nothing was changed.", status: 403) }
                    return refused(c, "Your role (\(session.who.role.rawValue)) may not change anything: nothing was changed.", status: 403)
                }
                c.params = params
                ctx = c
                if method == "POST" { try OperatorStore.setActor(db, "console:" + session.who.name) }
                return try route.run(c)
            }
        } catch let p as Problem {
            return refused(ctx, p.detail, status: p.status)
        } catch let e as BadCursor {
            return refused(ctx, e.message, status: 400)
        } catch let e as AdminError {
            return refused(ctx, e.message, status: 422)
        } catch let e as PostgresError {
            return html(layout("Database", nil, error: Problem.from(e).detail, .empty), status: 503)
        } catch {
            return html(layout("Error", nil, error: "unexpected error", .empty), status: 500)
        }
    }

    /// Runs a write; an `AdminError` lands next to the field it names (on a one-field form, next
    /// to that field), else on the form.
    static func attempt(_ form: inout FormState, fields: Set<String>, _ body: () throws -> Void) throws {
        do {
            try body()
        } catch let e as AdminError {
            form.add(field: fields.count == 1 ? fields.first : Admin.field(of: e.message), e.message, fields: fields)
        }
    }

    static func record(_ form: inout FormState, _ problems: [FieldProblem], fields: Set<String>) {
        for p in problems { form.add(field: p.field, p.message, fields: fields) }
    }

    // MARK: changes (each answers 303, or its page again with the form as typed: 422)

    static func addAccount(_ c: Ctx) throws -> HTTPResponse {
        var form = FormState(id: "add-account", values: c.form)
        let fields: Set = ["number", "name", "kind", "billing", "balance", "credit_limit", "max_channels", "max_cps"]
        var a = Admin.AccountInput(number: c.v("number"), name: c.v("name"))
        if let kind = AccountKind(rawValue: c.v("kind")) { a.kind = kind } else { form.add(field: "kind", "choose customer or carrier", fields: fields) }
        if let billing = Billing(rawValue: c.v("billing")) { a.billing = billing } else { form.add(field: "billing", "choose prepaid or postpaid", fields: fields) }
        a.balance = c.opt("balance") ?? "0"
        a.creditLimit = c.opt("credit_limit") ?? "0"
        if let ch = Int(c.opt("max_channels") ?? "0") { a.maxChannels = ch } else { form.add(field: "max_channels", "max channels must be a whole number", fields: fields) }
        if let cps = Int(c.opt("max_cps") ?? "0") { a.maxCPS = cps } else { form.add(field: "max_cps", "max calls per second must be a whole number", fields: fields) }
        record(&form, Admin.problems(a), fields: fields)
        if !form.failed { try attempt(&form, fields: fields) { try c.admin.addAccount(a) } }
        if form.failed { return html(try accounts(c, form: form), status: 422) }
        return redirect("/accounts/\(HTML.seg(a.number))?notice=created")
    }

    static func editAccount(_ c: Ctx) throws -> HTTPResponse {
        let n = c.param("number")
        var form = FormState(id: "edit-account", values: c.form)
        let fields: Set = ["name", "billing", "credit_limit", "max_channels", "max_cps", "expires_at"]
        var u = Admin.AccountUpdate()
        u.name = c.v("name")
        u.billing = Billing(rawValue: c.v("billing"))
        if u.billing == nil { form.add(field: "billing", "choose prepaid or postpaid", fields: fields) }
        u.creditLimit = c.opt("credit_limit")
        if let ch = Int(c.v("max_channels")) { u.maxChannels = ch } else { form.add(field: "max_channels", "max channels must be a whole number", fields: fields) }
        if let cps = Int(c.opt("max_cps") ?? "0") { u.maxCPS = cps } else { form.add(field: "max_cps", "max calls per second must be a whole number", fields: fields) }
        if let e = c.opt("expires_at") { u.expiresAt = e } else { u.clearExpiry = true }
        record(&form, Admin.problems(u), fields: fields)
        if !form.failed { try attempt(&form, fields: fields) { try c.admin.updateAccount(n, u) } }
        if form.failed { return try accountPage(c, n, form: form, status: 422) }
        return redirect("/accounts/\(HTML.seg(n))?notice=saved")
    }

    static func setStatus(_ c: Ctx) throws -> HTTPResponse {
        let n = c.param("number")
        guard let s = AccountStatus(rawValue: c.v("status")) else { return try accountPage(c, n, error: "unknown status", status: 422) }
        do { try c.admin.setStatus(n, s) } catch let e as AdminError { return try accountPage(c, n, error: e.message, status: 422) }
        return redirect("/accounts/\(HTML.seg(n))?notice=\(s.rawValue)")
    }

    static func adjustBalance(_ c: Ctx) throws -> HTTPResponse {
        let n = c.param("number")
        var form = FormState(id: "balance", values: c.form)
        let fields: Set = ["amount"]
        record(&form, Admin.amountProblems(c.v("amount")), fields: fields)
        var result: (balance: String, replayed: Bool) = ("", false)
        if !form.failed { try attempt(&form, fields: fields) { result = try c.admin.adjustBalance(n, amount: c.v("amount"), idempotencyKey: c.v("idempotency_key")) } }
        if form.failed { return try accountPage(c, n, form: form, status: 422) }
        let cur = c.app.settings.currency
        c.app.setFlash(c.csrf, notice: result.replayed
            ? "This adjustment was already made (same form sent twice): balance \(Money.format(result.balance, currency: cur)), nothing moved."
            : "Balance adjusted by \(Money.format(c.v("amount"), currency: cur)): now \(Money.format(result.balance, currency: cur)).")
        return redirect("/accounts/\(HTML.seg(n))")
    }

    static func addIP(_ c: Ctx) throws -> HTTPResponse {
        let n = c.param("number")
        var form = FormState(id: "add-ip", values: c.form)
        let fields: Set = ["name", "network", "prefix", "max_cps"]
        let cps = Int(c.opt("max_cps") ?? "0")
        if cps == nil { form.add(field: "max_cps", "max calls per second must be a whole number", fields: fields) }
        record(&form, Admin.ipProblems(name: c.v("name"), network: c.v("network"), prefix: c.v("prefix"), maxCPS: cps), fields: fields)
        if !form.failed {
            try attempt(&form, fields: fields) {
                _ = try c.admin.addIP(account: n, name: c.v("name"), network: c.v("network"), prefix: c.v("prefix"), strip: c.form["strip_prefix"] == "1", maxCPS: cps ?? 0)
            }
        }
        if form.failed { return try accountPage(c, n, form: form, status: 422) }
        return redirect("/accounts/\(HTML.seg(n))?notice=ip-added")
    }

    static func addDevice(_ c: Ctx) throws -> HTTPResponse {
        let n = c.param("number")
        var form = FormState(id: "add-device", values: c.form)
        form.values["password"] = nil   // a typed password is never sent back
        let fields: Set = ["username", "domain", "password", "caller_id_name", "caller_id_number"]
        let generate = c.form["generate"] == "1"
        let password = generate ? RandomSecrets.password() : (c.form["password"] ?? "")
        var d = Admin.DeviceInput(account: n, domain: c.v("domain"), username: c.v("username"), password: password)
        d.callerIDName = c.v("caller_id_name")
        d.callerIDNumber = c.v("caller_id_number")
        record(&form, Admin.problems(d), fields: fields)
        if !form.failed { try attempt(&form, fields: fields) { _ = try c.admin.addDevice(d) } }
        if form.failed { return try accountPage(c, n, form: form, status: 422) }
        // Shown once, on the page after the redirect; never stored, never shown again.
        c.app.setFlash(c.csrf, notice: "Device \(d.username)@\(d.domain) added.", secret: generate ? password : nil, secretOf: "\(d.username)@\(d.domain)")
        return redirect("/accounts/\(HTML.seg(n))")
    }

    static func editIP(_ c: Ctx) throws -> HTTPResponse {
        let id = c.param("id")
        guard let i = Int64(id), let s = try c.queries.ipSetting(i) else { return html(layout("Not found", c, error: "unknown IP setting \(id)", .empty), status: 404) }
        var form = FormState(id: "edit-ip", values: c.form)
        let fields: Set = ["name", "network", "prefix", "max_cps"]
        var u = Admin.IPUpdate()
        u.name = c.v("name")
        u.network = c.v("network")
        u.prefix = c.v("prefix")
        u.strip = c.form["strip_prefix"] == "1"
        u.enabled = c.form["enabled"] == "1"
        u.maxCPS = Int(c.opt("max_cps") ?? "0")
        if u.maxCPS == nil { form.add(field: "max_cps", "max calls per second must be a whole number", fields: fields) }
        record(&form, Admin.ipProblems(name: u.name, network: u.network, prefix: u.prefix, maxCPS: u.maxCPS), fields: fields)
        if !form.failed { try attempt(&form, fields: fields) { try c.admin.updateIP(id: i, u) } }
        if form.failed { return try ipEditPage(c, id, form: form, status: 422) }
        return redirect("/accounts/\(HTML.seg(s.account))?notice=ip-saved")
    }

    static func removeIP(_ c: Ctx) throws -> HTTPResponse {
        let id = c.param("id")
        guard let i = Int64(id), let s = try c.queries.ipSetting(i) else { return html(layout("Not found", c, error: "unknown IP setting \(id)", .empty), status: 404) }
        try c.admin.removeIP(id: i)
        return redirect("/accounts/\(HTML.seg(s.account))?notice=ip-removed")
    }

    static func setOperatorDisabled(_ c: Ctx, _ disable: Bool) throws -> HTTPResponse {
        do { try c.store.setOperatorDisabled(c.param("name"), disable, by: c.session.who.name) } catch let e as AdminError { return html(try operators(c, error: e.message), status: 422) }
        return redirect("/operators?notice=operator-\(disable ? "disabled" : "enabled")")
    }

    static func deviceAccount(_ c: Ctx, _ address: String) throws -> String {
        let id = try c.admin.deviceID(address)
        guard let d = try c.queries.device(id: id) else { throw AdminError.notFound("unknown device \(address)") }
        return d.account
    }

    // MARK: login

    static func loginPage(_ r: ConsoleRequest, app: ConsoleApp, error: String?, status: Int = 200, headers: [(String, String)] = [], name: String = "") -> HTTPResponse {
        // Login CSRF: a random value in a cookie and in the form; the POST must bring both.
        // Kept while it lasts: a second GET /login (another tab, a redirected favicon fetch) must
        // not invalidate the form already shown.
        let existing = r.cookie(loginCookie).flatMap { $0.utf8.count == 43 && $0.utf8.allSatisfy { b in b != 59 && b != 32 } ? $0 : nil }
        let token = existing ?? RandomSecrets.token()
        let notice = r.query["notice"].flatMap { notices[$0] }
        let body: Markup = """
            <div class="login"><h1>SwitchAuth console</h1>
            <section><form method="post" action="/login" id="login-form">
            <input type="hidden" name="login_csrf" value="\(token)">
            \(HTML.input("name", "Operator", value: name, required: true, extra: " autocomplete=\"username\" autofocus"))
            \(HTML.input("password", "Password", type: "password", required: true, extra: " autocomplete=\"current-password\""))
            <button type="submit">Log in</button></form></section></div>
            """
        return html(layout("Log in", nil, notice: notice, error: error, body), status: status,
                    headers: headers + [cookie(loginCookie, token, maxAge: 3600, app: app)])
    }

    static func login(_ r: ConsoleRequest, db: Connection, app: ConsoleApp) throws -> HTTPResponse {
        let f = r.form
        guard let token = f["login_csrf"], let cookieToken = r.cookie(loginCookie), !token.isEmpty,
              Hashing.constantTimeEquals(Array(token.utf8), Array(cookieToken.utf8)) else {
            return loginPage(r, app: app, error: "This form's CSRF token is missing or wrong; try again.", status: 403)
        }
        let name = f["name"] ?? "", password = f["password"] ?? ""
        let source = app.source(of: r)
        if let wait = app.throttle.retryAfter(name: name, client: source) {
            app.logger.info("console login throttled", metadata: ["operator": "\(name.prefix(64))", "source": "\(source)", "retry_after_s": "\(wait)"])
            return loginPage(r, app: app, error: "Too many failed logins for \(name) from your address: wait \(wait) s.", status: 429,
                             headers: [("Retry-After", String(wait))], name: name)
        }
        let store = OperatorStore(db: db)
        guard let who = try store.authenticate(name: name, password: password) else {
            app.throttle.failed(name: name, client: source)
            // Logged and audited: who was tried and from where (never the password).
            app.logger.warning("console login refused", metadata: ["operator": "\(name.prefix(64))", "source": "\(source)"])
            try ConsoleStore(db: db).recordFailedLogin(name: name, source: source, reason: "wrong name or password, or disabled")
            return loginPage(r, app: app, error: "Wrong operator name or password.", status: 403, name: name)
        }
        app.throttle.succeeded(name: name, client: source)
        let (cookie, _) = try store.createSession(for: who, ttlSeconds: app.settings.sessionSeconds)
        return redirect("/dashboard", headers: [Pages.cookie(sessionCookie, cookie, maxAge: app.settings.sessionSeconds, app: app),
                                               Pages.cookie(loginCookie, "", maxAge: 0, app: app)])
    }

    // MARK: pages

    /// A limit (channels, calls per second) as read: 0 is unlimited.
    static func limitText(_ n: Int) -> String { n == 0 ? "unlimited" : String(n) }

    static func yesNo(_ b: Bool) -> String { b ? "yes" : "no" }

    static func badge(_ s: String) -> Markup { "<span class=\"badge \(s)\">\(s)</span>" }

    static func accountLink(_ number: String) -> Markup { HTML.link("/accounts/" + HTML.seg(number), number) }

    /// Previous and next page, the total and the page size; `cursorName` for a second list on a page.
    static func pager<Row>(_ base: String, _ params: [(String, String?)], _ page: ListPage<Row>, cursorName: String = "cursor", noun: String = "in all") -> Markup {
        var s: Markup = "<div class=\"pager\">"
        let size = page.limit == ConsoleQueries.defaultLimit ? nil : String(page.limit)
        if let prev = page.prevCursor { s += HTML.link(base + HTML.query(params + [("limit", size), (cursorName, prev)]), "← Previous page", id: "prev-page") }
        if let next = page.nextCursor { s += HTML.link(base + HTML.query(params + [("limit", size), (cursorName, next)]), "Next page →", id: "next-page") }
        s += "<span class=\"muted\" id=\"page-total\">\(page.items.count) shown · \(Money.group(page.total))\(page.totalExact ? "" : "+") \(noun)</span>"
        if cursorName == "cursor" {
            let sizes = [25, 50, 100, 200].map { n -> Markup in
                n == page.limit ? "<strong>\(n)</strong>" : HTML.link(base + HTML.query(params + [("limit", String(n))]), String(n))
            }
            s += "<span class=\"muted page-size\" id=\"page-size\">per page: \(Markup(" ").joined(sizes))</span>"
        }
        return s + "</div>"
    }

    static func dashboard(_ c: Ctx) throws -> Markup {
        let (d, age) = try c.app.dashboard(c.db, fresh: c.q("refresh") != nil)
        func card(_ id: String, _ label: String, _ value: Int, _ link: String? = nil, bad: Bool = false) -> Markup {
            let v: Markup = "<span class=\"count\(bad && value > 0 ? " bad" : "")\" id=\"\(id)\">\(value)</span>"
            return "<div class=\"card\">\(link.map { "<a href=\"\($0)\">\(v)</a>" as Markup } ?? v)<span class=\"label\">\(label)</span></div>"
        }
        var body: Markup = "<h1>Dashboard</h1><p class=\"muted\" id=\"dash-age\">Counts as of \(age == 0 ? "now" : "\(age) s ago") (taken at most every \(Int(ConsoleApp.dashboardSeconds)) s). \(HTML.link("/dashboard?refresh=1", "Refresh now", id: "dash-refresh"))</p>"
        body += "<h2>Accounts</h2><section class=\"cards\" id=\"dash-accounts\">"
            + card("dash-accounts-active", "active", d.accounts["active"] ?? 0, "/accounts?status=active")
            + card("dash-accounts-suspended", "suspended", d.accounts["suspended"] ?? 0, "/accounts?status=suspended", bad: true)
            + card("dash-accounts-closed", "closed", d.accounts["closed"] ?? 0, "/accounts?status=closed")
            + card("dash-devices", "SIP devices", d.devices, "/devices") + card("dash-ip-settings", "IP settings", d.ipSettings, "/ip-settings")
            + "</section>"
        body += "<h2>Lockouts in force</h2><section class=\"cards\" id=\"dash-lockouts\">"
            + Markup.empty.joined(LockoutScope.allCases.map { s in card("dash-lockouts-\(s.label)", s.label, d.lockouts[s.label] ?? 0, "/lockouts", bad: true) })
            + "</section>"
        body += "<h2>SIP authentication</h2><section class=\"cards\" id=\"dash-auth\">"
            + card("dash-registrations", "devices authenticated in 24 h", d.registrationsSeen)
            + card("dash-registration-sources", "sources they came from", d.registrationSources)
            + card("dash-failed-auths", "failed digests in the current lockout windows", d.failedAuths, "/lockouts", bad: true)
            + "</section>"
        body += "<h2>Console</h2><section class=\"cards\">"
            + card("dash-failed-logins", "failed console logins in 24 h", d.failedLogins, "/audit?object_type=console_operators", bad: true)
            + "</section>"
        return layout("Dashboard", c, current: "/dashboard", body)
    }

    static func accounts(_ c: Ctx, form: FormState? = nil) throws -> Markup {
        let q = c.q("q"), status = c.q("status").flatMap { AccountStatus(rawValue: $0)?.rawValue }
        let page = try c.queries.accounts(q: q, status: status, kind: nil, cursor: c.q("cursor"), limit: c.limit)
        var body: Markup = "<h1>Accounts</h1><section><form method=\"get\" action=\"/accounts\" class=\"stack\" id=\"search\">"
            + HTML.input("q", "Search number or name", value: q ?? "", type: "search")
            + HTML.select("status", "Status", ["", "active", "suspended", "closed"], selected: status ?? "")
            + "<button type=\"submit\">Search</button></form>"
            + "<p class=\"muted\">Looking for a device or an address? <a href=\"/devices\">Search devices</a> · <a href=\"/ip-settings\">search IP settings</a></p></section><section>"
        let rows = page.items.map { a -> [Markup] in
            ["\(accountLink(a.number))", "\(a.name)", "\(a.kind)", badge(a.status),
             "<span class=\"money\">\(c.money(a.balance))</span>", "\(a.ipSettings)", "\(a.devices)"]
        }
        body += HTML.table(["Number", "Name", "Kind", "Status", "Balance", "IP settings", "Devices"], rows, id: "accounts")
        body += pager("/accounts", [("q", q), ("status", status)], page) + "</section>"
        if c.canWrite {
            let f = form?.id == "add-account" ? form : nil
            func val(_ k: String, _ d: String = "") -> String { f?.values[k] ?? d }
            let cur = c.app.settings.currency
            body += "<h2>Add an account</h2><section><form method=\"post\" action=\"/accounts\" class=\"stack\" id=\"add-account\" novalidate>"
                + HTML.csrfField(c.csrf) + HTML.formSummary(f)
                + HTML.input("number", "Number (accountcode)", value: val("number"), required: true, error: f?.errors["number"])
                + HTML.input("name", "Name", value: val("name"), required: true, error: f?.errors["name"])
                + HTML.select("kind", "Kind", ["customer", "carrier"], selected: val("kind", "customer"), error: f?.errors["kind"])
                + HTML.select("billing", "Billing", ["prepaid", "postpaid"], selected: val("billing", "prepaid"), error: f?.errors["billing"])
                + HTML.input("balance", "Balance (\(cur))", value: val("balance", "0"), extra: " inputmode=\"decimal\"", error: f?.errors["balance"])
                + HTML.input("credit_limit", "Credit limit (\(cur))", value: val("credit_limit", "0"), extra: " inputmode=\"decimal\"", error: f?.errors["credit_limit"])
                + HTML.input("max_channels", "Max channels (0 = unlimited)", value: val("max_channels", "0"), type: "number", error: f?.errors["max_channels"])
                + HTML.input("max_cps", "Max calls per second (0 = unlimited)", value: val("max_cps", "0"), type: "number", error: f?.errors["max_cps"])
                + "<button type=\"submit\">Add account</button></form></section>"
        }
        return layout("Accounts", c, current: "/accounts", notice: c.notice(), body)
    }

    /// A decimal as typed in a form: without the trailing zeros numeric(20,6) adds.
    static func plainDecimal(_ s: String) -> String {
        guard s.contains(".") else { return s }
        var t = s
        while t.hasSuffix("0") { t.removeLast() }
        if t.hasSuffix(".") { t.removeLast() }
        return t
    }

    static func accountPage(_ c: Ctx, _ number: String, form: FormState? = nil, error: String? = nil, status: Int = 200) throws -> HTTPResponse {
        guard let a = try c.queries.account(number) else { return html(layout("Not found", c, error: "unknown account \(number)", .empty), status: 404) }
        let flash = c.request.method == "GET" ? c.app.takeFlash(c.csrf) : nil
        let base = "/accounts/" + HTML.seg(number)
        let cur = c.app.settings.currency
        let ips = try c.queries.ipSettings(account: number, contains: nil, cursor: nil, limit: ConsoleQueries.maxLimit)
        let devices = try c.queries.devices(account: number, domain: nil, q: nil, cursor: c.q("devices_cursor"), limit: ConsoleQueries.defaultLimit)
        let history = try c.queries.audit(account: number, objectType: nil, actor: nil, cursor: nil, limit: 10)
        var body: Markup = "<h1>Account \(number) · \(a.name) \(badge(a.status))</h1>"
        if let secret = flash?.secret {
            body += "<p>Password of <strong>\(flash?.secretOf ?? "")</strong>, shown once: <span class=\"secret\" id=\"generated-password\">\(secret)</span></p>"
        }
        body += "<section><dl id=\"account-facts\">"
        let facts: [(key: String, label: String, value: String)] = [
            ("kind", "Kind", a.kind), ("billing", "Billing", a.billing), ("balance", "Balance", c.money(a.balance)),
            ("credit_limit", "Credit limit", c.money(a.creditLimit)), ("max_channels", "Max channels", limitText(a.maxChannels)),
            ("max_cps", "Max calls per second", limitText(a.maxCPS)), ("calls_up", "Calls up now", String(a.callsUp)),
            ("expires_at", "Expires", a.expiresAt.flatMap { $0.isEmpty ? nil : $0 } ?? "never"), ("created_at", "Created", a.createdAt),
            ("updated_at", "Updated", a.updatedAt),
        ]
        for (k, label, value) in facts {
            body += "<dt>\(label)</dt><dd id=\"account-\(k)\">\(value)</dd>"
        }
        body += "</dl>"
        if c.canWrite {
            body += "<p>"
            let st = a.status
            if st != "suspended" { body += HTML.button(base + "/status", "Suspend", csrf: c.csrf, fields: [("status", "suspended")], cls: "plain") + " " }
            if st != "active" { body += HTML.button(base + "/status", "Resume", csrf: c.csrf, fields: [("status", "active")], cls: "plain") + " " }
            if st != "closed" { body += HTML.button(base + "/status", "Close", csrf: c.csrf, fields: [("status", "closed")], confirm: "Close account \(number)?", cls: "danger") }
            body += "</p>"
        }
        body += "</section><h2>IP settings</h2><section>"
        let ipRows = ips.items.map { s -> [Markup] in
            let id = String(s.id)
            var actions = Markup.empty
            if c.canWrite {
                actions = HTML.link("/ip-settings/\(id)/edit", "Edit") + " "
                    + HTML.button("/ip-settings/\(id)/delete", "Remove", csrf: c.csrf, confirm: "Remove IP setting \(s.network)?", cls: "plain")
            }
            return ["\(s.name)", "\(s.network)", "\(s.prefix.isEmpty ? "(any)" : s.prefix)",
                    "\(yesNo(s.stripPrefix))", "\(yesNo(s.enabled))", "\(limitText(s.maxCPS))", actions]
        }
        body += HTML.table(["Name", "IP or network", "Prefix", "Strip", "Enabled", "Max calls/s", ""], ipRows, id: "ip-settings")
        if c.canWrite {
            let f = form?.id == "add-ip" ? form : nil
            body += "<h2>Add IP setting</h2><form method=\"post\" action=\"\(base)/ip-settings\" class=\"stack\" id=\"add-ip\" novalidate>"
                + HTML.csrfField(c.csrf) + HTML.formSummary(f)
                + HTML.input("name", "Name (customer or carrier)", value: f?.values["name"] ?? a.name, required: true, error: f?.errors["name"])
                + HTML.input("network", "IP or CIDR", value: f?.values["network"] ?? "", required: true, placeholder: "203.0.113.10 or 203.0.113.0/24", error: f?.errors["network"])
                + HTML.input("prefix", "Destination prefix (empty = any)", value: f?.values["prefix"] ?? "", extra: " inputmode=\"numeric\"", error: f?.errors["prefix"])
                + HTML.checkbox("strip_prefix", "Strip the prefix", checked: f?.values["strip_prefix"] == "1")
                + HTML.input("max_cps", "Max calls per second (0 = unlimited)", value: f?.values["max_cps"] ?? "0", type: "number", error: f?.errors["max_cps"])
                + "<button type=\"submit\">Add IP setting</button></form>"
        }
        body += "</section><h2>SIP devices</h2><section>"
        let devRows = devices.items.map { d -> [Markup] in
            let addr = d.device
            var actions = Markup.empty
            if c.canWrite {
                let enabled = d.enabled
                actions = HTML.button("/devices/\(HTML.seg(addr))/enabled", enabled ? "Disable" : "Enable", csrf: c.csrf, fields: [("enabled", enabled ? "0" : "1")], cls: "plain")
                    + " " + HTML.button("/devices/\(HTML.seg(addr))/delete", "Remove", csrf: c.csrf, confirm: "Remove device \(addr)?", cls: "plain")
            }
            return ["\(addr)", "\(yesNo(d.enabled))", "\(d.callerIDName)", "\(d.callerIDNumber)", actions]
        }
        body += HTML.table(["Device", "Enabled", "Caller ID name", "Caller ID number", ""], devRows, id: "devices")
        body += pager(base, [], devices, cursorName: "devices_cursor", noun: "devices")
        if c.canWrite {
            let f = form?.id == "add-device" ? form : nil
            let domains = try c.queries.domains(cursor: nil, limit: ConsoleQueries.maxLimit).items.map(\.name)
            let generate = f.map { $0.values["generate"] == "1" } ?? true
            body += "<h2>Add device</h2><form method=\"post\" action=\"\(base)/devices\" class=\"stack\" id=\"add-device\" novalidate>"
                + HTML.csrfField(c.csrf) + HTML.formSummary(f)
                + HTML.input("username", "Username", value: f?.values["username"] ?? "", required: true, extra: " autocomplete=\"off\"", error: f?.errors["username"])
                + HTML.select("domain", "Domain", domains, selected: f?.values["domain"] ?? domains.first ?? "", error: f?.errors["domain"])
                + HTML.checkbox("generate", "Generate a password (shown once)", checked: generate, id: "generate")
                + HTML.input("password", "Password (8+ characters)", type: "password", extra: " id=\"device-password\" autocomplete=\"new-password\"", error: f?.errors["password"])
                + HTML.input("caller_id_name", "Caller ID name", value: f?.values["caller_id_name"] ?? "", error: f?.errors["caller_id_name"])
                + HTML.input("caller_id_number", "Caller ID number", value: f?.values["caller_id_number"] ?? "", extra: " inputmode=\"tel\"", error: f?.errors["caller_id_number"])
                + "<button type=\"submit\">Add device</button></form>"
        }
        body += "</section>" + (try callControls(c, number, form: form))
        if c.canWrite {
            body += "<h2>Balance and settings</h2><section>"
            let fb = form?.id == "balance" ? form : nil
            // A fresh key per rendered form: the same form sent twice moves the balance once.
            body += "<form method=\"post\" action=\"\(base)/balance\" class=\"stack\" id=\"balance\" novalidate>" + HTML.csrfField(c.csrf) + HTML.formSummary(fb)
                + "<input type=\"hidden\" name=\"idempotency_key\" value=\"console-\(RandomSecrets.token())\">"
                + HTML.input("amount", "Adjust balance by (\(cur); negative to debit)", value: fb?.values["amount"] ?? "", required: true, extra: " inputmode=\"decimal\"", error: fb?.errors["amount"])
                + "<button type=\"submit\">Adjust balance</button></form><br>"
            let fe = form?.id == "edit-account" ? form : nil
            body += "<form method=\"post\" action=\"\(base)/edit\" class=\"stack\" id=\"edit-account\" novalidate>" + HTML.csrfField(c.csrf) + HTML.formSummary(fe)
                + HTML.input("name", "Name", value: fe?.values["name"] ?? a.name, required: true, error: fe?.errors["name"])
                + HTML.select("billing", "Billing", ["prepaid", "postpaid"], selected: fe?.values["billing"] ?? a.billing, error: fe?.errors["billing"])
                + HTML.input("credit_limit", "Credit limit (\(cur))", value: fe?.values["credit_limit"] ?? plainDecimal(a.creditLimit), error: fe?.errors["credit_limit"])
                + HTML.input("max_channels", "Max channels (0 = unlimited)", value: fe?.values["max_channels"] ?? String(a.maxChannels), type: "number", error: fe?.errors["max_channels"])
                + HTML.input("max_cps", "Max calls per second (0 = unlimited)", value: fe?.values["max_cps"] ?? String(a.maxCPS), type: "number", error: fe?.errors["max_cps"])
                + HTML.input("expires_at", "Expires (empty = never)", value: fe?.values["expires_at"] ?? a.expiresAt ?? "", placeholder: "2027-01-31T00:00:00Z", error: fe?.errors["expires_at"])
                + "<button type=\"submit\">Save</button></form></section>"
        }
        body += "<h2>Recent changes</h2><section>" + (try auditTable(c, history.items))
            + "<p>\(HTML.link("/audit" + HTML.query([("account", number)]), "Full history"))</p></section>"
        return html(layout("Account \(number)", c, current: "/accounts", notice: c.notice(flash), error: error, body), status: status)
    }

    static func ipEditPage(_ c: Ctx, _ id: String, form: FormState? = nil, status: Int = 200) throws -> HTTPResponse {
        guard let i = Int64(id), let s = try c.queries.ipSetting(i) else { return html(layout("Not found", c, error: "unknown IP setting \(id)", .empty), status: 404) }
        let f = form?.values ?? [:]
        let account = s.account
        let body: Markup = "<h1>IP setting \(id) of account \(accountLink(account))</h1><section>"
            + "<form method=\"post\" action=\"/ip-settings/\(id)\" class=\"stack\" id=\"edit-ip\" novalidate>" + HTML.csrfField(c.csrf) + HTML.formSummary(form)
            + HTML.input("name", "Name", value: f["name"] ?? s.name, required: true, error: form?.errors["name"])
            + HTML.input("network", "IP or CIDR", value: f["network"] ?? s.network, required: true, error: form?.errors["network"])
            + HTML.input("prefix", "Destination prefix (empty = any)", value: f["prefix"] ?? s.prefix, error: form?.errors["prefix"])
            + HTML.checkbox("strip_prefix", "Strip the prefix", checked: form == nil ? s.stripPrefix : f["strip_prefix"] == "1")
            + HTML.checkbox("enabled", "Enabled", checked: form == nil ? s.enabled : f["enabled"] == "1")
            + HTML.input("max_cps", "Max calls per second (0 = unlimited)", value: f["max_cps"] ?? String(s.maxCPS), type: "number", error: form?.errors["max_cps"])
            + "<button type=\"submit\">Save</button></form></section>"
        return html(layout("IP setting \(id)", c, current: "/accounts", body), status: status)
    }

    /// Devices by username (substring), domain or account: the API's `GET /devices` as a page.
    static func devices(_ c: Ctx) throws -> HTTPResponse {
        let q = c.q("q"), domain = c.q("domain"), account = c.q("account")
        let page = try c.queries.devices(account: account, domain: domain, q: q, cursor: c.q("cursor"), limit: c.limit)
        let domains = try c.queries.domains(cursor: nil, limit: ConsoleQueries.maxLimit).items.map(\.name)
        var body: Markup = "<h1>SIP devices</h1><section><form method=\"get\" action=\"/devices\" class=\"stack\" id=\"device-search\">"
            + HTML.input("q", "Username contains", value: q ?? "", type: "search")
            + HTML.select("domain", "Domain", [""] + domains, selected: domain ?? "")
            + HTML.input("account", "Account", value: account ?? "")
            + "<button type=\"submit\">Search</button></form></section><section>"
        let rows = page.items.map { d -> [Markup] in
            ["\(d.device)", accountLink(d.account), "\(yesNo(d.enabled))",
             "\(d.callerIDName)", "\(d.callerIDNumber)", "\(d.updatedAt)"]
        }
        body += HTML.table(["Device", "Account", "Enabled", "Caller ID name", "Caller ID number", "Updated (UTC)"], rows, id: "device-results")
            + pager("/devices", [("q", q), ("domain", domain), ("account", account)], page) + "</section>"
        return html(layout("Devices", c, current: "/devices", body))
    }

    /// IP settings whose network contains an address, or of an account.
    static func ipSettings(_ c: Ctx) throws -> HTTPResponse {
        let contains = c.q("contains")?.trimmingCharacters(in: .whitespaces), account = c.q("account")
        var containsError: String?
        if let contains, IPAddress(contains) == nil { containsError = "not an IP address: \(contains) (e.g. 203.0.113.10 or 2001:db8::1)" }
        var body: Markup = "<h1>IP settings</h1><section><form method=\"get\" action=\"/ip-settings\" class=\"stack\" id=\"ip-search\" novalidate>"
            + HTML.input("contains", "Network contains this IP", value: contains ?? "", placeholder: "203.0.113.10", error: containsError)
            + HTML.input("account", "Account", value: account ?? "")
            + "<button type=\"submit\">Search</button></form></section><section>"
        if containsError == nil {
            let page = try c.queries.ipSettings(account: account, contains: contains, cursor: c.q("cursor"), limit: c.limit)
            let rows = page.items.map { s -> [Markup] in
                [accountLink(s.account), "\(s.name)", "\(s.network)",
                 "\(s.prefix.isEmpty ? "(any)" : s.prefix)", "\(yesNo(s.stripPrefix))", "\(yesNo(s.enabled))", "\(limitText(s.maxCPS))"]
            }
            body += HTML.table(["Account", "Name", "IP or network", "Prefix", "Strip", "Enabled", "Max calls/s"], rows, id: "ip-results")
                + pager("/ip-settings", [("contains", contains), ("account", account)], page)
        }
        body += "</section>"
        return html(layout("IP settings", c, current: "/ip-settings", body), status: containsError == nil ? 200 : 400)
    }

    static func domains(_ c: Ctx, form: FormState? = nil, error: String? = nil) throws -> Markup {
        let page = try c.queries.domains(cursor: c.q("cursor"), limit: c.limit)
        let rows = page.items.map { d -> [Markup] in
            let name = d.name
            let aliases = d.aliases
            var aliasCell = Markup.empty
            for al in aliases {
                aliasCell += "<span class=\"alias\">\(al)"
                if c.canWrite {
                    aliasCell += " " + HTML.button("/domains/\(HTML.seg(name))/aliases/\(HTML.seg(al))/delete", "Remove", csrf: c.csrf,
                                                   confirm: "Remove alias \(al) of \(name)?", cls: "plain small")
                }
                aliasCell += "</span><br>"
            }
            if c.canWrite {
                let id = "add-alias-" + name.lowercased()
                let f = form?.id == id ? form : nil
                aliasCell += "<form method=\"post\" action=\"/domains/\(HTML.seg(name))/aliases\" class=\"stack\" id=\"\(id)\" novalidate>" + HTML.csrfField(c.csrf) + HTML.formSummary(f)
                    + HTML.input("alias", "New alias", value: f?.values["alias"] ?? "", required: true, placeholder: "198.51.100.1", error: f?.errors["alias"])
                    + "<button type=\"submit\" class=\"plain\">Add alias</button></form>"
            }
            let remove = c.canWrite ? HTML.button("/domains/\(HTML.seg(name))/delete", "Remove domain", csrf: c.csrf, confirm: "Remove domain \(name) and its aliases?", cls: "plain") : .empty
            return ["\(name)", "\(yesNo(d.enabled))", aliasCell, remove]
        }
        var body: Markup = "<h1>Domains and aliases</h1><section>" + HTML.table(["Domain (digest realm)", "Enabled", "Aliases", ""], rows, id: "domains")
            + pager("/domains", [], page) + "</section>"
        if c.canWrite {
            let f = form?.id == "add-domain" ? form : nil
            body += "<h2>Add a domain</h2><section><form method=\"post\" action=\"/domains\" class=\"stack\" id=\"add-domain\" novalidate>" + HTML.csrfField(c.csrf) + HTML.formSummary(f)
                + HTML.input("name", "Domain name", value: f?.values["name"] ?? "", required: true, placeholder: "voip.example.com", error: f?.errors["name"])
                + "<button type=\"submit\">Add domain</button></form></section>"
        }
        return layout("Domains", c, current: "/domains", notice: c.notice(), error: error, body)
    }

    static func lockouts(_ c: Ctx, error: String? = nil) throws -> Markup {
        let page = try c.queries.lockouts(scope: nil, cursor: c.q("cursor"), limit: c.limit)
        let rows = page.items.map { l -> [Markup] in
            ["\(l.scope)", "\(l.subject)", "\(l.failures)", "\(l.lockedUntil)",
             c.canWrite ? HTML.button("/lockouts/clear", "Clear", csrf: c.csrf, fields: [("subject", l.subject)], cls: "plain") : .empty]
        }
        let body: Markup = "<h1>Lockouts</h1><p class=\"muted\">Scopes as <code>switchauth lockouts</code> names them: <strong>source</strong> (an IP address or IPv6 /64), "
            + "<strong>user</strong> (user@domain from every source), <strong>source_user</strong> (one source against one user). They get 403 until the time shown.</p><section>"
            + HTML.table(["Scope", "Subject", "Failures", "Locked until (UTC)", ""], rows, id: "lockouts") + pager("/lockouts", [], page) + "</section>"
        return layout("Lockouts", c, current: "/lockouts", notice: c.notice(), error: error, body)
    }

    static let objectNames: [(String, String)] = [
        ("accounts", "account"), ("ip_settings", "IP setting"), ("sip_devices", "device"), ("sip_domains", "domain"),
        ("sip_domain_aliases", "domain alias"), ("auth_failures", "lockout"), ("console_operators", "operator"), ("console_tokens", "API token"),
        ("destination_rules", "destination rule"), ("fraud_thresholds", "fraud threshold"),
    ]
    static let actionNames = ["create": "created", "update": "changed", "delete": "removed", "login_failed": "failed login"]

    /// The audit log as operators read it: what kind of object, its name, and each change with
    /// names in place of internal ids (domain, operator, account) and money in the platform's currency.
    static func auditTable(_ c: Ctx, _ items: [AuditListRow]) throws -> Markup {
        var domainNames: [String: String]?, operatorNames: [String: String]?
        let money: Set<String> = ["balance", "credit_limit", "amount", "balance_after"]
        func object(_ raw: RawJSON?) -> [String: JSON]? { raw.flatMap { JSON.object(Array($0.text.utf8)) } }
        func fmt(_ v: JSON?) -> String { v?.plain ?? "∅" }
        /// A row's fields with names for ids; the ids themselves are left out.
        func readable(_ row: [String: JSON], table: String) throws -> [(String, String)] {
            var out: [(String, String)] = []
            for k in row.keys.sorted() {
                let v = fmt(row[k])
                switch k {
                case "id", "created_at", "updated_at", "last_used_at", "account_id", "window_start":
                    continue
                case "domain_id":
                    if domainNames == nil { domainNames = try c.store.names(of: "sip_domains") }
                    out.append(("domain", domainNames?[v] ?? "(removed)"))
                case "operator_id":
                    if operatorNames == nil { operatorNames = try c.store.names(of: "console_operators") }
                    out.append(("operator", operatorNames?[v] ?? "(removed)"))
                case "scope" where table == "auth_failures":
                    out.append(("scope", LockoutScope(rawValue: v)?.label ?? v))
                case _ where money.contains(k):
                    out.append((k.replacingOccurrences(of: "_", with: " "), Money.format(v, currency: c.app.settings.currency)))
                default:
                    out.append((k.replacingOccurrences(of: "_", with: " "), v))
                }
            }
            return out
        }
        let rows = try items.map { e -> [Markup] in
            let table = e.objectType
            var lines: [Markup] = []
            let before = try object(e.before).map { try readable($0, table: table) }
            let after = try object(e.after).map { try readable($0, table: table) }
            switch (before, after) {
            case (nil, let a?), (let a?, nil):
                lines = a.map { "\($0.0): \($0.1)" }
            case (let b?, let a?):
                let old = Dictionary(b, uniquingKeysWith: { x, _ in x })
                lines = a.filter { old[$0.0] != $0.1 }.map { "\($0.0): \(old[$0.0] ?? "∅") → \($0.1)" }
            default: break
            }
            let account = e.account ?? ""
            let kind = objectNames.first { $0.0 == table }?.1 ?? table
            let action = actionNames[e.action] ?? e.action
            return ["\(e.at)", "\(e.actor)", "\(action)", "\(kind)", "\(e.object)",
                    account.isEmpty ? .empty : accountLink(account), "<span class=\"wrap\">\(Markup("<br>").joined(lines))</span>"]
        }
        return HTML.table(["When (UTC)", "Who", "Action", "What", "Which", "Account", "Change"], rows, id: "audit")
    }

    static func audit(_ c: Ctx) throws -> Markup {
        let account = c.q("account"), actor = c.q("actor"), type = c.q("object_type")
        let page = try c.queries.audit(account: account, objectType: type, actor: actor, cursor: c.q("cursor"), limit: c.limit)
        let body: Markup = "<h1>Audit log</h1><section><form method=\"get\" action=\"/audit\" class=\"stack\">"
            + HTML.input("account", "Account", value: account ?? "") + HTML.input("actor", "Who", value: actor ?? "", placeholder: "console:alice")
            + HTML.select("object_type", "Object", [("", "any")] + objectNames, selected: type ?? "")
            + "<button type=\"submit\">Filter</button></form></section><section>" + (try auditTable(c, page.items))
            + pager("/audit", [("account", account), ("actor", actor), ("object_type", type)], page) + "</section>"
        return layout("Audit log", c, current: "/audit", body)
    }

    /// Operators and API tokens (admins): disable or enable an operator, revoke a token.
    static func operators(_ c: Ctx, error: String? = nil) throws -> Markup {
        let rows = try c.store.operators().map { o -> [Markup] in
            let me = o.name.lowercased() == c.session.who.name.lowercased()
            let action: Markup = me ? "<span class=\"muted\">(you)</span>"
                : o.disabled ? HTML.button("/operators/\(HTML.seg(o.name))/enable", "Enable", csrf: c.csrf, cls: "plain")
                : HTML.button("/operators/\(HTML.seg(o.name))/disable", "Disable", csrf: c.csrf, confirm: "Disable operator \(o.name)? Their sessions end and their API tokens stop working.", cls: "danger")
            return ["\(o.name)", "\(o.role)", badge(o.disabled ? "disabled" : "active"), "\(o.createdAt)", action]
        }
        let tokenRows = try c.store.tokens().map { t -> [Markup] in
            let action = t.revokedAt == nil
                ? HTML.button("/tokens/\(t.id)/revoke", "Revoke", csrf: c.csrf, confirm: "Revoke API token \(t.name) of \(t.operator)? It stops working at once.", cls: "danger")
                : .empty
            return ["\(t.id)", "\(t.operator)", "\(t.name)", "<code>\(t.hint)…</code>", "\(t.createdAt)", "\(t.lastUsedAt ?? "never")",
                    t.revokedAt.map { "\(badge("revoked")) \($0)" } ?? badge("active"), action]
        }
        let body: Markup = "<h1>Operators and API tokens</h1><section>"
            + HTML.table(["Operator", "Role", "Status", "Created (UTC)", ""], rows, id: "operators")
            + "<p class=\"muted\">New operators and tokens: <code>switchauth console add-operator</code>, <code>switchauth console create-token</code> (the token is printed once).</p></section>"
            + "<h2>API tokens</h2><section>" + HTML.table(["Id", "Operator", "Name", "Starts with", "Created (UTC)", "Last used (UTC)", "Status", ""], tokenRows, id: "tokens") + "</section>"
        return layout("Operators", c, current: "/operators", notice: c.notice(), error: error, body)
    }

    static func explain(_ c: Ctx) throws -> Markup {
        let ip = c.q("ip"), user = c.q("user"), dest = c.q("destination")
        var body: Markup = "<h1>Explain a call</h1><section><form method=\"get\" action=\"/explain\" class=\"stack\" id=\"explain-form\">"
            + HTML.input("ip", "Source IP (IP-authenticated call)", value: ip ?? "", placeholder: "203.0.113.10")
            + HTML.input("user", "or device user@domain", value: user ?? "", placeholder: "1001@voip.example.com")
            + HTML.input("destination", "Destination", value: dest ?? "", placeholder: "9112345")
            + "<button type=\"submit\">Explain</button></form></section>"
        var error: String?
        if ip != nil || user != nil {
            do {
                let e = try Explainer.explain(c.db, ip: ip, user: ip == nil ? user : nil, destination: dest,
                                              config: c.app.settings.service)
                body += "<section id=\"explanation\"><h2>\(badge(e.outcome)) \(e.summary)</h2><ol class=\"steps\">\(e.steps.map { "<li>\($0)</li>" as Markup })</ol>"
                if let xml = e.dialplanXML { body += "<details><summary>The dialplan answer FreeSWITCH gets</summary><pre>\(xml)</pre></details>" }
                body += "</section>"
            } catch let p as Problem {
                error = p.detail
            }
        }
        return layout("Explain", c, current: "/explain", error: error, body)
    }
}
