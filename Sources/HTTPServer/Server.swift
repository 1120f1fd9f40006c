import CSystemShims
import Foundation
import Dispatch
import Locking
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

public struct ServerConfig: Sendable, Equatable {
    public var host: String
    public var port: UInt16
    /// Event-loop threads; each owns one request handler (and so one database connection).
    public var workers: Int
    public var limits: HTTPLimits
    /// From the first byte of a request (or from accept) until the whole request is in.
    public var requestTimeoutMilliseconds: Int
    /// Keep-alive idle time between requests.
    public var idleTimeoutMilliseconds: Int
    /// For a response to be taken by the client.
    public var writeTimeoutMilliseconds: Int
    /// Open connections at most; past it, a new connection gets a fast 503 and is closed.
    public var maxConnections: Int
    /// On stop: how long in-flight requests may still finish.
    public var drainTimeoutMilliseconds: Int
    /// Stop reading from a client while this much of its output is unsent (pipelining without reading).
    public var maxPendingOutputBytes: Int

    public init(host: String = "127.0.0.1", port: UInt16 = 8088, workers: Int = 4, limits: HTTPLimits = HTTPLimits(),
                requestTimeoutMilliseconds: Int = 5_000, idleTimeoutMilliseconds: Int = 10_000,
                writeTimeoutMilliseconds: Int = 5_000, maxConnections: Int = 4_096,
                drainTimeoutMilliseconds: Int = 5_000, maxPendingOutputBytes: Int = 1 << 20) {
        self.host = host
        self.port = port
        self.workers = workers
        self.limits = limits
        self.requestTimeoutMilliseconds = requestTimeoutMilliseconds
        self.idleTimeoutMilliseconds = idleTimeoutMilliseconds
        self.writeTimeoutMilliseconds = writeTimeoutMilliseconds
        self.maxConnections = maxConnections
        self.drainTimeoutMilliseconds = drainTimeoutMilliseconds
        self.maxPendingOutputBytes = maxPendingOutputBytes
    }
}

/// Who sent a request.
public struct RequestContext: Sendable, Equatable {
    public var peerHost: String
    public var peerPort: UInt16
    public init(peerHost: String, peerPort: UInt16) {
        self.peerHost = peerHost
        self.peerPort = peerPort
    }
}

/// Answers requests on one event-loop thread. Created on that thread by the server's factory and
/// used only there, so it may own a database connection.
public protocol RequestHandler: AnyObject {
    func handle(_ request: HTTPRequest, context: RequestContext) -> HTTPResponse
    /// Called on the loop thread after the loop stopped: release resources (database connections).
    func shutdown()
}

/// Counters the server keeps for /metrics.
public final class ServerCounters: Sendable {
    public let open = Atomic<Int>(0)
    public let accepted = Atomic<Int>(0)
    public let rejectedOverLimit = Atomic<Int>(0)
    /// Connections closed at accept because the peer's address is not admitted (`allow_clients`).
    public let rejectedNotAllowed = Atomic<Int>(0)
    public let timedOut = Atomic<Int>(0)
    public let parseErrors = Atomic<Int>(0)
    /// Connections closed by a stop's drain deadline with a request half received or a response unsent.
    public let abortedOnStop = Atomic<Int>(0)
    public init() {}
}

/// An HTTP/1.1 server on POSIX sockets: `workers` epoll loops share one non-blocking listening
/// socket (EPOLLEXCLUSIVE), each serving its connections and calling its own handler.
public final class HTTPServer: Sendable {
    public let config: ServerConfig
    public let counters = ServerCounters()
    private let listener: ListeningSocket
    private let wakeFDs: [Int32]
    private let stopping = Atomic<Bool>(false)
    /// Loops that have taken their last connections from the backlog and left the listener.
    let loopsDrained = Atomic<Int>(0)
    private let running = DispatchGroup()
    private let startErrors = Locked<[String]>([])

    /// The port actually bound (useful with port 0).
    public var port: UInt16 { listener.port }

    public init(config: ServerConfig) throws {
        self.config = config
        self.listener = try ListeningSocket(host: config.host, port: config.port, backlog: 1024)
        var fds: [Int32] = []
        for _ in 0..<max(1, config.workers) {
            let fd = sa_eventfd()
            if fd < 0 { throw SocketError(call: "eventfd", errno: errno) }
            fds.append(fd)
        }
        self.wakeFDs = fds
    }

    deinit {
        for fd in wakeFDs { close(fd) }
    }

    /// Starts the loops. `makeHandler(i)` runs on loop i's thread. Returns once every loop has its
    /// handler; throws if any factory failed (the started loops are stopped again).
    ///
    /// `admit` is asked at accept with the peer's address: a peer it refuses is closed at once,
    /// before it is read from or takes one of the `maxConnections` slots.
    public func start(admit: (@Sendable (String) -> Bool)? = nil,
                      makeHandler: @escaping @Sendable (Int) throws -> any RequestHandler) throws {
        let ready = DispatchGroup()
        for i in 0..<wakeFDs.count {
            running.enter()
            ready.enter()
            let thread = Thread { [self] in
                defer { running.leave() }
                let handler: any RequestHandler
                do {
                    handler = try makeHandler(i)
                } catch {
                    startErrors.withLock { $0.append("\(error)") }
                    ready.leave()
                    return
                }
                let loop = EventLoop(server: self, index: i, listenFD: listener.fd, wakeFD: wakeFDs[i], handler: handler, admit: admit)
                ready.leave()
                loop.run()
            }
            thread.name = "http-\(i)"
            thread.start()
        }
        ready.wait()
        let errors = startErrors.withLock { $0 }
        if !errors.isEmpty {
            stop()
            throw ServerStartError(messages: errors)
        }
    }

    var isStopping: Bool { stopping.load(ordering: .acquiring) }

    /// Stops accepting, lets in-flight requests finish (up to the drain timeout), closes the rest,
    /// shuts the handlers down and returns when every loop has ended.
    public func stop() {
        stopping.store(true, ordering: .releasing)
        var one: UInt64 = 1
        for fd in wakeFDs { _ = write(fd, &one, 8) }
        // Each loop accepts what is already in the backlog (those clients are in flight), then
        // leaves the listener; then it is shut, so later connections are refused at once instead
        // of waiting in a backlog nobody reads.
        let deadline = Clock.now() + 2_000_000_000
        while loopsDrained.load(ordering: .acquiring) < wakeFDs.count && Clock.now() < deadline {
            usleep(1_000)
        }
        shutdown(listener.fd, Int32(SHUT_RDWR))
        running.wait()
    }
}

public struct ServerStartError: Error, CustomStringConvertible {
    public var messages: [String]
    public var description: String { "server start failed: " + messages.joined(separator: "; ") }
}

enum Clock {
    static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }
}

private let EV_IN = UInt32(SA_EPOLLIN)
private let EV_OUT = UInt32(SA_EPOLLOUT)
private let EV_HUP_ERR = UInt32(SA_EPOLLHUP) | UInt32(SA_EPOLLERR)
private let EV_EXCLUSIVE = UInt32(SA_EPOLLEXCLUSIVE)
private let CTL_ADD = Int32(SA_EPOLL_CTL_ADD)
private let CTL_DEL = Int32(SA_EPOLL_CTL_DEL)
private let CTL_MOD = Int32(SA_EPOLL_CTL_MOD)

private let overloadResponse: [UInt8] = {
    var out: [UInt8] = []
    HTTPResponse(status: .serviceUnavailable, text: "too many connections\n", close: true).serialize(keepAlive: false, into: &out)
    return out
}()

/// One client connection. Confined to its loop's thread.
final class ClientConnection {
    let fd: Int32
    let context: RequestContext
    var parser: HTTPRequestParser
    var output: [UInt8] = []
    var outputOffset = 0
    var deadline: UInt64 = 0
    var requestStarted: UInt64?
    var writeStarted: UInt64?
    var lastActivity: UInt64
    var closeAfterWrite = false
    var lingering = false
    var interest: UInt32 = 0
    var served = 0

    init(fd: Int32, context: RequestContext, limits: HTTPLimits, now: UInt64) {
        self.fd = fd
        self.context = context
        self.parser = HTTPRequestParser(limits: limits)
        self.lastActivity = now
        self.requestStarted = now
    }

    var pendingOutput: Int { output.count - outputOffset }
    /// Idle: nothing half-received, nothing unsent.
    var isIdle: Bool { !parser.hasPartialRequest && pendingOutput == 0 && !lingering }
}

final class EventLoop {
    let server: HTTPServer
    let index: Int
    let listenFD: Int32
    let wakeFD: Int32
    let handler: any RequestHandler
    let admit: (@Sendable (String) -> Bool)?
    let epfd: Int32
    var connections: [Int32: ClientConnection] = [:]
    var readBuffer = [UInt8](repeating: 0, count: 64 * 1024)
    var listening = true
    let config: ServerConfig

    init(server: HTTPServer, index: Int, listenFD: Int32, wakeFD: Int32, handler: any RequestHandler,
         admit: (@Sendable (String) -> Bool)?) {
        self.admit = admit
        self.server = server
        self.index = index
        self.listenFD = listenFD
        self.wakeFD = wakeFD
        self.handler = handler
        self.config = server.config
        self.epfd = sa_epoll_create()
    }

    func run() {
        _ = sa_epoll_ctl(epfd, CTL_ADD, listenFD, EV_IN | EV_EXCLUSIVE)
        _ = sa_epoll_ctl(epfd, CTL_ADD, wakeFD, EV_IN)
        var fds = [Int32](repeating: 0, count: 256)
        var events = [UInt32](repeating: 0, count: 256)
        var drainDeadline: UInt64?
        var lastSweep: UInt64 = 0
        while true {
            let n = sa_epoll_wait(epfd, &fds, &events, 256, 50)
            if n > 0 {
                for i in 0..<Int(n) {
                    let fd = fds[i]
                    if fd == listenFD {
                        if !server.isStopping { acceptAll() }
                    } else if fd == wakeFD {
                        var value: UInt64 = 0
                        _ = read(wakeFD, &value, 8)
                    } else if let c = connections[fd] {
                        service(c, events: events[i])
                    }
                }
            }
            let now = Clock.now()
            if now - lastSweep > 20_000_000 {
                lastSweep = now
                expire(now)
            }
            if server.isStopping {
                if drainDeadline == nil {
                    drainDeadline = now + UInt64(config.drainTimeoutMilliseconds) * 1_000_000
                    if listening {
                        acceptAll(draining: true)
                        _ = sa_epoll_ctl(epfd, CTL_DEL, listenFD, 0)
                        listening = false
                        server.loopsDrained.wrappingAdd(1, ordering: .releasing)
                    }
                }
                for c in Array(connections.values) where c.isIdle { closeConnection(c) }
                if connections.isEmpty || now >= drainDeadline! { break }
            }
        }
        for c in Array(connections.values) {
            if !c.lingering && (c.parser.hasPartialRequest || c.pendingOutput > 0) {
                server.counters.abortedOnStop.wrappingAdd(1, ordering: .relaxed)
            }
            closeConnection(c)
        }
        handler.shutdown()
        close(epfd)
    }

    private func acceptAll(draining: Bool = false) {
        while true {
            var storage = sockaddr_storage()
            var length = UInt32(MemoryLayout<sockaddr_storage>.size)
            let fd = sa_accept(listenFD, &storage, &length)
            if fd < 0 {
                if errno == EINTR || errno == ECONNABORTED { continue }
                return // EAGAIN, or EMFILE/ENFILE: try again on the next readiness
            }
            let peer = SocketAddress.describe(storage)
            if let admit, !admit(peer.host) {
                // Not admitted: closed before anything is read or answered, so it never holds a slot.
                server.counters.rejectedNotAllowed.wrappingAdd(1, ordering: .relaxed)
                close(fd)
                continue
            }
            if server.counters.open.load(ordering: .relaxed) >= config.maxConnections || (server.isStopping && !draining) {
                server.counters.rejectedOverLimit.wrappingAdd(1, ordering: .relaxed)
                overloadResponse.withUnsafeBytes { _ = send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                close(fd)
                continue
            }
            var one: Int32 = 1
            setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            let now = Clock.now()
            let c = ClientConnection(fd: fd, context: RequestContext(peerHost: peer.host, peerPort: peer.port),
                                     limits: config.limits, now: now)
            c.deadline = now + UInt64(config.requestTimeoutMilliseconds) * 1_000_000
            server.counters.open.wrappingAdd(1, ordering: .relaxed)
            server.counters.accepted.wrappingAdd(1, ordering: .relaxed)
            connections[fd] = c
            c.interest = EV_IN
            _ = sa_epoll_ctl(epfd, CTL_ADD, fd, EV_IN)
            // The request is often here already: try to serve it without another round through epoll_wait.
            service(c, events: EV_IN)
        }
    }

    private func service(_ c: ClientConnection, events: UInt32) {
        if events & EV_OUT != 0 {
            if !flush(c) { return }
        }
        if events & (EV_IN | EV_HUP_ERR) != 0 && c.pendingOutput <= config.maxPendingOutputBytes {
            let r = readBuffer.withUnsafeMutableBytes { recv(c.fd, $0.baseAddress, $0.count, 0) }
            if r < 0 {
                if errno == EAGAIN || errno == EINTR { return }
                closeConnection(c)
                return
            }
            if r == 0 {
                // Peer closed its side: finish what is owed, then close.
                if c.pendingOutput == 0 || c.lingering { closeConnection(c); return }
                c.closeAfterWrite = true
                c.lingering = false
                updateInterest(c)
                return
            }
            if c.lingering { return } // discarding until the peer closes
            let now = Clock.now()
            let parsed = c.parser.feed(readBuffer[0..<r])
            // Only request bytes are activity: empty lines between requests (which the parser skips)
            // neither reset the idle timeout nor start the request deadline.
            if !parsed.isEmpty || c.parser.hasPartialRequest { c.lastActivity = now }
            if c.requestStarted == nil && c.parser.hasPartialRequest { c.requestStarted = now }
            process(c, parsed)
            if connections[c.fd] == nil { return }
            _ = flush(c)
        }
    }

    private func process(_ c: ClientConnection, _ events: [HTTPParserEvent]) {
        for event in events {
            if c.closeAfterWrite { break }
            switch event {
            case .head(let head):
                if head.expectContinue && head.minorVersion == 1 {
                    c.output.append(contentsOf: "HTTP/1.1 100 Continue\r\n\r\n".utf8)
                }
            case .request(let request):
                let response = handler.handle(request, context: c.context)
                c.served += 1
                let keepAlive = request.head.keepAlive && !response.close && !server.isStopping
                response.serialize(keepAlive: keepAlive, headOnly: request.head.method == "HEAD", into: &c.output)
                c.requestStarted = c.parser.hasPartialRequest ? Clock.now() : nil
                if !keepAlive { c.closeAfterWrite = true }
            case .error(let error):
                server.counters.parseErrors.wrappingAdd(1, ordering: .relaxed)
                HTTPResponse(status: error.status, text: "\(error.status.reason)\n", close: true)
                    .serialize(keepAlive: false, into: &c.output)
                c.closeAfterWrite = true
            }
        }
    }

    /// Writes pending output. Returns false if the connection was closed.
    @discardableResult
    private func flush(_ c: ClientConnection) -> Bool {
        while c.pendingOutput > 0 {
            let w = c.output.withUnsafeBytes { p in
                send(c.fd, p.baseAddress! + c.outputOffset, c.pendingOutput, Int32(MSG_NOSIGNAL))
            }
            if w < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN {
                    if c.writeStarted == nil { c.writeStarted = Clock.now() }
                    updateInterest(c)
                    return true
                }
                closeConnection(c)
                return false
            }
            c.outputOffset += w
            c.writeStarted = nil
        }
        c.output.removeAll(keepingCapacity: c.output.capacity <= 64 * 1024)
        c.outputOffset = 0
        c.writeStarted = nil
        if c.closeAfterWrite && !c.lingering {
            // Lingering close: stop sending, read and discard until the peer closes (or 1 s), so that
            // unread request bytes do not turn our close into a reset that destroys the response.
            shutdown(c.fd, Int32(SHUT_WR))
            c.lingering = true
            c.deadline = Clock.now() + 1_000_000_000
        }
        updateInterest(c)
        return true
    }

    private func updateInterest(_ c: ClientConnection) {
        var want: UInt32 = 0
        if c.pendingOutput > 0 { want |= EV_OUT }
        if c.pendingOutput <= config.maxPendingOutputBytes { want |= EV_IN }
        if want != c.interest {
            c.interest = want
            _ = sa_epoll_ctl(epfd, CTL_MOD, c.fd, want)
        }
        // Recompute the deadline from the connection's state.
        if c.lingering { return }
        if let w = c.writeStarted {
            c.deadline = w + UInt64(config.writeTimeoutMilliseconds) * 1_000_000
        } else if let r = c.requestStarted, c.parser.hasPartialRequest || c.served == 0 {
            c.deadline = r + UInt64(config.requestTimeoutMilliseconds) * 1_000_000
        } else {
            c.deadline = c.lastActivity + UInt64(config.idleTimeoutMilliseconds) * 1_000_000
        }
    }

    private func expire(_ now: UInt64) {
        for c in Array(connections.values) where now >= c.deadline {
            if !c.lingering && c.parser.hasPartialRequest {
                server.counters.timedOut.wrappingAdd(1, ordering: .relaxed)
            }
            closeConnection(c)
        }
    }

    private func closeConnection(_ c: ClientConnection) {
        guard connections.removeValue(forKey: c.fd) != nil else { return }
        // close() also removes the descriptor from the epoll set (it is never duplicated).
        close(c.fd)
        server.counters.open.wrappingAdd(-1, ordering: .relaxed)
    }
}
