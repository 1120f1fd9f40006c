import Foundation
import Locking
import Logging
import Postgres
import Synchronization

/// Keeps PostgreSQL's statistics of `auth_failures` current while failures are being counted.
///
/// Failures are counted on the request path (one statement per failed attempt, `AuthFailures.record`),
/// so that a budget is never overrun between a count and a check. Under a flood the table grows by
/// thousands of rows a second long before autovacuum looks at it, and the lookups' cached plans
/// were made while it was small: this thread re-analyzes it (at most once a second, only after
/// failures were counted), which also invalidates those plans. The request-path connections also
/// run with `enable_seqscan=off` (ServiceConfig.databaseConfig).
public final class LockoutStatistics: Sendable {
    let config: ServiceConfig
    let logger: Logger
    /// Failures counted since the last ANALYZE.
    private final class Tally: Sendable { let n = Atomic<Int>(0) }
    private let counted = Tally()
    private let thread: BackgroundThread

    public init(config: ServiceConfig, logger: Logger) {
        self.config = config
        self.logger = logger
        let counted = self.counted
        let databaseConfig = config.databaseConfig
        thread = BackgroundThread(name: "lockout-statistics") { t in
            var db: Connection?
            while !t.isStopping {
                t.sleep(milliseconds: 1_000)
                guard counted.n.exchange(0, ordering: .relaxed) > 0, !t.isStopping else { continue }
                do {
                    if db == nil { db = Connection(lazy: databaseConfig) }
                    try db?.executeScript("ANALYZE auth_failures")
                } catch {
                    logger.warning("could not analyze auth_failures", metadata: ["error": .string("\(error)")])
                }
            }
            db?.close()
        }
    }

    /// A failure was counted (called on the request path; never blocks).
    public func noteCounted() { counted.n.add(1, ordering: .relaxed) }

    public func start() { thread.start() }

    /// Safe before `start()` and twice.
    public func stop() { thread.stop() }
}
