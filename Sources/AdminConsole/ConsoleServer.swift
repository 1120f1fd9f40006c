import Foundation
import HTTPServer
import Locking
import Logging
import Postgres
import Store
import SystemCalls

/// A console request handed to the database threads.
struct ConsoleJob: Sendable {
    let deadline: UInt64
    let request: ConsoleRequest
    let responder: Responder
}

/// The console's listener: our HTTP server's event loops (socket I/O only) in front of a small
/// pool of database threads (a `WorkerPool`), each owning one PostgreSQL connection. The loops answer `.later`;
/// a thread runs the application and answers through the responder. A full queue is a fast 503.
public final class ConsoleServer: Sendable {
    public let app: ConsoleApp
    let http: HTTPServer
    let pool: WorkerPool<ConsoleJob>
    let logger: Logger

    public var port: UInt16 { http.port }

    public init(app: ConsoleApp, logger: Logger = Logger(label: "switchauth.console")) throws {
        self.app = app
        self.logger = logger
        let s = app.settings
        http = try HTTPServer(config: ServerConfig(host: s.host, port: s.port, workers: s.workers,
                                                   limits: HTTPLimits(maxHeaderBytes: 16 * 1024, maxHeaderCount: 64, maxBodyBytes: 64 * 1024),
                                                   requestTimeoutMilliseconds: 10_000, idleTimeoutMilliseconds: 30_000,
                                                   maxConnections: 256))
        var db = s.database
        db.reconnectBackoffMilliseconds = 200
        let config = db
        let inForceAfter = s.changeInForceAfterMilliseconds
        pool = WorkerPool(name: "console-db", threads: s.databaseThreads, capacity: s.maxQueued,
                          isStale: { MonotonicClock.now() >= $0.deadline },
                          open: { Connection(lazy: config) }, close: { $0.close() },
                          perform: { jobs, connection in
                              for job in jobs { Self.run(job, app: app, connection: connection, inForceAfter: inForceAfter) }
                          })
    }

    /// One request on a database thread's connection.
    private static func run(_ job: ConsoleJob, app: ConsoleApp, connection: Connection, inForceAfter: Int?) {
        // Around a request that may change something, the session listens on the feed's channel to
        // hear its own changes to the copies' data. Only then: an idle session left listening would
        // not read the services' heartbeats, and PostgreSQL's notification queue could not be
        // trimmed past it.
        let listening = inForceAfter != nil && job.request.method != "GET" && job.request.method != "HEAD"
            && (try? connection.listen(ReplicaChange.channel)) != nil
        // The actor is per request: reset it so a read never inherits a previous writer.
        _ = try? ConsoleStore(db: connection).setActor("")
        let response = app.handle(job.request, db: connection)
        let changed = listening && ReplicaChange.committedBy(connection) == true
        if listening { try? connection.unlisten(ReplicaChange.channel) }
        if let ms = inForceAfter, changed {
            // Answered later from a timer: the thread takes the next request meanwhile.
            let responder = job.responder
            DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(ms)) { responder.respond(response) }
        } else {
            job.responder.respond(response)
        }
    }

    public func start() throws {
        pool.start()
        let app = self.app, pool = self.pool
        let timeout = UInt64(app.settings.answerTimeoutMilliseconds) * 1_000_000
        try http.start { _ in ConsoleHandler(app: app, pool: pool, timeout: timeout) }
        logger.notice("console listening", metadata: ["address": "\(app.settings.host):\(http.port)"])
    }

    /// Stops accepting, lets in-flight requests finish, then ends the database threads.
    public func stop() {
        http.stop()
        pool.stop()
    }
}

final class ConsoleHandler: RequestHandler {
    let app: ConsoleApp
    let pool: WorkerPool<ConsoleJob>
    let timeout: UInt64

    init(app: ConsoleApp, pool: WorkerPool<ConsoleJob>, timeout: UInt64) {
        self.app = app
        self.pool = pool
        self.timeout = timeout
    }

    func handle(_ request: HTTPRequest, context: RequestContext, responder: Responder) -> HandlerResult {
        let r = ConsoleRequest(request, context: context)
        if let s = app.staticResponse(r) { return .now(s) }
        let deadline = MonotonicClock.now() + timeout
        let busy = Problem(status: 503, title: "Service Unavailable", detail: "the console is busy; retry").response
        guard pool.submit(ConsoleJob(deadline: deadline, request: r, responder: responder)) else { return .now(busy) }
        return .later(deadline: deadline, fallback: { Problem(status: 503, title: "Service Unavailable", detail: "the database did not answer in time").response })
    }

    func shutdown() {}
}
