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

/// Reliability runs against the real `switchauth serve` binary (the test suite covers the same
/// properties in-process, faster):
/// - `sigterm`: SIGTERM while clients are mid-request: zero failed in-flight requests, exit 0, and
///   a restarted service answers at once.
/// - `soak`: many requests; open descriptors and RSS of the service stay flat.
struct Reliability: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reliability",
        abstract: "SIGTERM under load and a descriptor/RSS soak against the real switchauth binary.")

    @Flag(help: "A few seconds (CI).") var smoke = false
    @Option(help: "Requests for the soak.") var requests: Int?

    func run() throws {
        let exeDir = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        let switchauth = exeDir.appendingPathComponent("switchauth").path
        guard FileManager.default.isExecutableFile(atPath: switchauth) else { throw BenchError("\(switchauth) not found") }
        let cluster = try TemporaryCluster()
        defer { cluster.stop() }
        var config = cluster.config(database: "postgres")
        config.queryTimeoutMilliseconds = 600_000
        let db = try Connection(config)
        try Migrator(directory: Migrator.defaultDirectory()).migrate(db)
        _ = try Dataset.smoke.load(db)
        let environment = [
            "SWITCHAUTH_DATABASE_URL": "host=\(cluster.directory) port=5432 user=postgres dbname=postgres",
            "SWITCHAUTH_EVENT_SOCKETS": "", "SWITCHAUTH_WORKERS": "4",
            "SWITCHAUTH_BASIC_AUTH": RequestShapes.credentials,
        ]
        func start(_ port: UInt16, _ log: String) throws -> ChildProcess {
            var env = environment
            env["SWITCHAUTH_LISTEN_PORT"] = String(port)
            let p = try ChildProcess(switchauth, ["serve"], environment: env, log: "\(cluster.directory)/\(log)")
            guard waitForPort(port) else { throw BenchError("switchauth did not start") }
            return p
        }

        // --- SIGTERM under load
        let port = freePort()
        var service = try start(port, "sigterm.log")
        let shapes = try RequestShapes(path: "/freeswitch", port: port)
        let data = Dataset.smoke
        let stop = Atomic<Bool>(false)
        let completed = Atomic<Int>(0), failedInFlight = Atomic<Int>(0), refused = Atomic<Int>(0), lateFailed = Atomic<Int>(0)
        let signalAt = Atomic<UInt64>(UInt64.max)
        let group = DispatchGroup()
        for t in 0..<8 {
            group.enter()
            Thread {
                var rng = Xoshiro(seed: UInt64(t + 100))
                let gen = LoadGenerator(port: port, keepAlive: false) { _ in [] }
                let deadline = now() + 20_000_000_000
                while !stop.load(ordering: .relaxed) && now() < deadline {
                    let connectedAt = now()
                    guard let fd = gen.connectSocket() else { refused.wrappingAdd(1, ordering: .relaxed); Syscall.sleep(nanoseconds: 1_000_000); continue }
                    var reader = ResponseReader()
                    // Send in two parts, so that many requests are mid-flight when the signal lands.
                    let request = shapes.wrap(shapes.directory(data.device(&rng), rng: &rng))
                    let half = request.count / 2
                    _ = try? fd.sendAll(Array(request[..<half]))
                    Syscall.sleep(nanoseconds: 200_000)
                    let ok = gen.roundTrip(fd, Array(request[half...]), &reader)
                    if ok {
                        completed.wrappingAdd(1, ordering: .relaxed)
                    } else if connectedAt + 5_000_000 < signalAt.load(ordering: .relaxed) {
                        // Connected well before the signal: the server had it; this is an in-flight failure.
                        failedInFlight.wrappingAdd(1, ordering: .relaxed)
                    } else {
                        // Connected in the last moments of the listener (a reset from the closing
                        // backlog): FreeSWITCH sees a connection error and moves to the next binding.
                        lateFailed.wrappingAdd(1, ordering: .relaxed)
                    }
                    fd.close()
                }
                group.leave()
            }.start()
        }
        Syscall.sleep(nanoseconds: UInt64(smoke ? 500_000 : 2_000_000) * 1_000)
        let beforeSignal = completed.load(ordering: .relaxed)
        signalAt.store(now(), ordering: .relaxed)
        let status = service.stop() // SIGTERM, then wait for exit
        stop.store(true, ordering: .relaxed)
        group.wait()
        let exitedCleanly = (status & 0x7f) == 0 && (status >> 8) & 0xff == 0
        print("SIGTERM under load: \(completed.load(ordering: .relaxed)) completed (\(beforeSignal) before the signal), \(failedInFlight.load(ordering: .relaxed)) in-flight failed, \(lateFailed.load(ordering: .relaxed)) reset while connecting during the stop, \(refused.load(ordering: .relaxed)) connections refused after stop; exit status \(exitedCleanly ? "0" : "\(status)")")
        service = try start(port, "restart.log")
        var rng = Xoshiro(seed: 7)
        let after = LoadGenerator(port: port, keepAlive: false) { _ in [] }
        var reader = ResponseReader()
        let fd = after.connectSocket()
        let restartedOK = fd.map { after.roundTrip($0, shapes.wrap(shapes.directory(data.device(&rng), rng: &rng)), &reader) } ?? false
        fd?.close()
        print("restarted service answers: \(restartedOK)")

        // --- soak: descriptors and RSS flat
        let total = requests ?? (smoke ? 5_000 : 100_000)
        let gen = LoadGenerator(port: port, keepAlive: false) { rng in shapes.wrap(shapes.directory(data.device(&rng), rng: &rng)) }
        _ = gen.closedLoop(clients: 4, seconds: 0.5)
        let fds0 = fdCount(service.pid), rss0 = service.rssKiB
        var done = 0, errors = 0
        let started = Date()
        while done < total && Date().timeIntervalSince(started) < 600 {
            let r = gen.closedLoop(clients: 8, seconds: 1)
            done += r.requests
            errors += r.errors
        }
        Syscall.sleep(nanoseconds: 300_000_000)
        let fds1 = fdCount(service.pid), rss1 = service.rssKiB
        print("soak: \(done) requests, \(errors) errors; open descriptors \(fds0) -> \(fds1); RSS \(rss0 / 1024) -> \(rss1 / 1024) MiB")
        _ = service.stop()
        let flat = fds1 <= fds0 && rss1 <= rss0 + 8 * 1024
        if failedInFlight.load(ordering: .relaxed) > 0 || !exitedCleanly || !restartedOK || errors > 0 || !flat {
            throw BenchError("reliability run failed")
        }
        print("reliability: ok")
    }

    func fdCount(_ pid: pid_t) -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count) ?? -1
    }
}
