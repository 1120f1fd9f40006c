import Postgres

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

/// An operator as found by a login, a token or a session (only the store makes them).
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

/// The console's operators, API tokens and sessions: the statements. Secrets arrive hashed (the
/// console's `OperatorStore` hashes them): a password as its scrypt string, a token or a session
/// cookie as its SHA-256.
extension ConsoleStore {
    /// Sets who the audit log names for the changes made on this connection from now on ("": nobody).
    public func setActor(_ actor: String) throws {
        try db.execute("SELECT set_config('switchauth.actor', $1, false)", [actor])
    }

    @discardableResult
    public func insertOperator(name: String, role: Role, passwordHash: String) throws -> Int64 {
        do {
            return try db.execute("INSERT INTO console_operators (name, role, password_hash) VALUES ($1, $2, $3) RETURNING id",
                                  [name, role.rawValue, passwordHash]).decode(0, 0)
        } catch let e as PostgresError where e.isUniqueViolation {
            throw AdminError.conflict("operator \(name) already exists")
        }
    }

    /// A new password; it ends the operator's browser sessions.
    public func setOperatorPassword(name: String, passwordHash: String) throws {
        let r = try db.execute("UPDATE console_operators SET password_hash = $2 WHERE lower(name) = lower($1)", [name, passwordHash])
        guard r.affectedRows == 1 else { throw AdminError.notFound("unknown operator \(name)") }
        try db.execute("DELETE FROM console_sessions WHERE operator_id = (SELECT id FROM console_operators WHERE lower(name) = lower($1))", [name])
    }

    public func setOperatorRole(name: String, role: Role) throws {
        let r = try db.execute("UPDATE console_operators SET role = $2 WHERE lower(name) = lower($1)", [name, role.rawValue])
        guard r.affectedRows == 1 else { throw AdminError.notFound("unknown operator \(name)") }
    }

    public var operatorCount: Int { (try? db.execute("SELECT count(*) FROM console_operators").decode(0, 0)) ?? 0 }

    /// The operator of that name with its password hash and whether it is disabled.
    public func operatorCredentials(name: String) throws -> (operator: Operator, passwordHash: String, disabled: Bool)? {
        let r = try db.execute("SELECT id, name, role, password_hash, disabled FROM console_operators WHERE lower(name) = lower($1)", [name])
        guard r.rowCount == 1, let role = Role(rawValue: try r.decode(0, 2)) else { return nil }
        return (Operator(id: try r.decode(0, 0), name: try r.decode(0, 1), role: role), try r.decode(0, 3), try r.decode(0, 4))
    }

    /// A token for the operator, stored as its SHA-256 and its first characters (`hint`).
    public func insertToken(operatorName: String, tokenName: String, sha256: String, hint: String) throws {
        let r = try db.execute("""
            INSERT INTO console_tokens (operator_id, name, token_sha256, hint)
            SELECT id, $2, $3, $4 FROM console_operators WHERE lower(name) = lower($1) RETURNING id
            """, [operatorName, tokenName, sha256, hint])
        guard r.rowCount == 1 else { throw AdminError.notFound("unknown operator \(operatorName)") }
    }

    /// The token's operator when the token is valid (not revoked, operator enabled); marks its use.
    public func operatorForToken(sha256: String) throws -> Operator? {
        let r = try db.execute("""
            UPDATE console_tokens t SET last_used_at = now()
              FROM console_operators o
             WHERE t.token_sha256 = $1 AND t.revoked_at IS NULL AND o.id = t.operator_id AND NOT o.disabled
            RETURNING o.id, o.name, o.role
            """, [sha256])
        guard r.rowCount == 1, let role = Role(rawValue: try r.decode(0, 2)) else { return nil }
        return Operator(id: try r.decode(0, 0), name: try r.decode(0, 1), role: role)
    }

    /// A session for `who`, its cookie stored as its SHA-256 (expired sessions are removed first).
    public func insertSession(cookieSHA256: String, for who: Operator, csrfToken: String, ttlSeconds: Int) throws {
        try db.execute("DELETE FROM console_sessions WHERE expires_at < now()")
        try db.execute("""
            INSERT INTO console_sessions (id_sha256, operator_id, csrf_token, expires_at)
            VALUES ($1, $2::bigint, $3, now() + make_interval(secs => $4::int))
            """, [cookieSHA256, String(who.id), csrfToken, String(ttlSeconds)])
    }

    /// The session of that cookie while it has not expired and its operator is enabled.
    public func session(cookieSHA256: String) throws -> Session? {
        let r = try db.execute("""
            SELECT o.id, o.name, o.role, s.csrf_token FROM console_sessions s JOIN console_operators o ON o.id = s.operator_id
             WHERE s.id_sha256 = $1 AND s.expires_at > now() AND NOT o.disabled
            """, [cookieSHA256])
        guard r.rowCount == 1, let role = Role(rawValue: try r.decode(0, 2)) else { return nil }
        return Session(who: Operator(id: try r.decode(0, 0), name: try r.decode(0, 1), role: role), csrfToken: try r.decode(0, 3))
    }

    public func deleteSession(cookieSHA256: String) throws {
        try db.execute("DELETE FROM console_sessions WHERE id_sha256 = $1", [cookieSHA256])
    }
}
