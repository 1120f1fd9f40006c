import Decisions
import FreeSWITCHXML
import Foundation
import Logging
import Postgres
import Store
import Synchronization

/// LISTENs on `switchauth_changes` with its own connection and, debounced, pushes to every
/// configured FreeSWITCH: `reloadacl` when IP settings or accounts change, `xml_flush_cache id
/// <user> <domain>` (for every name of the domain) when a device changes. It also refreshes the
/// last known good acl.conf. When it (re)connects to the database, the service has just started or
/// PostgreSQL has come back: switches that fetched acl.conf meanwhile may have lost their list, so it
/// pushes `reloadacl` then too. Failed pushes are retried with back-off; nothing is dropped while
/// the service runs.
public final class ChangeWatcher: Sendable {
    public static let channel = "switchauth_changes"

    let config: ServiceConfig
    let acl: ACLCache
    let metrics: Metrics
    let logger: Logger
    let debounceMilliseconds: Int
    private let stopping = Atomic<Bool>(false)
    private let done = DispatchSemaphore(value: 0)

    public init(config: ServiceConfig, acl: ACLCache, metrics: Metrics, logger: Logger, debounceMilliseconds: Int = 200) {
        self.config = config
        self.acl = acl
        self.metrics = metrics
        self.logger = logger
        self.debounceMilliseconds = debounceMilliseconds
    }

    public func start() {
        let thread = Thread { [self] in
            run()
            done.signal()
        }
        thread.name = "change-watcher"
        thread.start()
    }

    public func stop() {
        stopping.store(true, ordering: .releasing)
        done.wait()
    }

    /// What is owed to one switch.
    struct Pending {
        var reload = false
        var flush: Set<String> = [] // "user domain"
        var failures = 0
        var retryAt: UInt64 = 0
        var isEmpty: Bool { !reload && flush.isEmpty }
    }

    private func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    private func run() {
        var db: Connection?
        var pending = [Pending](repeating: Pending(), count: config.eventSockets.count)
        var batchStarted: UInt64?
        var changedDevices: Set<String> = []
        var aclChanged = false
        var lastPrune: UInt64 = 0
        while !stopping.load(ordering: .acquiring) {
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
                    sleepMilliseconds(500)
                    continue
                }
            }
            guard let c = db else { continue }
            do {
                let waitMs = batchStarted == nil ? 250 : 20
                for n in try c.notifications(timeoutMilliseconds: waitMs) {
                    if batchStarted == nil { batchStarted = now() }
                    if n.payload == "acl" || n.payload.hasPrefix("account:") {
                        aclChanged = true
                    } else if n.payload.hasPrefix("device:") {
                        changedDevices.insert(String(n.payload.dropFirst("device:".count)))
                    }
                }
                if let started = batchStarted, now() - started >= UInt64(debounceMilliseconds) * 1_000_000 {
                    if aclChanged { refreshACL(c) }
                    let flushes = try flushCommands(c, changedDevices)
                    for i in pending.indices {
                        if aclChanged { pending[i].reload = true }
                        pending[i].flush.formUnion(flushes)
                    }
                    aclChanged = false
                    changedDevices = []
                    batchStarted = nil
                }
                if now() - lastPrune > 60_000_000_000 {
                    lastPrune = now()
                    try? AuthFailures.prune(c, policy: config.lockout)
                }
            } catch {
                logger.warning("change listener lost the database", metadata: ["error": .string("\(error)")])
                db?.close()
                db = nil
            }
            push(&pending)
        }
        db?.close()
    }

    /// `xml_flush_cache id <user> <name>` for every name (primary and aliases) of the device's domain.
    private func flushCommands(_ db: Connection, _ devices: Set<String>) throws -> Set<String> {
        var out: Set<String> = []
        for d in devices {
            guard let at = d.lastIndex(of: "@") else { continue }
            let user = String(d[..<at]), domain = String(d[d.index(after: at)...])
            let r = try db.execute("""
                SELECT name FROM sip_domains WHERE lower(name) = lower($1)
                UNION SELECT al.alias FROM sip_domain_aliases al JOIN sip_domains sd ON sd.id = al.domain_id WHERE lower(sd.name) = lower($1)
                """, [domain])
            var names = (0..<r.rowCount).compactMap { r.string($0, 0) }
            if names.isEmpty { names = [domain] }
            for name in names.sorted() { out.insert("\(user) \(name)") }
        }
        return out
    }

    private func refreshACL(_ db: Connection) {
        if let networks = try? ACLNetworksLookup.run(db) {
            acl.store(Documents.acl(listName: config.aclListName, networks: networks))
        }
    }

    private func push(_ pending: inout [Pending]) {
        for (i, endpoint) in config.eventSockets.enumerated() where !pending[i].isEmpty && now() >= pending[i].retryAt {
            var commands: [String] = []
            if pending[i].reload { commands.append("reloadacl") }
            commands += pending[i].flush.sorted().map { "xml_flush_cache id \($0)" }
            do {
                _ = try EventSocketClient(endpoint: endpoint).api(commands)
                metrics.eslPush(result: "ok")
                logger.info("pushed to FreeSWITCH", metadata: ["switch": .string(endpoint.description), "commands": .stringConvertible(commands.count)])
                pending[i] = Pending()
            } catch {
                metrics.eslPush(result: "error")
                pending[i].failures += 1
                let backoff = min(30_000, 250 << min(pending[i].failures, 7))
                pending[i].retryAt = now() + UInt64(backoff) * 1_000_000
                logger.warning("push to FreeSWITCH failed; will retry", metadata: [
                    "switch": .string(endpoint.description), "error": .string("\(error)"), "retry_ms": .stringConvertible(backoff)])
            }
        }
    }
}

func sleepMilliseconds(_ ms: Int) {
    var request = timespec(tv_sec: ms / 1000, tv_nsec: (ms % 1000) * 1_000_000)
    var remaining = timespec()
    while nanosleep(&request, &remaining) != 0 && errno == EINTR { request = remaining }
}
