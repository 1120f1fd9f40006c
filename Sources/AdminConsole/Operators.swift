import Foundation
import Postgres
import Store
import SystemCalls

/// Operators, their API tokens and browser sessions: names and passwords checked, passwords
/// hashed (scrypt), tokens and cookies generated and hashed (SHA-256) here; the statements are the
/// store's (`ConsoleStore`), which never sees a secret in the clear.
public struct OperatorStore {
    public let db: Connection
    public init(db: Connection) { self.db = db }
    private var store: ConsoleStore { ConsoleStore(db: db) }

    public static func validName(_ s: String) -> Bool {
        !s.isEmpty && s.utf8.count <= 64 && s.utf8.allSatisfy {
            ($0 >= 48 && $0 <= 57) || ($0 >= 65 && $0 <= 90) || ($0 >= 97 && $0 <= 122) || "_.@-".utf8.contains($0)
        }
    }

    /// Sets who the audit log names for the changes made on this connection from now on.
    public static func setActor(_ db: Connection, _ actor: String) throws {
        try ConsoleStore(db: db).setActor(actor)
    }

    @discardableResult
    public func create(name: String, role: Role, password: String, cost: Secrets.ScryptCost = .standard) throws -> Int64 {
        guard Self.validName(name) else { throw AdminError("operator name must be 1-64 of A-Z a-z 0-9 _ . @ -: \(name)") }
        do { try Secrets.checkOperatorPassword(password) } catch let e as Secrets.PasswordError { throw AdminError(e.description) }
        return try store.insertOperator(name: name, role: role, passwordHash: try Secrets.hashPassword(password, cost: cost))
    }

    /// A new password ends the operator's browser sessions.
    public func setPassword(name: String, password: String, cost: Secrets.ScryptCost = .standard) throws {
        do { try Secrets.checkOperatorPassword(password) } catch let e as Secrets.PasswordError { throw AdminError(e.description) }
        try store.setOperatorPassword(name: name, passwordHash: try Secrets.hashPassword(password, cost: cost))
    }

    public func setRole(name: String, role: Role) throws {
        try store.setOperatorRole(name: name, role: role)
    }

    public var count: Int { store.operatorCount }

    /// The operator when name and password match and the operator is enabled. An unknown name
    /// costs the same scrypt work as a known one.
    public func authenticate(name: String, password: String) throws -> Operator? {
        guard let found = try store.operatorCredentials(name: name) else {
            _ = Secrets.verifyPassword(password, against: Secrets.decoyHash)
            return nil
        }
        guard Secrets.verifyPassword(password, against: found.passwordHash), !found.disabled else { return nil }
        return found.operator
    }

    // MARK: API tokens

    /// A new token for the operator; the plaintext is returned once and never stored.
    public func createToken(operatorName: String, tokenName: String) throws -> String {
        guard !tokenName.isEmpty, tokenName.count <= 100 else { throw AdminError("token name must be 1-100 characters") }
        let token = RandomSecrets.token(prefix: "sat_")
        try store.insertToken(operatorName: operatorName, tokenName: tokenName, sha256: Secrets.sha256Hex(token), hint: String(token.prefix(8)))
        return token
    }

    /// The token's operator, if the token is valid (not revoked, operator enabled).
    public func operatorFor(token: String) throws -> Operator? {
        guard token.hasPrefix("sat_"), token.utf8.count < 100 else { return nil }
        return try store.operatorForToken(sha256: Secrets.sha256Hex(token))
    }

    // MARK: sessions

    /// A new session: the cookie value (returned once, stored as its hash) and its CSRF token.
    public func createSession(for who: Operator, ttlSeconds: Int = 8 * 3600) throws -> (cookie: String, csrf: String) {
        let cookie = RandomSecrets.token()
        let csrf = RandomSecrets.token()
        try store.insertSession(cookieSHA256: Secrets.sha256Hex(cookie), for: who, csrfToken: csrf, ttlSeconds: ttlSeconds)
        return (cookie, csrf)
    }

    public func session(cookie: String) throws -> Session? {
        guard !cookie.isEmpty, cookie.utf8.count < 100 else { return nil }
        return try store.session(cookieSHA256: Secrets.sha256Hex(cookie))
    }

    public func endSession(cookie: String) throws {
        try store.deleteSession(cookieSHA256: Secrets.sha256Hex(cookie))
    }
}
