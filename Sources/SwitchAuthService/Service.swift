import Foundation
import Decisions
import HTTPServer
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// A running SwitchAuth: the HTTP server (event loops doing socket I/O only), the database threads
/// its lookups are handed to, the prober that keeps the database's health, the failure recorder and
/// the change watcher. `stop()` drains in-flight requests, then closes everything in reverse order
/// of start.
public final class Service: Sendable {
    public let config: ServiceConfig
    public let metrics = Metrics()
    public let acl: ACLCache
    public let server: HTTPServer
    public let health = DatabaseHealth()
    let watcher: ChangeWatcher
    /// One per switch with call_limits = global: releases the call slots of hung-up calls.
    let callListeners: [CallEventListener]
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
        callListeners = config.dialplan.callLimits == .global
            ? config.eventSockets.map { CallEventListener(endpoint: $0, databaseConfig: config.databaseConfig, metrics: metrics, logger: logger) }
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
    }

    public func start() throws {
        let resolver = Resolver(config: config, metrics: metrics, acl: acl, logger: logger, statistics: statistics, fraudAlerts: fraudAlerts)
        fraudAlerts?.start()
        let counters = server.counters
        let (pool, health) = (self.pool, self.health)
        prober.probeOnce(config: config)
        if !health.isUp {
            logger.warning("database unavailable at start; answering fail-closed until it is back")
        }
        prober.start()
        pool.start()
        statistics.start()
        // Loads in the background: until it is current, lookups read PostgreSQL.
        feed?.start()
        trust?.start()
        let (replica, trust) = (self.replica, self.trust)
        do {
            // allow_clients is enforced at accept: a peer outside it never holds a connection slot.
            let allow = config.allowClients
            var admit: (@Sendable (String) -> Bool)?
            if !allow.isEmpty {
                admit = { (host: String) -> Bool in Service.admits(allow, host) }
            }
            let throttle = basicAuthThrottle
            let listeners = callListeners
            let makeHandler: @Sendable (Int) throws -> any RequestHandler = { _ in
                LookupHandler(resolver: resolver, counters: counters, pool: pool, health: health, replica: replica, trust: trust, throttle: throttle,
                              callListeners: listeners)
            }
            try server.start(admit: admit, makeHandler: makeHandler)
        } catch {
            feed?.stop()
            trust?.stop()
            statistics.stop()
            pool.stop()
            prober.stop()
            throw error
        }
        watcher.start()
        for l in callListeners { l.start() }
        logger.notice("serving", metadata: [
            "listen": .string("\(config.server.host):\(server.port)"), "path": .string(config.path),
            "workers": .stringConvertible(config.server.loopCount),
            "database_connections": .stringConvertible(config.databaseConnections)])
    }

    /// `handingOverListener`: a new generation has taken the listener (a reload); this one only
    /// drains its own connections.
    public func stop(handingOverListener: Bool = false) {
        logger.notice(handingOverListener ? "previous generation draining its connections" : "stopping: draining in-flight requests")
        server.stop(handingOverListener: handingOverListener)
        feed?.stop()
        trust?.stop()
        pool.stop()
        prober.stop()
        statistics.stop()
        watcher.stop()
        for l in callListeners { l.stop() }
        fraudAlerts?.stop()
        logger.notice("stopped", metadata: ["aborted_in_flight": .stringConvertible(server.counters.abortedOnStop.load(ordering: .relaxed))])
    }

    /// Whether a peer address is inside one of the allowed networks (an unparsable address is not).
    static func admits(_ allow: [IPNetwork], _ host: String) -> Bool {
        guard let peer = IPAddress(host) else { return false }
        return allow.contains { $0.contains(peer) }
    }

    /// Blocks SIGTERM, SIGINT and SIGHUP in every thread (call before `start`), so that
    /// `waitForSignal` can take them.
    public static func blockTerminationSignals() {
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGTERM)
        sigaddset(&set, SIGINT)
        sigaddset(&set, SIGHUP)
        pthread_sigmask(SIG_BLOCK, &set, nil)
        signal(SIGPIPE, SIG_IGN)
    }

    /// Waits for SIGTERM, SIGINT or (with `reload`) SIGHUP; returns the signal number.
    public static func waitForSignal(reload: Bool = false) -> Int32 {
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGTERM)
        sigaddset(&set, SIGINT)
        if reload { sigaddset(&set, SIGHUP) }
        var sig: Int32 = 0
        sigwait(&set, &sig)
        return sig
    }
}
