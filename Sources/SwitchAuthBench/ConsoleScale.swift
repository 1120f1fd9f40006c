import ArgumentParser
import Foundation
import HTTPServer
import Locking
import Postgres
import Store
import Synchronization
import SystemCalls
#if canImport(Glibc)
import Glibc
#endif

/// `switchauth-bench console`: the operators' console at scale. Loads the benchmark dataset
/// (100,000 accounts, 1,000,000 devices, 100,000 IP settings), starts `switchauth console` and
/// `switchauth serve` as children, times every list and page of the console, and measures the
/// mod_xml_curl listener's latency (open loop, directory lookups) without and then with console
/// traffic running beside it.
struct ConsoleScale: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "console",
        abstract: "Console page and list times at 100,000 accounts / 1,000,000 devices; mod_xml_curl latency with and without console traffic.")

    @Flag(help: "Seconds and a small dataset (CI).") var smoke = false
    @Option(help: "Requests per console URL.") var samples = 30
    @Option(help: "Open-loop rate of the mod_xml_curl runs (requests/s).") var rate: Double = 1000
    @Option(help: "Seconds per mod_xml_curl run.") var seconds: Double = 10
    @Option(help: "Console requests/s of the paced run (operators at work).") var consoleRate: Double = 20

    func run() throws {
        let data = smoke ? Dataset.smoke : Dataset.full
        let secs = smoke ? 1.5 : seconds
        let exeDir = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        let switchauth = exeDir.appendingPathComponent("switchauth").path
        guard FileManager.default.isExecutableFile(atPath: switchauth) else { throw BenchError("\(switchauth) not found: build it first") }
        print("== console at scale: \(data.accounts) accounts, \(data.devices) devices, \(data.ipSettings) IP settings")
        let cluster = try TemporaryCluster()
        defer { cluster.stop() }
        var long = cluster.config(database: "postgres")
        long.queryTimeoutMilliseconds = 900_000
        try Connection(long).executeScript("CREATE DATABASE bench")
        long = cluster.config(database: "bench")
        long.queryTimeoutMilliseconds = 900_000
        let db = try Connection(long)
        try Migrator(directory: Migrator.defaultDirectory()).migrate(db)
        let loaded = try data.load(db)
        // Since 0013 a bulk insert is audited as one row; an operator's audit log grows with everyday
        // changes instead. The audit pages get a history of that size: one change per device.
        try db.execute("""
            INSERT INTO audit_log (actor, action, object_type, object_id, object_label, account_id, before, after)
            SELECT 'console:bench', 'update', 'sip_devices', v.id::text, v.username || '@' || d.name, v.account_id,
                   jsonb_build_object('caller_id_name', ''), jsonb_build_object('caller_id_name', v.caller_id_name)
              FROM sip_devices v JOIN sip_domains d ON d.id = v.domain_id
            """)
        let auditRows: Int = try db.execute("SELECT count(*) FROM audit_log").decode(0, 0)
        print("dataset loaded in \(String(format: "%.1f", loaded)) s (audit rows: \(auditRows), one change per device)")
        // A few lockouts and a suspended account, so those lists have something to show.
        try db.execute("INSERT INTO auth_failures (scope, subject, failures, locked_until) SELECT 'ip', '192.0.2.' || g, 10, now() + interval '1 hour' FROM generate_series(1, 20) g")
        try db.execute("UPDATE accounts SET status = 'suspended' WHERE number IN ('A77', 'A50001')")
        let ipID: Int64 = try db.execute("SELECT min(id) FROM ip_settings").decode(0, 0)

        let url = "host=\(cluster.directory) port=5432 user=postgres dbname=bench"
        let work = cluster.directory
        let pwFile = "\(work)/bench-admin-password"
        try "bench-admin-password".write(toFile: pwFile, atomically: true, encoding: .utf8)
        guard runChild(switchauth, ["console", "create-admin", "bench", "--password-file", pwFile, "--database-url", url], log: "\(work)/create-admin.log") == 0,
              runChild(switchauth, ["console", "create-token", "bench", "--database-url", url], log: "\(work)/token.log") == 0,
              let token = try? String(contentsOfFile: "\(work)/token.log", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines),
              token.hasPrefix("sat_") else { throw BenchError("cannot create the bench operator; see \(work)") }

        let consolePort = freePort()
        let console = try ChildProcess(switchauth, ["console", "--database-url", url, "--port", String(consolePort)], log: "\(work)/console.log")
        defer { _ = console.stop() }
        let servePort = freePort()
        let service = try ChildProcess(switchauth, ["serve"], environment: [
            "SWITCHAUTH_DATABASE_URL": url, "SWITCHAUTH_LISTEN_PORT": String(servePort), "SWITCHAUTH_EVENT_SOCKETS": "",
            "SWITCHAUTH_MAX_CONNECTIONS": "20000", "SWITCHAUTH_BASIC_AUTH": RequestShapes.credentials,
        ], log: "\(work)/serve.log")
        defer { _ = service.stop() }
        guard waitForPort(consolePort), waitForPort(servePort) else { throw BenchError("children did not start; see \(work)") }

        let client = try ConsoleClient(port: consolePort, token: token)
        try client.login(name: "bench", password: "bench-admin-password")
        let midAccount = "A\(data.accounts / 2)"
        let user = "u\(data.devices / 3)@d\((data.devices / 3 - 1) % data.domains + 1).bench.example"
        let urls: [String] = [
            "/accounts", "/accounts?q=account%2012345", "/accounts?q=A9999", "/accounts?status=suspended", "/accounts?cursor=A5",
            "/accounts/\(midAccount)", "/ip-settings/\(ipID)/edit", "/domains", "/lockouts", "/audit", "/audit?account=\(midAccount)",
            "/explain?ip=10.0.0.1&destination=9112345", "/explain?user=\(user)&destination=15551234",
            "/api/v1/accounts", "/api/v1/accounts?q=account%2012345", "/api/v1/accounts?status=suspended", "/api/v1/accounts?kind=carrier&cursor=A5",
            "/api/v1/accounts/\(midAccount)", "/api/v1/devices", "/api/v1/devices?account=\(midAccount)", "/api/v1/devices?q=u99999",
            "/api/v1/devices?domain=d7.bench.example", "/api/v1/devices?cursor=500000", "/api/v1/ip-settings", "/api/v1/ip-settings?account=\(midAccount)",
            "/api/v1/ip-settings?contains=10.0.0.1", "/api/v1/domains", "/api/v1/lockouts", "/api/v1/audit", "/api/v1/audit?account=\(midAccount)",
            "/api/v1/devices/\(user)",
            "/dashboard", "/devices?q=u99999", "/ip-settings?contains=10.0.0.1", "/accounts?limit=10&cursor=%3CA50000", "/api/v1/dashboard",
        ]
        print("\n| console URL | status | p50 ms | p95 ms | max ms |")
        print("|---|---|---|---|---|")
        var worst = 0.0
        for u in urls {
            var times: [Double] = []
            var status = 0
            for _ in 0..<max(1, smoke ? 5 : samples) {
                let t0 = now()
                status = try client.get(u)
                times.append(Double(now() - t0) / 1e6)
            }
            times.sort()
            let p95 = times[min(times.count - 1, Int(Double(times.count) * 0.95))]
            worst = max(worst, p95)
            print("| `\(u)` | \(status) | \(String(format: "%.1f", times[times.count / 2])) | \(String(format: "%.1f", p95)) | \(String(format: "%.1f", times.last!)) |")
        }
        let explainTimes = try (0..<10).map { _ -> Double in
            let t0 = now()
            _ = try client.post("/api/v1/explain", json: #"{"ip":"10.0.0.1","destination":"9112345"}"#)
            return Double(now() - t0) / 1e6
        }.sorted()
        print("| `POST /api/v1/explain` | 200 | \(String(format: "%.1f", explainTimes[5])) | \(String(format: "%.1f", explainTimes[9])) | \(String(format: "%.1f", explainTimes[9])) |")
        print("worst p95 of a page or list: \(String(format: "%.1f", worst)) ms (target < 50 ms)")

        // mod_xml_curl latency, open loop, new connection per request; then with console traffic.
        let shapes = try RequestShapes(path: "/freeswitch", port: servePort)
        let gen = LoadGenerator(port: servePort, keepAlive: false) { rng in shapes.wrap(shapes.directory(data.device(&rng), rng: &rng)) }
        _ = gen.closedLoop(clients: 2, seconds: min(1, secs))
        let quiet = gen.openLoop(rate: rate, seconds: secs, threads: 4)
        /// The open-loop run while 2 console clients cycle through every URL: paced at `perSecond`
        /// requests/s in all, or as fast as answers come (nil).
        func withConsole(perSecond: Double?) -> (LoadGenerator.OpenLoopResult, Double) {
            let stop = Atomic<Bool>(false)
            let done = Atomic<Int>(0)
            let group = DispatchGroup()
            for t in 0..<2 {
                group.enter()
                Thread {
                    defer { group.leave() }
                    guard let c = try? ConsoleClient(port: consolePort, token: token), (try? c.login(name: "bench", password: "bench-admin-password")) != nil else { return }
                    var i = t
                    let interval = perSecond.map { UInt64(2e9 / $0) }
                    var due = now()
                    while !stop.load(ordering: .relaxed) {
                        if let interval { due += interval; sleepUntil(due) }
                        _ = try? c.get(urls[i % urls.count])
                        done.wrappingAdd(1, ordering: .relaxed)
                        i += 2
                    }
                }.start()
            }
            Syscall.sleep(nanoseconds: 300_000_000)
            let before = done.load(ordering: .relaxed)
            let r = gen.openLoop(rate: rate, seconds: secs, threads: 4)
            let count = done.load(ordering: .relaxed) - before
            stop.store(true, ordering: .relaxed)
            group.wait()
            return (r, Double(count) / r.seconds)
        }
        let (paced, pacedRate) = withConsole(perSecond: consoleRate)
        let (busy, busyRate) = withConsole(perSecond: nil)
        func row(_ name: String, _ r: LoadGenerator.OpenLoopResult) -> String {
            "| \(name) | \(Int(r.offeredRate)) | \(String(format: "%.2f", r.percentile(50))) | \(String(format: "%.2f", r.percentile(90))) | \(String(format: "%.2f", r.percentile(99))) | \(String(format: "%.2f", r.percentile(99.9))) | \(r.errors) |"
        }
        print("\n| mod_xml_curl directory, open loop | req/s | p50 ms | p90 ms | p99 ms | p99.9 ms | errors |")
        print("|---|---|---|---|---|---|---|")
        print(row("console idle", quiet))
        print(row("console in use: 2 clients cycling every page and list, \(String(format: "%.0f", pacedRate)) console req/s", paced))
        print(row("console saturated: 2 clients as fast as it answers, \(String(format: "%.0f", busyRate)) console req/s", busy))
    }
}

/// Runs a child to completion; its exit status.
func runChild(_ exe: String, _ args: [String], log: String) -> Int32 {
    guard let pid = try? spawnProcess(exe, args, outputPath: log) else { return -1 }
    guard let status = try? Syscall.waitForExit(pid) else { return -1 }
    return (status >> 8) & 0xff
}

/// A keep-alive client of the console: API calls with the token, pages with a session cookie.
/// Its own blocking socket (loopback only) and Content-Length framing; nothing shared with the
/// load generator, so that either can change alone.
final class ConsoleClient {
    let port: UInt16
    let token: String
    var cookie = ""
    private var socket: TCPSocket?
    private var buffer: [UInt8] = []

    init(port: UInt16, token: String) throws {
        self.port = port
        self.token = token
    }

    static func connect(port: UInt16) -> TCPSocket? {
        guard let s = try? TCPSocket.connect(host: "127.0.0.1", port: port, timeoutMilliseconds: 10_000) else { return nil }
        try? s.setNoDelay()
        return s
    }

    /// One request on a fresh connection, read to the end: status, raw head, body.
    func once(_ request: String) -> (Int, String, String) {
        guard let s = Self.connect(port: port) else { return (0, "", "") }
        defer { s.close() }
        guard (try? s.sendAll(request, timeoutMilliseconds: 10_000)) != nil,
              let out = try? s.receiveToEnd(timeoutMilliseconds: 10_000) else { return (0, "", "") }
        let text = String(decoding: out, as: UTF8.self)
        let parts = text.components(separatedBy: "\r\n\r\n")
        return (Int(text.dropFirst(9).prefix(3)) ?? 0, parts.first ?? "", parts.dropFirst().joined(separator: "\r\n\r\n"))
    }

    static func cookieValue(_ head: String, _ name: String) -> String? {
        for line in head.components(separatedBy: "\r\n") where line.lowercased().hasPrefix("set-cookie: \(name)=") {
            return String(line.dropFirst("set-cookie: \(name)=".count).prefix { $0 != ";" })
        }
        return nil
    }

    func login(name: String, password: String) throws {
        let (_, head, body) = once("GET /login HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        guard let loginCookie = Self.cookieValue(head, "sa_login"), let r = body.range(of: "name=\"login_csrf\" value=\"") else { throw BenchError("no login form") }
        let csrf = String(body[r.upperBound...].prefix { $0 != "\"" })
        let form = "login_csrf=\(csrf)&name=\(name)&password=\(password)"
        let (status, head2, _) = once("POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nCookie: sa_login=\(loginCookie)\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: \(form.utf8.count)\r\n\r\n\(form)")
        guard status == 303, let session = Self.cookieValue(head2, "sa_session") else { throw BenchError("login failed: \(status)") }
        cookie = session
    }

    func get(_ path: String) throws -> Int {
        let auth = path.hasPrefix("/api/") ? "Authorization: Bearer \(token)\r\n" : "Cookie: sa_session=\(cookie)\r\n"
        return try roundTrip("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\n\(auth)\r\n")
    }

    func post(_ path: String, json: String) throws -> Int {
        try roundTrip("POST \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer \(token)\r\nContent-Type: application/json\r\nContent-Length: \(json.utf8.count)\r\n\r\n\(json)")
    }

    /// Sends on the keep-alive connection (reconnecting once if it was closed); the status of the answer.
    func roundTrip(_ request: String) throws -> Int {
        for _ in 0..<2 {
            if socket == nil {
                socket = Self.connect(port: port)
                buffer = []
            }
            guard let s = socket else { continue }
            if (try? s.sendAll(request, timeoutMilliseconds: 10_000)) != nil, let status = readResponse(s) { return status }
            s.close()
            socket = nil
        }
        throw BenchError("console request failed")
    }

    /// One Content-Length framed answer from the keep-alive connection.
    private func readResponse(_ s: TCPSocket) -> Int? {
        while true {
            if let end = headEnd() {
                let head = String(decoding: buffer[0..<end], as: UTF8.self)
                var length = 0
                for line in head.split(separator: "\r\n") where line.lowercased().hasPrefix("content-length:") {
                    length = Int(line.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) ?? 0
                }
                if buffer.count >= end + 4 + length {
                    buffer.removeFirst(end + 4 + length)
                    return Int(head.dropFirst(9).prefix(3))
                }
            }
            guard let chunk = try? s.receive(timeoutMilliseconds: 10_000), !chunk.isEmpty else { return nil }
            buffer += chunk
        }
    }

    private func headEnd() -> Int? {
        guard buffer.count >= 4 else { return nil }
        for i in 0...(buffer.count - 4) where buffer[i] == 13 && buffer[i + 1] == 10 && buffer[i + 2] == 13 && buffer[i + 3] == 10 {
            return i
        }
        return nil
    }
}
