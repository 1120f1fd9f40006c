import Foundation
import Locking
import Logging
import Postgres
import Store
import Synchronization

/// Counts failed digest attempts off the request path: the resolver only adds to an in-memory
/// tally; a background thread with its own connection writes the tally every `flushMilliseconds`
/// in one statement (`AuthFailures.record(batch:)`). An attacker's thousand wrong digests a second
/// thus cost the lookup path what a thousand right ones cost, and PostgreSQL one upsert per
/// subject per flush instead of two per attempt. Counters stay in PostgreSQL, so lockouts survive
/// restarts and are shared by every instance; a lockout takes effect within one flush interval.
/// The tally is bounded: past `maxSubjects` distinct subjects per interval, further new subjects
/// are counted against their IP only (the IP is what locks a flooding source).
public final class FailureRecorder: Sendable {
    let config: ServiceConfig
    let metrics: Metrics
    let logger: Logger
    let flushMilliseconds: Int
    let maxSubjects = 50_000
    private let tally = Locked<[AuthFailures.Count: Int]>([:])
    private let stopping = Atomic<Bool>(false)
    private let done = DispatchSemaphore(value: 0)

    public init(config: ServiceConfig, metrics: Metrics, logger: Logger, flushMilliseconds: Int = 100) {
        self.config = config
        self.metrics = metrics
        self.logger = logger
        self.flushMilliseconds = flushMilliseconds
    }

    /// Adds one failure for the source IP and, when known, the user. Never blocks on I/O.
    public func record(ip: String?, user: String?) {
        tally.withLock { t in
            if let ip { t[AuthFailures.Count(scope: "ip", subject: ip), default: 0] += 1 }
            if let user {
                let key = AuthFailures.Count(scope: "user", subject: user)
                if t[key] != nil || t.count < maxSubjects { t[key, default: 0] += 1 }
            }
        }
        if ip != nil { metrics.authFailure(scope: "ip") }
        if user != nil { metrics.authFailure(scope: "user") }
    }

    public func start() {
        let thread = Thread { [self] in
            run()
            done.signal()
        }
        thread.name = "failure-recorder"
        thread.start()
    }

    /// Writes what is pending, then stops.
    public func stop() {
        stopping.store(true, ordering: .releasing)
        done.wait()
    }

    private func run() {
        let db = Connection(lazy: config.databaseConfig)
        var lastAnalyze = DispatchTime.now().uptimeNanoseconds
        var writtenSinceAnalyze = 0
        while true {
            let last = stopping.load(ordering: .acquiring)
            if !last { sleepMilliseconds(flushMilliseconds) }
            writtenSinceAnalyze += flush(db)
            // The lookups' cached plans were made while auth_failures was small (often empty, where
            // a sequential scan is cheapest). Under a flood it grows by thousands of rows a second
            // long before autovacuum looks at it: re-analyze it (at most every second), which also
            // invalidates those plans (the lookup connections also run with enable_seqscan=off).
            let now = DispatchTime.now().uptimeNanoseconds
            if writtenSinceAnalyze > 0 && now - lastAnalyze > 1_000_000_000 {
                do {
                    try db.executeScript("ANALYZE auth_failures")
                } catch {
                    logger.warning("could not analyze auth_failures", metadata: ["error": .string("\(error)")])
                }
                lastAnalyze = now
                writtenSinceAnalyze = 0
            }
            if last { break }
        }
        db.close()
    }

    /// Writes the pending tally; returns how many subjects were written.
    @discardableResult
    private func flush(_ db: Connection) -> Int {
        let batch = tally.withLock { t -> [AuthFailures.Count: Int] in
            let out = t
            t.removeAll(keepingCapacity: true)
            return out
        }
        guard !batch.isEmpty else { return 0 }
        do {
            for key in try AuthFailures.record(db, batch: batch, policy: config.lockout) {
                logger.warning("locked out", metadata: ["scope": .string(key.scope), "subject": .string(key.subject),
                                                         "seconds": .stringConvertible(config.lockout.lockSeconds)])
            }
            return batch.count
        } catch {
            // Keep the counts for the next flush rather than lose them.
            metrics.databaseError()
            tally.withLock { t in
                for (k, n) in batch where t[k] != nil || t.count < maxSubjects { t[k, default: 0] += n }
            }
            logger.warning("could not write failure counters; retrying", metadata: ["error": .string("\(error)")])
            return 0
        }
    }
}
