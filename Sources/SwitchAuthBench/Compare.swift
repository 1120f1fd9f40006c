import ArgumentParser
import Foundation
import HTTPServer
import Postgres
import Store
import Synchronization
import SystemCalls
#if canImport(Glibc)
import Glibc
#endif

/// A child process (switchauth serve, nginx) owned by the benchmark: started with posix_spawn,
/// output to a file, stopped with SIGTERM and reaped; one the benchmark forgets (an error thrown
/// past it) is stopped when released, so a failed run leaves no server behind.
final class ChildProcess {
    let pid: pid_t
    let name: String
    private var status: Int32?

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
        if let status { return status }
        Syscall.bestEffort("kill(SIGTERM)") { kill(pid, SIGTERM) }
        return wait()
    }

    /// Waits for the child to end by itself; its wait status.
    func wait() -> Int32 {
        if let status { return status }
        let s = (try? Syscall.waitForExit(pid)) ?? -1
        status = s
        return s
    }

    deinit { _ = stop() }
}

/// A port nobody listens on now (bound to port 0 and released).
func freePort() -> UInt16 {
    (try? TCPSocket.listen(host: "127.0.0.1", port: 0, backlog: 1))?.localPort ?? 0
}

func waitForPort(_ port: UInt16, seconds: Double = 10) -> Bool {
    let end = Date().addingTimeInterval(seconds)
    while Date() < end {
        if let s = try? TCPSocket.connect(host: "127.0.0.1", port: port, timeoutMilliseconds: 500) { s.close(); return true }
        Syscall.sleep(nanoseconds: 50_000_000)
    }
    return false
}

struct Compare: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the whole comparison and print one table: SwitchAuth vs nginx-static vs pgbench.",
        discussion: """
            Starts a throwaway PostgreSQL, imports the dataset as an operator would (one CSV through
            'switchauth import': 1M devices, 100k accounts, 100k IP settings; --smoke: a small one),
            starts 'switchauth serve' as operators run it (default log_level, basic auth on) and nginx
            (Debian nginx-light) on loopback, sends directory lookups each from its own source
            address, and runs pgbench on the same SQL the service runs.
            """)

    @Flag(help: "Seconds and a small dataset (CI).") var smoke = false
    @Option(help: "Seconds per closed-loop run.") var seconds: Double?
    @Flag(help: "Set up (dataset, switchauth, nginx, wrk scripts), print how to load and profile them, keep them until standard input ends, then stop without measuring.")
    var hold = false
    @Option(help: "Concurrent clients for closed-loop runs.") var clients = 8
    @Option(help: "Offered rate for the open-loop latency runs (requests/s).") var rate: Double?
    @Option(help: "switchauth workers (0: its default, one per core).") var workers = 0
    @Option(help: "The switchauth binary to measure (default: the one beside this benchmark). Another build, e.g. an earlier commit's, gives the 'before' column.") var switchauth: String?

    func run() throws {
        let data = smoke ? Dataset.smoke : Dataset.full
        let secs = seconds ?? (smoke ? 1.5 : 10)
        let openRate = rate ?? (smoke ? 500 : 2000)
        let switchauth = try Self.switchauthBinary(self.switchauth)
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
        // As an operator migrating loads it: one CSV through `switchauth import` (then VACUUM ANALYZE).
        let loadSeconds = try data.importCSV(switchauth: switchauth, databaseURL: "host=\(cluster.directory) port=5432 user=postgres dbname=bench",
                                             workDir: cluster.directory, connection: big)
        print("dataset imported in \(String(format: "%.1f", loadSeconds)) s")
        rows.append(("dataset: switchauth import of one CSV (\(data.devices) devices, \(data.accounts) accounts, \(data.ipSettings) IP settings)",
                     String(format: "%.1f s", loadSeconds), "goal <= 60 s for 1M devices"))
        let small = try Connection(longConfig("bench_small"))
        try Migrator(directory: Migrator.defaultDirectory()).migrate(small)
        _ = try Dataset.tinyIP.load(small)

        let workDir = cluster.directory
        func startService(_ database: String, eventSockets: String = "") throws -> (ChildProcess, UInt16) {
            let port = freePort()
            let p = try ChildProcess(switchauth, ["serve"], environment: [
                "SWITCHAUTH_DATABASE_URL": "host=\(cluster.directory) port=5432 user=postgres dbname=\(database)",
                // log_level is the default (info: a line per decision), written to a file as a
                // journal would take it: the configuration operators run, not a friendlier one.
                "SWITCHAUTH_LISTEN_PORT": String(port), "SWITCHAUTH_EVENT_SOCKETS": eventSockets,
                "SWITCHAUTH_WORKERS": String(workers), "SWITCHAUTH_MAX_CONNECTIONS": "20000",
                "SWITCHAUTH_BASIC_AUTH": RequestShapes.credentials,
            ], log: "\(workDir)/switchauth-\(database).log")
            guard waitForPort(port) else { throw BenchError("switchauth did not start; see \(workDir)/switchauth-\(database).log") }
            // Measured once its memory copy answers (a binary without one is measured at once).
            let t0 = now()
            while now() - t0 < 300_000_000_000, (try? metricValue(port, "switchauth_replica_current")) == 0,
                  (try? metricHelp(port, "switchauth_replica_current")) == true {
                Syscall.sleep(nanoseconds: 50_000_000)
            }
            replicaLoadSeconds[database] = Double(now() - t0) / 1e9
            return (p, port)
        }
        var replicaLoadSeconds: [String: Double] = [:]

        // --- SwitchAuth on the big dataset
        let (service, port) = try startService("bench")
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
        if let t = replicaLoadSeconds["bench"] {
            rows.append(("start until the memory copy answers, \(data.devices) devices", String(format: "%.1f s", t), "lookups read PostgreSQL meanwhile"))
        }
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

        // Request bodies for wrk, made as our own generator makes them.
        var bodyRNG = Xoshiro(seed: 99)
        // 20,000 directory bodies, each from its own source address (random in 198.51.0.0/16): a
        // trust record per new (user, source) pair, as an operator's random callers cause.
        let dirBodies = (0..<(smoke ? 2_000 : 20_000)).map { _ in shapes.directory(data.device(&bodyRNG), rng: &bodyRNG) }
        let dpBodies = (0..<2_000).map { _ in shapes.dialplan(data.ipCall(&bodyRNG)) }
        let wrkService = Wrk(port: port, urlPath: "/freeswitch", directory: workDir)
        // The fixture channel's Unique-ID, replaced per request where every call must be its own.
        let fixtureUUID = dpBodies[0].components(separatedBy: "Unique-ID=").dropFirst().first?.components(separatedBy: "&").first ?? ""
        let postgresCPU = { cluster.serverProcesses().reduce(0.0) { $0 + cpuSeconds(of: $1) } }
        /// PostgreSQL's CPU by client (application_name, or the backend's type): where a row's
        /// database share goes.
        let postgresCPUByClient = { () -> [String: Double] in
            var names: [pid_t: String] = [:]
            if let r = try? big.execute("SELECT pid, CASE WHEN application_name <> '' THEN application_name ELSE backend_type END FROM pg_stat_activity") {
                for i in 0..<r.rowCount { if let pid = r.string(i, 0).flatMap({ pid_t($0) }) { names[pid] = r.string(i, 1) ?? "?" } }
            }
            var out: [String: Double] = [:]
            for pid in cluster.serverProcesses() { out[names[pid] ?? "postmaster and exited workers", default: 0] += cpuSeconds(of: pid) }
            return out
        }
        let wrkClients = 32
        let idleFDs = descriptorCount(of: service.pid)

        // The comparators run beside the service for the whole measurement: nginx serving a static
        // file of the directory answer's size, and SwitchAuth on 10 IP settings. Each comparison
        // alternates its two sides round by round and reports the median round of each, so that a
        // drift of this shared box (other tenants, frequency) does not land on one side only.
        let rounds = smoke ? 1 : 3
        let nginx = try startNginx(answerBytes: sampleAnswer, workDir: workDir)
        let nginxWrk = nginx.map { Wrk(port: $0.port, urlPath: "/freeswitch", directory: workDir) }
        let (smallService, smallPort) = try startService("bench_small")
        let smallShapes = try RequestShapes(path: "/freeswitch", port: smallPort)
        let smallDialplanGen = LoadGenerator(port: smallPort, keepAlive: false) { rng in smallShapes.wrap(smallShapes.dialplan(Dataset.tinyIP.ipCall(&rng))) }
        if hold {
            let directoryScript = try wrkService.writeScript(bodies: dirBodies, close: true, expect: "<user id=")
            let dialplanScript = try wrkService.writeScript(bodies: dpBodies, close: true, expect: "switchauth_allow")
            let limitedScript = try wrkService.writeScript(bodies: dpBodies, close: true, expect: "switchauth_", uniqueID: fixtureUUID)
            print("""
                holding until standard input ends; nothing is measured.
                  switchauth pid \(service.pid), port \(port), log \(workDir)/switchauth-bench.log
                  nginx port \(nginx.map { String($0.port) } ?? "none"); PostgreSQL: host=\(cluster.directory) port=5432 user=postgres dbname=bench
                  directory: wrk -t2 -c\(wrkClients) -d10s -s \(directoryScript) http://127.0.0.1:\(port)/freeswitch
                  dialplan:  wrk -t2 -c\(wrkClients) -d10s -s \(dialplanScript) http://127.0.0.1:\(port)/freeswitch
                  (the same scripts against nginx's port; \(limitedScript) gives every call its own Unique-ID)
                """)
            fflush(nil) // standard output is a file or pipe here: the lines above must be out before the wait
            while readLine() != nil {}
            _ = smallService.stop()
            _ = nginx?.process.stop()
            _ = service.stop()
            return
        }
        _ = smallDialplanGen.closedLoop(clients: 2, seconds: min(1, secs))

        // The HTTP layer alone: a route that touches no database (404), same connection shape.
        let httpOnlyNew = try Wrk(port: port, urlPath: "/nothing-here", directory: workDir)
            .run(bodies: ["x=1"], close: true, connections: wrkClients, seconds: secs)
        _ = try wrkService.run(bodies: dirBodies, close: true, connections: wrkClients, seconds: min(2, secs)) // warm up
        if let nginxWrk { _ = try nginxWrk.run(bodies: dirBodies, close: true, connections: wrkClients, seconds: min(2, secs)) }
        // Directory, a connection per request, with CPU of the service and of PostgreSQL, and the
        // open descriptors sampled while it runs (connections held beyond those in flight).
        let maxFDs = Atomic<Int>(0), sampling = Atomic<Bool>(true)
        let servicePID = service.pid
        let sampler = Thread {
            while sampling.load(ordering: .relaxed) {
                let n = descriptorCount(of: servicePID)
                if n > maxFDs.load(ordering: .relaxed) { maxFDs.store(n, ordering: .relaxed) }
                Syscall.sleep(nanoseconds: 20_000_000)
            }
        }
        sampler.start()
        /// `rounds` runs of a load (the directory's by default) on the service, each followed by the
        /// same requests on nginx, with the service's and PostgreSQL's CPU over the service's runs.
        func alternated(close: Bool, bodies: [String]? = nil, expect: String = "<user id=")
            throws -> (service: [Wrk.Result], nginx: [Wrk.Result], cpu: (service: Double, postgres: Double)) {
            let bodies = bodies ?? dirBodies
            var ours: [Wrk.Result] = [], theirs: [Wrk.Result] = []
            var cpu = (service: 0.0, postgres: 0.0)
            for _ in 0..<rounds {
                let (s0, p0) = (service.cpuSeconds, postgresCPU())
                ours.append(try wrkService.run(bodies: bodies, close: close, connections: wrkClients, seconds: secs, expect: expect))
                cpu.service += service.cpuSeconds - s0
                cpu.postgres += postgresCPU() - p0
                if let nginxWrk { theirs.append(try nginxWrk.run(bodies: bodies, close: close, connections: wrkClients, seconds: secs)) }
            }
            return (ours, theirs, cpu)
        }
        let answeredBefore = try metricValue(port, "switchauth_replica_lookups_answered")
        let trustBefore = try metricValue(port, "switchauth_trust_records_written")
        let (dirNewRounds, nginxNewRounds, dirNewCPU) = try alternated(close: true)
        sampling.store(false, ordering: .relaxed)
        let (dirKeepRounds, nginxKeepRounds, dirKeepCPU) = try alternated(close: false)
        let dirNew = Wrk.Result.median(dirNewRounds), dirKeep = Wrk.Result.median(dirKeepRounds)
        let nginxNew = nginxNewRounds.isEmpty ? nil : Wrk.Result.median(nginxNewRounds)
        let nginxKeep = nginxKeepRounds.isEmpty ? nil : Wrk.Result.median(nginxKeepRounds)
        // The dialplan's requests are larger (FreeSWITCH sends the whole channel: ~5 KB); nginx
        // takes the same bodies.
        let (dpNewRounds, nginxDpRounds, dpNewCPU) = try alternated(close: true, bodies: dpBodies, expect: "switchauth_allow")
        let dpNew = Wrk.Result.median(dpNewRounds)
        let nginxDp = nginxDpRounds.isEmpty ? nil : Wrk.Result.median(nginxDpRounds)
        let answeredSaturation = try metricValue(port, "switchauth_replica_lookups_answered") - answeredBefore
        let trustSaturation = try metricValue(port, "switchauth_trust_records_written") - trustBefore
        let saturationLookups = dirNewRounds.reduce(0) { $0 + $1.requests } + dirKeepRounds.reduce(0) { $0 + $1.requests } + dpNewRounds.reduce(0) { $0 + $1.requests }
        // The dialplan with call limits on (issue 21): every account gets max_channels and max_cps
        // (never reached), a second instance with call_limits = global, every request carries its
        // own Unique-ID, and the calls hang up as a switch says so: its event socket (`HangupFeed`)
        // sends a CHANNEL_HANGUP for every slot over a second old (read every 20 ms, sent a tenth
        // every 2 ms), which the instance's listener reads and releases. Its CPU counts the admission, the release and
        // PostgreSQL's share of both.
        try big.execute("UPDATE accounts SET max_channels = 1000000, max_cps = 1000000")
        // The update's 100,000 dead rows vacuumed now: autovacuum did it during the row (1 µs of
        // PostgreSQL a call in one run), a cost of the benchmark's setup, not of a call.
        try big.executeScript("VACUUM accounts")
        // The main instance's copy reloads the accounts (a statement over 10,000 rows): not beside
        // the measurement.
        func mainCopyCurrent() {
            Syscall.sleep(nanoseconds: 500_000_000)
            let start = now()
            while now() - start < 60_000_000_000, (try? metricValue(port, "switchauth_replica_current")) == 0 { Syscall.sleep(nanoseconds: 50_000_000) }
        }
        mainCopyCurrent()
        let fixtureCore = dpBodies[0].components(separatedBy: "Core-UUID=").dropFirst().first?.components(separatedBy: "&").first ?? ""
        let hangups = try HangupFeed(coreUUID: fixtureCore, database: cluster.config(database: "bench"))
        hangups.start()
        let limits = try startService("bench", eventSockets: "127.0.0.1:\(hangups.port)")
        let limitsWrk = Wrk(port: limits.1, urlPath: "/freeswitch", directory: workDir)
        var limitsRounds: [Wrk.Result] = [], nginxLimitsRounds: [Wrk.Result] = []
        var limitsCPU = (service: 0.0, postgres: 0.0)
        var limitsByClient: [String: Double] = [:]
        for _ in 0..<rounds {
            let (s0, p0, c0) = (limits.0.cpuSeconds, postgresCPU(), postgresCPUByClient())
            // Saturated, admissions queue for the database threads: an answer past answer_timeout_ms
            // is the fail-closed refusal (503 to the caller), counted below from the metrics rather
            // than as a wrong answer.
            limitsRounds.append(try limitsWrk.run(bodies: dpBodies, close: true, connections: wrkClients, seconds: secs,
                                                  expect: "switchauth_", uniqueID: fixtureUUID))
            limitsCPU.service += limits.0.cpuSeconds - s0
            limitsCPU.postgres += postgresCPU() - p0
            for (name, seconds) in postgresCPUByClient() { limitsByClient[name, default: 0] += seconds - (c0[name] ?? 0) }
            // The same script (a Unique-ID of its own per request) on both sides.
            if let nginxWrk { nginxLimitsRounds.append(try nginxWrk.run(bodies: dpBodies, close: true, connections: wrkClients, seconds: secs, uniqueID: fixtureUUID)) }
        }
        let admitted = try metricValue(limits.1, #"switchauth_call_admissions_total{result="admitted"}"#)
        let limitsFailClosed = try metricValue(limits.1, #"switchauth_requests_total{section="dialplan",outcome="database_unavailable"}"#)
        let limitsRefused = try metricValue(limits.1, #"switchauth_requests_total{section="dialplan",outcome="channel_limit"}"#)
            + metricValue(limits.1, #"switchauth_requests_total{section="dialplan",outcome="cps_limit"}"#)
        let inMemory = (try? metricValue(limits.1, "switchauth_admissions_in_memory")) ?? 0
        let released = (try? metricValue(limits.1, #"switchauth_call_slots_released_total{how="hangup"}"#)) ?? 0
        let hangupsSent = hangups.hangupsSent.load(ordering: .relaxed)
        _ = limits.0.stop()
        hangups.stop()
        try big.execute("UPDATE accounts SET max_channels = 0, max_cps = 0")
        try big.execute("TRUNCATE call_slots, cps_windows, admission_journal")
        mainCopyCurrent()
        let limitsNew = Wrk.Result.median(limitsRounds)
        let nginxLimits = nginxLimitsRounds.isEmpty ? nil : Wrk.Result.median(nginxLimitsRounds)
        let dirOpen = directoryGen(false, port).openLoop(rate: openRate, seconds: secs, threads: 4)
        let nginxOpen = nginx.map { n in
            LoadGenerator(port: n.port, keepAlive: false) { rng in shapes.wrap(shapes.directory(data.device(&rng), rng: &rng)) }
                .openLoop(rate: openRate, seconds: secs, threads: 4)
        }
        // Dialplan latency on 100,000 IP settings and on 10, alternating, every round's latencies pooled.
        var dpOpenBig = LoadGenerator.OpenLoopResult(latencies: [], errors: 0, seconds: 0, offeredRate: openRate)
        var dpOpenSmall = dpOpenBig
        for _ in 0..<rounds {
            dpOpenBig.pool(dialplanGen(false, port, data).openLoop(rate: openRate, seconds: secs, threads: 4))
            dpOpenSmall.pool(smallDialplanGen.openLoop(rate: openRate, seconds: secs, threads: 4))
        }
        _ = smallService.stop()
        _ = nginx?.process.stop()
        // Overload: 16 times the connections of the saturation run (512, each a connection per
        // request). The database threads cannot keep up: lookups past max_queued_lookups are shed
        // with 503 at once, the rest are answered within answer_timeout_ms or get their fail-closed
        // fallback at it; nothing is answered late or wrong. (Our own open-loop generator cannot
        // offer twice the saturation rate here: it shares the two cores with the service.)
        let overload = try wrkService.run(bodies: dirBodies, close: true, connections: 16 * wrkClients, seconds: min(secs, 5), expect: #"<section name="directory">"#)
        let shedAfter = try metricValue(port, "switchauth_lookups_shed_total")
        let fallbacksAfter = try metricValue(port, "switchauth_lookups_deadline_fallbacks")
        // An attacker sending 1,000 wrong digests per second from rotating addresses (every attempt
        // writes failure counters), while legitimate users are measured at the open-loop rate.
        let attack = LoadGenerator(port: port, keepAlive: false) { rng in
            var d = data.device(&rng)
            d.password = "wrong"
            var body = shapes.directory(d, rng: &rng)
            body = body.replacingOccurrences(of: "&ip=198.51.", with: "&ip=198.18.")
            return shapes.wrap(body)
        }
        let attackStop = Atomic<Bool>(false)
        let attackThread = Thread {
            _ = attack.openLoop(rate: 1000, seconds: secs + 0.5, threads: 2)
            attackStop.store(true, ordering: .relaxed)
        }
        attackThread.start()
        Syscall.sleep(nanoseconds: 200_000_000)
        let dirUnderAttack = directoryGen(false, port).openLoop(rate: openRate, seconds: secs, threads: 4)
        while !attackStop.load(ordering: .relaxed) { Syscall.sleep(nanoseconds: 50_000_000) }

        // Why lookups left the copy during the load rows, if they did: a heartbeat back late (a
        // lapse) or a lost feed. Read before the hang below, which lapses the proof for 2 s on purpose.
        let lapses = (try? metricValue(port, "switchauth_replica_proof_lapses")) ?? 0
        let lapsedSeconds = (try? metricValue(port, "switchauth_replica_lapsed_seconds")) ?? 0
        let slowestHeartbeat = (try? metricValue(port, "switchauth_replica_heartbeat_max_seconds")) ?? 0
        // PostgreSQL hung (SIGSTOP), then unreachable is the same for the service (no answer):
        // single requests' latencies while it hangs, and the time to correct answers after it returns.
        let hung = try measureHang(cluster: cluster, port: port, shapes: shapes, data: data,
                                   stalenessMilliseconds: try Self.defaultStaleness(switchauth))
        let rss = service.rssKiB
        let fromMemory = try metricValue(port, "switchauth_replica_lookups_answered")
        let errors = dirOpen.errors + dpOpenBig.errors + dpOpenSmall.errors + dirUnderAttack.errors + dirNew.socketErrors + dirKeep.socketErrors + dpNew.socketErrors
        let wrong = dirNew.wrong + dirKeep.wrong + dpNew.wrong + overload.wrong + limitsNew.wrong
        _ = service.stop()

        // --- pgbench on the service's hot statements
        var pgDirectory: Double?
        var pgDialplan: Double?
        if let pgbench = ["\(cluster.binDirectory)/pgbench", "/usr/bin/pgbench"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }) {
            pgDirectory = try runPgbench(pgbench, cluster: cluster, script: BenchSQL.directory(data), seconds: secs)
            pgDialplan = try runPgbench(pgbench, cluster: cluster, script: BenchSQL.dialplan(data), seconds: secs)
        }

        func wrkRow(_ r: Wrk.Result) -> String {
            String(format: "%.0f req/s, p50 %.2f p99 %.2f max %.1f ms; %d non-2xx (%d shed), %d socket errors, %d wrong",
                   r.perSecond, r.p50, r.p99, r.max, r.non2xx, r.shed, r.socketErrors, r.wrong)
        }
        func lat(_ r: LoadGenerator.OpenLoopResult) -> String {
            String(format: "p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.2f ms (%.0f req/s, %d errors)",
                   r.percentile(50), r.percentile(90), r.percentile(99), r.percentile(99.9), r.max, r.achieved, r.errors)
        }
        func ratio(_ a: Double, _ b: Double?) -> String { b.map { String(format: "%.2fx", a / $0) } ?? "n/a" }
        func cpu(_ service: Double, _ pg: Double, _ n: Int) -> String {
            String(format: "%.0f µs (service %.0f + PostgreSQL %.0f)", (service + pg) / Double(max(1, n)) * 1e6,
                   service / Double(max(1, n)) * 1e6, pg / Double(max(1, n)) * 1e6)
        }
        let dpRatio = dpOpenBig.percentile(99) / dpOpenSmall.percentile(99)

        let roundsNote = rounds > 1 ? "median of \(rounds) rounds alternated with nginx's, " : ""
        func spread(_ rs: [Wrk.Result]) -> String {
            rs.count > 1 ? String(format: " [rounds %.0f-%.0f]", rs.map(\.perSecond).min()!, rs.map(\.perSecond).max()!) : ""
        }
        rows.append(("directory sip_auth, new connection (wrk -c\(wrkClients))", wrkRow(dirNew) + spread(dirNewRounds),
                     roundsNote + "vs nginx " + ratio(dirNew.perSecond, nginxNew?.perSecond) + " (goal >= 1.0x); p99 goal <= 5 ms"))
        rows.append(("directory sip_auth, keep-alive (wrk)", wrkRow(dirKeep) + spread(dirKeepRounds),
                     roundsNote + "vs nginx " + ratio(dirKeep.perSecond, nginxKeep?.perSecond) + " (goal >= 0.5x)"))
        rows.append(("dialplan IP decision, new connection (wrk)", wrkRow(dpNew) + spread(dpNewRounds),
                     roundsNote + "vs nginx " + ratio(dpNew.perSecond, nginxDp?.perSecond) + " with the same bodies (goal >= 1.0x); vs pgbench " + ratio(dpNew.perSecond, pgDialplan)))
        rows.append(("dialplan IP decision, limits on (call_limits = global), new connection (wrk)", wrkRow(limitsNew) + spread(limitsRounds),
                     roundsNote + "vs nginx " + ratio(limitsNew.perSecond, nginxLimits?.perSecond) + String(format: "; %.0f calls admitted (a slot and a CPS window each), %.0f fail-closed (503) at the deadline, %.0f over a limit (must be 0); %.0f slots released by hangup events (of %d sent); admissions held in memory at the end: %@", admitted, limitsFailClosed, limitsRefused, released, hangupsSent, inMemory == 1 ? "yes" : "no")))
        rows.append(("HTTP layer alone (a 404 route, all non-2xx), new connection (wrk)", wrkRow(httpOnlyNew), "vs nginx " + ratio(httpOnlyNew.perSecond, nginxNew?.perSecond)))
        if let nginxNew { rows.append(("nginx static \(sampleAnswer) B, new connection (wrk)", wrkRow(nginxNew) + spread(nginxNewRounds), "the HTTP limit of this machine")) }
        if let nginxKeep { rows.append(("nginx static \(sampleAnswer) B, keep-alive (wrk)", wrkRow(nginxKeep) + spread(nginxKeepRounds), "")) }
        if let nginxDp { rows.append(("nginx static \(sampleAnswer) B, dialplan bodies, new connection (wrk)", wrkRow(nginxDp) + spread(nginxDpRounds), "")) }
        rows.append(("CPU per directory lookup, new connection", cpu(dirNewCPU.service, dirNewCPU.postgres, dirNew.requests), "goal <= 60 µs"))
        rows.append(("CPU per directory lookup, keep-alive", cpu(dirKeepCPU.service, dirKeepCPU.postgres, dirKeep.requests), ""))
        rows.append(("CPU per dialplan decision, new connection", cpu(dpNewCPU.service, dpNewCPU.postgres, dpNewRounds.reduce(0) { $0 + $1.requests }), "goal <= 60 µs"))
        let limitsRequests = Double(limitsRounds.reduce(0) { $0 + $1.requests })
        // The hangup feed stands in for the switch, which knows its channels without asking
        // PostgreSQL: what its query of the slots costs is the harness's, like wrk's own CPU, and
        // is shown beside the row rather than counted in it.
        let feedClient = HangupFeed.applicationName
        let feedSeconds = limitsByClient.removeValue(forKey: feedClient) ?? 0
        let byClient = limitsByClient.filter { $0.value > 0 }.sorted { $0.value > $1.value }
            .map { String(format: "%@ %.0f", $0.key, $0.value * 1e6 / max(1, limitsRequests)) }.joined(separator: ", ")
        rows.append(("CPU per dialplan decision, limits on (admission and release)",
                     cpu(limitsCPU.service, max(0, limitsCPU.postgres - feedSeconds), limitsRounds.reduce(0) { $0 + $1.requests }),
                     "goal <= 60 µs; PostgreSQL's µs by client: " + byClient
                        + String(format: "; not counted: the %@ (the switch's stand-in) %.1f", feedClient, feedSeconds * 1e6 / max(1, limitsRequests))))
        rows.append(("open descriptors while 32 connect per request", "\(maxFDs.load(ordering: .relaxed)) at most (\(idleFDs) idle)", "goal: idle + in flight (32) + closing"))
        if let pgDirectory { rows.append(("pgbench: directory lookup SQL (4 clients, prepared)", String(format: "%.0f tx/s", pgDirectory), "the database limit")) }
        if let pgDialplan { rows.append(("pgbench: IP candidates SQL (4 clients, prepared)", String(format: "%.0f tx/s", pgDialplan), "")) }
        rows.append(("directory open loop \(Int(openRate)) req/s", lat(dirOpen), ""))
        rows.append(("directory, overload: 512 connections per request (wrk)", wrkRow(overload),
                     "\(Int(shedAfter)) shed (503), \(Int(fallbacksAfter)) fail-closed at the deadline; goal: none late, none wrong"))
        rows.append(("directory open loop while 1,000 bad digests/s arrive", lat(dirUnderAttack), "lockout writes must not slow other users"))
        rows.append(("dialplan open loop, \(data.ipSettings) IP settings", lat(dpOpenBig), rounds > 1 ? "\(rounds) rounds alternated with the next row's, pooled" : ""))
        rows.append(("dialplan open loop, 10 IP settings", lat(dpOpenSmall), String(format: "p99 ratio big/small %.2f (goal <= 1.10)", dpRatio)))
        if let nginxOpen { rows.append(("nginx open loop \(Int(openRate)) req/s", lat(nginxOpen), "")) }
        rows.append(("PostgreSQL hung: slowest directory / dialplan answer", String(format: "%.1f / %.1f ms", hung.directoryMax, hung.dialplanMax), "goal <= 250 ms, fail-closed"))
        rows.append(("PostgreSQL hung: slowest acl.conf / /healthz", String(format: "%.1f / %.1f ms (unhealthy after %.0f ms)", hung.aclMax, hung.healthMax, hung.unhealthyAfter), "goal <= 20 ms"))
        rows.append(("PostgreSQL back: correct answers after", String(format: "%.0f ms", hung.recovery), "goal <= 1,000 ms"))
        rows.append(("lookups answered from the memory copy (big dataset)", String(format: "%.0f in all", fromMemory), "the rest read PostgreSQL: failures to count, and while the copy was not proven current"))
        rows.append(("  of the saturation runs (directory, keep-alive, dialplan)",
                     // The counter also sees the few requests still in flight when wrk stops (which wrk does not count).
                     String(format: "%.0f of %d (%.1f%%)", min(answeredSaturation, Double(saturationLookups)), saturationLookups,
                            100 * min(1, answeredSaturation / Double(max(1, saturationLookups)))),
                     String(format: "switchauth_replica_lookups_answered; %.0f trust records written for new (user, source) pairs meanwhile", trustSaturation)))
        rows.append(("memory copy's proof during the load rows: lapses, time lapsed, slowest heartbeat",
                     String(format: "%.0f, %.0f ms, %.0f ms", lapses, lapsedSeconds * 1000, slowestHeartbeat * 1000),
                     "before the 2 s hang below; a lapse sends lookups to PostgreSQL until the next heartbeat (replica_staleness_ms)"))
        rows.append(("switchauth RSS after the runs, \(data.devices) devices", "\(rss / 1024) MiB", "goal <= 256 MiB"))
        rows.append(("failed requests / wrong answers across SwitchAuth runs", "\(errors) / \(wrong + hung.grants)", "must be 0 / 0"))

        let w0 = rows.map(\.0.count).max() ?? 0, w1 = rows.map(\.1.count).max() ?? 0
        print("")
        for r in rows {
            print(r.0.padding(toLength: w0, withPad: " ", startingAt: 0) + "  " + r.1.padding(toLength: w1, withPad: " ", startingAt: 0) + "  " + r.2)
        }
        if errors > 0 || wrong + hung.grants > 0 { throw BenchError("\(errors) requests failed, \(wrong + hung.grants) wrong answers") }
    }

    /// nginx (Debian nginx-light) serving a file of `answerBytes` bytes at /freeswitch, POST
    /// answered like GET; nil when nginx is not installed.
    func startNginx(answerBytes: Int, workDir: String) throws -> (process: ChildProcess, port: UInt16)? {
        guard let nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            print("nginx not installed (apt-get install nginx-light): its rows are skipped")
            return nil
        }
        let root = "\(workDir)/nginx"
        try FileManager.default.createDirectory(atPath: "\(root)/www", withIntermediateDirectories: true)
        Syscall.bestEffort("chmod") { chmod(workDir, 0o755) }
        Syscall.bestEffort("chmod") { chmod(root, 0o755) }
        Syscall.bestEffort("chmod") { chmod("\(root)/www", 0o755) }
        _ = FileManager.default.createFile(atPath: "\(root)/www/freeswitch", contents: Data(repeating: UInt8(ascii: "x"), count: max(1, answerBytes)))
        Syscall.bestEffort("chmod") { chmod("\(root)/www/freeswitch", 0o644) }
        let port = freePort()
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
                    listen 127.0.0.1:\(port);
                    root \(root)/www;
                    location / { error_page 405 =200 $uri; }
                }
            }
            """.write(toFile: "\(root)/nginx.conf", atomically: true, encoding: .utf8)
        let process = try ChildProcess(nginx, ["-c", "\(root)/nginx.conf", "-p", root], log: "\(root)/stdout.log")
        guard waitForPort(port) else {
            _ = process.stop()
            throw BenchError("nginx did not start; see \(root)/error.log")
        }
        return (process, port)
    }

    /// The switchauth binary to measure: `override`, else the one beside this benchmark.
    static func switchauthBinary(_ override: String?) throws -> String {
        let exeDir = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        let switchauth = override ?? exeDir.appendingPathComponent("switchauth").path
        guard FileManager.default.isExecutableFile(atPath: switchauth) else {
            throw BenchError("\(switchauth) not found: build it first (swift build -c release)")
        }
        return switchauth
    }

    /// The measured binary's default `replica_staleness_ms`, from `serve --help-config` (an older
    /// build, compared with `--switchauth`, may have another; one without the setting: 0).
    static func defaultStaleness(_ switchauth: String) throws -> Int {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: switchauth)
        process.arguments = ["serve", "--help-config"]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        try process.run()
        let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        for line in text.split(separator: "\n") where line.hasPrefix("replica_staleness_ms") {
            let words = line.split(separator: " ")
            if let i = words.firstIndex(of: "default"), i + 1 < words.count, let ms = Int(words[i + 1]) { return ms }
        }
        return 0
    }

    struct HangFigures {
        var directoryMax = 0.0, dialplanMax = 0.0, aclMax = 0.0, healthMax = 0.0
        var unhealthyAfter = Double.nan, recovery = Double.nan
        var grants = 0
    }

    /// SIGSTOP on PostgreSQL for 2 s with requests one after another, then SIGCONT and the time
    /// until a valid digest is answered with its user again.
    func measureHang(cluster: TemporaryCluster, port: UInt16, shapes: RequestShapes, data: Dataset,
                     stalenessMilliseconds: Int) throws -> HangFigures {
        var rng = Xoshiro(seed: 5)
        let gen = LoadGenerator(port: port, keepAlive: false) { _ in [] }
        func timed(_ request: [UInt8]) -> (String, Double) {
            // One request per connection, closed after its answer, as mod_xml_curl sends them.
            var request = request
            if let i = (0..<request.count - 3).first(where: { request[$0] == 13 && request[$0 + 1] == 10 && request[$0 + 2] == 13 && request[$0 + 3] == 10 }),
               !String(decoding: request[..<i], as: UTF8.self).contains("Connection: close") {
                request.insert(contentsOf: Array("\r\nConnection: close".utf8), at: i)
            }
            let t0 = now()
            guard let s = gen.connectSocket() else { return ("", .nan) }
            defer { s.close() }
            guard (try? s.sendAll(request)) != nil, let text = try? s.receiveToEnd(timeoutMilliseconds: 5_000) else { return ("", .nan) }
            return (String(decoding: text, as: UTF8.self), Double(now() - t0) / 1e6)
        }
        let acl = shapes.wrap(shapes.aclBody)
        let health = Array("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".utf8)
        var f = HangFigures()
        cluster.freeze()
        let frozeAt = now()
        // The memory copy answers for up to replica_staleness_ms after its last proof (nothing can
        // change while PostgreSQL is stopped, so those answers are the database's), and a statement
        // PostgreSQL finished as the signal landed is a confirmed answer: grants count from the
        // staleness bound (plus a heartbeat's margin) into the hang.
        let graceNanoseconds = UInt64(stalenessMilliseconds + 50) * 1_000_000
        while now() - frozeAt < 2_000_000_000 {
            let settled = now() - frozeAt > graceNanoseconds
            let (d, td) = timed(shapes.wrap(shapes.directory(data.device(&rng), rng: &rng)))
            f.directoryMax = max(f.directoryMax, td)
            if settled && d.contains("<user id=") { f.grants += 1 }
            let (p, tp) = timed(shapes.wrap(shapes.dialplan(data.ipCall(&rng))))
            f.dialplanMax = max(f.dialplanMax, tp)
            if settled && p.contains("transfer") { f.grants += 1 }
            f.aclMax = max(f.aclMax, timed(acl).1)
            let (h, th) = timed(health)
            f.healthMax = max(f.healthMax, th)
            if h.hasPrefix("HTTP/1.1 503"), f.unhealthyAfter.isNaN { f.unhealthyAfter = Double(now() - frozeAt) / 1e6 }
            Syscall.sleep(nanoseconds: 20_000_000)
        }
        cluster.thaw()
        let back = now()
        while now() - back < 5_000_000_000 {
            var r2 = Xoshiro(seed: 6)
            if timed(shapes.wrap(shapes.directory(data.device(&r2), rng: &r2))).0.contains("<user id=") {
                f.recovery = Double(now() - back) / 1e6
                break
            }
            Syscall.sleep(nanoseconds: 10_000_000)
        }
        return f
    }

    /// One value of the service's /metrics.
    func metricValue(_ port: UInt16, _ name: String) throws -> Double {
        let s = try TCPSocket.connect(host: "127.0.0.1", port: port, timeoutMilliseconds: 2_000)
        defer { s.close() }
        try s.sendAll("GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: \(RequestShapes.authorization)\r\nConnection: close\r\n\r\n")
        let text = String(decoding: try s.receiveToEnd(timeoutMilliseconds: 5_000), as: UTF8.self)
        for line in text.split(separator: "\n") where line.hasPrefix(name + " ") {
            return Double(line.split(separator: " ")[1]) ?? 0
        }
        return 0
    }

    /// Whether /metrics has `name` at all (older binaries, compared with `--switchauth`, may not).
    func metricHelp(_ port: UInt16, _ name: String) throws -> Bool {
        let s = try TCPSocket.connect(host: "127.0.0.1", port: port, timeoutMilliseconds: 2_000)
        defer { s.close() }
        try s.sendAll("GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: \(RequestShapes.authorization)\r\nConnection: close\r\n\r\n")
        let text = String(decoding: try s.receiveToEnd(timeoutMilliseconds: 5_000), as: UTF8.self)
        return text.split(separator: "\n").contains { $0.hasPrefix(name + " ") }
    }

    func runPgbench(_ pgbench: String, cluster: TemporaryCluster, script: String, seconds: Double) throws -> Double {
        let file = "\(cluster.directory)/bench-\(UUID().uuidString).sql"
        try script.write(toFile: file, atomically: true, encoding: .utf8)
        Syscall.bestEffort("chmod") { chmod(file, 0o644) }
        let log = "\(cluster.directory)/pgbench.out"
        let p = try ChildProcess(pgbench, ["-n", "-h", cluster.directory, "-U", "postgres", "-M", "prepared", "-c", "4", "-j", "2",
                                           "-T", String(max(1, Int(seconds))), "-f", file, "bench"], log: log)
        _ = p.wait()
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

