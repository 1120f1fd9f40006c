import Decisions
import FreeSWITCHXML
import Foundation
import HTTPServer
import Locking
import Logging
import Postgres
import Store
import Synchronization
import SystemCalls

/// LISTENs on `switchauth_changes` with its own connection and, debounced, pushes to every
/// configured FreeSWITCH: `reloadacl` when IP settings or accounts change, `xml_flush_cache id
/// <user> <domain>` (for every name of the domain) when a device is updated or deleted. It also refreshes the
/// last known good acl.conf. When it (re)connects to the database, the service has just started or
/// PostgreSQL has come back: switches that fetched acl.conf meanwhile may have lost their list, so it
/// pushes `reloadacl` then too. Each switch has a pusher thread of its own, so a switch that is down
/// or hangs delays no other; failed pushes are retried with back-off, nothing is dropped while the
/// service runs.
public final class ChangeWatcher: Sendable {
    public static let channel = "switchauth_changes"

    let config: ServiceConfig
    let acl: ACLCache
    let metrics: Metrics
    let logger: Logger
    let debounceMilliseconds: Int
    private let thread: BackgroundThread
    let pushers: [SwitchPusher]

    /// The memory copy lookups are answered from: a switch is told to fetch only once the copy
    /// holds the change (or has stopped answering).
    let replica: Replica?

    public init(config: ServiceConfig, acl: ACLCache, metrics: Metrics, logger: Logger, debounceMilliseconds: Int = 200,
                replica: Replica? = nil) {
        self.replica = replica
        self.config = config
        self.acl = acl
        self.metrics = metrics
        self.logger = logger
        self.debounceMilliseconds = debounceMilliseconds
        let pushers = config.eventSockets.map { SwitchPusher(endpoint: $0, metrics: metrics, logger: logger) }
        self.pushers = pushers
        let box = WeakOwner<ChangeWatcher>()
        thread = BackgroundThread(name: "change-watcher") { t in box.owner?.run(t) }
        box.owner = self
    }


    public func start() {
        for p in pushers { p.start() }
        thread.start()
    }

    /// Pushes go out only while the service answers (the HTTP server is up): set when it starts
    /// listening, cleared when it begins to stop.
    public func setServing(_ on: Bool) {
        for p in pushers { p.setServing(on) }
    }

    /// Safe before `start()` and twice.
    public func stop() {
        thread.stop()
        for p in pushers { p.stop() }
    }


    private func run(_ t: BackgroundThread) {
        var db: Connection?
        var standby: Connection?
        var batchStarted: UInt64?
        // When the batch's first notification arrived (MonotonicClock, the copy's clock): its
        // transaction committed before.
        var batchSeen: UInt64?
        var changedDevices: Set<String> = []
        var aclChanged = false
        var lastPrune: UInt64 = 0
        while !t.isStopping {
            if db == nil || db?.isConnected == false {
                do {
                    // Off the request path: a longer statement deadline than the lookups'.
                    var watcherConfig = config.databaseConfig
                    watcherConfig.queryTimeoutMilliseconds = max(5_000, config.queryTimeoutMilliseconds)
                    let c = try db ?? Connection(watcherConfig)
                    if !c.isConnected { try c.reconnect() }
                    try c.listen(Self.channel)
                    db = c
                    logger.info("listening for changes", metadata: ["channel": .string(Self.channel)])
                    // Just started, or the database came back: every switch reloads its ACL.
                    aclChanged = true
                    batchStarted = 0
                } catch {
                    db = nil
                    t.sleep(milliseconds: 500)
                    continue
                }
            }
            guard let c = db else { continue }
            do {
                let waitMs = batchStarted == nil ? 250 : 20
                for n in try c.notifications(timeoutMilliseconds: waitMs) {
                    if batchStarted == nil { batchStarted = MonotonicClock.now() }
                    if batchSeen == nil { batchSeen = MonotonicClock.now() }
                    if n.payload == "acl" || n.payload.hasPrefix("account:") {
                        aclChanged = true
                    } else if n.payload.hasPrefix("device:") {
                        changedDevices.insert(String(n.payload.dropFirst("device:".count)))
                    } else if n.payload == "devices", let ms = config.directory.cacheableMilliseconds {
                        // A statement over 10,000 devices names none of them (migration 0008).
                        logger.notice("bulk device change: users cached by the switches expire within cacheable_ms",
                                      metadata: ["cacheable_ms": .stringConvertible(ms)])
                    }
                }
                if let started = batchStarted, MonotonicClock.now() - started >= UInt64(debounceMilliseconds) * 1_000_000 {
                    // With lookups read from a standby, a switch is told to fetch only once the
                    // standby has replayed the change (LISTEN works on the primary only).
                    if config.hasStandby { waitForStandby(primary: c, &standby) }
                    // The same for the memory copy: proven current as of a moment after the change
                    // was seen, or no longer proven at all (then lookups read PostgreSQL). Within
                    // replica_staleness_ms one or the other holds; usually a heartbeat (~20 ms).
                    if let replica, let seen = batchSeen {
                        _ = replica.waitUntilCurrent(since: seen, timeoutMilliseconds: config.replicaStalenessMilliseconds)
                    }
                    // The list is refreshed before any switch is told to fetch it.
                    if aclChanged { refreshACL(c) }
                    let flushes = try flushCommands(c, changedDevices)
                    for p in pushers { p.owe(reload: aclChanged, flush: flushes) }
                    aclChanged = false
                    changedDevices = []
                    batchStarted = nil
                    batchSeen = nil
                }
                if MonotonicClock.now() - lastPrune > 60_000_000_000 {
                    lastPrune = MonotonicClock.now()
                    try? AuthFailures.prune(c, policy: config.lockout)
                }
            } catch {
                logger.warning("change listener lost the database", metadata: ["error": .string("\(error)")])
                db?.close()
                db = nil
            }
        }
        db?.close()
        standby?.close()
    }

    /// Waits (up to 2 s) until the standby lookups read from has replayed the primary's WAL as of
    /// now. A standby that was promoted, or is unreachable, does not hold the push up.
    private func waitForStandby(primary: Connection, _ standby: inout Connection?) {
        guard let lsn = try? StandbyReplay.primaryPosition(primary) else { return }
        if standby == nil { standby = Connection(lazy: config.readDatabaseConfig) }
        let deadline = MonotonicClock.now() + 2_000_000_000
        while MonotonicClock.now() < deadline {
            guard let s = standby, let replayed = try? StandbyReplay.hasReplayed(s, position: lsn) else { return }
            if replayed { return }
            Syscall.sleep(nanoseconds: 5_000_000)
        }
        logger.warning("standby did not replay the change within 2 s; pushing anyway", metadata: ["lsn": .string(lsn)])
    }

    /// `xml_flush_cache id <user> <name>` for every name (primary and aliases) of the device's domain.
    private func flushCommands(_ db: Connection, _ devices: Set<String>) throws -> Set<String> {
        var out: Set<String> = []
        var usersByDomain: [String: [String]] = [:]
        for d in devices {
            guard let at = d.lastIndex(of: "@") else { continue }
            usersByDomain[String(d[d.index(after: at)...]), default: []].append(String(d[..<at]))
        }
        // The names of each domain once (a batch of 10,000 devices in 100 domains: 100 statements).
        for (domain, users) in usersByDomain {
            var names = try DomainNamesLookup.run(db, domain: domain)
            if names.isEmpty { names = [domain] }
            for user in users {
                for name in names { out.insert("\(user) \(name)") }
            }
        }
        return out
    }

    private func refreshACL(_ db: Connection) {
        if let networks = try? ACLNetworksLookup.run(db) {
            acl.store(Documents.acl(listName: config.aclListName, networks: networks))
        }
    }

}

/// What is owed to one switch, pushed by a thread of its own: a switch that refuses, times out or
/// hangs holds up only its own commands, which are kept (and merged with newer ones) and retried
/// with back-off.
final class SwitchPusher: Sendable {
    struct Owed: Sendable {
        var reload = false
        var flush: Set<String> = [] // "user domain"
        var isEmpty: Bool { !reload && flush.isEmpty }
        /// Whether this instance answers lookups: a switch told to reload its ACL asks for acl.conf
        /// at once, and an instance not serving yet (or no longer) would leave it with its static
        /// file's list. Owed commands wait meanwhile.
        var serving = false
    }

    let endpoint: EventSocketEndpoint
    let metrics: Metrics
    let logger: Logger
    private let owed = Monitor(Owed())
    private let thread: BackgroundThread

    init(endpoint: EventSocketEndpoint, metrics: Metrics, logger: Logger) {
        self.endpoint = endpoint
        self.metrics = metrics
        self.logger = logger
        let owed = self.owed
        thread = BackgroundThread(name: "esl-\(endpoint)") { t in
            var failures = 0
            while !t.isStopping {
                // Wait for something owed (or a stop), then take it all.
                let batch = owed.wait(until: { $0.serving && !$0.isEmpty }, timeoutNanoseconds: 200_000_000) { o -> Owed in
                    defer {
                        o.reload = false
                        o.flush = []
                    }
                    return o
                }
                guard let batch, !batch.isEmpty else { continue }
                var commands: [String] = []
                if batch.reload { commands.append("reloadacl") }
                commands += batch.flush.sorted().map { "xml_flush_cache id \($0)" }
                do {
                    _ = try EventSocketClient(endpoint: endpoint).api(commands)
                    metrics.eslPush(result: "ok")
                    logger.info("pushed to FreeSWITCH", metadata: ["switch": .string(endpoint.description), "commands": .stringConvertible(commands.count)])
                    failures = 0
                } catch {
                    metrics.eslPush(result: "error")
                    // Put it back, merged with whatever came meanwhile, and wait before the next try.
                    owed.withLock { o in
                        o.reload = o.reload || batch.reload
                        o.flush.formUnion(batch.flush)
                    }
                    failures += 1
                    // At most 1 s: a switch that comes back gets what it is owed (a fraud suspension,
                    // a removed IP) within a second. A refused connect costs nothing; a hung switch
                    // holds only this thread.
                    let backoff = min(1_000, 250 << min(failures - 1, 2))
                    logger.warning("push to FreeSWITCH failed; will retry", metadata: [
                        "switch": .string(endpoint.description), "error": .string("\(error)"), "retry_ms": .stringConvertible(backoff)])
                    t.sleep(milliseconds: backoff)
                }
            }
        }
    }

    func owe(reload: Bool, flush: Set<String>) {
        guard reload || !flush.isEmpty else { return }
        owed.withLock(wake: .all) { o in
            o.reload = o.reload || reload
            o.flush.formUnion(flush)
        }
    }

    func setServing(_ on: Bool) { owed.withLock(wake: .all) { $0.serving = on } }

    func start() { thread.start() }
    func stop() { thread.stop() }
}
