@testable import AdminConsole
import CLITestSupport
import DatabaseTestSupport
import Foundation
import Postgres
import Store
import SwitchAuthCLI
import Testing

/// Cheap scrypt for tests that create many operators; the format and verification are the same.
let testCost = Secrets.ScryptCost(logN: 10, r: 8, p: 1)

func consoleCLI(_ args: [String], db: ConnectionConfig, input: [String] = []) -> (code: Int32, out: String, err: String) {
    let r = cli(args, db: db, input: input, wait: true)
    return (r.code, r.out, r.err)
}

@Suite("console operators, passwords, tokens, sessions")
struct OperatorTests {
    @Test func scryptHashVerifiesAndHidesThePassword() throws {
        let h = try Secrets.hashPassword("correct horse battery", cost: testCost)
        #expect(h.hasPrefix("scrypt$10$8$1$"))
        #expect(!h.contains("correct"))
        #expect(Secrets.verifyPassword("correct horse battery", against: h))
        #expect(!Secrets.verifyPassword("correct horse batterz", against: h))
        #expect(!Secrets.verifyPassword("x", against: "scrypt$99$8$1$AAAA$AAAA"))
        #expect(!Secrets.verifyPassword("x", against: "plain"))
        // Two hashes of one password differ (random salt).
        #expect(try Secrets.hashPassword("correct horse battery", cost: testCost) != h)
        // The standard cost is what the store uses by default.
        let standard = try Secrets.hashPassword("correct horse battery")
        #expect(standard.hasPrefix("scrypt$15$8$1$"))
        #expect(Secrets.verifyPassword("correct horse battery", against: standard))
    }

    @Test func operatorsRolesTokensAndSessions() throws {
        let config = try TestDatabase.shared.freshDatabase()
        let db = try Connection(config)
        let store = OperatorStore(db: db)
        try store.create(name: "alice", role: .admin, password: "alice-password-1", cost: testCost)
        #expect(throws: AdminError.conflict("operator ALICE already exists")) { try store.create(name: "ALICE", role: .admin, password: "alice-password-1", cost: testCost) }
        #expect(throws: AdminError("operator password must be at least 10 characters")) { try store.create(name: "bob", role: .admin, password: "short", cost: testCost) }
        #expect(throws: AdminError.self) { try store.create(name: "bad name", role: .admin, password: "long enough password", cost: testCost) }

        #expect(try store.authenticate(name: "alice", password: "alice-password-1")?.role == .admin)
        #expect(try store.authenticate(name: "alice", password: "wrong-password-1") == nil)
        #expect(try store.authenticate(name: "nobody", password: "alice-password-1") == nil)

        let stored: String = try db.execute("SELECT password_hash FROM console_operators").decode(0, 0)
        #expect(stored.hasPrefix("scrypt$") && !stored.contains("alice-password-1"))

        let token = try store.createToken(operatorName: "alice", tokenName: "billing")
        #expect(token.hasPrefix("sat_") && token.count > 40)
        #expect(try store.operatorFor(token: token)?.name == "alice")
        #expect(try store.operatorFor(token: token + "x") == nil)
        let tokenRows: String = try db.execute("SELECT string_agg(token_sha256 || hint, ',') FROM console_tokens").decode(0, 0)
        #expect(!tokenRows.contains(token))
        let id: Int64 = try db.execute("SELECT id FROM console_tokens").decode(0, 0)
        _ = try ConsoleStore(db: db).revokeToken(id)
        #expect(try store.operatorFor(token: token) == nil)

        let who = try #require(try store.authenticate(name: "alice", password: "alice-password-1"))
        let (cookie, csrf) = try store.createSession(for: who)
        let session = try #require(try store.session(cookie: cookie))
        #expect(session.who == who && session.csrfToken == csrf)
        let sessionRow: String = try db.execute("SELECT id_sha256 FROM console_sessions").decode(0, 0)
        #expect(sessionRow != cookie)
        // Disabled (another admin is left) ends alice's sessions and logins.
        try store.create(name: "carol", role: .admin, password: "carol-password-1", cost: testCost)
        try ConsoleStore(db: db).setOperatorDisabled("alice", true)
        #expect(try store.session(cookie: cookie) == nil)
        #expect(try store.authenticate(name: "alice", password: "alice-password-1") == nil)

        // Operators' changes are audited without their secrets.
        let audit: String = try db.execute("SELECT string_agg(coalesce(before::text, '') || coalesce(after::text, ''), ' ') FROM audit_log WHERE object_type LIKE 'console_%'").decode(0, 0)
        #expect(!audit.contains("scrypt$") && !audit.contains(Secrets.sha256Hex(token)))
        #expect(audit.contains("\"disabled\": true"))
    }

    @Test func loginThrottleIsPerOperatorAndSource() {
        var t = LoginThrottleState(limit: 3, windowSeconds: 60)
        let s: UInt64 = 1_000_000_000
        for _ in 0..<3 {
            #expect(t.retryAfter(name: "alice", client: "127.0.0.1", now: 100 * s) == nil)
            t.failed(name: "alice", client: "127.0.0.1", now: 100 * s)
        }
        #expect(t.retryAfter(name: "Alice", client: "127.0.0.1", now: 110 * s) == 50)
        // Failures from one address never lock the operator out from another.
        #expect(t.retryAfter(name: "alice", client: "127.0.0.9", now: 110 * s) == nil)
        #expect(t.retryAfter(name: "bob", client: "127.0.0.1", now: 110 * s) == nil)
        #expect(t.retryAfter(name: "alice", client: "127.0.0.1", now: 161 * s) == nil)
        // Many names from one address: other operators at that address are not refused.
        for i in 0..<50 { t.failed(name: "n\(i)", client: "127.0.0.2", now: 200 * s) }
        #expect(t.retryAfter(name: "fresh", client: "127.0.0.2", now: 200 * s) == nil)
        t.failed(name: "carol", client: "127.0.0.3", now: 300 * s)
        t.failed(name: "carol", client: "127.0.0.3", now: 300 * s)
        t.succeeded(name: "carol", client: "127.0.0.3")
        t.failed(name: "carol", client: "127.0.0.3", now: 300 * s)
        #expect(t.retryAfter(name: "carol", client: "127.0.0.3", now: 300 * s) == nil)
    }

    @Test func createAdminFromTheCLIAndTheActorInTheAuditLog() throws {
        let config = try TestDatabase.shared.freshDatabase()
        let r = consoleCLI(["console", "create-admin", "root-admin", "--password-stdin"], db: config, input: ["a long admin password"])
        #expect(r.code == 0, "\(r.err)")
        #expect(!r.out.contains("a long admin password"))
        let db = try Connection(config)
        #expect(try OperatorStore(db: db).authenticate(name: "root-admin", password: "a long admin password")?.role == .admin)
        let added = consoleCLI(["console", "add-operator", "bob", "--role", "operator", "--password-stdin"], db: config, input: ["bob's long password"])
        #expect(added.code == 0 && added.out.contains("created operator bob with role operator"), "\(added.out)")
        let bobToken = consoleCLI(["console", "create-token", "bob", "--name", "billing"], db: config)
        #expect(bobToken.code == 0 && bobToken.out.hasPrefix("sat_"))
        let listed = consoleCLI(["console", "tokens", "bob"], db: config)
        #expect(listed.code == 0 && listed.out.contains("billing") && !listed.out.contains(bobToken.out.trimmingCharacters(in: .whitespacesAndNewlines)))
        let tokenID: Int64 = try db.execute("SELECT id FROM console_tokens WHERE name = 'billing'").decode(0, 0)
        #expect(consoleCLI(["console", "revoke-token", String(tokenID)], db: config).code == 0)
        #expect(try OperatorStore(db: db).operatorFor(token: bobToken.out.trimmingCharacters(in: .whitespacesAndNewlines)) == nil)
        #expect(consoleCLI(["console", "revoke-token", String(tokenID)], db: config).err.contains("already revoked"))
        #expect(consoleCLI(["console", "disable-operator", "bob"], db: config).code == 0)
        #expect(try OperatorStore(db: db).authenticate(name: "bob", password: "bob's long password") == nil)
        #expect(consoleCLI(["console", "disable-operator", "root-admin"], db: config).err.contains("last enabled admin"))
        #expect(consoleCLI(["console", "enable-operator", "bob"], db: config).code == 0)
        let revokedBy: String = try db.execute("SELECT actor FROM audit_log WHERE object_type = 'console_tokens' AND action = 'update'").decode(0, 0)
        #expect(revokedBy.hasPrefix("cli:"))
        let short = consoleCLI(["console", "add-operator", "viewer", "--role", "read-only", "--password-stdin"], db: config, input: ["short"])
        #expect(short.code == 1 && short.err.contains("at least 10"))
        let token = consoleCLI(["console", "create-token", "root-admin", "--name", "ci"], db: config)
        #expect(token.code == 0 && token.out.hasPrefix("sat_"))
        let actor: String = try db.execute("SELECT actor FROM audit_log WHERE object_type = 'console_operators'").decode(0, 0)
        #expect(actor.hasPrefix("cli:"))
    }

    @Test func cliChangesAreAuditedWithTheirLogin() throws {
        let config = try TestDatabase.shared.freshDatabase()
        #expect(consoleCLI(["account", "add", "4242", "--name", "From the CLI"], db: config).code == 0)
        #expect(consoleCLI(["account", "suspend", "4242"], db: config).code == 0)
        let db = try Connection(config)
        let r = try db.execute("SELECT actor, action, before->>'status', after->>'status' FROM audit_log WHERE object_type = 'accounts' ORDER BY id")
        #expect(r.rowCount == 2)
        #expect(r.string(0, 0)?.hasPrefix("cli:") == true && r.string(0, 1) == "create")
        #expect(r.string(1, 1) == "update" && r.string(1, 2) == "active" && r.string(1, 3) == "suspended")
        // A refused command changes nothing and records nothing.
        #expect(consoleCLI(["ip", "add", "4242", "--name", "x", "--ip", "203.0.113.0/16"], db: config).code == 1)
        let n: Int = try db.execute("SELECT count(*) FROM audit_log WHERE object_type = 'ip_settings'").decode(0, 0)
        #expect(n == 0)
    }
}
