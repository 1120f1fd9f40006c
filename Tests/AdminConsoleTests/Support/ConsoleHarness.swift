@testable import AdminConsole
import DatabaseTestSupport
import Foundation
import HTTPServer
import Postgres
import Store

/// A console application over a fresh database, with an admin, an operator and a read-only
/// operator and an API token for each; requests go straight to `ConsoleApp.handle`.
final class ConsoleHarness {
    let config: ConnectionConfig
    let db: Connection
    let app: ConsoleApp
    var tokens: [Role: String] = [:]

    init(seed: Bool = true) throws {
        config = try TestDatabase.shared.freshDatabase()
        db = try Connection(config)
        let settings = ConsoleSettings(database: config)
        app = ConsoleApp(settings: settings, throttle: LoginThrottle(limit: 3, windowSeconds: 60))
        let store = OperatorStore(db: db)
        for (name, role) in [("root", Role.admin), ("oper", .operator), ("viewer", .readOnly)] {
            try store.create(name: name, role: role, password: "\(name)-password-123", cost: testCost)
            tokens[role] = try store.createToken(operatorName: name, tokenName: "test")
        }
        if seed {
            let a = Admin(db: db)
            try a.addDomain("voip.example.com")
            var pbx1 = Admin.AccountInput(number: "1001", name: "PBX1")
            pbx1.balance = "100"
            try a.addAccount(pbx1)
            try a.addAccount(Admin.AccountInput(number: "1012", name: "PBX12"))
            try a.addIP(account: "1001", name: "PBX1", network: "203.0.113.10", prefix: "91", strip: false)
        }
    }

    struct Answer {
        var status: Int
        var headers: [(name: String, value: String)]
        var body: String
        var contentType: String
        var json: [String: Any] {
            (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any] ?? [:]
        }
        var items: [[String: Any]] { json["items"] as? [[String: Any]] ?? [] }
        func header(_ n: String) -> String? { headers.first { $0.name.lowercased() == n.lowercased() }?.value }
    }

    func call(_ method: String, _ target: String, json body: Any? = nil, role: Role? = .admin, headers: [(String, String)] = [],
              rawBody: [UInt8]? = nil, cookie: String? = nil, client: String = "127.0.0.1") -> Answer {
        var h: [(name: String, value: String)] = headers.map { (name: $0.0, value: $0.1) }
        if let role, let t = tokens[role] { h.append(("Authorization", "Bearer \(t)")) }
        var bytes: [UInt8] = rawBody ?? []
        if let body {
            bytes = [UInt8](try! JSONSerialization.data(withJSONObject: body))
            h.append(("Content-Type", "application/json"))
        }
        if let cookie { h.append(("Cookie", cookie)) }
        let r = app.handle(ConsoleRequest(method: method, target: target, headers: h, body: bytes, client: client), db: db)
        return Answer(status: r.status.code, headers: r.headers, body: String(decoding: r.body, as: UTF8.self), contentType: r.contentType)
    }
}
