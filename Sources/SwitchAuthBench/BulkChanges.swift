import ArgumentParser
import Foundation
import HTTPServer
import Locking
import Postgres
import Store
import Synchronization
import SystemCalls

/// The memory copy through an operator's bulk changes at the operator's scale (issue 19): the
/// dataset imported by `switchauth import`, `switchauth serve` as operators run it, directory
/// lookups arriving throughout at an open-loop rate, then
/// 1. every device's password changed in one `UPDATE` (audited row by row),
/// 2. every account, domain, device and IP setting removed by one `TRUNCATE ... CASCADE`,
/// 3. the same CSV imported again by `switchauth import`.
/// For each: how long the statement took, when the first lookup was answered by the new state and
/// when the copy answered from memory again (its load done, its proof back), counted from the
/// statement's return; and how many lookups were still answered from the replaced state once the
/// change was in force (must be 0: a stale answer is a wrong one).
struct BulkChanges: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bulk",
        abstract: "The memory copy through a bulk password change, a TRUNCATE and a re-import, with lookups arriving throughout.")

    @Flag(help: "A small dataset (seconds).") var smoke = false
    @Option(help: "Directory lookups per second arriving throughout (each a new connection).") var rate: Double = 200
    @Option(help: "The switchauth binary to measure (default: the one beside this benchmark).") var switchauth: String?

    func run() throws {
        let data = smoke ? Dataset.smoke : Dataset.full
        let switchauth = try Compare.switchauthBinary(self.switchauth)
        print("== SwitchAuth bulk changes (\(smoke ? "smoke" : "full")): \(data.devices) devices, \(data.accounts) accounts, \(data.ipSettings) IP settings; lookups at \(Int(rate))/s throughout")
        let cluster = try TemporaryCluster()
        defer { cluster.stop() }
        var config = cluster.config(database: "postgres")
        config.queryTimeoutMilliseconds = 1_800_000
        let db = try Connection(config)
        try Migrator(directory: Migrator.defaultDirectory()).migrate(db)
        try db.execute("SELECT set_config('switchauth.actor', 'bench:bulk', false)")
        let databaseURL = "host=\(cluster.directory) port=5432 user=postgres dbname=postgres"
        let firstImport = try data.importCSV(switchauth: switchauth, databaseURL: databaseURL, workDir: cluster.directory, connection: db)
        print(String(format: "imported in %.1f s", firstImport))

        let port = freePort()
        let service = try ChildProcess(switchauth, ["serve"], environment: [
            "SWITCHAUTH_DATABASE_URL": databaseURL, "SWITCHAUTH_LISTEN_PORT": String(port), "SWITCHAUTH_EVENT_SOCKETS": "",
            "SWITCHAUTH_BASIC_AUTH": RequestShapes.credentials,
        ], log: "\(cluster.directory)/switchauth-bulk.log")
        defer { _ = service.stop() }
        guard waitForPort(port) else { throw BenchError("switchauth did not start; see \(cluster.directory)/switchauth-bulk.log") }
        let metrics = Metrics(port: port)
        guard metrics.waitUntilCurrent(seconds: 300) else { throw BenchError("the memory copy never became current") }
        let shapes = try RequestShapes(path: "/freeswitch", port: port)

        // Lookups throughout, in two-second open-loop runs pooled: what callers see meanwhile.
        let background = LoadGenerator(port: port, keepAlive: false) { rng in shapes.wrap(shapes.directory(data.device(&rng), rng: &rng)) }
        let loading = Atomic<Bool>(true), loadDone = Atomic<Bool>(false)
        let pooled = Locked(LoadGenerator.OpenLoopResult(latencies: [], errors: 0, seconds: 0, offeredRate: rate))
        let loadThread = Thread {
            while loading.load(ordering: .relaxed) {
                let r = background.openLoop(rate: rate, seconds: 2, threads: 2)
                pooled.withLock { $0.pool(r) }
            }
            loadDone.store(true, ordering: .releasing)
        }
        loadThread.start()

        var rng = Xoshiro(seed: 7)
        /// One lookup with `password` for a random device; true when it was let in.
        func accepted(_ password: (String) -> String) -> (user: String, accepted: Bool)? {
            var d = data.device(&rng)
            d.password = password(d.user)
            var request = shapes.wrap(shapes.directory(d, rng: &rng))
            request.insert(contentsOf: Array("Connection: close\r\n".utf8), at: Self.headEnd(request))
            guard let s = try? TCPSocket.connect(host: "127.0.0.1", port: port, timeoutMilliseconds: 2_000) else { return nil }
            defer { s.close() }
            guard (try? s.sendAll(request)) != nil, let reply = try? s.receiveToEnd(timeoutMilliseconds: 5_000) else { return nil }
            return (d.user, String(decoding: reply, as: UTF8.self).contains("<user id=\"\(d.user)\""))
        }
        let csvPassword = { (user: String) in Dataset.csvPassword(Int(user.dropFirst())!) }
        let rotated = { (user: String) in "rotated-\(user)" }

        struct Phase { var name: String; var statement: Double; var firstRight: Double?; var fromMemory: Double?; var wrong: Int; var probes: Int }
        /// Runs `change`, then probes every 5 ms (a random device with `expect.password`, which must
        /// be let in or not as `expect.letIn` says) until one is answered right and the copy answers
        /// from memory again (a load done since, its proof back), for at most `limit` seconds, then
        /// two more seconds. A probe answered from the replaced state later than `grace` after the
        /// change returned is wrong: a change made by plain SQL is in force `replica_staleness_ms`
        /// (250) after its commit, one made by a `switchauth` command when the command returns.
        func phase(_ name: String, limit: Double = 120, grace: Double, reloads: Bool = data.devices > 10_000,
                   expect: (password: (String) -> String, letIn: Bool), _ change: () throws -> Void) throws -> Phase {
            let loadsBefore = metrics.value("switchauth_replica_loads")
            let t0 = now()
            try change()
            let t1 = now()
            var p = Phase(name: name, statement: Double(t1 - t0) / 1e9, firstRight: nil, fromMemory: nil, wrong: 0, probes: 0)
            var settleFrom: UInt64?
            while Double(now() - t1) / 1e9 < limit, settleFrom.map({ now() - $0 < 2_000_000_000 }) ?? true {
                let sent = Double(now() - t1) / 1e9
                if let r = accepted(expect.password) {
                    p.probes += 1
                    if r.accepted == expect.letIn {
                        if p.firstRight == nil { p.firstRight = Double(now() - t1) / 1e9 }
                    } else if sent > grace {
                        p.wrong += 1
                    }
                }
                // A statement over 10,000 rows (and a TRUNCATE) reloads the copy: from memory again
                // once a load is done since and the proof is back; a smaller one is applied row by
                // row and the copy stays current.
                if p.fromMemory == nil, p.firstRight != nil, !reloads || metrics.value("switchauth_replica_loads") > loadsBefore,
                   metrics.value("switchauth_replica_current") == 1 {
                    p.fromMemory = Double(now() - t1) / 1e9
                }
                if settleFrom == nil, p.firstRight != nil, p.fromMemory != nil { settleFrom = now() }
                Syscall.sleep(nanoseconds: 5_000_000)
            }
            print(String(format: "%@: statement %.1f s; right answers after %@, from memory again after %@; %d of %d probes wrong",
                         name, p.statement, p.firstRight.map { String(format: "%.3f s", $0) } ?? "never",
                         p.fromMemory.map { String(format: "%.2f s", $0) } ?? "never", p.wrong, p.probes))
            fflush(nil)
            return p
        }

        let answeredBefore = metrics.value("switchauth_replica_lookups_answered")
        var phases: [Phase] = []
        phases.append(try phase("every device's password changed in one UPDATE", grace: 0.25, expect: (rotated, true)) {
            try db.execute("""
                UPDATE sip_devices v SET ha1_md5 = md5(v.username || ':' || d.name || ':rotated-' || v.username),
                       ha1_sha256 = encode(sha256(convert_to(v.username || ':' || d.name || ':rotated-' || v.username, 'UTF8')), 'hex')
                  FROM sip_domains d WHERE d.id = v.domain_id
                """)
        })
        let audited = (try? db.execute("SELECT count(*) FROM audit_log WHERE action = 'update' AND object_type = 'sip_devices'").string(0, 0)).flatMap { $0 } ?? "?"
        phases.append(try phase("TRUNCATE accounts, sip_domains CASCADE (everything the CSV made)", grace: 0.25, reloads: true, expect: (rotated, false)) {
            try db.execute("TRUNCATE accounts, sip_domains CASCADE")
        })
        var reimport = 0.0
        phases.append(try phase("switchauth import of the same CSV, then VACUUM ANALYZE", limit: 300, grace: 0, expect: (csvPassword, true)) {
            reimport = try data.importCSV(switchauth: switchauth, databaseURL: databaseURL, workDir: cluster.directory, connection: db)
        })
        loading.store(false, ordering: .relaxed)
        while !loadDone.load(ordering: .acquiring) { Syscall.sleep(nanoseconds: 50_000_000) }
        let load = pooled.withLock { $0 }
        let answered = metrics.value("switchauth_replica_lookups_answered") - answeredBefore

        print("")
        print("| change (\(data.devices) devices) | statement | first right answer after | from memory again after | probes answered from the replaced state |")
        print("|---|---|---|---|---|")
        for p in phases {
            print(String(format: "| %@ | %.1f s | %@ | %@ | %d of %d |", p.name, p.statement,
                         p.firstRight.map { String(format: "%.3f s", $0) } ?? "never", p.fromMemory.map { String(format: "%.2f s", $0) } ?? "never",
                         p.wrong, p.probes))
        }
        print(String(format: "audit rows of the UPDATE: %@; the re-import alone %.1f s", audited, reimport))
        print(String(format: "lookups throughout: %d answered, %d failed; p50 %.2f p99 %.2f max %.1f ms; %.0f answered from the memory copy",
                     load.latencies.count, load.errors, load.percentile(50), load.percentile(99), load.max, answered))
        let wrong = phases.reduce(0) { $0 + $1.wrong }
        if wrong > 0 || phases.contains(where: { $0.firstRight == nil || $0.fromMemory == nil }) || load.errors > 0 {
            throw BenchError("a stale answer, a failed lookup, or a copy that never answered again: see above")
        }
    }

    static func headEnd(_ request: [UInt8]) -> Int {
        for i in 0..<(request.count - 3) where request[i] == 13 && request[i + 1] == 10 && request[i + 2] == 13 && request[i + 3] == 10 {
            return i + 2
        }
        return request.count
    }

    /// /metrics of one service, read one value at a time.
    struct Metrics {
        let port: UInt16
        func value(_ name: String) -> Double {
            guard let s = try? TCPSocket.connect(host: "127.0.0.1", port: port, timeoutMilliseconds: 2_000) else { return -1 }
            defer { s.close() }
            guard (try? s.sendAll("GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: \(RequestShapes.authorization)\r\nConnection: close\r\n\r\n")) != nil,
                  let bytes = try? s.receiveToEnd(timeoutMilliseconds: 5_000) else { return -1 }
            for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") where line.hasPrefix(name + " ") {
                return Double(line.split(separator: " ")[1]) ?? -1
            }
            return -1
        }
        func waitUntilCurrent(seconds: Double) -> Bool {
            let t0 = now()
            while Double(now() - t0) / 1e9 < seconds {
                if value("switchauth_replica_current") == 1 { return true }
                Syscall.sleep(nanoseconds: 50_000_000)
            }
            return false
        }
    }
}
