/// The JSON API's OpenAPI 3.1 document, served at /api/v1/openapi.json. Written by hand;
/// `OpenAPITests` checks that every route of `API.routes` is here with its method, that every
/// path here is a route, and that answers of the running API carry the documented fields.
enum OpenAPI {
    static let document = #"""
{
  "openapi": "3.1.0",
  "info": {
    "title": "SwitchAuth operators' API",
    "version": "1.0.0",
    "description": "Accounts, IP settings, SIP devices, domains, lockouts, explain and the audit log of SwitchAuth. Authenticate with an API token: 'Authorization: Bearer sat_…' ('switchauth console create-token'). Errors are RFC 9457 problem details. Lists are keyset-paginated: pass next_cursor back as cursor; limit 1-200 (default 50)."
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
      "Account": {"type": "object", "required": ["number", "name", "kind", "status", "billing", "balance", "credit_limit", "max_channels", "expires_at", "created_at", "updated_at", "ip_settings", "devices"], "properties": {
        "number": {"type": "string"}, "name": {"type": "string"}, "kind": {"type": "string", "enum": ["customer", "carrier"]},
        "status": {"type": "string", "enum": ["active", "suspended", "closed"]}, "billing": {"type": "string", "enum": ["prepaid", "postpaid"]},
        "balance": {"type": "string", "description": "decimal"}, "credit_limit": {"type": "string", "description": "decimal"},
        "max_channels": {"type": "integer", "description": "0 = unlimited"}, "expires_at": {"type": ["string", "null"], "format": "date-time"},
        "created_at": {"type": "string"}, "updated_at": {"type": "string"}, "ip_settings": {"type": "integer"}, "devices": {"type": "integer"}}},
      "AccountInput": {"type": "object", "required": ["number", "name"], "properties": {
        "number": {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,40}$"}, "name": {"type": "string"}, "kind": {"type": "string", "enum": ["customer", "carrier"]},
        "billing": {"type": "string", "enum": ["prepaid", "postpaid"]}, "balance": {"type": "string"}, "credit_limit": {"type": "string"},
        "max_channels": {"type": "integer"}, "expires_at": {"type": ["string", "null"]}}},
      "AccountUpdate": {"type": "object", "properties": {
        "name": {"type": "string"}, "billing": {"type": "string", "enum": ["prepaid", "postpaid"]}, "credit_limit": {"type": "string"},
        "max_channels": {"type": "integer"}, "expires_at": {"type": ["string", "null"]}}},
      "BalanceAdjustment": {"type": "object", "required": ["account", "amount", "balance", "replayed"], "properties": {
        "account": {"type": "string"}, "amount": {"type": "string"}, "balance": {"type": "string"},
        "replayed": {"type": "boolean", "description": "true when this Idempotency-Key was seen before: nothing moved"}}},
      "IPSetting": {"type": "object", "required": ["id", "account", "name", "network", "prefix", "strip_prefix", "enabled"], "properties": {
        "id": {"type": "integer"}, "account": {"type": "string"}, "name": {"type": "string"}, "network": {"type": "string", "description": "address or CIDR"},
        "prefix": {"type": "string", "pattern": "^[0-9]{0,32}$"}, "strip_prefix": {"type": "boolean"}, "enabled": {"type": "boolean"},
        "created_at": {"type": "string"}, "updated_at": {"type": "string"}}},
      "IPSettingInput": {"type": "object", "required": ["name", "network"], "properties": {
        "name": {"type": "string"}, "network": {"type": "string"}, "prefix": {"type": "string"}, "strip_prefix": {"type": "boolean"}}},
      "IPSettingUpdate": {"type": "object", "properties": {
        "name": {"type": "string"}, "network": {"type": "string"}, "prefix": {"type": "string"}, "strip_prefix": {"type": "boolean"}, "enabled": {"type": "boolean"}}},
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
        "scope": {"type": "string", "enum": ["ip", "user", "pair"], "description": "pair: a source and a user together, where the schema has it"}, "subject": {"type": "string"}, "failures": {"type": "integer"}, "locked_until": {"type": "string"}}},
      "ExplainInput": {"type": "object", "properties": {"ip": {"type": "string"}, "user": {"type": "string", "description": "user@domain"}, "destination": {"type": "string"}}},
      "Explanation": {"type": "object", "required": ["outcome", "sip_code", "reason", "summary", "steps", "dialplan_xml"], "properties": {
        "outcome": {"type": "string", "enum": ["allowed", "rejected", "not_found", "published", "refused", "invalid"]},
        "sip_code": {"type": ["integer", "null"]}, "reason": {"type": "string"}, "summary": {"type": "string"},
        "steps": {"type": "array", "items": {"type": "string"}}, "dialplan_xml": {"type": ["string", "null"]}}},
      "AuditEntry": {"type": "object", "required": ["id", "at", "actor", "action", "object_type", "object_id", "object", "account", "before", "after"], "properties": {
        "id": {"type": "integer"}, "at": {"type": "string"}, "actor": {"type": "string", "description": "api:<operator>, console:<operator>, cli:<user> or sql:<database user>"},
        "action": {"type": "string", "enum": ["create", "update", "delete"]}, "object_type": {"type": "string"}, "object_id": {"type": "string"},
        "object": {"type": "string"}, "account": {"type": ["string", "null"]}, "before": {"type": ["object", "null"]}, "after": {"type": ["object", "null"]}}},
      "AccountPage": {"type": "object", "required": ["items", "next_cursor"], "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/Account"}}, "next_cursor": {"type": ["string", "null"]}}},
      "IPSettingPage": {"type": "object", "required": ["items", "next_cursor"], "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/IPSetting"}}, "next_cursor": {"type": ["string", "null"]}}},
      "DevicePage": {"type": "object", "required": ["items", "next_cursor"], "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/Device"}}, "next_cursor": {"type": ["string", "null"]}}},
      "DomainPage": {"type": "object", "required": ["items", "next_cursor"], "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/Domain"}}, "next_cursor": {"type": ["string", "null"]}}},
      "LockoutPage": {"type": "object", "required": ["items", "next_cursor"], "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/Lockout"}}, "next_cursor": {"type": ["string", "null"]}}},
      "AuditPage": {"type": "object", "required": ["items", "next_cursor"], "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/AuditEntry"}}, "next_cursor": {"type": ["string", "null"]}}}
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
          {"name": "scope", "in": "query", "schema": {"type": "string", "enum": ["ip", "user", "pair"]}}, {"$ref": "#/components/parameters/cursor"}, {"$ref": "#/components/parameters/limit"}],
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
