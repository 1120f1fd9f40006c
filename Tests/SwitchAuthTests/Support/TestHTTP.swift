import DatabaseTestSupport
import Foundation
import TestSupport
import HTTPServer
import Logging
import Postgres
import Store
import SwitchAuthService
#if canImport(Glibc)
import Glibc
#endif

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
    // These tests write to the database and ask at once; the memory copy may lawfully be up to
    // replica_staleness_ms behind a commit, so here lookups read PostgreSQL. ReplicaTests run the
    // copy, waiting for its proof of currency after each write.
    c.replica = false
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

/// A PostgreSQL cluster of the test's own (for tests that stop, hang or promote it), migrated and
/// loaded with the fixtures' data.
func seededCluster() throws -> TemporaryCluster {
    let cluster = try TemporaryCluster()
    let admin = try Connection(cluster.config())
    defer { admin.close() }
    try Migrator(directory: TestDatabase.migrationsDirectory).migrate(admin)
    try seedFixtureData(admin)
    return cluster
}
