import Foundation
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
    private let counted = Atomic<Int>(0)
    private let stopping = Atomic<Bool>(false)
    private let done = DispatchSemaphore(value: 0)

    public init(config: ServiceConfig, logger: Logger) {
        self.config = config
        self.logger = logger
    }

    /// A failure was counted (called on the request path; never blocks).
    public func noteCounted() { counted.add(1, ordering: .relaxed) }

    public func start() {
        let thread = Thread { [self] in
            run()
            done.signal()
        }
        thread.name = "lockout-statistics"
        thread.start()
    }

    public func stop() {
        stopping.store(true, ordering: .releasing)
        done.wait()
    }

    private func run() {
        var db: Connection?
        while !stopping.load(ordering: .acquiring) {
            for _ in 0..<10 where !stopping.load(ordering: .acquiring) { sleepMilliseconds(100) }
            guard counted.exchange(0, ordering: .relaxed) > 0 else { continue }
            do {
                if db == nil { db = Connection(lazy: config.databaseConfig) }
                try db?.executeScript("ANALYZE auth_failures")
            } catch {
                logger.warning("could not analyze auth_failures", metadata: ["error": .string("\(error)")])
            }
        }
        db?.close()
    }
}
