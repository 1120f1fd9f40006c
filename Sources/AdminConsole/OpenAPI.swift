import Foundation

/// The JSON API's OpenAPI 3.1 document, served at /api/v1/openapi.json. Written by hand (`source`);
/// the error answers every operation can give are added to it by rule (`complete`), so that none
/// is forgotten. `OpenAPITests` checks that every route of `API.routes` is here with its method,
/// that every path here is a route, that every operation documents its errors, and that answers
/// of the running API carry the documented fields. The request schemas are also the API's strict
/// body check (`bodyFields`).
enum OpenAPI {
    /// The served document: `source` with the errors completed (sorted keys, stable bytes).
    static let document: String = {
        guard let parsed = try? JSONSerialization.jsonObject(with: Data(source.utf8)) as? [String: Any],
              let data = try? JSONSerialization.data(withJSONObject: complete(parsed), options: [.sortedKeys, .withoutEscapingSlashes]) else {
            fatalError("OpenAPI.source is not valid JSON")   // caught by OpenAPITests before any release
        }
        return String(decoding: data, as: UTF8.self)
    }()

    /// The errors an operation can answer, from what it takes: 400 (a bad query value or cursor,
    /// malformed JSON, an unknown field), 401 without a valid token, 403 below its role, 404 for
    /// an unknown object in its path, 415 and 422 for a body, 503 when the database does not answer;
    /// and `additionalProperties: false` on every request body (the API refuses unknown fields).
    static func complete(_ doc: [String: Any]) -> [String: Any] {
        var doc = doc
        var paths = doc["paths"] as? [String: Any] ?? [:]
        var components = doc["components"] as? [String: Any] ?? [:]
        var schemas = components["schemas"] as? [String: Any] ?? [:]
        for (path, value) in paths {
            guard var ops = value as? [String: Any] else { continue }
            for (method, opValue) in ops {
                guard var op = opValue as? [String: Any] else { continue }
                var responses = op["responses"] as? [String: Any] ?? [:]
                func add(_ code: String) { if responses[code] == nil { responses[code] = ["$ref": "#/components/responses/Problem"] } }
                let params = op["parameters"] as? [[String: Any]] ?? []
                let secured = op["x-role"] != nil
                if secured { add("401") }
                if let role = op["x-role"] as? String, role != "read-only" { add("403") }
                if path.contains("{") { add("404") }
                if !params.isEmpty || op["requestBody"] != nil || method != "get" { add("400") }
                if var body = op["requestBody"] as? [String: Any] {
                    add("415")
                    add("422")
                    if var content = body["content"] as? [String: Any], var media = content["application/json"] as? [String: Any],
                       var schema = media["schema"] as? [String: Any] {
                        if let ref = schema["$ref"] as? String, let name = ref.split(separator: "/").last.map(String.init), var named = schemas[name] as? [String: Any] {
                            named["additionalProperties"] = false
                            schemas[name] = named
                        } else {
                            schema["additionalProperties"] = false
                            media["schema"] = schema
                            content["application/json"] = media
                            body["content"] = content
                            op["requestBody"] = body
                        }
                    }
                }
                if secured { add("503") }
                op["responses"] = responses
                ops[method] = op
            }
            paths[path] = ops
        }
        components["schemas"] = schemas
        doc["components"] = components
        doc["paths"] = paths
        return doc
    }

    /// "METHOD /template" -> the fields its request body may have (from the document's schemas).
    static let bodyFields: [String: Set<String>] = {
        guard let doc = try? JSONSerialization.jsonObject(with: Data(source.utf8)) as? [String: Any] else { return [:] }
        let schemas = (doc["components"] as? [String: Any])?["schemas"] as? [String: Any] ?? [:]
        var out: [String: Set<String>] = [:]
        for (path, value) in doc["paths"] as? [String: Any] ?? [:] {
            for (method, opValue) in value as? [String: Any] ?? [:] {
                guard let op = opValue as? [String: Any], let body = op["requestBody"] as? [String: Any],
                      let media = (body["content"] as? [String: Any])?["application/json"] as? [String: Any],
                      var schema = media["schema"] as? [String: Any] else { continue }
                if let ref = schema["$ref"] as? String, let name = ref.split(separator: "/").last.map(String.init) {
                    schema = schemas[name] as? [String: Any] ?? [:]
                }
                out["\(method.uppercased()) \(path)"] = Set((schema["properties"] as? [String: Any] ?? [:]).keys)
            }
        }
        return out
    }()

    static let source = #"""
{
  "openapi": "3.1.0",
  "info": {
    "title": "SwitchAuth operators' API",
    "version": "1.0.0",
    "description": "Accounts, IP settings, SIP devices, domains, call controls (calls per second, destination rules, fraud thresholds and events), lockouts, explain and the audit log of SwitchAuth. Authenticate with an API token: 'Authorization: Bearer sat_…' ('switchauth console create-token'). Errors are RFC 9457 problem details. Lists are keyset-paginated: pass next_cursor back as cursor; limit 1-200 (default 50)."
  },
  "servers": [{"url": "/"}],
  "security": [{"bearer": []}],
  "components": {
    "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
    "parameters": {
      "cursor": {"name": "cursor", "in": "query", "schema": {"type": "string"}, "description": "next_cursor of the previous page"},
      "limit": {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}},
      "number": {"name": "number", "in": "path", "required": true, "schema": {"type": "string"}, "description": "account number (accountcode)"},
      "id": {"name": "id", "in": "path", "required": true, "schema": {"type": "integer"}},
      "device": {"name": "device", "in": "path", "required": true, "schema": {"type": "string"}, "description": "user@domain"},
      "domain": {"name": "domain", "in": "path", "required": true, "schema": {"type": "string"}},
      "name": {"name": "name", "in": "path", "required": true, "schema": {"type": "string"}, "description": "operator name"},
      "alias": {"name": "alias", "in": "path", "required": true, "schema": {"type": "string"}},
      "subject": {"name": "subject", "in": "path", "required": true, "schema": {"type": "string"}, "description": "an IP address or user@domain"}
    },
    "responses": {
      "Problem": {"description": "RFC 9457 problem details", "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}
    },
    "schemas": {
      "Problem": {"type": "object", "required": ["type", "title", "status", "detail"], "properties": {
        "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"}, "detail": {"type": "string"}}},
      "Health": {"type": "object", "required": ["status", "database"], "properties": {"status": {"type": "string"}, "database": {"type": "string", "enum": ["up", "down"]}}},
      "Domain": {"type": "object", "required": ["name", "aliases"], "properties": {
        "name": {"type": "string"}, "enabled": {"type": "boolean"}, "aliases": {"type": "array", "items": {"type": "string"}}, "created_at": {"type": "string", "format": "date-time"}}},
      "Account": {"type": "object", "required": ["number", "name", "kind", "status", "billing", "balance", "credit_limit", "max_channels", "max_cps", "calls_up", "expires_at", "created_at", "updated_at", "ip_settings", "devices"], "properties": {
        "number": {"type": "string"}, "name": {"type": "string"}, "kind": {"type": "string", "enum": ["customer", "carrier"]},
        "status": {"type": "string", "enum": ["active", "suspended", "closed"]}, "billing": {"type": "string", "enum": ["prepaid", "postpaid"]},
        "balance": {"type": "string", "description": "decimal"}, "credit_limit": {"type": "string", "description": "decimal"},
        "max_channels": {"type": "integer", "description": "0 = unlimited"}, "expires_at": {"type": ["string", "null"], "format": "date-time"},
        "created_at": {"type": "string"}, "updated_at": {"type": "string"}, "ip_settings": {"type": "integer"}, "devices": {"type": "integer"},
        "max_cps": {"type": "integer", "minimum": 0, "description": "calls per second allowed across every switch; 0 = unlimited"},
        "calls_up": {"type": "integer", "description": "calls the account has up now across every switch (its call slots)"}}},
      "AccountInput": {"type": "object", "required": ["number", "name"], "properties": {
        "number": {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,40}$"}, "name": {"type": "string"}, "kind": {"type": "string", "enum": ["customer", "carrier"]},
        "billing": {"type": "string", "enum": ["prepaid", "postpaid"]}, "balance": {"type": "string"}, "credit_limit": {"type": "string"},
        "max_channels": {"type": "integer", "minimum": 0}, "max_cps": {"type": "integer", "minimum": 0, "description": "0 = unlimited"}, "expires_at": {"type": ["string", "null"]}}},
      "AccountUpdate": {"type": "object", "properties": {
        "name": {"type": "string"}, "billing": {"type": "string", "enum": ["prepaid", "postpaid"]}, "credit_limit": {"type": "string"},
        "max_channels": {"type": "integer", "minimum": 0}, "max_cps": {"type": "integer", "minimum": 0, "description": "0 = unlimited"}, "expires_at": {"type": ["string", "null"]}}},
      "BalanceAdjustment": {"type": "object", "required": ["account", "amount", "balance", "replayed"], "properties": {
        "account": {"type": "string"}, "amount": {"type": "string"}, "balance": {"type": "string"},
        "replayed": {"type": "boolean", "description": "true when this Idempotency-Key was seen before: nothing moved"}}},
      "IPSetting": {"type": "object", "required": ["id", "account", "name", "network", "prefix", "strip_prefix", "enabled", "max_cps"], "properties": {
        "id": {"type": "integer"}, "account": {"type": "string"}, "name": {"type": "string"}, "network": {"type": "string", "description": "address or CIDR"},
        "prefix": {"type": "string", "pattern": "^[0-9]{0,32}$"}, "strip_prefix": {"type": "boolean"}, "enabled": {"type": "boolean"},
        "created_at": {"type": "string"}, "updated_at": {"type": "string"}, "max_cps": {"type": "integer", "description": "calls per second from this setting across every switch; 0 = unlimited"}}},
      "IPSettingInput": {"type": "object", "required": ["name", "network"], "properties": {
        "name": {"type": "string"}, "network": {"type": "string"}, "prefix": {"type": "string"}, "strip_prefix": {"type": "boolean"}, "max_cps": {"type": "integer", "minimum": 0, "default": 0}}},
      "IPSettingUpdate": {"type": "object", "properties": {
        "name": {"type": "string"}, "network": {"type": "string"}, "prefix": {"type": "string"}, "strip_prefix": {"type": "boolean"}, "enabled": {"type": "boolean"}, "max_cps": {"type": "integer", "minimum": 0}}},
      "DestinationRule": {"type": "object", "required": ["id", "account", "action", "prefix", "note", "created_at"], "properties": {
        "id": {"type": "integer"}, "account": {"type": ["string", "null"], "description": "the account's number; null for a global rule (every account)"},
        "action": {"type": "string", "enum": ["deny", "allow"]}, "prefix": {"type": "string", "pattern": "^[0-9+*#]{1,32}$"}, "note": {"type": "string"}, "created_at": {"type": "string"}}},
      "DestinationRuleInput": {"type": "object", "required": ["action", "prefix"], "properties": {
        "action": {"type": "string", "enum": ["deny", "allow"]}, "prefix": {"type": "string", "pattern": "^[0-9+*#]{1,32}$", "description": "the destination as routed begins with it; the longest matching prefix decides"},
        "account": {"type": ["string", "null"], "description": "an account's number; absent or null: a global rule"}, "note": {"type": "string", "maxLength": 200}}},
      "DestinationRuleList": {"type": "object", "required": ["items"], "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/DestinationRule"}}}},
      "FraudThreshold": {"type": "object", "required": ["id", "account", "metric", "prefix", "warning", "critical", "created_at"], "properties": {
        "id": {"type": "integer"}, "account": {"type": "string"}, "metric": {"type": "string", "enum": ["calls_per_minute", "attempts_per_day", "concurrent_calls"]},
        "prefix": {"type": "string", "description": "destinations counted; empty = every destination"},
        "warning": {"type": ["integer", "null"], "description": "passing it is logged, counted and sent to the webhook"},
        "critical": {"type": ["integer", "null"], "description": "passing it suspends the account and refuses the call"}, "created_at": {"type": "string"}}},
      "FraudThresholdInput": {"type": "object", "required": ["metric"], "description": "sets (adds or replaces) the account's threshold for this metric and prefix; warning, critical or both, warning below critical", "properties": {
        "metric": {"type": "string", "enum": ["calls_per_minute", "attempts_per_day", "concurrent_calls"]}, "prefix": {"type": "string", "pattern": "^[0-9+*#]{0,32}$", "default": ""},
        "warning": {"type": ["integer", "null"], "minimum": 1}, "critical": {"type": ["integer", "null"], "minimum": 1}}},
      "FraudThresholdList": {"type": "object", "required": ["items"], "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/FraudThreshold"}}}},
      "FraudEvent": {"type": "object", "required": ["id", "at", "account", "metric", "prefix", "level", "value", "level_value", "unique_id"], "properties": {
        "id": {"type": "integer"}, "at": {"type": "string", "format": "date-time"}, "account": {"type": "string"}, "metric": {"type": "string"}, "prefix": {"type": "string"},
        "level": {"type": "string", "enum": ["warning", "critical"]}, "value": {"type": "integer", "description": "what was counted"},
        "level_value": {"type": "integer", "description": "the level it passed"}, "unique_id": {"type": "string", "description": "the call that passed it"}}},
      "FraudEventList": {"type": "object", "required": ["items"], "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/FraudEvent"}}}},
      "Device": {"type": "object", "required": ["id", "device", "username", "domain", "account", "enabled"], "properties": {
        "id": {"type": "integer"}, "device": {"type": "string", "description": "user@domain"}, "username": {"type": "string"}, "domain": {"type": "string"},
        "account": {"type": "string"}, "enabled": {"type": "boolean"}, "caller_id_name": {"type": "string"}, "caller_id_number": {"type": "string"},
        "created_at": {"type": "string"}, "updated_at": {"type": "string"},
        "password": {"type": "string", "description": "only in the answer that created the device with generate_password; never again"}}},
      "DeviceInput": {"type": "object", "required": ["username", "domain"], "properties": {
        "username": {"type": "string"}, "domain": {"type": "string"}, "password": {"type": "string", "minLength": 8},
        "generate_password": {"type": "boolean"}, "caller_id_name": {"type": "string"}, "caller_id_number": {"type": "string"}}},
      "DeviceUpdate": {"type": "object", "properties": {"password": {"type": "string", "minLength": 8}, "enabled": {"type": "boolean"}}},
      "Lockout": {"type": "object", "required": ["scope", "subject", "failures", "locked_until"], "properties": {
        "scope": {"type": "string", "enum": ["source", "user", "source_user"], "description": "as 'switchauth lockouts' names them: source (an IP or IPv6 /64), user (user@domain from every source), source_user (one source against one user)"}, "subject": {"type": "string"}, "failures": {"type": "integer"}, "locked_until": {"type": "string"}}},
      "ExplainInput": {"type": "object", "properties": {"ip": {"type": "string"}, "user": {"type": "string", "description": "user@domain"}, "destination": {"type": "string"}}},
      "Explanation": {"type": "object", "required": ["outcome", "sip_code", "reason", "summary", "steps", "dialplan_xml"], "properties": {
        "outcome": {"type": "string", "enum": ["allowed", "rejected", "not_found", "published", "refused", "invalid"]},
        "sip_code": {"type": ["integer", "null"]}, "reason": {"type": "string"}, "summary": {"type": "string"},
        "steps": {"type": "array", "items": {"type": "string"}}, "dialplan_xml": {"type": ["string", "null"]}}},
      "AuditEntry": {"type": "object", "required": ["id", "at", "actor", "action", "object_type", "object_id", "object", "account", "before", "after"], "properties": {
        "id": {"type": "integer"}, "at": {"type": "string"}, "actor": {"type": "string", "description": "api:<operator>, console:<operator>, cli:<user> or sql:<database user>"},
        "action": {"type": "string", "enum": ["create", "update", "delete", "login_failed"], "description": "login_failed: a refused console login (actor login:<source>, object the name tried)"}, "object_type": {"type": "string"}, "object_id": {"type": "string"},
        "object": {"type": "string"}, "account": {"type": ["string", "null"]}, "before": {"type": ["object", "null"]}, "after": {"type": ["object", "null"]}}},
      "Dashboard": {"type": "object", "required": ["accounts", "lockouts", "failed_auths", "registrations_seen", "registration_sources", "devices", "ip_settings", "failed_logins"], "properties": {
        "accounts": {"type": "object", "description": "accounts by status", "properties": {"active": {"type": "integer"}, "suspended": {"type": "integer"}, "closed": {"type": "integer"}}},
        "lockouts": {"type": "object", "description": "lockouts in force by scope", "properties": {"source": {"type": "integer"}, "user": {"type": "integer"}, "source_user": {"type": "integer"}}},
        "failed_auths": {"type": "integer", "description": "failed digests counted in the current lockout windows"},
        "registrations_seen": {"type": "integer", "description": "devices that authenticated (REGISTER or call) in the last 24 hours"},
        "registration_sources": {"type": "integer", "description": "sources they authenticated from in the last 24 hours"},
        "devices": {"type": "integer"}, "ip_settings": {"type": "integer"}, "failed_logins": {"type": "integer", "description": "refused console logins in the last 24 hours"}}},
      "Operator": {"type": "object", "required": ["name", "role", "disabled", "created_at"], "properties": {
        "name": {"type": "string"}, "role": {"type": "string", "enum": ["read-only", "operator", "admin"]}, "disabled": {"type": "boolean"}, "created_at": {"type": "string"}}},
      "OperatorList": {"type": "object", "required": ["items"], "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/Operator"}}}},
      "Token": {"type": "object", "required": ["id", "operator", "name", "hint", "created_at", "last_used_at", "revoked_at"], "properties": {
        "id": {"type": "integer"}, "operator": {"type": "string"}, "name": {"type": "string"}, "hint": {"type": "string", "description": "the token's first characters (never the token)"},
        "created_at": {"type": "string"}, "last_used_at": {"type": ["string", "null"]}, "revoked_at": {"type": ["string", "null"]}}},
      "TokenList": {"type": "object", "required": ["items"], "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/Token"}}}},
      "AccountPage": {"type": "object", "required": ["items", "next_cursor", "prev_cursor", "total", "total_exact", "limit"], "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/Account"}}, "next_cursor": {"type": ["string", "null"], "description": "pass as cursor for the next page; null on the last"}, "prev_cursor": {"type": ["string", "null"], "description": "pass as cursor for the previous page; null on the first"}, "total": {"type": "integer", "description": "rows matching the filters, counted up to 10000"}, "total_exact": {"type": "boolean", "description": "false when more than 10000 match (total is then 10000)"}, "limit": {"type": "integer", "description": "the page size"}}},
      "IPSettingPage": {"type": "object", "required": ["items", "next_cursor", "prev_cursor", "total", "total_exact", "limit"], "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/IPSetting"}}, "next_cursor": {"type": ["string", "null"], "description": "pass as cursor for the next page; null on the last"}, "prev_cursor": {"type": ["string", "null"], "description": "pass as cursor for the previous page; null on the first"}, "total": {"type": "integer", "description": "rows matching the filters, counted up to 10000"}, "total_exact": {"type": "boolean", "description": "false when more than 10000 match (total is then 10000)"}, "limit": {"type": "integer", "description": "the page size"}}},
      "DevicePage": {"type": "object", "required": ["items", "next_cursor", "prev_cursor", "total", "total_exact", "limit"], "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/Device"}}, "next_cursor": {"type": ["string", "null"], "description": "pass as cursor for the next page; null on the last"}, "prev_cursor": {"type": ["string", "null"], "description": "pass as cursor for the previous page; null on the first"}, "total": {"type": "integer", "description": "rows matching the filters, counted up to 10000"}, "total_exact": {"type": "boolean", "description": "false when more than 10000 match (total is then 10000)"}, "limit": {"type": "integer", "description": "the page size"}}},
      "DomainPage": {"type": "object", "required": ["items", "next_cursor", "prev_cursor", "total", "total_exact", "limit"], "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/Domain"}}, "next_cursor": {"type": ["string", "null"], "description": "pass as cursor for the next page; null on the last"}, "prev_cursor": {"type": ["string", "null"], "description": "pass as cursor for the previous page; null on the first"}, "total": {"type": "integer", "description": "rows matching the filters, counted up to 10000"}, "total_exact": {"type": "boolean", "description": "false when more than 10000 match (total is then 10000)"}, "limit": {"type": "integer", "description": "the page size"}}},
      "LockoutPage": {"type": "object", "required": ["items", "next_cursor", "prev_cursor", "total", "total_exact", "limit"], "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/Lockout"}}, "next_cursor": {"type": ["string", "null"], "description": "pass as cursor for the next page; null on the last"}, "prev_cursor": {"type": ["string", "null"], "description": "pass as cursor for the previous page; null on the first"}, "total": {"type": "integer", "description": "rows matching the filters, counted up to 10000"}, "total_exact": {"type": "boolean", "description": "false when more than 10000 match (total is then 10000)"}, "limit": {"type": "integer", "description": "the page size"}}},
      "AuditPage": {"type": "object", "required": ["items", "next_cursor", "prev_cursor", "total", "total_exact", "limit"], "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/AuditEntry"}}, "next_cursor": {"type": ["string", "null"], "description": "pass as cursor for the next page; null on the last"}, "prev_cursor": {"type": ["string", "null"], "description": "pass as cursor for the previous page; null on the first"}, "total": {"type": "integer", "description": "rows matching the filters, counted up to 10000"}, "total_exact": {"type": "boolean", "description": "false when more than 10000 match (total is then 10000)"}, "limit": {"type": "integer", "description": "the page size"}}}
    }
  },
  "paths": {
    "/api/v1/health": {"get": {"operationId": "health", "security": [], "summary": "200 when the database answers",
      "responses": {"200": {"description": "up", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Health"}}}}, "503": {"description": "database down"}}}},
    "/api/v1/openapi.json": {"get": {"operationId": "openapi", "security": [], "summary": "this document", "responses": {"200": {"description": "OpenAPI 3.1"}}}},
    "/api/v1/domains": {
      "get": {"operationId": "listDomains", "x-role": "read-only", "parameters": [{"$ref": "#/components/parameters/cursor"}, {"$ref": "#/components/parameters/limit"}],
        "responses": {"200": {"description": "a page", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/DomainPage"}}}}, "401": {"$ref": "#/components/responses/Problem"}}},
      "post": {"operationId": "createDomain", "x-role": "operator", "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}}}},
        "responses": {"201": {"description": "created"}, "409": {"$ref": "#/components/responses/Problem"}, "422": {"$ref": "#/components/responses/Problem"}}}},
    "/api/v1/domains/{domain}/aliases": {
      "post": {"operationId": "addAlias", "x-role": "operator", "parameters": [{"$ref": "#/components/parameters/domain"}],
        "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["alias"], "properties": {"alias": {"type": "string"}}}}}},
        "responses": {"201": {"description": "added"}, "404": {"$ref": "#/components/responses/Problem"}, "409": {"$ref": "#/components/responses/Problem"}}}},
    "/api/v1/domains/{domain}": {"delete": {"operationId": "deleteDomain", "x-role": "operator", "parameters": [{"$ref": "#/components/parameters/domain"}],
        "summary": "removes the domain and its aliases; refused (422) while devices use it",
        "responses": {"204": {"description": "removed"}}}},
    "/api/v1/domains/{domain}/aliases/{alias}": {"delete": {"operationId": "deleteAlias", "x-role": "operator",
        "parameters": [{"$ref": "#/components/parameters/domain"}, {"$ref": "#/components/parameters/alias"}],
        "responses": {"204": {"description": "removed"}}}},
    "/api/v1/dashboard": {"get": {"operationId": "dashboard", "x-role": "read-only",
        "summary": "counts taken at most every 15 s (the Age header says how old); refresh=1 takes them now",
        "parameters": [{"name": "refresh", "in": "query", "schema": {"type": "string"}, "description": "any value: count now"}],
        "responses": {"200": {"description": "counts", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Dashboard"}}}}}}},
    "/api/v1/operators": {"get": {"operationId": "listOperators", "x-role": "admin",
        "responses": {"200": {"description": "every operator", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/OperatorList"}}}}}}},
    "/api/v1/operators/{name}/disable": {"post": {"operationId": "disableOperator", "x-role": "admin", "parameters": [{"$ref": "#/components/parameters/name"}],
        "summary": "ends the operator's sessions; their API tokens stop working. Refused (422) for yourself and for the last enabled admin; 409 when already disabled",
        "responses": {"200": {"description": "disabled", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Operator"}}}}, "409": {"$ref": "#/components/responses/Problem"}}}},
    "/api/v1/operators/{name}/enable": {"post": {"operationId": "enableOperator", "x-role": "admin", "parameters": [{"$ref": "#/components/parameters/name"}],
        "responses": {"200": {"description": "enabled", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Operator"}}}}, "409": {"$ref": "#/components/responses/Problem"}}}},
    "/api/v1/tokens": {"get": {"operationId": "listTokens", "x-role": "admin", "parameters": [{"name": "operator", "in": "query", "schema": {"type": "string"}}],
        "responses": {"200": {"description": "newest first, revoked ones too", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/TokenList"}}}}}}},
    "/api/v1/tokens/{id}": {"delete": {"operationId": "revokeToken", "x-role": "admin", "parameters": [{"$ref": "#/components/parameters/id"}],
        "summary": "revokes the token: it stops working at once; it stays listed, and the audit log records who revoked it",
        "responses": {"200": {"description": "revoked", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Token"}}}}, "409": {"$ref": "#/components/responses/Problem"}}}},
    "/api/v1/accounts": {
      "get": {"operationId": "listAccounts", "x-role": "read-only", "parameters": [
          {"name": "q", "in": "query", "schema": {"type": "string"}, "description": "number or name contains (any case)"},
          {"name": "status", "in": "query", "schema": {"type": "string", "enum": ["active", "suspended", "closed"]}},
          {"name": "kind", "in": "query", "schema": {"type": "string", "enum": ["customer", "carrier"]}},
          {"$ref": "#/components/parameters/cursor"}, {"$ref": "#/components/parameters/limit"}],
        "responses": {"200": {"description": "a page, by number", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/AccountPage"}}}}}},
      "post": {"operationId": "createAccount", "x-role": "operator", "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/AccountInput"}}}},
        "responses": {"201": {"description": "created", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Account"}}}}, "409": {"$ref": "#/components/responses/Problem"}, "422": {"$ref": "#/components/responses/Problem"}}}},
    "/api/v1/accounts/{number}": {
      "get": {"operationId": "getAccount", "x-role": "read-only", "parameters": [{"$ref": "#/components/parameters/number"}],
        "responses": {"200": {"description": "the account", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Account"}}}}, "404": {"$ref": "#/components/responses/Problem"}}},
      "patch": {"operationId": "updateAccount", "x-role": "operator", "parameters": [{"$ref": "#/components/parameters/number"}],
        "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/AccountUpdate"}}}},
        "responses": {"200": {"description": "updated", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Account"}}}}, "404": {"$ref": "#/components/responses/Problem"}, "422": {"$ref": "#/components/responses/Problem"}}}},
    "/api/v1/accounts/{number}/suspend": {"post": {"operationId": "suspendAccount", "x-role": "operator", "parameters": [{"$ref": "#/components/parameters/number"}],
        "responses": {"200": {"description": "suspended", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Account"}}}}, "404": {"$ref": "#/components/responses/Problem"}}}},
    "/api/v1/accounts/{number}/resume": {"post": {"operationId": "resumeAccount", "x-role": "operator", "parameters": [{"$ref": "#/components/parameters/number"}],
        "responses": {"200": {"description": "active again", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Account"}}}}, "404": {"$ref": "#/components/responses/Problem"}}}},
    "/api/v1/accounts/{number}/close": {"post": {"operationId": "closeAccount", "x-role": "operator", "parameters": [{"$ref": "#/components/parameters/number"}],
        "responses": {"200": {"description": "closed", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Account"}}}}, "404": {"$ref": "#/components/responses/Problem"}}}},
    "/api/v1/accounts/{number}/balance-adjustments": {"post": {"operationId": "adjustBalance", "x-role": "operator",
        "parameters": [{"$ref": "#/components/parameters/number"}, {"name": "Idempotency-Key", "in": "header", "required": true, "schema": {"type": "string", "maxLength": 200}}],
        "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["amount"], "properties": {"amount": {"type": "string", "description": "decimal, negative to debit"}}}}}},
        "responses": {"201": {"description": "moved", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/BalanceAdjustment"}}}},
          "200": {"description": "a retry of a known key: nothing moved", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/BalanceAdjustment"}}}},
          "400": {"$ref": "#/components/responses/Problem"}, "409": {"$ref": "#/components/responses/Problem"}}}},
    "/api/v1/accounts/{number}/ip-settings": {"post": {"operationId": "createIPSetting", "x-role": "operator", "parameters": [{"$ref": "#/components/parameters/number"}],
        "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/IPSettingInput"}}}},
        "responses": {"201": {"description": "created", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/IPSetting"}}}}, "409": {"$ref": "#/components/responses/Problem"}, "422": {"$ref": "#/components/responses/Problem"}}}},
    "/api/v1/accounts/{number}/devices": {"post": {"operationId": "createDevice", "x-role": "operator", "parameters": [{"$ref": "#/components/parameters/number"}],
        "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/DeviceInput"}}}},
        "responses": {"201": {"description": "created; 'password' present only when generated", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Device"}}}}, "409": {"$ref": "#/components/responses/Problem"}, "422": {"$ref": "#/components/responses/Problem"}}}},
    "/api/v1/ip-settings": {"get": {"operationId": "listIPSettings", "x-role": "read-only", "parameters": [
          {"name": "account", "in": "query", "schema": {"type": "string"}}, {"name": "contains", "in": "query", "schema": {"type": "string"}, "description": "an IP address the network contains"},
          {"$ref": "#/components/parameters/cursor"}, {"$ref": "#/components/parameters/limit"}],
        "responses": {"200": {"description": "a page, by id", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/IPSettingPage"}}}}}}},
    "/api/v1/ip-settings/{id}": {
      "get": {"operationId": "getIPSetting", "x-role": "read-only", "parameters": [{"$ref": "#/components/parameters/id"}],
        "responses": {"200": {"description": "the IP setting", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/IPSetting"}}}}, "404": {"$ref": "#/components/responses/Problem"}}},
      "patch": {"operationId": "updateIPSetting", "x-role": "operator", "parameters": [{"$ref": "#/components/parameters/id"}],
        "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/IPSettingUpdate"}}}},
        "responses": {"200": {"description": "updated", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/IPSetting"}}}}, "404": {"$ref": "#/components/responses/Problem"}, "422": {"$ref": "#/components/responses/Problem"}}},
      "delete": {"operationId": "deleteIPSetting", "x-role": "operator", "parameters": [{"$ref": "#/components/parameters/id"}],
        "responses": {"204": {"description": "removed"}, "404": {"$ref": "#/components/responses/Problem"}}}},
    "/api/v1/destination-rules": {
      "get": {"operationId": "listDestinationRules", "x-role": "read-only", "summary": "every rule (global ones first), or those that apply to one account",
        "parameters": [{"name": "account", "in": "query", "schema": {"type": "string"}, "description": "the rules that apply to this account: its own and the global ones"}],
        "responses": {"200": {"description": "the rules", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/DestinationRuleList"}}}}, "404": {"$ref": "#/components/responses/Problem"}}},
      "post": {"operationId": "createDestinationRule", "x-role": "operator",
        "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/DestinationRuleInput"}}}},
        "responses": {"201": {"description": "added", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/DestinationRule"}}}}, "404": {"$ref": "#/components/responses/Problem"}, "409": {"$ref": "#/components/responses/Problem"}}}},
    "/api/v1/destination-rules/{id}": {"delete": {"operationId": "deleteDestinationRule", "x-role": "operator", "parameters": [{"$ref": "#/components/parameters/id"}],
        "responses": {"204": {"description": "removed"}}}},
    "/api/v1/accounts/{number}/fraud-thresholds": {
      "get": {"operationId": "listFraudThresholds", "x-role": "read-only", "parameters": [{"$ref": "#/components/parameters/number"}],
        "responses": {"200": {"description": "the account's thresholds", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/FraudThresholdList"}}}}}},
      "put": {"operationId": "setFraudThreshold", "x-role": "operator", "parameters": [{"$ref": "#/components/parameters/number"}],
        "summary": "sets one threshold: the account's threshold for metric and prefix is added, or replaced (a level left out is then unset)",
        "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/FraudThresholdInput"}}}},
        "responses": {"200": {"description": "set", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/FraudThreshold"}}}}}}},
    "/api/v1/fraud-thresholds/{id}": {"delete": {"operationId": "deleteFraudThreshold", "x-role": "operator", "parameters": [{"$ref": "#/components/parameters/id"}],
        "responses": {"204": {"description": "removed"}}}},
    "/api/v1/fraud-events": {"get": {"operationId": "listFraudEvents", "x-role": "read-only", "summary": "fraud levels passed, newest first",
        "parameters": [{"name": "account", "in": "query", "schema": {"type": "string"}}, {"$ref": "#/components/parameters/limit"}],
        "responses": {"200": {"description": "newest first", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/FraudEventList"}}}}, "404": {"$ref": "#/components/responses/Problem"}}}},
    "/api/v1/devices": {"get": {"operationId": "listDevices", "x-role": "read-only", "parameters": [
          {"name": "account", "in": "query", "schema": {"type": "string"}}, {"name": "domain", "in": "query", "schema": {"type": "string"}},
          {"name": "q", "in": "query", "schema": {"type": "string"}, "description": "username contains"},
          {"$ref": "#/components/parameters/cursor"}, {"$ref": "#/components/parameters/limit"}],
        "responses": {"200": {"description": "a page, by id", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/DevicePage"}}}}}}},
    "/api/v1/devices/{device}": {
      "get": {"operationId": "getDevice", "x-role": "read-only", "parameters": [{"$ref": "#/components/parameters/device"}],
        "responses": {"200": {"description": "the device (never its password)", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Device"}}}}, "404": {"$ref": "#/components/responses/Problem"}}},
      "patch": {"operationId": "updateDevice", "x-role": "operator", "parameters": [{"$ref": "#/components/parameters/device"}],
        "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/DeviceUpdate"}}}},
        "responses": {"200": {"description": "updated", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Device"}}}}, "404": {"$ref": "#/components/responses/Problem"}, "422": {"$ref": "#/components/responses/Problem"}}},
      "delete": {"operationId": "deleteDevice", "x-role": "operator", "parameters": [{"$ref": "#/components/parameters/device"}],
        "responses": {"204": {"description": "removed"}, "404": {"$ref": "#/components/responses/Problem"}}}},
    "/api/v1/lockouts": {"get": {"operationId": "listLockouts", "x-role": "read-only", "parameters": [
          {"name": "scope", "in": "query", "schema": {"type": "string", "enum": ["source", "user", "source_user"]}, "description": "ip and pair (the database's words) are accepted too"}, {"$ref": "#/components/parameters/cursor"}, {"$ref": "#/components/parameters/limit"}],
        "responses": {"200": {"description": "active lockouts", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/LockoutPage"}}}}}}},
    "/api/v1/lockouts/{subject}": {"delete": {"operationId": "clearLockout", "x-role": "operator", "parameters": [{"$ref": "#/components/parameters/subject"}],
        "responses": {"200": {"description": "cleared", "content": {"application/json": {"schema": {"type": "object", "properties": {"cleared": {"type": "integer"}}}}}}, "404": {"$ref": "#/components/responses/Problem"}}}},
    "/api/v1/explain": {"post": {"operationId": "explain", "x-role": "read-only",
        "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ExplainInput"}}}},
        "responses": {"200": {"description": "each step of the decision", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Explanation"}}}}, "422": {"$ref": "#/components/responses/Problem"}}}},
    "/api/v1/audit": {"get": {"operationId": "listAudit", "x-role": "read-only", "parameters": [
          {"name": "account", "in": "query", "schema": {"type": "string"}}, {"name": "object_type", "in": "query", "schema": {"type": "string"}},
          {"name": "actor", "in": "query", "schema": {"type": "string"}}, {"$ref": "#/components/parameters/cursor"}, {"$ref": "#/components/parameters/limit"}],
        "responses": {"200": {"description": "newest first", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/AuditPage"}}}}}}}
  }
}
"""#
}
