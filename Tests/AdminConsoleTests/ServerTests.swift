@testable import AdminConsole
import Foundation
import Postgres
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// One request on its own connection (Connection: close); the whole answer as text.
func rawHTTP(port: UInt16, _ request: String) throws -> String {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = port.bigEndian
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr)
    let rc = withUnsafePointer(to: &addr) { p in
        p.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard rc == 0 else { throw ConsoleTestError(description: "connect: errno \(errno)") }
    var tv = timeval(tv_sec: 10, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    let bytes = Array(request.utf8)
    _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    var out: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n <= 0 { break }
        out += chunk[0..<n]
    }
    return String(decoding: out, as: UTF8.self)
}

@Suite("console listener")
struct ConsoleServerTests {
    @Test func servesOverItsOwnListenerFromItsDatabaseThreads() throws {
        let config = try ConsoleTestDatabase.shared.freshDatabase()
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
