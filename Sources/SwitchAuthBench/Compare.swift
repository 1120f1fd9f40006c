import ArgumentParser
import Foundation
import HTTPServer
import Postgres
import Store
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A child process (switchauth serve, nginx) owned by the benchmark: started with posix_spawn,
/// output to a file, stopped with SIGTERM and reaped.
final class ChildProcess {
    let pid: pid_t
    let name: String

    init(_ exe: String, _ args: [String], environment: [String: String] = [:], log: String) throws {
        name = (exe as NSString).lastPathComponent
        var env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("SWITCHAUTH_") }
        for (k, v) in environment { env[k] = v }
        pid = try spawnProcess(exe, args, outputPath: log, environment: env)
    }

    /// Resident set size in KiB (VmRSS).
    var rssKiB: Int {
        guard let s = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return 0 }
        for line in s.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            return Int(line.split(separator: " ", omittingEmptySubsequences: true)[1]) ?? 0
        }
        return 0
    }

    /// User + system CPU time in seconds.
    var cpuSeconds: Double {
        guard let s = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = s.lastIndex(of: ")") else { return 0 }
        let fields = s[s.index(after: close)...].split(separator: " ")
        // fields[0] is state (field 3); utime is field 14, stime 15.
        let ticks = (Double(fields[11]) ?? 0) + (Double(fields[12]) ?? 0)
        return ticks / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    func stop() -> Int32 {
        kill(pid, SIGTERM)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return status
    }
}

/// A port nobody listens on now (bound to port 0 and released).
func freePort() -> UInt16 {
    (try? TCPSocket.listen(host: "127.0.0.1", port: 0, backlog: 1))?.localPort ?? 0
}

func waitForPort(_ port: UInt16, seconds: Double = 10) -> Bool {
    let end = Date().addingTimeInterval(seconds)
    while Date() < end {
        if let s = try? TCPSocket.connect(host: "127.0.0.1", port: port, timeoutMilliseconds: 500) { s.close(); return true }
        usleep(50_000)
    }
    return false
}

struct Compare: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the whole comparison and print one table: SwitchAuth vs nginx-static vs pgbench.",
        discussion: """
            Starts a throwaway PostgreSQL, loads the dataset (1M devices, 100k accounts, 100k IP
            settings; --smoke: a small one), starts 'switchauth serve' and nginx (Debian nginx-light)
            on loopback, and runs pgbench on the same SQL the service runs.
            """)

    @Flag(help: "Seconds and a small dataset (CI).") var smoke = false
    @Option(help: "Seconds per closed-loop run.") var seconds: Double?
    @Option(help: "Concurrent clients for closed-loop runs.") var clients = 8
    @Option(help: "Offered rate for the open-loop latency runs (requests/s).") var rate: Double?
    @Option(help: "switchauth workers.") var workers = 4

    func run() throws {
        let data = smoke ? Dataset.smoke : Dataset.full
        let secs = seconds ?? (smoke ? 1.5 : 10)
        let openRate = rate ?? (smoke ? 500 : 2000)
        let exeDir = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        let switchauth = exeDir.appendingPathComponent("switchauth").path
        guard FileManager.default.isExecutableFile(atPath: switchauth) else {
            throw BenchError("\(switchauth) not found: build it first (swift build -c release)")
        }
        print("== SwitchAuth benchmark (\(smoke ? "smoke" : "full")): \(data.devices) devices, \(data.accounts) accounts, \(data.ipSettings) IP settings; \(secs) s per run, \(clients) clients, open loop \(Int(openRate)) req/s")
        let cluster = try TemporaryCluster()
        defer { cluster.stop() }
        func longConfig(_ database: String) -> ConnectionConfig {
            var c = cluster.config(database: database)
            c.queryTimeoutMilliseconds = 900_000
            return c
        }
        let admin = try Connection(longConfig("postgres"))
        try admin.executeScript("CREATE DATABASE bench")
        try admin.executeScript("CREATE DATABASE bench_small")
        var rows: [(String, String, String)] = []

        let big = try Connection(longConfig("bench"))
        try Migrator(directory: Migrator.defaultDirectory()).migrate(big)
        let loadSeconds = try data.load(big)
        print("dataset loaded in \(String(format: "%.1f", loadSeconds)) s")
        rows.append(("dataset load (generate_series in PostgreSQL)", String(format: "%.1f s", loadSeconds), ""))
        let small = try Connection(longConfig("bench_small"))
        try Migrator(directory: Migrator.defaultDirectory()).migrate(small)
        _ = try Dataset.tinyIP.load(small)

        let workDir = cluster.directory
        func startService(_ database: String) throws -> (ChildProcess, UInt16) {
            let port = freePort()
            let p = try ChildProcess(switchauth, ["serve"], environment: [
                "SWITCHAUTH_DATABASE_URL": "host=\(cluster.directory) port=5432 user=postgres dbname=\(database)",
                "SWITCHAUTH_LISTEN_PORT": String(port), "SWITCHAUTH_EVENT_SOCKETS": "", "SWITCHAUTH_LOG_LEVEL": "notice",
                "SWITCHAUTH_WORKERS": String(workers), "SWITCHAUTH_MAX_CONNECTIONS": "20000",
            ], log: "\(workDir)/switchauth-\(database).log")
            guard waitForPort(port) else { throw BenchError("switchauth did not start; see \(workDir)/switchauth-\(database).log") }
            return (p, port)
        }

        // --- SwitchAuth on the big dataset
        var (service, port) = try startService("bench")
        let shapes = try RequestShapes(path: "/freeswitch", port: port)
        let aclRequest = shapes.wrap(shapes.aclBody)
        var aclTimes: [Double] = []
        var aclBytes = 0
        for _ in 0..<5 {
            let gen = LoadGenerator(port: port, keepAlive: false) { _ in aclRequest }
            guard let fd = gen.connectSocket() else { continue }
            var reader = ResponseReader()
            let t0 = now()
            _ = gen.roundTrip(fd, aclRequest, &reader)
            aclTimes.append(Double(now() - t0) / 1e6)
            aclBytes = max(aclBytes, reader.buffer.count)
            fd.close()
        }
        let aclMedian = aclTimes.sorted()[2]
        rows.append(("acl.conf, \(data.ipSettings) IP settings (median of 5)", String(format: "%.1f ms", aclMedian), "target < 300 ms"))

        let directoryGen = { (keep: Bool, p: UInt16) in
            LoadGenerator(port: p, keepAlive: keep) { rng in shapes.wrap(shapes.directory(data.device(&rng), rng: &rng)) }
        }
        let dialplanGen = { (keep: Bool, p: UInt16, d: Dataset) in
            LoadGenerator(port: p, keepAlive: keep) { rng in shapes.wrap(shapes.dialplan(d.ipCall(&rng))) }
        }
        // Sample directory answer size, for nginx's file.
        var sampleRNG = Xoshiro(seed: 42)
        let sample = shapes.wrap(shapes.directory(data.device(&sampleRNG), rng: &sampleRNG))
        let sampleAnswer: Int = {
            let g = directoryGen(false, port)
            guard let fd = g.connectSocket() else { return 0 }
            var r = ResponseReader()
            _ = g.roundTrip(fd, sample, &r)
            fd.close()
            return r.lastBody
        }()

        // The HTTP layer alone: a route that touches no database (404), same connection shape.
        let notFoundRequest = Array("POST /nothing-here HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n".utf8)
        let httpOnly = LoadGenerator(port: port, keepAlive: false) { _ in notFoundRequest }
        _ = httpOnly.closedLoop(clients: clients, seconds: min(1, secs))
        let httpOnlyNew = LoadGenerator(port: port, keepAlive: false) { _ in notFoundRequest }.closedLoop(clients: clients, seconds: secs)
        _ = directoryGen(false, port).closedLoop(clients: clients, seconds: min(1, secs)) // warm up
        let cpu0 = service.cpuSeconds
        let dirNew = directoryGen(false, port).closedLoop(clients: clients, seconds: secs)
        let cpu1 = service.cpuSeconds
        let dirKeep = directoryGen(true, port).closedLoop(clients: clients, seconds: secs)
        let dpNew = dialplanGen(false, port, data).closedLoop(clients: clients, seconds: secs)
        let dirOpen = directoryGen(false, port).openLoop(rate: openRate, seconds: secs, threads: 4)
        let dpOpenBig = dialplanGen(false, port, data).openLoop(rate: openRate, seconds: secs, threads: 4)
        // An attacker sending 1,000 wrong digests per second from rotating addresses (every attempt
        // writes failure counters), while legitimate users are measured at the open-loop rate.
        let attack = LoadGenerator(port: port, keepAlive: false) { rng in
            var d = data.device(&rng)
            d.password = "wrong"
            var body = shapes.directory(d, rng: &rng)
            body = body.replacingOccurrences(of: "&ip=192.0.2.", with: "&ip=198.18.\(rng.int(0...255)).")
            return shapes.wrap(body)
        }
        let attackStop = Atomic<Bool>(false)
        let attackThread = Thread {
            _ = attack.openLoop(rate: 1000, seconds: secs + 0.5, threads: 2)
            attackStop.store(true, ordering: .relaxed)
        }
        attackThread.start()
        usleep(200_000)
        let dirUnderAttack = directoryGen(false, port).openLoop(rate: openRate, seconds: secs, threads: 4)
        while !attackStop.load(ordering: .relaxed) { usleep(50_000) }
        let rss = service.rssKiB
        let errors = dirNew.errors + dirKeep.errors + dpNew.errors + dirOpen.errors + dpOpenBig.errors + dirUnderAttack.errors
        _ = service.stop()

        // --- SwitchAuth on 10 IP settings (dialplan p99 must not depend on the table size)
        (service, port) = try startService("bench_small")
        let smallShapes = try RequestShapes(path: "/freeswitch", port: port)
        _ = LoadGenerator(port: port, keepAlive: false) { rng in smallShapes.wrap(smallShapes.dialplan(Dataset.tinyIP.ipCall(&rng))) }.closedLoop(clients: 2, seconds: min(1, secs))
        let dpOpenSmall = LoadGenerator(port: port, keepAlive: false) { rng in smallShapes.wrap(smallShapes.dialplan(Dataset.tinyIP.ipCall(&rng))) }
            .openLoop(rate: openRate, seconds: secs, threads: 4)
        _ = service.stop()

        // --- nginx serving a static file of the directory answer's size, same load shape
        var nginxNew: LoadGenerator.ClosedLoopResult?
        var nginxKeep: LoadGenerator.ClosedLoopResult?
        var nginxOpen: LoadGenerator.OpenLoopResult?
        if let nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }) {
            let root = "\(workDir)/nginx"
            try FileManager.default.createDirectory(atPath: "\(root)/www", withIntermediateDirectories: true)
            chmod(workDir, 0o755)
            chmod(root, 0o755)
            chmod("\(root)/www", 0o755)
            _ = FileManager.default.createFile(atPath: "\(root)/www/freeswitch", contents: Data(repeating: UInt8(ascii: "x"), count: max(1, sampleAnswer)))
            chmod("\(root)/www/freeswitch", 0o644)
            let nport = freePort()
            try """
                worker_processes 2;
                daemon off;
                pid \(root)/nginx.pid;
                error_log \(root)/error.log;
                events { worker_connections 4096; }
                http {
                    access_log off;
                    default_type text/xml;
                    client_body_temp_path \(root)/body;
                    server {
                        listen 127.0.0.1:\(nport);
                        root \(root)/www;
                        location / { error_page 405 =200 $uri; }
                    }
                }
                """.write(toFile: "\(root)/nginx.conf", atomically: true, encoding: .utf8)
            let n = try ChildProcess(nginx, ["-c", "\(root)/nginx.conf", "-p", root], log: "\(root)/stdout.log")
            if waitForPort(nport) {
                let nshapes = try RequestShapes(path: "/freeswitch", port: nport)
                let ngen = { (keep: Bool) in LoadGenerator(port: nport, keepAlive: keep) { rng in nshapes.wrap(nshapes.directory(data.device(&rng), rng: &rng)) } }
                _ = ngen(false).closedLoop(clients: clients, seconds: min(1, secs))
                nginxNew = ngen(false).closedLoop(clients: clients, seconds: secs)
                nginxKeep = ngen(true).closedLoop(clients: clients, seconds: secs)
                nginxOpen = ngen(false).openLoop(rate: openRate, seconds: secs, threads: 4)
            } else {
                print("nginx did not start; see \(root)/error.log")
            }
            _ = n.stop()
        } else {
            print("nginx not installed (apt-get install nginx-light): its rows are skipped")
        }

        // --- pgbench on the service's hot statements
        var pgDirectory: Double?
        var pgDialplan: Double?
        if let pgbench = ["\(cluster.binDirectory)/pgbench", "/usr/bin/pgbench"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }) {
            pgDirectory = try runPgbench(pgbench, cluster: cluster, script: BenchSQL.directory(data), seconds: secs)
            pgDialplan = try runPgbench(pgbench, cluster: cluster, script: BenchSQL.dialplan(data), seconds: secs)
        }

        func rps(_ r: LoadGenerator.ClosedLoopResult) -> String { String(format: "%.0f req/s", r.perSecond) }
        func lat(_ r: LoadGenerator.OpenLoopResult) -> String {
            String(format: "p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.2f ms (%.0f req/s, %d errors)",
                   r.percentile(50), r.percentile(90), r.percentile(99), r.percentile(99.9), r.max, r.achieved, r.errors)
        }
        func ratio(_ a: Double, _ b: Double?) -> String { b.map { String(format: "%.2fx", a / $0) } ?? "n/a" }

        rows.append(("directory sip_auth, new connection per request", rps(dirNew), "vs nginx " + ratio(dirNew.perSecond, nginxNew?.perSecond) + " (target >= 0.5x); vs pgbench " + ratio(dirNew.perSecond, pgDirectory)))
        rows.append(("HTTP layer alone (404 route, no database), new conn.", String(format: "%.0f req/s", httpOnlyNew.perSecond + Double(httpOnlyNew.errors) / httpOnlyNew.seconds), "vs nginx " + ratio(httpOnlyNew.perSecond + Double(httpOnlyNew.errors) / httpOnlyNew.seconds, nginxNew?.perSecond)))
        rows.append(("directory sip_auth, keep-alive", rps(dirKeep), "vs nginx " + ratio(dirKeep.perSecond, nginxKeep?.perSecond)))
        rows.append(("dialplan IP decision, new connection", rps(dpNew), "vs pgbench " + ratio(dpNew.perSecond, pgDialplan)))
        if let nginxNew { rows.append(("nginx static \(sampleAnswer) B, new connection", rps(nginxNew), "the HTTP limit of this machine")) }
        if let nginxKeep { rows.append(("nginx static \(sampleAnswer) B, keep-alive", rps(nginxKeep), "")) }
        if let pgDirectory { rows.append(("pgbench: directory lookup SQL (4 clients, prepared)", String(format: "%.0f tx/s", pgDirectory), "the database limit")) }
        if let pgDialplan { rows.append(("pgbench: IP candidates SQL (4 clients, prepared)", String(format: "%.0f tx/s", pgDialplan), "")) }
        rows.append(("directory open loop \(Int(openRate)) req/s", lat(dirOpen), "target p99 < 1 ms"))
        rows.append(("directory open loop while 1,000 bad digests/s arrive", lat(dirUnderAttack), "lockout writes must not slow other users"))
        rows.append(("dialplan open loop, \(data.ipSettings) IP settings", lat(dpOpenBig), ""))
        rows.append(("dialplan open loop, 10 IP settings", lat(dpOpenSmall), String(format: "p99 ratio big/small %.2f", dpOpenBig.percentile(99) / dpOpenSmall.percentile(99))))
        if let nginxOpen { rows.append(("nginx open loop \(Int(openRate)) req/s", lat(nginxOpen), "")) }
        rows.append(("switchauth RSS after the runs, \(data.devices) devices", "\(rss / 1024) MiB", "target < 64 MiB"))
        rows.append(("switchauth CPU per directory request (new conn.)", String(format: "%.1f µs", (cpu1 - cpu0) / Double(max(1, dirNew.requests)) * 1e6), ""))
        rows.append(("errors across SwitchAuth runs", "\(errors)", "must be 0"))

        let w0 = rows.map(\.0.count).max() ?? 0, w1 = rows.map(\.1.count).max() ?? 0
        print("")
        for r in rows {
            print(r.0.padding(toLength: w0, withPad: " ", startingAt: 0) + "  " + r.1.padding(toLength: w1, withPad: " ", startingAt: 0) + "  " + r.2)
        }
        if errors > 0 { throw BenchError("\(errors) requests failed") }
    }

    func runPgbench(_ pgbench: String, cluster: TemporaryCluster, script: String, seconds: Double) throws -> Double {
        let file = "\(cluster.directory)/bench-\(UUID().uuidString).sql"
        try script.write(toFile: file, atomically: true, encoding: .utf8)
        chmod(file, 0o644)
        let log = "\(cluster.directory)/pgbench.out"
        let p = try ChildProcess(pgbench, ["-n", "-h", cluster.directory, "-U", "postgres", "-M", "prepared", "-c", "4", "-j", "2",
                                           "-T", String(max(1, Int(seconds))), "-f", file, "bench"], log: log)
        var status: Int32 = 0
        while waitpid(p.pid, &status, 0) < 0 && errno == EINTR {}
        let out = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        for line in out.split(separator: "\n") where line.hasPrefix("tps = ") {
            return Double(line.dropFirst(6).split(separator: " ")[0]) ?? 0
        }
        throw BenchError("pgbench failed: \(out)")
    }
}

/// The service's statements for pgbench, with the parameters drawn as the load generator draws them.
enum BenchSQL {
    static func directory(_ d: Dataset) -> String {
        """
        \\set g random(1, \(d.devices))
        \\set k (:g - 1) % \(d.domains) + 1
        \(DirectoryLookup.sql.replacingOccurrences(of: "$1", with: "('d' || :k || '.bench.example')").replacingOccurrences(of: "$2", with: "('u' || :g)").replacingOccurrences(of: "$3", with: "'192.0.2.1'")
            .replacingOccurrences(of: "\n", with: " "));
        """
    }

    static func dialplan(_ d: Dataset) -> String {
        """
        \\set m random(0, \(max(0, d.ipSettings / 10 - 1)))
        \\set r random(0, 5)
        \\set n (10 * :m + :r) / 2
        \(IPCandidatesLookup.sql.replacingOccurrences(of: "$1::inet", with: "('10.0.0.0'::inet + :n)").replacingOccurrences(of: "\n", with: " "));
        """
    }
}

