import Foundation
import Postgres
import Store
import SystemCalls

/// What an operator may do. Read-only sees everything but secrets; operator also changes accounts,
/// IP settings, devices, domains and lockouts; admin also manages operators and tokens.
public enum Role: String, Sendable, CaseIterable, Comparable {
    case readOnly = "read-only"
    case `operator`
    case admin

    var rank: Int {
        switch self {
        case .readOnly: 0
        case .operator: 1
        case .admin: 2
        }
    }

    public static func < (a: Role, b: Role) -> Bool { a.rank < b.rank }
}

public struct Operator: Sendable, Equatable {
    public var id: Int64
    public var name: String
    public var role: Role
}

/// A browser session as found from its cookie.
public struct Session: Sendable, Equatable {
    public var who: Operator
    public var csrfToken: String
}

/// Operators, their API tokens and browser sessions, in PostgreSQL (only hashes of secrets).
public struct OperatorStore {
    public let db: Connection
    public init(db: Connection) { self.db = db }

    public static func validName(_ s: String) -> Bool {
        !s.isEmpty && s.utf8.count <= 64 && s.utf8.allSatisfy {
            ($0 >= 48 && $0 <= 57) || ($0 >= 65 && $0 <= 90) || ($0 >= 97 && $0 <= 122) || "_.@-".utf8.contains($0)
        }
    }

    /// Sets who the audit log names for the changes made on this connection from now on.
    public static func setActor(_ db: Connection, _ actor: String) throws {
        try db.execute("SELECT set_config('switchauth.actor', $1, false)", [actor])
    }

    @discardableResult
    public func create(name: String, role: Role, password: String, cost: Secrets.ScryptCost = .standard) throws -> Int64 {
        guard Self.validName(name) else { throw AdminError("operator name must be 1-64 of A-Z a-z 0-9 _ . @ -: \(name)") }
        do { try Secrets.checkOperatorPassword(password) } catch let e as Secrets.PasswordError { throw AdminError(e.description) }
        let hash = try Secrets.hashPassword(password, cost: cost)
        do {
            return try db.execute("INSERT INTO console_operators (name, role, password_hash) VALUES ($1, $2, $3) RETURNING id",
                                  [name, role.rawValue, hash]).decode(0, 0)
        } catch let e as PostgresError where e.isUniqueViolation {
            throw AdminError.conflict("operator \(name) already exists")
        }
    }

    public func setPassword(name: String, password: String, cost: Secrets.ScryptCost = .standard) throws {
        do { try Secrets.checkOperatorPassword(password) } catch let e as Secrets.PasswordError { throw AdminError(e.description) }
        let hash = try Secrets.hashPassword(password, cost: cost)
        let r = try db.execute("UPDATE console_operators SET password_hash = $2 WHERE lower(name) = lower($1)", [name, hash])
        guard r.affectedRows == 1 else { throw AdminError.notFound("unknown operator \(name)") }
        // A new password ends the operator's browser sessions.
        try db.execute("DELETE FROM console_sessions WHERE operator_id = (SELECT id FROM console_operators WHERE lower(name) = lower($1))", [name])
    }

    public func setRole(name: String, role: Role) throws {
        let r = try db.execute("UPDATE console_operators SET role = $2 WHERE lower(name) = lower($1)", [name, role.rawValue])
        guard r.affectedRows == 1 else { throw AdminError.notFound("unknown operator \(name)") }
    }

    public func setDisabled(name: String, _ disabled: Bool) throws {
        let r = try db.execute("UPDATE console_operators SET disabled = $2::bool WHERE lower(name) = lower($1)", [name, disabled ? "true" : "false"])
        guard r.affectedRows == 1 else { throw AdminError.notFound("unknown operator \(name)") }
        if disabled {
            try db.execute("DELETE FROM console_sessions WHERE operator_id = (SELECT id FROM console_operators WHERE lower(name) = lower($1))", [name])
        }
    }

    public func list() throws -> Table {
        let r = try db.execute("""
            SELECT name, role, disabled, to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS created_at
              FROM console_operators ORDER BY lower(name)
            """)
        return Table(columns: ["name", "role", "disabled", "created_at"],
                     rows: (0..<r.rowCount).map { i in (0..<4).map { r.string(i, $0) ?? "" } })
    }

    public var count: Int { (try? db.execute("SELECT count(*) FROM console_operators").decode(0, 0)) ?? 0 }

    /// The operator when name and password match and the operator is enabled. An unknown name
    /// costs the same scrypt work as a known one.
    public func authenticate(name: String, password: String) throws -> Operator? {
        let r = try db.execute("SELECT id, name, role, password_hash, disabled FROM console_operators WHERE lower(name) = lower($1)", [name])
        guard r.rowCount == 1 else {
            _ = Secrets.verifyPassword(password, against: Secrets.decoyHash)
            return nil
        }
        let hash: String = try r.decode(0, 3)
        let disabled: Bool = try r.decode(0, 4)
        guard Secrets.verifyPassword(password, against: hash), !disabled, let role = Role(rawValue: try r.decode(0, 2)) else { return nil }
        return Operator(id: try r.decode(0, 0), name: try r.decode(0, 1), role: role)
    }

    // MARK: API tokens

    /// A new token for the operator; the plaintext is returned once and never stored.
    public func createToken(operatorName: String, tokenName: String) throws -> String {
        guard !tokenName.isEmpty, tokenName.count <= 100 else { throw AdminError("token name must be 1-100 characters") }
        let token = RandomSecrets.token(prefix: "sat_")
        let r = try db.execute("""
            INSERT INTO console_tokens (operator_id, name, token_sha256, hint)
            SELECT id, $2, $3, $4 FROM console_operators WHERE lower(name) = lower($1) RETURNING id
            """, [operatorName, tokenName, Secrets.sha256Hex(token), String(token.prefix(8))])
        guard r.rowCount == 1 else { throw AdminError.notFound("unknown operator \(operatorName)") }
        return token
    }

    public func revokeToken(id: Int64) throws {
        let r = try db.execute("UPDATE console_tokens SET revoked_at = now() WHERE id = $1::bigint AND revoked_at IS NULL", [String(id)])
        guard r.affectedRows == 1 else { throw AdminError.notFound("unknown or already revoked token \(id)") }
    }

    /// The token's operator, if the token is valid (not revoked, operator enabled).
    public func operatorFor(token: String) throws -> Operator? {
        guard token.hasPrefix("sat_"), token.utf8.count < 100 else { return nil }
        let r = try db.execute("""
            UPDATE console_tokens t SET last_used_at = now()
              FROM console_operators o
             WHERE t.token_sha256 = $1 AND t.revoked_at IS NULL AND o.id = t.operator_id AND NOT o.disabled
            RETURNING o.id, o.name, o.role
            """, [Secrets.sha256Hex(token)])
        guard r.rowCount == 1, let role = Role(rawValue: try r.decode(0, 2)) else { return nil }
        return Operator(id: try r.decode(0, 0), name: try r.decode(0, 1), role: role)
    }

    // MARK: sessions

    /// A new session: the cookie value (returned once, stored as its hash) and its CSRF token.
    public func createSession(for who: Operator, ttlSeconds: Int = 8 * 3600) throws -> (cookie: String, csrf: String) {
        let cookie = RandomSecrets.token()
        let csrf = RandomSecrets.token()
        try db.execute("DELETE FROM console_sessions WHERE expires_at < now()")
        try db.execute("""
            INSERT INTO console_sessions (id_sha256, operator_id, csrf_token, expires_at)
            VALUES ($1, $2::bigint, $3, now() + make_interval(secs => $4::int))
            """, [Secrets.sha256Hex(cookie), String(who.id), csrf, String(ttlSeconds)])
        return (cookie, csrf)
    }

    public func session(cookie: String) throws -> Session? {
        guard !cookie.isEmpty, cookie.utf8.count < 100 else { return nil }
        let r = try db.execute("""
            SELECT o.id, o.name, o.role, s.csrf_token FROM console_sessions s JOIN console_operators o ON o.id = s.operator_id
             WHERE s.id_sha256 = $1 AND s.expires_at > now() AND NOT o.disabled
            """, [Secrets.sha256Hex(cookie)])
        guard r.rowCount == 1, let role = Role(rawValue: try r.decode(0, 2)) else { return nil }
        return Session(who: Operator(id: try r.decode(0, 0), name: try r.decode(0, 1), role: role), csrfToken: try r.decode(0, 3))
    }

    public func endSession(cookie: String) throws {
        try db.execute("DELETE FROM console_sessions WHERE id_sha256 = $1", [Secrets.sha256Hex(cookie)])
    }
}
