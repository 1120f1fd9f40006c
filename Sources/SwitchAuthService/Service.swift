import Foundation
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
    let failures: FailureRecorder
    let pool: DatabasePool
    let prober: DatabaseProber
    let logger: Logger

    public var port: UInt16 { server.port }

    public init(config: ServiceConfig, logger: Logger) throws {
        self.config = config
        self.logger = logger
        acl = ACLCache(file: config.aclCacheFile)
        server = try HTTPServer(config: config.server)
        watcher = ChangeWatcher(config: config, acl: acl, metrics: metrics, logger: logger)
        failures = FailureRecorder(config: config, metrics: metrics, logger: logger)
        pool = DatabasePool(config: config, metrics: metrics)
        prober = DatabaseProber(config: config, health: health, metrics: metrics, logger: logger)
    }

    public func start() throws {
        let resolver = Resolver(config: config, metrics: metrics, acl: acl, logger: logger, failures: failures)
        let counters = server.counters
        let (pool, health) = (self.pool, self.health)
        prober.probeOnce(config: config)
        if !health.isUp {
            logger.warning("database unavailable at start; answering fail-closed until it is back")
        }
        prober.start()
        pool.start()
        failures.start()
        do {
            try server.start { _ in LookupHandler(resolver: resolver, counters: counters, pool: pool, health: health) }
        } catch {
            failures.stop()
            pool.stop()
            prober.stop()
            throw error
        }
        watcher.start()
        logger.notice("serving", metadata: [
            "listen": .string("\(config.server.host):\(server.port)"), "path": .string(config.path),
            "workers": .stringConvertible(config.server.workers),
            "database_connections": .stringConvertible(config.databaseConnections)])
    }

    public func stop() {
        logger.notice("stopping: draining in-flight requests")
        server.stop()
        pool.stop()
        prober.stop()
        failures.stop()
        watcher.stop()
        logger.notice("stopped", metadata: ["aborted_in_flight": .stringConvertible(server.counters.abortedOnStop.load(ordering: .relaxed))])
    }

    /// Blocks SIGTERM/SIGINT in every thread (call before `start`), so that `waitForSignal` can take them.
    public static func blockTerminationSignals() {
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGTERM)
        sigaddset(&set, SIGINT)
        pthread_sigmask(SIG_BLOCK, &set, nil)
        signal(SIGPIPE, SIG_IGN)
    }

    /// Waits for SIGTERM or SIGINT; returns the signal number.
    public static func waitForSignal() -> Int32 {
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGTERM)
        sigaddset(&set, SIGINT)
        var sig: Int32 = 0
        sigwait(&set, &sig)
        return sig
    }
}
