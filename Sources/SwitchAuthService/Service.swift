import Foundation
import Decisions
import HTTPServer
import Locking
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// A running SwitchAuth: the HTTP server (event loops doing socket I/O only), the database threads
/// its lookups are handed to, the prober that keeps the database's health, the failure recorder and
/// the change watcher, all parts of one `ServiceGroup`: started in order, stopped in reverse (the
/// server first drains its in-flight requests).
public final class Service: Sendable {
    public let config: ServiceConfig
    public let metrics = Metrics()
    public let acl: ACLCache
    public let server: HTTPServer
    public let health = DatabaseHealth()
    let watcher: ChangeWatcher
    /// One per switch with call_limits = global: releases the call slots of hung-up calls.
    let callListeners: [CallEventListener]
    /// With call_limits = global: the admissions in memory while this instance holds the lease.
    let admissions: AdmissionAuthority?
    let fraudAlerts: FraudAlerts?
    let statistics: LockoutStatistics
    /// Wrong basic-auth credentials per source, shared by every event loop.
    public let basicAuthThrottle = SharedBasicAuthThrottle()
    let pool: DatabasePool
    let prober: DatabaseProber
    let logger: Logger
    /// The lookups' memory copy, its feed and the writer of its successes' trust records (nil with `replica = false`).
    public let replica: Replica?
    let feed: ReplicaFeed?
    let trust: TrustRecorder?
    /// Every part with a lifecycle, in the order they start.
    private let group = ServiceGroup()
    /// Whether the running stop hands the listener to a new generation (a reload).
    private let handingOver = Locked(false)

    public var port: UInt16 { server.port }

    /// `listener`: the running generation's listening socket, taken over on a reload.
    public init(config: ServiceConfig, logger: Logger, listener: TCPSocket? = nil) throws {
        var config = config
        // No event socket, no hangup events: no slot could be released (`load` refuses an explicit
        // call_limits = global without them).
        if config.eventSockets.isEmpty { config.dialplan.callLimits = .perSwitch }
        self.config = config
        self.logger = logger
        acl = ACLCache(file: config.aclCacheFile, logger: logger)
        server = try HTTPServer(config: config.server, listener: listener)
        let metrics = self.metrics
        fraudAlerts = config.fraudWebhookURL.flatMap { FraudAlerts(url: $0, logger: logger) }
        let admissions = config.dialplan.callLimits == .global
            ? AdmissionAuthority(databaseConfig: config.databaseConfig, metrics: metrics, logger: logger) : nil
        self.admissions = admissions
        callListeners = config.dialplan.callLimits == .global
            ? config.eventSockets.map { CallEventListener(endpoint: $0, databaseConfig: config.databaseConfig, metrics: metrics, logger: logger,
                                                          admissions: admissions) }
            : []
        statistics = LockoutStatistics(config: config, logger: logger)
        pool = DatabasePool(config: config, metrics: metrics)
        prober = DatabaseProber(config: config, health: health, metrics: metrics, logger: logger)
        if config.replica {
            let replica = Replica(stalenessMilliseconds: config.replicaStalenessMilliseconds)
            self.replica = replica
            feed = ReplicaFeed(replica: replica, config: config, logger: logger)
            trust = TrustRecorder(config: config, logger: logger)
        } else {
            replica = nil
            feed = nil
            trust = nil
        }
        watcher = ChangeWatcher(config: config, acl: acl, metrics: metrics, logger: logger, replica: replica)
        group.set(Self.parts(self))
    }

    /// Starts the parts in order (`group`): the fraud webhook, the prober (after one probe, so that
    /// the first lookups know the database's state), the database threads, the lockout statistics,
    /// the memory copy's feed and trust writer, the change watcher, the hangup listeners (before any
    /// call is admitted), and last the HTTP server. A part that fails stops those before it.
    public func start() throws {
        try group.start()
        logger.notice("serving", metadata: [
            "listen": .string("\(config.server.host):\(server.port)"), "path": .string(config.path),
            "workers": .stringConvertible(config.server.loopCount),
            "database_connections": .stringConvertible(config.databaseConnections)])
    }

    /// Stops the parts in the reverse order of their start: first the server, which stops taking
    /// connections and drains its in-flight requests while the database threads and the copy they
    /// wait on still run.
    /// `handingOverListener`: a new generation has taken the listener (a reload); this one only
    /// drains its own connections.
    public func stop(handingOverListener: Bool = false) {
        logger.notice(handingOverListener ? "previous generation draining its connections" : "stopping: draining in-flight requests")
        handingOver.withLock { $0 = handingOverListener }
        group.stop()
        logger.notice("stopped", metadata: ["aborted_in_flight": .stringConvertible(server.counters.abortedOnStop.load(ordering: .relaxed))])
    }

    /// The parts, in the order they start (they stop in reverse).
    private static func parts(_ s: Service) -> [(name: String, part: any Lifecycle)] {
        let (config, logger, server, pool, prober, health, replica, trust) = (s.config, s.logger, s.server, s.pool, s.prober, s.health, s.replica, s.trust)
        let resolver = Resolver(config: config, metrics: s.metrics, acl: s.acl, logger: logger, statistics: s.statistics, fraudAlerts: s.fraudAlerts,
                                admissions: s.admissions)
        let (counters, throttle, listeners, handingOver) = (server.counters, s.basicAuthThrottle, s.callListeners, s.handingOver)
        var parts: [(name: String, part: any Lifecycle)] = []
        if let alerts = s.fraudAlerts { parts.append(("fraud webhook", alerts)) }
        parts.append(("database prober", LifecyclePart(start: {
            prober.probeOnce(config: config)
            if !health.isUp { logger.warning("database unavailable at start; answering fail-closed until it is back") }
            prober.start()
        }, stop: { prober.stop() })))
        parts.append(("database threads", pool))
        parts.append(("lockout statistics", s.statistics))
        // Loads in the background: until it is current, lookups read PostgreSQL.
        if let feed = s.feed { parts.append(("memory copy feed", feed)) }
        if let trust { parts.append(("trust records", trust)) }
        parts.append(("change watcher", s.watcher))
        // Before the listeners, which release into it; stopped after them, giving the admissions back.
        if let admissions = s.admissions { parts.append(("call admissions", admissions)) }
        for l in listeners { parts.append(("hangup listener \(l.endpoint)", l)) }
        // Last: the front door opens once everything behind it runs, and is the first to close
        // (a stop drains its in-flight requests while the rest still serves them). allow_clients is
        // enforced at accept: a peer outside it never holds a connection slot.
        let allow = config.allowClients
        let admit: (@Sendable (String) -> Bool)? = allow.isEmpty ? nil : { @Sendable (host: String) -> Bool in Service.admits(allow, host) }
        let watcher = s.watcher
        parts.append(("http server", LifecyclePart(start: {
            try server.start(admit: admit) { _ in
                LookupHandler(resolver: resolver, counters: counters, pool: pool, health: health, replica: replica, trust: trust,
                              throttle: throttle, callListeners: listeners)
            }
            // Switches are told to reload what they fetch from here only while it answers.
            watcher.setServing(true)
        }, stop: {
            watcher.setServing(false)
            server.stop(handingOverListener: handingOver.withLock { $0 })
        })))
        return parts
    }

    /// Whether a peer address is inside one of the allowed networks (an unparsable address is not).
    static func admits(_ allow: [IPNetwork], _ host: String) -> Bool {
        guard let peer = IPAddress(host) else { return false }
        return allow.contains { $0.contains(peer) }
    }
}

// The parts that start and stop as they are (the prober and the server take arguments: closures above).
extension FraudAlerts: Lifecycle {}
extension DatabasePool: Lifecycle {}
extension LockoutStatistics: Lifecycle {}
extension ReplicaFeed: Lifecycle {}
extension TrustRecorder: Lifecycle {}
extension ChangeWatcher: Lifecycle {}
extension CallEventListener: Lifecycle {}
