@testable import AdminConsole
import DatabaseTestSupport
import Foundation
import HTTPServer
import Postgres
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
}
