import Foundation
import Logging
import Postgres
import Store
import SwitchAuthService
#if canImport(Glibc)
import Glibc
#endif

/// A raw TCP client for server tests: sends exact bytes, reads exact responses.
final class RawClient {
    let fd: Int32

    /// `source`: a local address to connect from (any 127.0.0.0/8 address works on loopback), so
    /// tests can be a client other than 127.0.0.1.
    init(port: UInt16, host: String = "127.0.0.1", source: String? = nil) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        if let source {
            // Choose the port at connect (per destination), not at bind: a flood of bound sockets
            // would otherwise use up the ephemeral ports the rest of the suite connects from.
            var one: Int32 = 1
            setsockopt(fd, Int32(IPPROTO_IP), 24 /* IP_BIND_ADDRESS_NO_PORT */, &one, socklen_t(MemoryLayout<Int32>.size))
            var local = sockaddr_in()
            local.sin_family = sa_family_t(AF_INET)
            inet_pton(AF_INET, source, &local.sin_addr)
            let b = withUnsafePointer(to: &local) { p in
                p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            if b != 0 {
                close(fd)
                throw TestHTTPError(description: "bind \(source) failed: errno \(errno)")
            }
        }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = port.bigEndian
        inet_pton(AF_INET, host, &addr.sin_addr)
        let rc = withUnsafePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if rc != 0 {
            close(fd)
            throw TestHTTPError(description: "connect failed: errno \(errno)")
        }
        var tv = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(fd) }

    func send(_ bytes: [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return }
            offset += n
        }
    }

    func send(_ s: String) { send(Array(s.utf8)) }

    private var buffer: [UInt8] = []

    /// Reads one response (status, headers, Content-Length body). nil on EOF/timeout before a full response.
    func readResponse() -> TestResponse? {
        while true {
            if let r = TestResponse.parse(&buffer) { return r }
            var chunk = [UInt8](repeating: 0, count: 65536)
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { return nil }
            buffer += chunk[0..<n]
        }
    }

    /// True when the server closed the connection (EOF) within the socket timeout.
    func isClosedByPeer() -> Bool {
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n == 0 { return true }
            if n < 0 { return errno == ECONNRESET }
        }
    }

    /// Everything the server sends until it closes (or the receive timeout).
    func readAll() -> [UInt8] {
        var out = buffer
        buffer = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { return out }
            out += chunk[0..<n]
        }
    }

    func setReceiveTimeout(milliseconds: Int) {
        var tv = timeval(tv_sec: milliseconds / 1000, tv_usec: Int((milliseconds % 1000) * 1000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    func setReceiveTimeout(seconds: Int) {
        var tv = timeval(tv_sec: seconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }
}

struct TestHTTPError: Error, CustomStringConvertible { var description: String }

struct TestResponse {
    var status: Int
    var headers: [String: String]
    var body: [UInt8]
    var text: String { String(decoding: body, as: UTF8.self) }

    static func parse(_ buffer: inout [UInt8]) -> TestResponse? {
        guard let end = (0..<max(0, buffer.count - 3)).first(where: { buffer[$0] == 13 && buffer[$0 + 1] == 10 && buffer[$0 + 2] == 13 && buffer[$0 + 3] == 10 }) else { return nil }
        let head = String(decoding: buffer[0..<end], as: UTF8.self)
        let lines = head.components(separatedBy: "\r\n")
        let status = Int(lines[0].split(separator: " ")[1]) ?? 0
        var headers: [String: String] = [:]
        for l in lines.dropFirst() {
            if let c = l.firstIndex(of: ":") { headers[l[..<c].lowercased()] = l[l.index(after: c)...].trimmingCharacters(in: .whitespaces) }
        }
        let length = Int(headers["content-length"] ?? "0") ?? 0
        guard buffer.count >= end + 4 + length else { return nil }
        let body = Array(buffer[(end + 4)..<(end + 4 + length)])
        buffer.removeFirst(end + 4 + length)
        return TestResponse(status: status, headers: headers, body: body)
    }
}

/// One request on a new connection, as mod_xml_curl does.
func exchange(_ port: UInt16, _ bytes: [UInt8], source: String? = nil) throws -> TestResponse {
    let c = try RawClient(port: port, source: source)
    c.send(bytes)
    guard let r = c.readResponse() else { throw TestHTTPError(description: "no response") }
    return r
}

/// A POST of a form body to the service path.
func post(_ port: UInt16, _ body: String, path: String = "/fs", extraHeaders: String = "", source: String? = nil) throws -> TestResponse {
    try exchange(port, Array("POST \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: freeswitch-xml/1.0\r\nContent-Type: application/x-www-form-urlencoded\r\n\(extraHeaders)Content-Length: \(body.utf8.count)\r\n\r\n\(body)".utf8), source: source)
}

/// Descriptors of this process that are TCP sockets bound to local `port` (the server's listener
/// and its accepted connections), found through /proc/net/tcp{,6}: exact even while other tests
/// open and close descriptors in parallel.
func serverSocketCount(port: UInt16) -> Int {
    var inodes = Set<String>()
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        guard let text = try? String(contentsOfFile: table, encoding: .utf8) else { continue }
        for line in text.split(separator: "\n").dropFirst() {
            let cols = line.split(separator: " ", omittingEmptySubsequences: true)
            guard cols.count > 9, let colon = cols[1].lastIndex(of: ":"),
                  UInt16(cols[1][cols[1].index(after: colon)...], radix: 16) == port else { continue }
            inodes.insert(String(cols[9]))
        }
    }
    let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
    return fds.filter { fd in
        guard let link = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(fd)"),
              link.hasPrefix("socket:[") else { return false }
        return inodes.contains(String(link.dropFirst(8).dropLast()))
    }.count
}


let quietLogger: Logger = {
    var l = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
    l.logLevel = .critical
    return l
}()

/// The data the captured FreeSWITCH requests expect (fixtures README): domain 127.0.0.1, user 1001
/// with password secret1001, an IP setting for 127.0.0.2 (any destination).
func seedFixtureData(_ db: Connection) throws {
    let a = Admin(db: db)
    try a.addDomain("127.0.0.1")
    var acct = Admin.AccountInput(number: "1000042", name: "Fixture customer")
    acct.balance = "10"
    try a.addAccount(acct)
    try a.addDevice(Admin.DeviceInput(account: "1000042", domain: "127.0.0.1", username: "1001", password: "secret1001"))
    var pbx = Admin.AccountInput(number: "2002", name: "Fixture PBX")
    pbx.balance = "10"
    try a.addAccount(pbx)
    try a.addIP(account: "2002", name: "PBX", network: "127.0.0.2", prefix: "", strip: false)
}

/// A service on an ephemeral loopback port over a fresh database, configured like the switch that
/// produced the fixtures (path /fs, list `ipauth`, contexts `public` and `default`).
func fixtureConfig(database: ConnectionConfig) -> ServiceConfig {
    var c = ServiceConfig()
    c.databaseURL = database.parameters.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
    c.server.port = 0
    c.server.workers = 2
    c.path = "/fs"
    c.aclListName = "ipauth"
    c.directory.userContext = "default"
    c.dialplan.ownedContexts = ["public", "default"]
    c.dialplan.ipAuthProfiles = []
    c.eventSockets = []
    return c
}

final class RunningService {
    let service: Service
    var port: UInt16 { service.port }
    init(_ config: ServiceConfig) throws {
        service = try Service(config: config, logger: quietLogger)
        try service.start()
    }
    func stop() { service.stop() }
}
