/// The one pool of worker threads of the project (the service's database threads, the console's):
/// a bounded queue in front of `threads` threads, each owning a session it opens when it starts and
/// closes when it ends (a PostgreSQL connection: one owner). `submit` never waits: a full queue
/// (or a stopped pool) refuses at once, which the caller turns into a deliberate, counted shed.
/// A job that is no longer wanted when a thread takes it (`isStale`: its deadline passed, the
/// caller has answered without it) is handed to `skipped` instead of run. Jobs that `joins`
/// accepts, queued one behind the other, are taken together (at most `batch`) and performed in one
/// go: the service admits calls queued together in one statement.
public final class WorkerPool<Job: Sendable>: Sendable {
    private let queue: BoundedQueue<Job>
    private let threads: [BackgroundThread]

    public init<Session>(name: String, threads count: Int, capacity: Int, batch: Int = 1,
                         joins: @escaping @Sendable (Job) -> Bool = { _ in false },
                         isStale: @escaping @Sendable (Job) -> Bool = { _ in false },
                         skipped: @escaping @Sendable (Job) -> Void = { _ in },
                         open: @escaping @Sendable () -> Session,
                         close: @escaping @Sendable (Session) -> Void,
                         perform: @escaping @Sendable ([Job], Session) -> Void) {
        let queue = BoundedQueue<Job>(capacity: capacity)
        self.queue = queue
        threads = (0..<max(1, count)).map { i in
            BackgroundThread(name: "\(name)-\(i)") { _ in
                let session = open()
                defer { close(session) }
                while let jobs = queue.take(upTo: max(1, batch), joining: joins) {
                    var live: [Job] = []
                    for job in jobs {
                        if isStale(job) { skipped(job) } else { live.append(job) }
                    }
                    if !live.isEmpty { perform(live, session) }
                }
            }
        }
    }

    public func start() { for t in threads { t.start() } }

    /// Offers a job; false when the queue is full (unless `beyondCapacity`) or the pool stopped.
    public func submit(_ job: Job, beyondCapacity: Bool = false) -> Bool { queue.offer(job, beyondCapacity: beyondCapacity) }

    public var queued: Int { queue.count }

    /// No more jobs; the queued ones are performed (or skipped), then the threads end and close
    /// their sessions. Returns when they have.
    public func stop() {
        queue.close()
        for t in threads { t.stop() }
    }
}
