@testable import AdminConsole
import Foundation
import Store
import Testing

/// The OpenAPI document is the API's contract: every route is documented with its method and role,
/// every documented operation is a route, and real answers carry the documented required fields.
@Suite("OpenAPI document")
struct OpenAPITests {
    static func document() throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(OpenAPI.document.utf8)) as? [String: Any])
    }

    @Test func everyRouteIsDocumentedAndEveryOperationIsARoute() throws {
        let doc = try Self.document()
        #expect(doc["openapi"] as? String == "3.1.0")
        let paths = try #require(doc["paths"] as? [String: [String: Any]])
        var documented = Set<String>()
        for (path, ops) in paths {
            for (method, op) in ops {
                documented.insert("\(method.uppercased()) \(path)")
                let role = (op as? [String: Any])?["x-role"] as? String
                let route = API.routes.first { $0.method == method.uppercased() && $0.template == path }
                #expect(route != nil, "documented but not served: \(method.uppercased()) \(path)")
                #expect(route?.role?.rawValue == role, "role of \(method.uppercased()) \(path): served \(route?.role?.rawValue ?? "none"), documented \(role ?? "none")")
                // Every path parameter is declared.
                let params = ((op as? [String: Any])?["parameters"] as? [[String: Any]] ?? []).compactMap { p -> String? in
                    if let ref = p["$ref"] as? String { return ref.split(separator: "/").last.map(String.init) }
                    return p["in"] as? String == "path" ? p["name"] as? String : nil
                }
                for part in path.split(separator: "/") where part.hasPrefix("{") {
                    #expect(params.contains(String(part.dropFirst().dropLast())), "\(path): \(part) not declared")
                }
            }
        }
        let served = Set(API.routes.map { "\($0.method) \($0.template)" })
        #expect(served == documented, "served, not documented: \(served.subtracting(documented)); documented, not served: \(documented.subtracting(served))")
    }

    /// The schema's required fields, after following a $ref.
    static func required(_ doc: [String: Any], _ schemaName: String) throws -> [String] {
        let schemas = try #require(((doc["components"] as? [String: Any])?["schemas"]) as? [String: Any])
        let schema = try #require(schemas[schemaName] as? [String: Any], "schema \(schemaName)")
        return schema["required"] as? [String] ?? []
    }

    /// The schema documented for `method path` answering `status`.
    static func schemaName(_ doc: [String: Any], _ method: String, _ path: String, _ status: Int) -> String? {
        let paths = doc["paths"] as? [String: [String: Any]]
        let op = paths?[path]?[method.lowercased()] as? [String: Any]
        let response = (op?["responses"] as? [String: Any])?[String(status)] as? [String: Any]
        if let ref = response?["$ref"] as? String, ref.hasSuffix("/Problem") { return "Problem" }
        let content = response?["content"] as? [String: Any]
        let media = (content?["application/json"] ?? content?["application/problem+json"]) as? [String: Any]
        let ref = (media?["schema"] as? [String: Any])?["$ref"] as? String
        return ref?.split(separator: "/").last.map(String.init)
    }

    @Test func answersCarryTheDocumentedFields() throws {
        let doc = try Self.document()
        let h = try ConsoleHarness()
        _ = h.call("POST", "/api/v1/accounts/1001/devices", json: ["username": "1001", "domain": "voip.example.com", "password": "a-long-password"])
        try h.db.execute("INSERT INTO auth_failures (scope, subject, failures, locked_until) VALUES ('ip', '192.0.2.1', 10, now() + interval '1 minute')")
        try h.db.execute("""
            INSERT INTO fraud_events (account_id, metric, prefix, level, value, level_value, window_start)
            SELECT id, 'calls_per_minute', '', 'warning', 31, 30, now() FROM accounts WHERE number = '1001'
            """)
        let calls: [(String, String, String, Any?, [(String, String)])] = [
            ("GET", "/api/v1/health", "/api/v1/health", nil, []),
            ("GET", "/api/v1/accounts", "/api/v1/accounts", nil, []),
            ("GET", "/api/v1/accounts/1001", "/api/v1/accounts/{number}", nil, []),
            ("POST", "/api/v1/accounts", "/api/v1/accounts", ["number": "9000", "name": "N"], []),
            ("POST", "/api/v1/accounts/9000/balance-adjustments", "/api/v1/accounts/{number}/balance-adjustments", ["amount": "1"], [("Idempotency-Key", "x")]),
            ("GET", "/api/v1/ip-settings", "/api/v1/ip-settings", nil, []),
            ("POST", "/api/v1/accounts/9000/ip-settings", "/api/v1/accounts/{number}/ip-settings", ["name": "n", "network": "192.0.2.0/24"], []),
            ("GET", "/api/v1/devices", "/api/v1/devices", nil, []),
            ("GET", "/api/v1/devices/1001@voip.example.com", "/api/v1/devices/{device}", nil, []),
            ("GET", "/api/v1/domains", "/api/v1/domains", nil, []),
            ("GET", "/api/v1/lockouts", "/api/v1/lockouts", nil, []),
            ("POST", "/api/v1/explain", "/api/v1/explain", ["ip": "203.0.113.10", "destination": "911"], []),
            ("GET", "/api/v1/audit", "/api/v1/audit", nil, []),
            ("GET", "/api/v1/accounts/none", "/api/v1/accounts/{number}", nil, []),
            ("GET", "/api/v1/dashboard", "/api/v1/dashboard", nil, []),
            ("GET", "/api/v1/operators", "/api/v1/operators", nil, []),
            ("GET", "/api/v1/tokens", "/api/v1/tokens", nil, []),
            ("POST", "/api/v1/accounts", "/api/v1/accounts", ["number": "9001", "nmae": "typo"], []),
            ("GET", "/api/v1/devices?cursor=garbage", "/api/v1/devices", nil, []),
            ("POST", "/api/v1/operators/nobody/disable", "/api/v1/operators/{name}/disable", nil, []),
            ("POST", "/api/v1/accounts", "/api/v1/accounts", ["number": "9000", "name": "N"], []),
            ("POST", "/api/v1/destination-rules", "/api/v1/destination-rules", ["action": "deny", "prefix": "1900"], []),
            ("POST", "/api/v1/destination-rules", "/api/v1/destination-rules", ["action": "deny", "prefix": "1900"], []),
            ("POST", "/api/v1/destination-rules", "/api/v1/destination-rules", ["action": "deny", "prefix": "19", "account": "none"], []),
            ("GET", "/api/v1/destination-rules?account=9000", "/api/v1/destination-rules", nil, []),
            ("PUT", "/api/v1/accounts/9000/fraud-thresholds", "/api/v1/accounts/{number}/fraud-thresholds", ["metric": "calls_per_minute", "critical": 5], []),
            ("PUT", "/api/v1/accounts/9000/fraud-thresholds", "/api/v1/accounts/{number}/fraud-thresholds", ["metric": "calls_per_minute"], []),
            ("GET", "/api/v1/accounts/9000/fraud-thresholds", "/api/v1/accounts/{number}/fraud-thresholds", nil, []),
            ("GET", "/api/v1/fraud-events?account=1001", "/api/v1/fraud-events", nil, []),
            ("DELETE", "/api/v1/fraud-thresholds/999999", "/api/v1/fraud-thresholds/{id}", nil, []),
            ("DELETE", "/api/v1/destination-rules/999999", "/api/v1/destination-rules/{id}", nil, []),
        ]
        for (method, target, template, body, headers) in calls {
            let a = h.call(method, target, json: body, headers: headers)
            let name = try #require(Self.schemaName(doc, method, template, a.status), "\(method) \(template) answered \(a.status), which is not documented")
            let object = a.json
            var objects = [object]
            if name.hasSuffix("Page") || name.hasSuffix("List") {
                let itemsRef = ((((doc["components"] as? [String: Any])?["schemas"] as? [String: Any])?[name] as? [String: Any])?["properties"] as? [String: Any])?["items"] as? [String: Any]
                let itemName = ((itemsRef?["items"] as? [String: Any])?["$ref"] as? String)?.split(separator: "/").last.map(String.init)
                let items = a.items
                #expect(!items.isEmpty, "\(target): no items to check")
                objects = items
                for field in try Self.required(doc, name) { #expect(object.keys.contains(field), "\(target): page lacks \(field)") }
                if let itemName { for o in objects { for field in try Self.required(doc, itemName) { #expect(o.keys.contains(field), "\(target): item lacks \(field)") } } }
            } else {
                for field in try Self.required(doc, name) { #expect(object.keys.contains(field), "\(target) (\(a.status)): lacks \(field)") }
            }
        }
    }

    /// Every operation documents the errors it can answer, and every request body refuses unknown fields.
    @Test func everyOperationDocumentsItsErrors() throws {
        let doc = try Self.document()
        let paths = try #require(doc["paths"] as? [String: [String: Any]])
        let schemas = try #require((doc["components"] as? [String: Any])?["schemas"] as? [String: Any])
        for (path, ops) in paths {
            for (method, value) in ops {
                let op = try #require(value as? [String: Any])
                let responses = Set((op["responses"] as? [String: Any] ?? [:]).keys)
                let name = "\(method.uppercased()) \(path)"
                if let role = op["x-role"] as? String {
                    #expect(responses.contains("401"), "\(name) lacks 401")
                    #expect(responses.contains("503"), "\(name) lacks 503")
                    if role != "read-only" { #expect(responses.contains("403"), "\(name) lacks 403") }
                }
                if path.contains("{") { #expect(responses.contains("404"), "\(name) lacks 404") }
                if op["parameters"] != nil || op["requestBody"] != nil { #expect(responses.contains("400"), "\(name) lacks 400") }
                if let body = op["requestBody"] as? [String: Any] {
                    #expect(responses.contains("422") && responses.contains("415"), "\(name) lacks 422/415")
                    var schema = ((body["content"] as? [String: Any])?["application/json"] as? [String: Any])?["schema"] as? [String: Any] ?? [:]
                    if let ref = schema["$ref"] as? String { schema = schemas[String(ref.split(separator: "/").last!)] as? [String: Any] ?? [:] }
                    #expect(schema["additionalProperties"] as? Bool == false, "\(name) accepts unknown fields")
                }
            }
        }
        // The refusals the API gives are the documented ones, with the problem schema.
        let h = try ConsoleHarness()
        for (method, target, template, role, expected) in [("GET", "/api/v1/accounts", "/api/v1/accounts", nil, 401), ("POST", "/api/v1/domains", "/api/v1/domains", Role.readOnly, 403),
                                                            ("DELETE", "/api/v1/tokens/1", "/api/v1/tokens/{id}", Role.operator, 403)] as [(String, String, String, Role?, Int)] {
            let a = h.call(method, target, json: method == "POST" ? ["name": "x.example.com"] : nil, role: role)
            #expect(a.status == expected && a.contentType == "application/problem+json")
            #expect(Self.schemaName(doc, method, template, a.status) == "Problem", "\(method) \(template) \(a.status)")
        }
    }

    @Test func theDocumentIsServed() throws {
        let h = try ConsoleHarness(seed: false)
        let a = h.call("GET", "/api/v1/openapi.json", role: nil)
        #expect(a.status == 200 && a.json["openapi"] as? String == "3.1.0")
    }
}
