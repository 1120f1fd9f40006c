import Decisions
import Foundation
import HTTPServer
import Postgres
import Store
import SystemCalls

/// A JSON API operation (`API.routes` is the list the router and the OpenAPI test read).
typealias APIRoute = Route<APIContext>

struct APIContext {
    let request: ConsoleRequest
    let db: Connection
    let who: Operator?
    let params: [String: String]
    let app: ConsoleApp

    func param(_ k: String) -> String { params[k] ?? "" }
    func query(_ k: String) -> String? { request.query[k].flatMap { $0.isEmpty ? nil : $0 } }
    var admin: Admin { Admin(db: db) }
    var queries: ConsoleQueries { ConsoleQueries(db: db) }
    func body() throws -> JSONBody { try JSONBody(request.body) }

    func limit() throws -> Int {
        guard let l = query("limit") else { return ConsoleQueries.defaultLimit }
        guard let n = Int(l), n >= 1, n <= ConsoleQueries.maxLimit else { throw Problem(status: 400, title: "Bad Request", detail: "limit must be 1-\(ConsoleQueries.maxLimit)") }
        return n
    }

    func id(_ k: String) throws -> Int64 {
        guard let i = Int64(param(k)), i > 0 else { throw Problem(status: 404, title: "Not Found", detail: "no \(k) \(param(k))") }
        return i
    }
}

/// A typed model (the ones the CLI prints too) as JSON.
func json(_ value: JSON, status: Int = 200, headers: [(String, String)] = []) -> HTTPResponse {
    let reason = [200: "OK", 201: "Created", 204: "No Content"][status] ?? "OK"
    return HTTPResponse(status: HTTPStatus(code: status, reason: reason), contentType: "application/json",
                        body: Array(value.text.utf8), headers: headers.map { (name: $0.0, value: $0.1) } + ConsoleRequest.securityHeaders)
}

enum API {
    static let prefix = "/api/v1"
    static let noContent = HTTPResponse(status: HTTPStatus(code: 204, reason: "No Content"), headers: ConsoleRequest.securityHeaders)

    /// Strict request bodies: a JSON object whose every field is one the OpenAPI document lists for
    /// this operation (its request schema has `additionalProperties: false`), else 400 naming the
    /// field. A misspelt field is refused, never ignored. Operations without a body take none (or `{}`).
    static func checkBody(_ request: ConsoleRequest, route: APIRoute) throws {
        guard route.method != "GET", route.method != "DELETE" || !request.body.isEmpty else { return }
        let allowed = OpenAPI.bodyFields["\(route.method) \(route.template)"]
        if request.body.allSatisfy({ $0 == 32 || $0 == 9 || $0 == 10 || $0 == 13 }) { return }
        let fields = try JSONBody(request.body).fields
        let unknown = fields.keys.filter { !(allowed ?? []).contains($0) }.sorted()
        guard unknown.isEmpty else {
            let takes = (allowed ?? []).sorted()
            throw Problem(status: 400, title: "Bad Request",
                          detail: "unknown field\(unknown.count == 1 ? "" : "s") \(unknown.map { "'\($0)'" }.joined(separator: ", ")): "
                              + (takes.isEmpty ? "this request takes no fields" : "this request takes \(takes.joined(separator: ", "))"),
                          type: "/problems/unknown-field")
        }
    }

    static func status(_ s: String?) throws -> String? {
        guard let s else { return nil }
        guard ["active", "suspended", "closed"].contains(s) else { throw Problem(status: 400, title: "Bad Request", detail: "status must be active, suspended or closed") }
        return s
    }

    static func accountJSON(_ c: APIContext, _ number: String, status: Int = 200) throws -> HTTPResponse {
        guard let a = try c.queries.account(number) else { throw Problem.from(AdminError.notFound("unknown account \(number)")) }
        return json(try JSON(encoding: a), status: status)
    }

    static let routes: [APIRoute] = [
        APIRoute("GET", "/api/v1/health", role: nil) { c in
            let up = c.db.healthCheck()
            return json(.object([("status", .string(up ? "ok" : "unavailable")), ("database", .string(up ? "up" : "down"))]), status: up ? 200 : 503)
        },
        APIRoute("GET", "/api/v1/openapi.json", role: nil) { _ in
            HTTPResponse(status: .ok, contentType: "application/json", body: Array(OpenAPI.document.utf8), headers: ConsoleRequest.securityHeaders)
        },

        // domains
        APIRoute("GET", "/api/v1/domains", role: .readOnly) { c in
            json(try JSON(page: c.queries.domains(cursor: c.query("cursor"), limit: try c.limit())))
        },
        APIRoute("POST", "/api/v1/domains", role: .operator) { c in
            let name = try c.body().requiredString("name")
            try c.admin.addDomain(name)
            return json(.object([("name", .string(name)), ("aliases", .array([]))]), status: 201)
        },
        APIRoute("POST", "/api/v1/domains/{domain}/aliases", role: .operator) { c in
            let alias = try c.body().requiredString("alias")
            try c.admin.addAlias(domain: c.param("domain"), alias: alias)
            return json(.object([("domain", .string(c.param("domain"))), ("alias", .string(alias))]), status: 201)
        },
        APIRoute("DELETE", "/api/v1/domains/{domain}", role: .operator) { c in
            try ConsoleStore(db: c.db).removeDomain(c.param("domain"))
            return noContent
        },
        APIRoute("DELETE", "/api/v1/domains/{domain}/aliases/{alias}", role: .operator) { c in
            try ConsoleStore(db: c.db).removeAlias(domain: c.param("domain"), alias: c.param("alias"))
            return noContent
        },

        // the dashboard
        APIRoute("GET", "/api/v1/dashboard", role: .readOnly) { c in
            let (d, age) = try c.app.dashboard(c.db, fresh: c.query("refresh") != nil)
            return json(try JSON(encoding: d), headers: [("Age", String(age))])
        },

        // operators and API tokens (admins)
        APIRoute("GET", "/api/v1/operators", role: .admin) { c in
            json(.object([("items", try JSON(encoding: try ConsoleStore(db: c.db).operators()))]))
        },
        APIRoute("POST", "/api/v1/operators/{name}/disable", role: .admin) { c in
            let s = ConsoleStore(db: c.db)
            try s.setOperatorDisabled(c.param("name"), true, by: c.who?.name)
            return json(try JSON(encoding: try s.operatorRow(c.param("name"))))
        },
        APIRoute("POST", "/api/v1/operators/{name}/enable", role: .admin) { c in
            let s = ConsoleStore(db: c.db)
            try s.setOperatorDisabled(c.param("name"), false, by: c.who?.name)
            return json(try JSON(encoding: try s.operatorRow(c.param("name"))))
        },
        APIRoute("GET", "/api/v1/tokens", role: .admin) { c in
            json(.object([("items", try JSON(encoding: try ConsoleStore(db: c.db).tokens(operator: c.query("operator"))))]))
        },
        APIRoute("DELETE", "/api/v1/tokens/{id}", role: .admin) { c in
            json(try JSON(encoding: try ConsoleStore(db: c.db).revokeToken(try c.id("id"))))
        },

        // accounts
        APIRoute("GET", "/api/v1/accounts", role: .readOnly) { c in
            let kind = c.query("kind")
            if let kind, AccountKind(rawValue: kind) == nil { throw Problem(status: 400, title: "Bad Request", detail: "kind must be customer or carrier") }
            return json(try JSON(page: c.queries.accounts(q: c.query("q"), status: try status(c.query("status")), kind: kind,
                                                          cursor: c.query("cursor"), limit: try c.limit())))
        },
        APIRoute("POST", "/api/v1/accounts", role: .operator) { c in
            let b = try c.body()
            var a = Admin.AccountInput(number: try b.requiredString("number"), name: try b.requiredString("name"))
            if let k = try b.string("kind") {
                guard let kind = AccountKind(rawValue: k) else { throw Problem.invalid("kind must be customer or carrier") }
                a.kind = kind
            }
            if let bl = try b.string("billing") {
                guard let billing = Billing(rawValue: bl) else { throw Problem.invalid("billing must be prepaid or postpaid") }
                a.billing = billing
            }
            if let v = try b.decimal("balance") { a.balance = v }
            if let v = try b.decimal("credit_limit") { a.creditLimit = v }
            if let v = try b.int("max_channels") { a.maxChannels = v }
            if let v = try b.int("max_cps") { a.maxCPS = v }
            a.expiresAt = try b.string("expires_at")
            try c.admin.addAccount(a)
            return try accountJSON(c, a.number, status: 201)
        },
        APIRoute("GET", "/api/v1/accounts/{number}", role: .readOnly) { c in
            try accountJSON(c, c.param("number"))
        },
        APIRoute("PATCH", "/api/v1/accounts/{number}", role: .operator) { c in
            let b = try c.body()
            var u = Admin.AccountUpdate()
            u.name = try b.string("name")
            if let bl = try b.string("billing") {
                guard let billing = Billing(rawValue: bl) else { throw Problem.invalid("billing must be prepaid or postpaid") }
                u.billing = billing
            }
            u.creditLimit = try b.decimal("credit_limit")
            u.maxChannels = try b.int("max_channels")
            u.maxCPS = try b.int("max_cps")
            if b.fields.keys.contains("expires_at") {
                if let e = try b.string("expires_at") { u.expiresAt = e } else { u.clearExpiry = true }
            }
            if b.fields.keys.contains("balance") || b.fields.keys.contains("status") {
                throw Problem.invalid("balance and status change through balance-adjustments and suspend/resume/close")
            }
            try c.admin.updateAccount(c.param("number"), u)
            return try accountJSON(c, c.param("number"))
        },
        APIRoute("POST", "/api/v1/accounts/{number}/suspend", role: .operator) { c in
            try c.admin.setStatus(c.param("number"), .suspended)
            return try accountJSON(c, c.param("number"))
        },
        APIRoute("POST", "/api/v1/accounts/{number}/resume", role: .operator) { c in
            try c.admin.setStatus(c.param("number"), .active)
            return try accountJSON(c, c.param("number"))
        },
        APIRoute("POST", "/api/v1/accounts/{number}/close", role: .operator) { c in
            try c.admin.setStatus(c.param("number"), .closed)
            return try accountJSON(c, c.param("number"))
        },
        APIRoute("POST", "/api/v1/accounts/{number}/balance-adjustments", role: .operator) { c in
            guard let key = c.request.header("Idempotency-Key"), !key.isEmpty else {
                throw Problem(status: 400, title: "Bad Request", detail: "an Idempotency-Key header is required: a retried request with the same key moves the balance once")
            }
            guard let amount = try c.body().decimal("amount") else { throw Problem.invalid("amount is required") }
            let (balance, replayed) = try c.admin.adjustBalance(c.param("number"), amount: amount, idempotencyKey: key)
            return json(.object([("account", .string(c.param("number"))), ("amount", .string(amount)), ("balance", .string(balance)),
                                 ("replayed", .bool(replayed))]), status: replayed ? 200 : 201)
        },

        // IP settings
        APIRoute("GET", "/api/v1/ip-settings", role: .readOnly) { c in
            let contains = c.query("contains")
            if let contains, IPAddress(contains) == nil { throw Problem(status: 400, title: "Bad Request", detail: "contains must be an IP address") }
            return json(try JSON(page: c.queries.ipSettings(account: c.query("account"), contains: contains, cursor: c.query("cursor"), limit: try c.limit())))
        },
        APIRoute("POST", "/api/v1/accounts/{number}/ip-settings", role: .operator) { c in
            let b = try c.body()
            let id = try c.admin.addIP(account: c.param("number"), name: try b.requiredString("name"), network: try b.requiredString("network"),
                                       prefix: try b.string("prefix") ?? "", strip: try b.bool("strip_prefix") ?? false,
                                       maxCPS: try b.int("max_cps") ?? 0)
            return json(try c.queries.ipSetting(id).map { try JSON(encoding: $0) } ?? .null, status: 201)
        },
        APIRoute("GET", "/api/v1/ip-settings/{id}", role: .readOnly) { c in
            guard let s = try c.queries.ipSetting(try c.id("id")) else { throw Problem.from(AdminError.notFound("unknown IP setting \(c.param("id"))")) }
            return json(try JSON(encoding: s))
        },
        APIRoute("PATCH", "/api/v1/ip-settings/{id}", role: .operator) { c in
            let b = try c.body()
            var u = Admin.IPUpdate()
            u.name = try b.string("name")
            u.network = try b.string("network")
            u.prefix = try b.string("prefix")
            u.strip = try b.bool("strip_prefix")
            u.enabled = try b.bool("enabled")
            u.maxCPS = try b.int("max_cps")
            if let m = u.maxCPS, m < 0 { throw Problem.invalid("max calls per second must be 0 (unlimited) or more") }
            let id = try c.id("id")
            try c.admin.updateIP(id: id, u)
            return json(try c.queries.ipSetting(id).map { try JSON(encoding: $0) } ?? .null)
        },
        APIRoute("DELETE", "/api/v1/ip-settings/{id}", role: .operator) { c in
            try c.admin.removeIP(id: try c.id("id"))
            return noContent
        },

        // call controls: destination rules, fraud thresholds and events
        APIRoute("GET", "/api/v1/destination-rules", role: .readOnly) { c in
            json(.object([("items", try JSON(encoding: try c.admin.destinationRules(account: c.query("account"))))]))
        },
        APIRoute("POST", "/api/v1/destination-rules", role: .operator) { c in
            let b = try c.body()
            guard let action = DestinationRule.Action(rawValue: try b.requiredString("action")) else { throw Problem.invalid("action must be deny or allow") }
            let id = try c.admin.addDestinationRule(account: try b.string("account"), action: action, prefix: try b.requiredString("prefix"),
                                                    note: try b.string("note") ?? "")
            return json(try JSON(encoding: try c.admin.destinationRule(id: id)), status: 201)
        },
        APIRoute("DELETE", "/api/v1/destination-rules/{id}", role: .operator) { c in
            try c.admin.removeDestinationRule(id: try c.id("id"))
            return noContent
        },
        APIRoute("GET", "/api/v1/accounts/{number}/fraud-thresholds", role: .readOnly) { c in
            json(.object([("items", try JSON(encoding: try c.admin.fraudThresholds(account: c.param("number"))))]))
        },
        APIRoute("PUT", "/api/v1/accounts/{number}/fraud-thresholds", role: .operator) { c in
            let b = try c.body()
            guard let metric = FraudThreshold.Metric(rawValue: try b.requiredString("metric")) else {
                throw Problem.invalid("metric must be \(FraudThreshold.Metric.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            let prefix = try b.string("prefix") ?? "", warning = try b.int("warning"), critical = try b.int("critical")
            if let p = Admin.fraudThresholdProblems(prefix: prefix, warning: warning, critical: critical).first { throw Problem.invalid(p.message) }
            let id = try c.admin.setFraudThreshold(account: c.param("number"), metric: metric, prefix: prefix, warning: warning, critical: critical)
            return json(try JSON(encoding: try c.admin.fraudThreshold(id: id)))
        },
        APIRoute("DELETE", "/api/v1/fraud-thresholds/{id}", role: .operator) { c in
            try c.admin.removeFraudThreshold(id: try c.id("id"))
            return noContent
        },
        APIRoute("GET", "/api/v1/fraud-events", role: .readOnly) { c in
            json(.object([("items", try JSON(encoding: try c.admin.fraudEvents(account: c.query("account"), limit: try c.limit())))]))
        },

        // devices
        APIRoute("GET", "/api/v1/devices", role: .readOnly) { c in
            json(try JSON(page: c.queries.devices(account: c.query("account"), domain: c.query("domain"), q: c.query("q"),
                                            cursor: c.query("cursor"), limit: try c.limit())))
        },
        APIRoute("POST", "/api/v1/accounts/{number}/devices", role: .operator) { c in
            let b = try c.body()
            let generate = try b.bool("generate_password") ?? false
            let given = try b.string("password")
            guard generate != (given != nil) else { throw Problem.invalid("give password, or generate_password: true (not both)") }
            let password = given ?? RandomSecrets.password()
            var d = Admin.DeviceInput(account: c.param("number"), domain: try b.requiredString("domain"),
                                      username: try b.requiredString("username"), password: password)
            d.callerIDName = try b.string("caller_id_name") ?? ""
            d.callerIDNumber = try b.string("caller_id_number") ?? ""
            let id = try c.admin.addDevice(d)
            var out = try c.queries.device(id: id).map { try JSON(encoding: $0) } ?? .object([])
            // The password goes back once, in this answer, and only when generated here.
            if generate, case .object(var f) = out {
                f.append(("password", .string(password)))
                out = .object(f)
            }
            return json(out, status: 201)
        },
        APIRoute("GET", "/api/v1/devices/{device}", role: .readOnly) { c in
            let id = try c.admin.deviceID(c.param("device"))
            return json(try c.queries.device(id: id).map { try JSON(encoding: $0) } ?? .null)
        },
        APIRoute("PATCH", "/api/v1/devices/{device}", role: .operator) { c in
            let b = try c.body()
            if let p = try b.string("password") { try c.admin.setPassword(c.param("device"), password: p) }
            if let e = try b.bool("enabled") { try c.admin.setDeviceEnabled(c.param("device"), e) }
            let id = try c.admin.deviceID(c.param("device"))
            return json(try c.queries.device(id: id).map { try JSON(encoding: $0) } ?? .null)
        },
        APIRoute("DELETE", "/api/v1/devices/{device}", role: .operator) { c in
            try c.admin.removeDevice(c.param("device"))
            return noContent
        },

        // lockouts
        APIRoute("GET", "/api/v1/lockouts", role: .readOnly) { c in
            let scope = c.query("scope")
            if let scope, ConsoleQueries.scope(named: scope) == nil { throw Problem(status: 400, title: "Bad Request", detail: "scope must be source, user or source_user") }
            return json(try JSON(page: c.queries.lockouts(scope: scope, cursor: c.query("cursor"), limit: try c.limit())))
        },
        APIRoute("DELETE", "/api/v1/lockouts/{subject}", role: .operator) { c in
            let n = try AuthFailures.clear(c.db, subject: c.param("subject"))
            guard n > 0 else { throw Problem.from(AdminError.notFound("unknown lockout \(c.param("subject"))")) }
            return json(.object([("cleared", .int(n))]))
        },

        // explain and audit
        APIRoute("POST", "/api/v1/explain", role: .readOnly) { c in
            let b = try c.body()
            let e = try Explainer.explain(c.db, ip: try b.string("ip"), user: try b.string("user"), destination: try b.string("destination"),
                                          config: c.app.settings.service)
            return json(e.json)
        },
        APIRoute("GET", "/api/v1/audit", role: .readOnly) { c in
            json(try JSON(page: c.queries.audit(account: c.query("account"), objectType: c.query("object_type"), actor: c.query("actor"),
                                          cursor: c.query("cursor"), limit: try c.limit())))
        },
    ]

    static func handle(_ request: ConsoleRequest, db: Connection, app: ConsoleApp) -> HTTPResponse {
        do {
            switch Router.find(routes, method: request.method, segments: request.segments) {
            case .notFound:
                throw Problem(status: 404, title: "Not Found", detail: "no route \(request.method) \(request.path) (see \(prefix)/openapi.json)")
            case .methodNotAllowed(let allowed):
                var p = Problem(status: 405, title: "Method Not Allowed", detail: "\(request.method) is not allowed here; allowed: \(allowed.joined(separator: ", "))")
                p.headers = [("Allow", allowed.joined(separator: ", "))]
                throw p
            case .route(let route, let params):
                var who: Operator?
                if let role = route.role {
                    guard let token = request.bearerToken, let w = try OperatorStore(db: db).operatorFor(token: token) else {
                        var p = Problem.unauthenticated
                        p.headers = [("WWW-Authenticate", "Bearer")]
                        throw p
                    }
                    guard w.role >= role else { throw Problem.forbidden(role) }
                    who = w
                    if route.method != "GET" {
                        if let ct = request.header("Content-Type"), !request.body.isEmpty, !ct.lowercased().hasPrefix("application/json") {
                            throw Problem(status: 415, title: "Unsupported Media Type", detail: "send application/json")
                        }
                        try checkBody(request, route: route)
                        try OperatorStore.setActor(db, "api:" + w.name)
                    }
                }
                return try route.run(APIContext(request: request, db: db, who: who, params: params, app: app))
            }
        } catch let p as Problem {
            return p.response
        } catch let e as BadCursor {
            return Problem.from(e).response
        } catch let e as AdminError {
            return Problem.from(e).response
        } catch let e as PostgresError {
            return Problem.from(e).response
        } catch {
            return Problem(status: 500, title: "Internal Server Error", detail: "unexpected error").response
        }
    }
}
