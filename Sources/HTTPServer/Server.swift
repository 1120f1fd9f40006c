import CSystemShims
import Foundation
import Locking
import Synchronization
import SystemCalls
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
    /// Open connections at most; past it, a new connection evicts an idle one or, when none may be
    /// evicted, gets a fast 503 and is closed (see `EventLoop`'s admission policy).
    public var maxConnections: Int
    /// Open connections from one source (IPv4 address or IPv6 /64) at most; past it a new one gets
    /// the fast 503. 0: a quarter of `maxConnections` (at least 1).
    public var maxConnectionsPerSource: Int
    /// A connection that has sent nothing of a request is closed this long after accept (if
    /// shorter than `requestTimeoutMilliseconds`).
    public var firstByteTimeoutMilliseconds: Int
    /// An idle connection may be evicted for a new one only after being idle this long, so that a
    /// fresh connection whose request is on its way is never evicted by the idle-time rule.
    public var evictionGraceMilliseconds: Int
    /// SO_SNDBUF of the listener, inherited by every accepted socket: the kernel holds at most about
    /// twice this much unsent per connection. 0: the kernel's default (autotuned up to tcp_wmem's maximum).
    public var sendBufferBytes: Int
    /// On stop: how long in-flight requests may still finish.
    public var drainTimeoutMilliseconds: Int
    /// Already-read pipelined requests are not answered while this much of a connection's output is
    /// unsent (they wait, parsed, until it is written); nothing more is read while any is unsent.
    public var maxPendingOutputBytes: Int

    /// Event loops; 0: one per online CPU core (`loopCount`).
    public init(host: String = "127.0.0.1", port: UInt16 = 8088, workers: Int = 0, limits: HTTPLimits = HTTPLimits(),
                requestTimeoutMilliseconds: Int = 5_000, idleTimeoutMilliseconds: Int = 10_000,
                writeTimeoutMilliseconds: Int = 5_000, maxConnections: Int = 4_096,
                drainTimeoutMilliseconds: Int = 5_000, maxPendingOutputBytes: Int = 64 << 10,
                maxConnectionsPerSource: Int = 0, firstByteTimeoutMilliseconds: Int = 2_000,
                evictionGraceMilliseconds: Int = 250, sendBufferBytes: Int = 256 << 10) {
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
        self.maxConnectionsPerSource = maxConnectionsPerSource
        self.firstByteTimeoutMilliseconds = firstByteTimeoutMilliseconds
        self.evictionGraceMilliseconds = evictionGraceMilliseconds
        self.sendBufferBytes = sendBufferBytes
    }

    /// `maxConnectionsPerSource`, or its default: a quarter of `maxConnections`, at least 1.
    public var perSourceLimit: Int {
        maxConnectionsPerSource > 0 ? maxConnectionsPerSource : max(1, maxConnections / 4)
    }

    /// The loops actually started: `workers`, or one per online core when it is 0. The loops never
    /// wait for anything but their sockets, so more loops than cores only add context switches
    /// (measured: 4 loops on 2 cores answered 0.83x of nginx's new-connection rate, 2 loops 0.95x).
    public var loopCount: Int {
        if workers > 0 { return workers }
        return max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
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

/// How a handler answers a request: at once, or later from another thread.
public enum HandlerResult: Sendable {
    case now(HTTPResponse)
    /// The answer comes through the `Responder`. The loop keeps the request's deadline: if the
    /// answer has not arrived by `deadline` (`MonotonicClock.now()` nanoseconds), the loop sends
    /// `fallback()` instead and drops the late answer. The loop never waits for anything but sockets.
    /// `fallback` is called on the loop, only when the deadline passes (so it may log and count).
    case later(deadline: UInt64, fallback: @Sendable () -> HTTPResponse)
}

/// Delivers the answer of one deferred request to the loop that owns its connection, from any
/// thread. A second answer, or one after the deadline's fallback was sent, is dropped.
public struct Responder: Sendable {
    let mailbox: LoopMailbox
    let ticket: UInt64

    public func respond(_ response: HTTPResponse) {
        mailbox.post(ticket: ticket, response: response)
    }
}

/// Answers arriving for one loop from other threads; the loop drains it when its eventfd fires.
final class LoopMailbox: Sendable {
    let wakeFD: Int32
    private let items = Locked<[(ticket: UInt64, response: HTTPResponse)]>([])

    init(wakeFD: Int32) {
        self.wakeFD = wakeFD
    }

    /// Wakes the loop only for the first answer of a run: later ones find the mailbox not empty,
    /// so a wake is already pending and the loop's `take`, which follows its read of the eventfd,
    /// will see them too (one write(2) per run of answers, not one each).
    func post(ticket: UInt64, response: HTTPResponse) {
        let first = items.withLock { items -> Bool in
            items.append((ticket, response))
            return items.count == 1
        }
        if first { wake() }
    }

    func wake() {
        var one: UInt64 = 1
        // eventfd writes only fail when the counter would overflow (it cannot: the loop reads it).
        Syscall.bestEffort("write(eventfd)") { Int32(truncatingIfNeeded: write(wakeFD, &one, 8)) }
    }

    func take() -> [(ticket: UInt64, response: HTTPResponse)] {
        items.withLock { items in
            defer { items.removeAll(keepingCapacity: true) }
            return items
        }
    }

    /// New connections another loop accepted at `maxConnections` without an idle one of its own
    /// to evict: this loop admits them (or refuses them) by its own idle connections.
    private let handedOver = Locked<[HandedOver]>([])

    func handOver(_ connection: HandedOver) {
        handedOver.withLock { $0.append(connection) }
        wake()
    }

    func takeHandedOver() -> [HandedOver] {
        handedOver.withLock { items in
            defer { items.removeAll() }
            return items
        }
    }
}

/// An accepted connection on its way to another loop; its source is counted already.
struct HandedOver: Sendable {
    var socket: TCPSocket
    var host: String
    var port: UInt16
    var source: SourceKey
}

/// Answers requests on one event-loop thread. Created on that thread by the server's factory and
/// used only there. `handle` must not block: work that waits (a database) answers `.later`.
public protocol RequestHandler: AnyObject {
    func handle(_ request: HTTPRequest, context: RequestContext, responder: Responder) -> HandlerResult
    /// Called on the loop thread after the loop stopped.
    func shutdown()
}

/// A count each event loop keeps on cache lines of its own, added up when read. The loops change
/// the open and accepted connections at every accept and close: as one shared atomic each, the
/// line holding them went from core to core twice a connection.
public final class LoopCounts: Sendable {
    private let slots: [PaddedAtomic<Int>]

    init(loops: Int) { slots = (0..<max(loops, 1)).map { _ in PaddedAtomic(0) } }

    /// The sum over the loops (a moment's reading, relaxed: a count, not a synchronization point).
    public var value: Int {
        var n = 0
        for s in slots { n &+= s.value.load(ordering: .relaxed) }
        return n
    }

    func add(_ n: Int, loop: Int) { slots[loop].value.wrappingAdd(n, ordering: .relaxed) }
}

/// An atomic (of at most 8 bytes) alone on its cache line and the one the prefetcher pairs with it
/// (the object is 144 bytes: the next one's value is at least 128 bytes further on), for what one
/// loop writes and others only read.
final class PaddedAtomic<Value: AtomicRepresentable & Sendable>: Sendable {
    let value: Atomic<Value>
    private let padding: (Int, Int, Int, Int, Int, Int, Int, Int, Int, Int, Int, Int, Int, Int, Int) = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)

    init(_ initial: Value) { value = Atomic(initial) }
}

/// Counters the server keeps for /metrics.
public final class ServerCounters: Sendable {
    /// Open connections and connections accepted since start: kept per loop (`LoopCounts`).
    public let open: LoopCounts
    public let accepted: LoopCounts
    public let rejectedOverLimit = Atomic<Int>(0)
    /// Connections closed at accept because the peer's address is not admitted (`allow_clients`).
    public let rejectedNotAllowed = Atomic<Int>(0)
    public let timedOut = Atomic<Int>(0)
    public let parseErrors = Atomic<Int>(0)
    /// Connections closed by a stop's drain deadline with a request half received or a response unsent.
    public let abortedOnStop = Atomic<Int>(0)
    /// Deferred requests answered with their fallback because the answer missed the deadline.
    public let deadlineFallbacks = Atomic<Int>(0)
    /// Deferred requests waiting for their answer now.
    public let inFlightDeferred = Atomic<Int>(0)
    /// accept4 failures other than an empty backlog (EMFILE, ENFILE, ENOBUFS...).
    public let acceptErrors = Atomic<Int>(0)
    /// Idle connections closed at `maxConnections` to make room for a new one.
    public let evictedIdle = Atomic<Int>(0)
    /// Connections refused with 503 because their source had `maxConnectionsPerSource` open.
    public let rejectedPerSource = Atomic<Int>(0)
    /// Connections closed by the first-byte deadline: nothing of a request sent since accept.
    public let firstByteTimeouts = Atomic<Int>(0)
    /// Connections closed because their peer did not take an answer within the write timeout.
    public let writeTimeouts = Atomic<Int>(0)
    /// Answer bytes held in user space for connections whose peer is not taking them (counted once
    /// a write would block, until it is all written or the connection closed).
    public let unsentBytes = Atomic<Int>(0)
    public init(loops: Int = 1) {
        open = LoopCounts(loops: loops)
        accepted = LoopCounts(loops: loops)
    }
}

/// Open connections per source (IPv4 address or IPv6 /64), shared by the loops. Sharded so that the
/// two loops rarely meet on one lock; an entry is removed when its count falls to 0, so the table
/// holds at most one entry per open connection.
final class SourceTable: Sendable {
    private let shards: [Locked<[SourceKey: Int]>] = (0..<16).map { _ in Locked([:]) }

    private func shard(_ key: SourceKey) -> Locked<[SourceKey: Int]> {
        let h = key.bits ^ (key.bits >> 16) ^ (key.bits >> 40)
        return shards[Int(truncatingIfNeeded: h) & 15]
    }

    /// Counts one more connection of `key` unless it has `limit` already.
    func acquire(_ key: SourceKey, limit: Int) -> Bool {
        shard(key).withLock { table in
            let n = table[key, default: 0]
            if n >= limit { return false }
            table[key] = n + 1
            return true
        }
    }

    func release(_ key: SourceKey) {
        shard(key).withLock { table in
            guard let n = table[key] else { return }
            if n <= 1 { table.removeValue(forKey: key) } else { table[key] = n - 1 }
        }
    }

    func count(_ key: SourceKey) -> Int {
        shard(key).withLock { $0[key, default: 0] }
    }
}

/// An HTTP/1.1 server on POSIX sockets: `workers` epoll loops share one non-blocking listening
/// socket (EPOLLEXCLUSIVE), each serving its connections and calling its own handler.
public final class HTTPServer: Sendable {
    public let config: ServerConfig
    public let counters: ServerCounters
    /// Open connections per source, for `maxConnectionsPerSource` and the eviction policy.
    let sources = SourceTable()
    private let listener: TCPSocket
    /// The port actually bound (useful with port 0).
    public let port: UInt16
    private let wakeFDs: [Int32]
    let mailboxes: [LoopMailbox]
    private let stopping = Atomic<Bool>(false)
    /// Stopping to hand the listener to a new generation: no draining accept, no shutdown.
    let handingOver = Atomic<Bool>(false)

    /// Whether accepted sockets inherit TCP_CORK and TCP_NODELAY from the listener.
    let corkedAccepts: Bool
    let noDelayAccepts: Bool

    /// The listening socket, for the generation that takes over (`init(config:listener:)`).
    public var listeningSocket: TCPSocket { listener }
    /// When each loop last went round (MonotonicClock ns): the watchdog's evidence that no loop is
    /// stuck. Written at every turn of its loop: padded, so that two loops' never share a cache
    /// line (allocated one after the other, they did).
    let heartbeats: [PaddedAtomic<UInt64>]
    /// Each loop's idle connections (its eviction candidates), for handing a newcomer over.
    let idleCounts: [PaddedAtomic<Int>]

    /// Whether every loop went round within `nanoseconds` (a loop goes round at least every 50 ms).
    public func loopsAlive(within nanoseconds: UInt64) -> Bool {
        let now = MonotonicClock.now()
        let started = loopsStarted.load(ordering: .acquiring)
        guard started > 0 else { return false }
        return heartbeats.prefix(started).allSatisfy { now &- $0.value.load(ordering: .relaxed) <= nanoseconds }
    }

    /// Loops started; `stop()` before any started returns at once.
    private let loopsStarted = Atomic<Int>(0)
    /// Loops that have taken their last connections from the backlog and left the listener
    /// (`stop` waits on it rather than polling).
    let loopsDrained = Monitor<Int>(0)
    /// The loops' threads: `stop` returns once each has ended.
    private let loopThreads = Locked<[BackgroundThread]>([])
    private let startErrors = Locked<[String]>([])


    /// `listener`: a listening socket to take over (a reload's new generation adopts the running
    /// one's, so there is never a moment without a listener); nil binds `config.host:port`.
    public init(config: ServerConfig, listener adopted: TCPSocket? = nil) throws {
        self.config = config
        // No TCP_DEFER_ACCEPT: a deferred connection is invisible to accept(), so a graceful stop
        // could not take it from the backlog and it would be reset with its request unanswered.
        self.listener = try adopted ?? TCPSocket.listen(host: config.host, port: config.port, backlog: 1024)
        self.port = listener.localPort
        // Accepted sockets start corked (inherited from the listener): an answer followed by
        // close() leaves as one segment carrying the data and the FIN (a client that asked to
        // close: HTTP/1.0, `Connection: close`). A connection that stays open (mod_xml_curl's:
        // keep-alive, then the client closes) is uncorked after its first answer. Without the
        // option (refused) answers go out as written.
        self.corkedAccepts = (try? listener.setCork(true)) != nil
        // TCP_NODELAY is inherited too; it takes effect once a connection is uncorked (the kernel
        // lets TCP_CORK win while both are set), so a connection that stays open needs one
        // setsockopt, the uncork, and none for Nagle.
        self.noDelayAccepts = (try? listener.setNoDelay()) != nil
        // Bounded kernel memory per connection: a peer that does not read holds at most about
        // 2 x sendBufferBytes of our answers in the kernel (accepted sockets inherit the listener's
        // SO_SNDBUF; set here on an adopted listener too, so a reload applies a changed value).
        if config.sendBufferBytes > 0 { try listener.setSendBuffer(bytes: config.sendBufferBytes) }
        var fds: [Int32] = []
        for _ in 0..<config.loopCount {
            fds.append(try Syscall.call("eventfd") { sa_eventfd() })
        }
        self.wakeFDs = fds
        self.mailboxes = fds.map(LoopMailbox.init(wakeFD:))
        self.heartbeats = fds.map { _ in PaddedAtomic(MonotonicClock.now()) }
        self.counters = ServerCounters(loops: config.loopCount)
        self.idleCounts = fds.map { _ in PaddedAtomic(0) }
    }

    deinit {
        for fd in wakeFDs { Syscall.close(fd) }
    }

    /// Starts the loops. `makeHandler(i)` runs on loop i's thread. Returns once every loop has its
    /// handler; throws if any factory failed (the started loops are stopped again).
    ///
    /// `admit` is asked at accept with the peer's address: a peer it refuses is closed at once,
    /// before it is read from or takes one of the `maxConnections` slots.
    public func start(admit: (@Sendable (String) -> Bool)? = nil,
                      makeHandler: @escaping @Sendable (Int) throws -> any RequestHandler) throws {
        // Loops that have their handler and their epoll set (or failed to get them).
        let ready = Monitor<Int>(0)
        for i in 0..<wakeFDs.count {
            loopsStarted.wrappingAdd(1, ordering: .releasing)
            // The loop's own stop is `stopping` and its mailbox's wake; the thread's stop only waits
            // for the loop to end.
            let thread = BackgroundThread(name: "http-\(i)") { [self] _ in
                let handler: any RequestHandler
                do {
                    handler = try makeHandler(i)
                } catch {
                    startErrors.withLock { $0.append("\(error)") }
                    ready.withLock { $0 += 1 }
                    return
                }
                let loop = EventLoop(server: self, index: i, listener: listener, mailbox: mailboxes[i], handler: handler, admit: admit)
                do {
                    try loop.register()
                } catch {
                    startErrors.withLock { $0.append("\(error)") }
                    ready.withLock { $0 += 1 }
                    loop.abandon()
                    return
                }
                ready.withLock { $0 += 1 }
                loop.run()
            }
            loopThreads.withLock { $0.append(thread) }
            thread.start()
        }
        let count = wakeFDs.count
        _ = ready.wait(until: { $0 >= count }) { _ in () }
        let errors = startErrors.withLock { $0 }
        if !errors.isEmpty {
            stop()
            throw ServerStartError(messages: errors)
        }
    }

    var isStopping: Bool { stopping.load(ordering: .acquiring) }

    /// Stops accepting, lets in-flight requests finish (up to the drain timeout), closes the rest,
    /// shuts the handlers down and returns when every loop has ended.
    ///
    /// `handingOverListener`: another server has adopted the listener and accepts from it already;
    /// this one leaves it as it is (open, its backlog to the other) and only drains its own
    /// connections.
    public func stop(handingOverListener: Bool = false) {
        handingOver.store(handingOverListener, ordering: .releasing)
        stopping.store(true, ordering: .releasing)
        let started = loopsStarted.load(ordering: .acquiring)
        guard started > 0 else {
            if !handingOverListener { listener.shutdownBoth() }
            return
        }
        for m in mailboxes { m.wake() }
        // Each loop accepts what is already in the backlog (those clients are in flight), then
        // leaves the listener; then it is shut, so later connections are refused at once instead
        // of waiting in a backlog nobody reads.
        _ = loopsDrained.wait(until: { $0 >= started }, timeoutNanoseconds: 2_000_000_000) { _ in () }
        if !handingOverListener { listener.shutdownBoth() }
        for t in loopThreads.withLock({ $0 }) { t.stop() }
    }
}

public struct ServerStartError: Error, CustomStringConvertible {
    public var messages: [String]
    public var description: String { "server start failed: " + messages.joined(separator: "; ") }
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

/// A deferred request waiting for its answer.
struct PendingAnswer {
    var ticket: UInt64
    var deadline: UInt64
    var fallback: @Sendable () -> HTTPResponse
    var keepAlive: Bool
    /// The request itself asked to close (HTTP/1.0, or `Connection: close`).
    var clientAskedClose: Bool
    var isHead: Bool
}

/// One client connection. Confined to its loop's thread.
final class ClientConnection {
    let socket: TCPSocket
    var fd: Int32 { socket.fd }
    let context: RequestContext
    var parser: HTTPRequestParser
    var output: [UInt8] = []
    var outputOffset = 0
    var deadline: UInt64 = 0
    var requestStarted: UInt64?
    /// When the output first could not be written completely; nil once all of it is written.
    var writeStarted: UInt64?
    var lastActivity: UInt64
    /// The source it counts against in `HTTPServer.sources`.
    let source: SourceKey
    /// In the loop's idle list since `idleSince` (see `IdleList`).
    var idleSince: UInt64 = 0
    var inIdleList = false
    var idlePrevious: ClientConnection?
    var idleNext: ClientConnection?
    /// What this connection adds to `ServerCounters.unsentBytes`.
    var countedUnsent = 0
    var closeAfterWrite = false
    /// The client asked to close after its response (HTTP/1.0, or `Connection: close`) and nothing
    /// of a further request is buffered: the response can be followed by close() at once. A client
    /// that asked to close must not send more (RFC 9112 §9.6), so nothing is peeked for (as nginx).
    var clientCloses = false
    var lingering = false
    var interest: UInt32 = 0
    /// In the loop's epoll set. A connection answered and closed straight after accept never is.
    var registered = false
    /// TCP_CORK still set (inherited from the listener): written bytes wait for close() or uncorking.
    var corked = false
    var served = 0
    /// The request whose answer is awaited; parser events after it wait in `queued`.
    var pending: PendingAnswer?
    var queued: [HTTPParserEvent] = []

    init(socket: TCPSocket, context: RequestContext, source: SourceKey, limits: HTTPLimits, now: UInt64) {
        self.socket = socket
        self.source = source
        self.context = context
        self.parser = HTTPRequestParser(limits: limits)
        self.lastActivity = now
        self.requestStarted = now
    }

    var pendingOutput: Int { output.count - outputOffset }
    /// Read from only while nothing is unsent, awaited or waiting to be answered: a peer that does
    /// not read its answers cannot make the server queue more of them.
    var readable: Bool { pendingOutput == 0 && pending == nil && queued.isEmpty }
    /// Idle: nothing half-received, nothing awaited, nothing unsent.
    var isIdle: Bool { !parser.hasPartialRequest && pending == nil && queued.isEmpty && pendingOutput == 0 && !lingering }
}

/// A loop's idle connections (`ClientConnection.isIdle`), longest idle first: a connection is
/// appended when it becomes idle and unlinked when it stops being idle or closes, so the list stays
/// ordered by `idleSince` and the eviction candidate is its head, found in O(1).
struct IdleList {
    private(set) var head: ClientConnection?
    private var tail: ClientConnection?
    private(set) var count = 0

    mutating func append(_ c: ClientConnection, since now: UInt64) {
        c.idleSince = now
        c.inIdleList = true
        c.idlePrevious = tail
        c.idleNext = nil
        if let t = tail { t.idleNext = c } else { head = c }
        tail = c
        count += 1
    }

    mutating func remove(_ c: ClientConnection) {
        guard c.inIdleList else { return }
        if let p = c.idlePrevious { p.idleNext = c.idleNext } else { head = c.idleNext }
        if let n = c.idleNext { n.idlePrevious = c.idlePrevious } else { tail = c.idlePrevious }
        c.idlePrevious = nil
        c.idleNext = nil
        c.inIdleList = false
        count -= 1
    }
}

final class EventLoop {
    let server: HTTPServer
    let index: Int
    let listener: TCPSocket
    var listenFD: Int32 { listener.fd }
    let mailbox: LoopMailbox
    let handler: any RequestHandler
    let admit: (@Sendable (String) -> Bool)?
    let epfd: Int32
    /// Why epoll_create1 failed, if it did (`register` throws it).
    let epollFailure: SystemError?
    var connections = ConnectionTable()
    /// Deferred requests by ticket.
    var awaiting: [UInt64: ClientConnection] = [:]
    /// This loop's idle connections, longest idle first: the eviction candidates.
    var idle = IdleList()
    var nextTicket: UInt64 = 0
    var readBuffer = [UInt8](repeating: 0, count: 64 * 1024)
    var listening = true
    let config: ServerConfig
    let timeouts: ConnectionTimeouts
    /// Connections taken from the backlog per readiness of the listener: one, as nginx does without
    /// `multi_accept`, so that a steady stream of new connections never delays the ones already
    /// open (a request that was not there at accept, a close, a deadline) by more than one
    /// connection's service. With 16, each batch went on serving newcomers while an earlier
    /// connection's request waited in the epoll set: directory p99 at saturation (wrk -c32, a
    /// connection per request, 1M devices, 8-9 alternated rounds) median 5.19 ms with 16, 4.78 with 1.
    /// The listener is level-triggered: a backlog left behind makes the next epoll_wait return at once.
    let acceptBatch = 1
    /// Refused connections closed per readiness of the listener (they cost an accept and a close).
    let refusalsPerReadiness = 64

    init(server: HTTPServer, index: Int, listener: TCPSocket, mailbox: LoopMailbox, handler: any RequestHandler,
         admit: (@Sendable (String) -> Bool)?) {
        self.admit = admit
        self.server = server
        self.index = index
        self.listener = listener
        self.mailbox = mailbox
        self.handler = handler
        self.config = server.config
        timeouts = ConnectionTimeouts(server.config)
        do throws(SystemError) {
            self.epfd = try Syscall.call("epoll_create1") { sa_epoll_create() }
            self.epollFailure = nil
        } catch {
            self.epfd = -1
            self.epollFailure = error
        }
    }

    /// Adds the listener and the wake-up eventfd to this loop's epoll set. A loop that cannot watch
    /// its listener would never accept: that fails the server's start.
    func register() throws(SystemError) {
        if let epollFailure { throw epollFailure }
        try Syscall.call("epoll_ctl(ADD listener)") { sa_epoll_ctl(epfd, CTL_ADD, listenFD, EV_IN | EV_EXCLUSIVE) }
        try Syscall.call("epoll_ctl(ADD eventfd)") { sa_epoll_ctl(epfd, CTL_ADD, mailbox.wakeFD, EV_IN) }
    }

    /// A loop that failed to register: release what it holds and count it as drained.
    func abandon() {
        if epfd >= 0 { Syscall.close(epfd) }
        handler.shutdown()
        server.loopsDrained.withLock { $0 += 1 }
    }

    func run() {
        var fds = [Int32](repeating: 0, count: 256)
        var events = [UInt32](repeating: 0, count: 256)
        var drainDeadline: UInt64?
        var lastSweep: UInt64 = 0
        while true {
            let n: Int32
            do throws(SystemError) {
                let timeout = waitMilliseconds()
                n = try Syscall.call("epoll_wait") { sa_epoll_wait(epfd, &fds, &events, 256, timeout) }
            } catch {
                // EBADF/EINVAL cannot happen with our own descriptors; do not spin if they do.
                n = 0
                Syscall.sleep(nanoseconds: 1_000_000)
            }
            if n > 0 {
                for i in 0..<Int(n) {
                    let fd = fds[i]
                    if fd == listenFD {
                        if !server.isStopping { accept(limit: acceptBatch, refusals: refusalsPerReadiness) }
                    } else if fd == mailbox.wakeFD {
                        var value: UInt64 = 0
                        // Read before the answers are taken: an answer posted after this read
                        // either is taken below or wakes the loop again (`LoopMailbox.post`).
                        // EAGAIN when already read: nothing to do.
                        _ = try? Syscall.nonBlocking("read(eventfd)") { read(mailbox.wakeFD, &value, 8) }
                        deliverAnswers()
                        adoptHandedOver()
                    } else if let c = connections[fd] {
                        service(c, events: events[i])
                    }
                }
            }
            let now = MonotonicClock.now()
            server.heartbeats[index].value.store(now, ordering: .relaxed)
            if !awaiting.isEmpty { expireAnswers(now) }
            if now - lastSweep > 20_000_000 {
                lastSweep = now
                expire(now)
            }
            if server.isStopping {
                deliverAnswers()
                adoptHandedOver()
                if drainDeadline == nil {
                    drainDeadline = now + UInt64(config.drainTimeoutMilliseconds) * 1_000_000
                    if listening {
                        if !server.handingOver.load(ordering: .acquiring) { accept(limit: .max, refusals: .max) }
                        // Best effort: the listener is shut next anyway.
                        Syscall.bestEffort("epoll_ctl(DEL listener)") { sa_epoll_ctl(epfd, CTL_DEL, listenFD, 0) }
                        listening = false
                        server.loopsDrained.withLock { $0 += 1 }
                    }
                }
                // Idle between requests: closed. A connection that has not sent its first request
                // yet is in flight (its bytes may be on their way, as with every mod_xml_curl
                // lookup): it is kept until it is answered, its request deadline, or the drain's.
                for c in connections.values where c.isIdle && c.served > 0 { closeConnection(c) }
                if connections.isEmpty || now >= drainDeadline! { break }
            }
        }
        for c in connections.values {
            if !c.lingering && (c.parser.hasPartialRequest || c.pendingOutput > 0 || c.pending != nil) {
                server.counters.abortedOnStop.wrappingAdd(1, ordering: .relaxed)
            }
            closeConnection(c)
        }
        for h in mailbox.takeHandedOver() {
            server.sources.release(h.source)
            h.socket.close()
        }
        handler.shutdown()
        Syscall.close(epfd)
    }

    /// epoll_wait's timeout: the nearest answer deadline, at most 50 ms.
    private func waitMilliseconds() -> Int32 {
        guard !awaiting.isEmpty else { return 50 }
        let now = MonotonicClock.now()
        var nearest = UInt64.max
        for c in awaiting.values { if let p = c.pending, p.deadline < nearest { nearest = p.deadline } }
        if nearest <= now { return 0 }
        return Int32(min(50, (nearest - now + 999_999) / 1_000_000))
    }

    // MARK: Admission
    //
    // Policy: a slot is taken at accept, before any request or credential, so admission must keep
    // the switch's lookups served however many unauthenticated or idle peers connect:
    //
    // 1. `allow_clients`: a peer outside it is closed at once and takes no slot (`rejectedNotAllowed`).
    // 2. Per source: one IPv4 address or IPv6 /64 holds at most `maxConnectionsPerSource` open
    //    connections (default a quarter of `maxConnections`); one more gets the fast 503
    //    (`rejectedPerSource`). The counts are shared by the loops (`HTTPServer.sources`).
    // 3. At `maxConnections` (`counters.open`, shared by the loops) a new connection evicts an idle
    //    connection of the loop that accepted it (`evictedIdle`): idle means nothing half received,
    //    nothing awaited, nothing unsent, not lingering, and no request bytes waiting unread in the
    //    kernel; a connection that never sent a byte is idle. The candidate is, in this order:
    //    a. the longest-idle connection, if it has been idle at least `evictionGraceMilliseconds`
    //       (a fresh connection whose request is on its way is never evicted by this rule);
    //    b. else, among the 32 longest-idle, one whose source holds more connections than the
    //       newcomer's will (counting the newcomer), so that a peer reopening connections faster
    //       than the grace cannot keep a lighter source (the switch) out.
    //    Only when there is no candidate is the new connection refused with the fast 503
    //    (`rejectedOverLimit`). The idle list is kept ordered as connections become idle, so rule
    //    (a) is O(1) and (b) at most 32 steps, and nothing is scanned below the limit. A loop
    //    evicts only its own connections (they are confined to it): when the accepting loop has no
    //    candidate, the newcomer is handed to the loop with the most idle connections (each loop
    //    publishes its count), which applies the same rules and evicts or refuses; it is never
    //    handed on again. Connections are never over `maxConnections` (but for the race of two
    //    loops reading `counters.open` at once, as before).
    // 4. Deadlines: a connection that has sent nothing of a request is closed at
    //    `firstByteTimeoutMilliseconds` (`firstByteTimeouts`), a half-received request at
    //    `requestTimeoutMilliseconds`, an idle keep-alive one at `idleTimeoutMilliseconds`, and one
    //    whose peer does not take its output at `writeTimeoutMilliseconds` counted from when its
    //    output first could not be written completely until all of it is written (`writeTimeouts`).
    //    Nothing more is read from a connection while it has unsent output, and the kernel holds at
    //    most about 2 x `sendBufferBytes` of it, so a pipelining peer that never reads holds at most
    //    that plus one batch of answers (`maxPendingOutputBytes`, plus the answer that crossed it).

    /// Takes up to `limit` connections to serve; refused ones (outside `allow_clients`, over their
    /// source's share) do not count against it, only against `refusals`, so that a
    /// flood of refused connections is cleared from the backlog quickly without starving the rest.
    private func accept(limit: Int, refusals: Int) {
        var taken = 0
        var refused = 0
        while taken < limit && refused < refusals {
            let next: (socket: TCPSocket, host: String, port: UInt16, source: SourceKey)?
            do {
                next = try listener.acceptWithSource()
            } catch {
                // EMFILE/ENFILE and the like: the connection stays in the backlog; the loop comes
                // back on the next readiness (or timer) instead of spinning here.
                server.counters.acceptErrors.wrappingAdd(1, ordering: .relaxed)
                return
            }
            guard let (socket, host, port, source) = next else { return }
            if let admit, !admit(host) {
                // Not admitted: closed before anything is read or answered, so it never holds a slot.
                server.counters.rejectedNotAllowed.wrappingAdd(1, ordering: .relaxed)
                socket.close()
                refused += 1
                continue
            }
            // A connection taken while a stop begins is served like the rest (the drain waits for it):
            // answering it beats refusing it.
            if !server.sources.acquire(source, limit: config.perSourceLimit) {
                server.counters.rejectedPerSource.wrappingAdd(1, ordering: .relaxed)
                refuse(socket)
                refused += 1
                continue
            }
            taken += 1
            admit(HandedOver(socket: socket, host: host, port: port, source: source), mayHandOver: true)
        }
    }

    /// Connections other loops handed over to this one (`admit`).
    private func adoptHandedOver() {
        for h in mailbox.takeHandedOver() { admit(h, mayHandOver: false) }
    }

    /// Takes an accepted connection whose source is counted: at `maxConnections` only by evicting an
    /// idle connection of this loop, or (`mayHandOver`) of the loop with the most idle ones.
    private func admit(_ new: HandedOver, mayHandOver: Bool) {
        let (socket, host, port, source) = (new.socket, new.host, new.port, new.source)
        let now = MonotonicClock.now()
        if server.counters.open.value >= config.maxConnections && !evictForNewcomer(from: source, now: now) {
            if mayHandOver, let other = loopWithMostIdle() {
                server.mailboxes[other].handOver(new)
                return
            }
            server.sources.release(source)
            server.counters.rejectedOverLimit.wrappingAdd(1, ordering: .relaxed)
            refuse(socket)
            return
        }
        let c = ClientConnection(socket: socket, context: RequestContext(peerHost: host, peerPort: port),
                                 source: source, limits: config.limits, now: now)
        c.corked = server.corkedAccepts
        c.deadline = now + UInt64(config.requestTimeoutMilliseconds) * 1_000_000
        server.counters.open.add(1, loop: index)
        server.counters.accepted.add(1, loop: index)
        connections[socket.fd] = c
        // The request is often here already: it is read, answered and the connection closed
        // before it ever enters the epoll set (two epoll_ctl calls saved per mod_xml_curl
        // request). Otherwise it is registered for what it waits for.
        service(c, events: EV_IN)
        if connections[socket.fd] === c && !c.registered { updateInterest(c) }
    }

    /// Another loop that has idle connections (the most of them), if any.
    private func loopWithMostIdle() -> Int? {
        var best: Int?
        var most = 0
        for (i, n) in server.idleCounts.enumerated() where i != index {
            let idle = n.value.load(ordering: .relaxed)
            if idle > most { most = idle; best = i }
        }
        return best
    }

    /// The fast 503, then close.
    private func refuse(_ socket: TCPSocket) {
        overloadResponse.withUnsafeBytes { _ = socket.write($0) }
        // Out before the close: the request may be unread, and close() would then reset
        // the connection with a corked answer still inside.
        try? socket.setCork(false)
        socket.close()
    }

    /// At `maxConnections`: closes one idle connection of this loop to make room for a newcomer from
    /// `source` (rules 3a and 3b of the policy above). False when none may be evicted.
    private func evictForNewcomer(from source: SourceKey, now: UInt64) -> Bool {
        let grace = UInt64(config.evictionGraceMilliseconds) * 1_000_000
        var newcomers: Int?     // the newcomer's source count, looked up only if rule (b) is needed
        var checked: [SourceKey: Int] = [:]
        var candidate = idle.head
        var steps = 0
        while let c = candidate, steps < 32 {
            candidate = c.idleNext
            steps += 1
            var evict = now &- c.idleSince >= grace
            if !evict && c.source != source {
                let mine = newcomers ?? server.sources.count(source) // includes the newcomer
                newcomers = mine
                let theirs = checked[c.source] ?? server.sources.count(c.source)
                checked[c.source] = theirs
                evict = theirs > mine
            }
            // Request bytes already waiting in the kernel: busy, not idle (one recv with MSG_PEEK).
            if evict && !c.socket.hasUnreadInput {
                server.counters.evictedIdle.wrappingAdd(1, ordering: .relaxed)
                closeConnection(c)
                return true
            }
        }
        return false
    }

    private func service(_ c: ClientConnection, events: UInt32) {
        if events & EV_OUT != 0 {
            if !flush(c) { return }
        }
        if events & (EV_IN | EV_HUP_ERR) != 0 && c.readable {
            let r: Int
            switch readBuffer.withUnsafeMutableBytes({ c.socket.read(into: $0) }) {
            case .done(let n): r = n
            case .wouldBlock: return
            case .failed: closeConnection(c); return
            case .endOfFile: r = 0
            }
            if r == 0 {
                // Peer closed its side: finish what is owed, then close.
                if (c.pendingOutput == 0 && c.pending == nil) || c.lingering { closeConnection(c); return }
                c.closeAfterWrite = true
                c.lingering = false
                updateInterest(c)
                return
            }
            if c.lingering { return } // discarding until the peer closes
            let now = MonotonicClock.now()
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
        var index = 0
        while index < events.count {
            let event = events[index]
            index += 1
            if c.closeAfterWrite { break }
            if c.pending != nil || c.pendingOutput > config.maxPendingOutputBytes {
                // Answers go out in request order: what follows waits for the awaited answer, and
                // while a batch of answers is unsent, for it to be written (`flush` resumes them).
                c.queued.append(contentsOf: events[(index - 1)...])
                break
            }
            switch event {
            case .head(let head):
                if head.expectContinue && head.minorVersion == 1 {
                    c.output.append(contentsOf: "HTTP/1.1 100 Continue\r\n\r\n".utf8)
                }
            case .request(let request):
                let keepAlive = request.head.keepAlive && !server.isStopping
                nextTicket &+= 1
                let ticket = nextTicket
                switch handler.handle(request, context: c.context, responder: Responder(mailbox: mailbox, ticket: ticket)) {
                case .now(let response):
                    write(response, to: c, keepAlive: keepAlive, clientAskedClose: !request.head.keepAlive,
                          headOnly: request.head.method == "HEAD")
                case let .later(deadline, fallback):
                    c.pending = PendingAnswer(ticket: ticket, deadline: deadline, fallback: fallback, keepAlive: keepAlive,
                                              clientAskedClose: !request.head.keepAlive, isHead: request.head.method == "HEAD")
                    awaiting[ticket] = c
                    server.counters.inFlightDeferred.wrappingAdd(1, ordering: .relaxed)
                    updateInterest(c)
                }
            case .error(let error):
                server.counters.parseErrors.wrappingAdd(1, ordering: .relaxed)
                HTTPResponse(status: error.status, text: "\(error.status.reason)\n", close: true)
                    .serialize(keepAlive: false, into: &c.output)
                c.closeAfterWrite = true
            }
        }
    }

    private func write(_ response: HTTPResponse, to c: ClientConnection, keepAlive requested: Bool, clientAskedClose: Bool, headOnly: Bool) {
        c.served += 1
        let keepAlive = requested && !response.close && !server.isStopping
        response.serialize(keepAlive: keepAlive, headOnly: headOnly, into: &c.output)
        c.requestStarted = c.parser.hasPartialRequest ? MonotonicClock.now() : nil
        if !keepAlive {
            c.closeAfterWrite = true
            c.clientCloses = clientAskedClose && !c.parser.hasPartialRequest && c.queued.isEmpty
        }
    }

    /// Answers that other threads posted for this loop's deferred requests.
    private func deliverAnswers() {
        for (ticket, response) in mailbox.take() {
            guard let c = awaiting.removeValue(forKey: ticket), let p = c.pending, p.ticket == ticket else { continue }
            complete(c, p, with: response)
        }
    }

    /// Deferred requests past their deadline get their fallback now.
    private func expireAnswers(_ now: UInt64) {
        for (ticket, c) in awaiting {
            guard let p = c.pending, p.deadline <= now else { continue }
            awaiting.removeValue(forKey: ticket)
            server.counters.deadlineFallbacks.wrappingAdd(1, ordering: .relaxed)
            complete(c, p, with: p.fallback())
        }
    }

    private func complete(_ c: ClientConnection, _ p: PendingAnswer, with response: HTTPResponse) {
        server.counters.inFlightDeferred.wrappingAdd(-1, ordering: .relaxed)
        c.pending = nil
        guard connections[c.fd] === c else { return }
        write(response, to: c, keepAlive: p.keepAlive, clientAskedClose: p.clientAskedClose, headOnly: p.isHead)
        if !c.queued.isEmpty {
            let queued = c.queued
            c.queued = []
            process(c, queued)
        }
        if connections[c.fd] != nil { _ = flush(c) }
    }

    /// Writes pending output. Returns false if the connection was closed.
    @discardableResult
    private func flush(_ c: ClientConnection) -> Bool {
        var wrote = false
        while true {
            while c.pendingOutput > 0 {
                let offset = c.outputOffset
                switch c.output.withUnsafeBytes({ c.socket.write(UnsafeRawBufferPointer(rebasing: $0[offset...])) }) {
                case .done(let n):
                    c.outputOffset += n
                    wrote = true
                case .wouldBlock:
                    // The write deadline runs from the first write that could not complete until
                    // all of the output is written (a partial write does not restart it).
                    if c.writeStarted == nil { c.writeStarted = MonotonicClock.now() }
                    let held = c.pendingOutput
                    server.counters.unsentBytes.wrappingAdd(held - c.countedUnsent, ordering: .relaxed)
                    c.countedUnsent = held
                    updateInterest(c)
                    return true
                case .failed, .endOfFile:
                    closeConnection(c)
                    return false
                }
            }
            c.output.removeAll(keepingCapacity: c.output.capacity <= 64 * 1024)
            c.outputOffset = 0
            c.writeStarted = nil
            if c.countedUnsent != 0 {
                server.counters.unsentBytes.wrappingAdd(-c.countedUnsent, ordering: .relaxed)
                c.countedUnsent = 0
            }
            // Pipelined requests read before the output backed up are answered now.
            guard !c.queued.isEmpty && c.pending == nil else { break }
            if c.closeAfterWrite { c.queued = []; break }
            let queued = c.queued
            c.queued = []
            process(c, queued)
            if connections[c.fd] !== c { return false }
            if c.pendingOutput == 0 { break }
        }
        if c.closeAfterWrite && !c.lingering && c.pending == nil {
            if c.clientCloses || !c.socket.hasUnreadInput {
                // Everything the client sent was read, and it asked to close or has sent nothing more
                // (one recv to know): close() sends the (corked) answer with the FIN.
                closeConnection(c)
                return false
            }
            // Lingering close: stop sending, read and discard until the peer closes (or 1 s), so that
            // unread request bytes do not turn our close into a reset that destroys the response.
            c.socket.shutdownWrite()   // pushes the corked answer with the FIN
            c.corked = false
            c.lingering = true
            c.deadline = MonotonicClock.now() + 1_000_000_000
        } else if c.corked && wrote {
            // The connection stays open: the answer must leave now, and so must later ones.
            c.corked = false
            if (try? c.socket.setCork(false)) == nil {
                closeConnection(c)
                return false
            }
        }
        updateInterest(c)
        return true
    }

    private func updateInterest(_ c: ClientConnection) {
        var want: UInt32 = 0
        if c.pendingOutput > 0 { want |= EV_OUT }
        if c.readable { want |= EV_IN }
        if !c.registered {
            c.interest = want
            c.registered = true
            // A connection that outlives its first pass (keep-alive, a deferred answer, a partial
            // read or write) needs TCP_NODELAY (a multi-segment answer's tail must not wait for an
            // ACK): inherited from the listener, else set now. Failing only costs latency (Nagle).
            if !server.noDelayAccepts { try? c.socket.setNoDelay() }
            if Syscall.bestEffort("epoll_ctl(ADD)", { sa_epoll_ctl(epfd, CTL_ADD, c.fd, want) }) != nil {
                // Without epoll this connection could never be served or timed out: refuse it now.
                if c.pendingOutput == 0 && c.served == 0 {
                    overloadResponse.withUnsafeBytes { _ = c.socket.write($0) }
                    try? c.socket.setCork(false)
                }
                closeConnection(c)
                return
            }
        } else if want != c.interest {
            c.interest = want
            if Syscall.bestEffort("epoll_ctl(MOD)", { sa_epoll_ctl(epfd, CTL_MOD, c.fd, want) }) != nil {
                // The connection can no longer be watched: close it rather than leave it unserved.
                closeConnection(c)
                return
            }
        }
        // The idle list follows the connection's state (every change of it ends here or in a close).
        let isIdle = c.isIdle
        if isIdle != c.inIdleList {
            if isIdle { idle.append(c, since: MonotonicClock.now()) } else { idle.remove(c) }
            server.idleCounts[index].value.store(idle.count, ordering: .relaxed)
        }
        // The deadline of the connection's phase (`ConnectionPhase`: an awaited answer has its own).
        c.deadline = c.phase.deadline(timeouts, now: MonotonicClock.now())
    }

    private func expire(_ now: UInt64) {
        for c in connections.values where now >= c.deadline && c.pending == nil {
            switch c.phase.timeoutCause {
            case .write?: server.counters.writeTimeouts.wrappingAdd(1, ordering: .relaxed)
            case .request?: server.counters.timedOut.wrappingAdd(1, ordering: .relaxed)
            case .firstByte?: server.counters.firstByteTimeouts.wrappingAdd(1, ordering: .relaxed)
            case nil: break
            }
            closeConnection(c)
        }
    }

    private func closeConnection(_ c: ClientConnection) {
        guard connections.removeValue(forKey: c.fd) != nil else { return }
        if let p = c.pending {
            awaiting.removeValue(forKey: p.ticket)
            c.pending = nil
            server.counters.inFlightDeferred.wrappingAdd(-1, ordering: .relaxed)
        }
        if c.inIdleList {
            idle.remove(c)
            server.idleCounts[index].value.store(idle.count, ordering: .relaxed)
        }
        c.queued = []
        if c.countedUnsent != 0 {
            server.counters.unsentBytes.wrappingAdd(-c.countedUnsent, ordering: .relaxed)
            c.countedUnsent = 0
        }
        // close() also removes the descriptor from the epoll set (it is never duplicated).
        c.socket.close()
        server.sources.release(c.source)
        server.counters.open.add(-1, loop: index)
    }
}

/// A loop's open connections by descriptor: a flat array indexed by the descriptor (they are
/// small and reused lowest first), so that finding an event's connection is an index, not a hash.
struct ConnectionTable {
    private var slots: [ClientConnection?] = []
    private(set) var count = 0
    var isEmpty: Bool { count == 0 }

    subscript(fd: Int32) -> ClientConnection? {
        get {
            let i = Int(fd)
            return i >= 0 && i < slots.count ? slots[i] : nil
        }
        set {
            let i = Int(fd)
            precondition(i >= 0, "negative descriptor")
            if i >= slots.count {
                guard newValue != nil else { return }
                slots.append(contentsOf: repeatElement(nil, count: max(i + 1, slots.count * 2, 64) - slots.count))
            }
            switch (slots[i] != nil, newValue != nil) {
            case (false, true): count += 1
            case (true, false): count -= 1
            default: break
            }
            slots[i] = newValue
        }
    }

    @discardableResult
    mutating func removeValue(forKey fd: Int32) -> ClientConnection? {
        let old = self[fd]
        if old != nil { self[fd] = nil }
        return old
    }

    /// A snapshot: the caller may close connections while going through it.
    var values: [ClientConnection] { slots.compactMap { $0 } }
}
