import Decisions
import Foundation
import HTTPServer
import Locking
import Logging
import Postgres
import Store
import Synchronization
import SystemCalls

/// What the service knows of PostgreSQL right now, without asking it: kept by the prober and by
/// every lookup's outcome, read by the event loops (which never wait for the database).
public final class DatabaseHealth: Sendable {
    private let up = Atomic<Bool>(false)
    private let lockouts = Locked<[(name: String, help: String, value: Double)]>([])

    public init() {}

    /// Lookups go to the database only while it is up; otherwise they are answered fail-closed at
    /// once (the circuit is open) until the prober sees it answer again.
    public var isUp: Bool { up.load(ordering: .acquiring) }

    public func markUp() {
        up.store(true, ordering: .releasing)
    }

    public func markDown() {
        up.store(false, ordering: .releasing)
    }

    /// Lockout gauges (active locks by budget, trusted sources) as last counted by the prober.
    public var lockoutGauges: [(name: String, help: String, value: Double)] { lockouts.withLock { $0 } }

    /// Counts locks and trusted sources (one statement each) for /metrics.
    func countLockouts(_ db: Connection, policy: LockoutPolicy) {
        var gauges: [(name: String, help: String, value: Double)] = []
        if let counts = try? AuthFailures.lockedCounts(db) {
            for scope in LockoutScope.allCases.sorted(by: { $0.label < $1.label }) {
                gauges.append(("switchauth_lockouts_active{scope=\"\(scope.label)\"}", "Subjects currently locked out, by budget.", Double(counts[scope] ?? 0)))
            }
        }
        if let n = try? AuthFailures.trustedCount(db, policy: policy) {
            gauges.append(("switchauth_lockout_trusted_sources", "(source, user) pairs with a success within lockout_trust_s.", Double(n)))
        }
        lockouts.withLock { $0 = gauges }
    }
}

/// Watches PostgreSQL with its own connection: a short `SELECT 1` every `intervalMilliseconds`
/// (faster while it is down), marking `health` up or down; also counts active lockouts for
/// /metrics so that no request has to.
final class DatabaseProber: Sendable {
    let health: DatabaseHealth
    let metrics: Metrics
    let logger: Logger
    private let thread: BackgroundThread

    init(config: ServiceConfig, health: DatabaseHealth, metrics: Metrics, logger: Logger) {
        self.health = health
        self.metrics = metrics
        self.logger = logger
        var db = config.readDatabaseConfig
        db.queryTimeoutMilliseconds = config.probeTimeoutMilliseconds
        db.connectTimeoutMilliseconds = max(config.probeTimeoutMilliseconds, 100)
        db.reconnectBackoffMilliseconds = 0
        // A hung server never sends statement_timeout's error: the probe's own deadline is the signal.
        db.clientSlackMilliseconds = 10
        let interval = config.probeIntervalMilliseconds
        let probeConfig = db
        let policy = config.lockout
        thread = BackgroundThread(name: "db-prober") { t in
            let connection = Connection(lazy: probeConfig)
            defer { connection.close() }
            var lastCount: UInt64 = 0
            while !t.isStopping {
                let ok = connection.healthCheck()
                if ok {
                    if !health.isUp { logger.notice("database reachable: lookups go to PostgreSQL again") }
                    health.markUp()
                    let now = MonotonicClock.now()
                    if now - lastCount > 1_000_000_000 {
                        lastCount = now
                        health.countLockouts(connection, policy: policy)
                    }
                } else {
                    if health.isUp { logger.warning("database unreachable: answering fail-closed without asking it") }
                    health.markDown()
                }
                t.sleep(milliseconds: ok ? interval : max(20, interval / 5))
            }
        }
    }

    /// One probe on the caller's thread (bounded by the probe timeout), so that a service starting
    /// beside a healthy database answers from its first request.
    func probeOnce(config: ServiceConfig) {
        var db = config.readDatabaseConfig
        db.queryTimeoutMilliseconds = config.probeTimeoutMilliseconds
        db.connectTimeoutMilliseconds = config.connectTimeoutMilliseconds
        let c = Connection(lazy: db)
        if c.healthCheck() {
            health.markUp()
            health.countLockouts(c, policy: config.lockout)
        } else {
            health.markDown()
        }
        c.close()
    }

    func start() { thread.start() }
    func stop() { thread.stop() }
}

/// A database thread's connections: where lookups read, and where their effects (failure counts,
/// successes) are written. The same connection unless `read_database_url` names a standby.
final class DatabaseSession {
    let read: Connection
    private let writeConfig: ConnectionConfig?
    private var writer: Connection?

    init(config: ServiceConfig) {
        read = Connection(lazy: config.readDatabaseConfig)
        writeConfig = config.hasStandby ? config.databaseConfig : nil
    }

    /// The primary, connected on first use (a standby refuses writes).
    var write: Connection {
        guard let writeConfig else { return read }
        if let writer { return writer }
        let c = Connection(lazy: writeConfig)
        writer = c
        return c
    }

    func close() {
        read.close()
        writer?.close()
    }
}

/// A lookup handed to the database threads.
struct DatabaseJob: Sendable {
    /// After this the loop has answered with the fallback: the job is skipped if not started yet.
    let deadline: UInt64
    /// A call to admit: admissions queued together are admitted in one statement, each then
    /// finished with its own answer. `run` admits it alone.
    var admission: AdmissionWork? = nil
    let run: @Sendable (DatabaseSession) -> Void
}

/// A call waiting for the shared counters, and what to do with their answer.
struct AdmissionWork: Sendable {
    let call: CallAdmission
    let finish: @Sendable (Result<CallSlots.Admission, any Error>, DatabaseSession) -> Void
}

/// The service's database threads (a `WorkerPool`): each owns one session, its connections created
/// lazily and reconnected with back-off by `Connection`. The event loops only `submit`; a full queue
/// refuses at once, which the handler turns into a deliberate, counted shed.
final class DatabasePool: Sendable {
    private let pool: WorkerPool<DatabaseJob>
    let metrics: Metrics

    init(config: ServiceConfig, metrics: Metrics) {
        self.metrics = metrics
        pool = WorkerPool(name: "db", threads: config.databaseConnections, capacity: config.maxQueuedLookups,
                          batch: Self.admissionBatch, joins: { $0.admission != nil },
                          isStale: { MonotonicClock.now() >= $0.deadline }, skipped: { _ in metrics.lookupExpiredInQueue() },
                          open: { DatabaseSession(config: config) }, close: { $0.close() },
                          perform: { jobs, session in
                              if jobs.count > 1 {
                                  Self.admitTogether(jobs, session, metrics)
                              } else {
                                  for job in jobs { job.run(session) }
                              }
                          })
    }

    /// Admissions admitted in one statement at most.
    static let admissionBatch = 4

    /// Admits queued calls in one statement and one transaction. If the batch fails as a whole
    /// (nothing of it was written: one transaction), each call is admitted alone, so that one
    /// call's trouble never refuses the others.
    static func admitTogether(_ jobs: [DatabaseJob], _ session: DatabaseSession, _ metrics: Metrics) {
        let works = jobs.compactMap(\.admission)
        guard works.count == jobs.count,
              let answers = try? CallSlots.admit(session.write, batch: works.map(\.call)) else {
            for job in jobs { job.run(session) }
            return
        }
        metrics.admissionBatch(works.count)
        for (work, answer) in zip(works, answers) { work.finish(.success(answer), session) }
    }

    func start() { pool.start() }

    /// Offers a job; false when the queue is full (unless `beyondCapacity`) or the pool stopped.
    func submit(_ job: DatabaseJob, beyondCapacity: Bool = false) -> Bool { pool.submit(job, beyondCapacity: beyondCapacity) }

    var queued: Int { pool.queued }

    /// Lets the queued jobs finish (or expire), then ends the threads and closes their connections.
    func stop() { pool.stop() }
}
