@testable import AdminConsole
import DatabaseTestSupport
import Foundation
import HTTPServer
import Locking
import Postgres
import Store
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// One request on its own connection (Connection: close); the whole answer as text.
func rawHTTP(port: UInt16, _ request: String) throws -> String {
    let socket = try TCPSocket.connect(host: "127.0.0.1", port: port, timeoutMilliseconds: 10_000)
    defer { socket.close() }
    try socket.sendAll(request)
    return String(decoding: try socket.receiveToEnd(timeoutMilliseconds: 10_000), as: UTF8.self)
}

@Suite("console listener")
struct ConsoleServerTests {
    @Test func servesOverItsOwnListenerFromItsDatabaseThreads() throws {
        let config = try TestDatabase.shared.freshDatabase()
        var settings = ConsoleSettings(database: config)
        settings.port = 0
        let server = try ConsoleServer(app: ConsoleApp(settings: settings))
        try server.start()
        defer { server.stop() }
        let health = try rawHTTP(port: server.port, "GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        #expect(health.hasPrefix("HTTP/1.1 200 OK"))
        #expect(health.contains("\"database\":\"up\""))
        let css = try rawHTTP(port: server.port, "GET /static/console.css HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        #expect(css.hasPrefix("HTTP/1.1 200 OK") && css.contains("text/css"))
        let login = try rawHTTP(port: server.port, "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        #expect(login.hasPrefix("HTTP/1.1 303") && login.contains("Location: /login"))
        let api = try rawHTTP(port: server.port, "GET /api/v1/accounts HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        #expect(api.hasPrefix("HTTP/1.1 401") && api.contains("application/problem+json"))
        // DNS rebinding: a page whose own name now resolves to 127.0.0.1 is not served.
        let rebound = try rawHTTP(port: server.port, "GET /login HTTP/1.1\r\nHost: attacker.example:\(server.port)\r\nConnection: close\r\n\r\n")
        #expect(rebound.hasPrefix("HTTP/1.1 421"))
        let css2 = try rawHTTP(port: server.port, "GET /static/console.css HTTP/1.1\r\nHost: attacker.example\r\nConnection: close\r\n\r\n")
        #expect(css2.hasPrefix("HTTP/1.1 421"))
        let local = try rawHTTP(port: server.port, "GET /login HTTP/1.1\r\nHost: localhost:\(server.port)\r\nConnection: close\r\n\r\n")
        #expect(local.hasPrefix("HTTP/1.1 200"))
    }

    /// With the services' memory copies on, a change is answered only once every copy is bound to
    /// hold it (replica_staleness_ms after its commit), so that it is in force when the operator
    /// sees it done; its thread takes other requests meanwhile.
    @Test func aChangeIsAnsweredOnceInForceEverywhere() throws {
        let config = try TestDatabase.shared.freshDatabase()
        let db = try Connection(config)
        defer { db.close() }
        var pbx = Admin.AccountInput(number: "1001", name: "PBX1")
        pbx.balance = "10"
        try Admin(db: db).addAccount(pbx)
        let store = OperatorStore(db: db)
        try store.create(name: "root", role: .admin, password: "root-password-123", cost: testCost)
        let token = try store.createToken(operatorName: "root", tokenName: "test")
        var settings = ConsoleSettings(database: config)
        settings.port = 0
        settings.databaseThreads = 1
        settings.changeInForceAfterMilliseconds = 400
        let server = try ConsoleServer(app: ConsoleApp(settings: settings))
        try server.start()
        defer { server.stop() }
        let port = server.port
        @Sendable func request(_ method: String, _ target: String) throws -> (String, Double) {
            let t0 = DispatchTime.now().uptimeNanoseconds
            let text = try rawHTTP(port: port, "\(method) \(target) HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer \(token)\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return (text, Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
        }
        let (suspended, took) = try request("POST", "/api/v1/accounts/1001/suspend")
        #expect(suspended.hasPrefix("HTTP/1.1 200") && suspended.contains("suspended"), "\(suspended)")
        #expect(took >= 0.4, "answered \(took) s after the request, not before the copies must hold it")
        // A read while a change waits is answered by the same, single database thread: the wait
        // holds no thread.
        let reader = DispatchSemaphore(value: 0)
        let readAt = Locked<Double>(0)
        Thread {
            let started = DispatchTime.now().uptimeNanoseconds
            let (text, _) = (try? request("POST", "/api/v1/accounts/1001/resume")) ?? ("", 0)
            readAt.withLock { $0 = text.hasPrefix("HTTP/1.1 200") ? Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9 : -1 }
            reader.signal()
        }.start()
        usleep(50_000)
        let (list, _) = try request("GET", "/api/v1/accounts/1001")
        #expect(list.hasPrefix("HTTP/1.1 200"), "a read while a change waits")
        #expect(readAt.withLock { $0 } == 0, "the read is answered before the change's wait ends")
        reader.wait()
        #expect(readAt.withLock { $0 } >= 0.4, "the resume waits too")
    }
}
