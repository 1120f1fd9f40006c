import CSystemShims
import Synchronization
import SystemCalls
#if canImport(Glibc)
import Glibc
#endif

/// The one TCP socket type of the project: the server's listener and connections, the event-socket
/// client, the demo, the benchmark and the tests all use it. It owns its descriptor (closed once, by
/// `close()` or `deinit`) and makes every system call through the door (`Syscall`): a failure is a
/// `SystemError` naming the call and errno, EINTR is retried, and EAGAIN on a non-blocking socket is
/// a value (`wouldBlock`), never an error. Blocking operations take a deadline and wait with poll(2).
/// Sendable: the descriptor never changes and closing is an atomic once; concurrent use of one
/// socket (the listener, accepted by every loop) is what the kernel allows.
public final class TCPSocket: Sendable {
    public let fd: Int32
    private let closed = Atomic<Bool>(false)

    /// The result of one non-blocking read or write.
    public enum IO: Equatable {
        case done(Int)
        /// The peer closed its side (reads only).
        case endOfFile
        case wouldBlock
        case failed(SystemError)
    }

    /// Takes ownership of an open descriptor.
    public init(adopting fd: Int32) {
        self.fd = fd
    }

    deinit {
        close()
    }

    /// Closes the descriptor (once; later calls do nothing).
    public func close() {
        if fd >= 0 && !closed.exchange(true, ordering: .acquiringAndReleasing) { Syscall.close(fd) }
    }

    // MARK: Client

    /// Connects to `host` (a numeric address or a name) within `timeoutMilliseconds`, optionally from
    /// the local address `from`. The socket is left blocking unless `nonBlocking`.
    public static func connect(host: String, port: UInt16, timeoutMilliseconds: Int = 5_000, from: String? = nil,
                               nonBlocking: Bool = false) throws(SystemError) -> TCPSocket {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_NUMERICSERV
        var result: UnsafeMutablePointer<addrinfo>?
        var h = host
        if h.hasPrefix("["), h.hasSuffix("]") { h = String(h.dropFirst().dropLast()) }
        let rc = getaddrinfo(h, String(port), &hints, &result)
        guard rc == 0, let first = result else { throw SystemError(call: "getaddrinfo(\(host))", errno: EHOSTUNREACH) }
        defer { freeaddrinfo(result) }
        var last = SystemError(call: "connect(\(host):\(port))", errno: EHOSTUNREACH)
        var ai: UnsafeMutablePointer<addrinfo>? = first
        while let a = ai {
            ai = a.pointee.ai_next
            do throws(SystemError) {
                let s = TCPSocket(adopting: try Syscall.call("socket") {
                    socket(a.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
                })
                if let from {
                    guard var local = SocketAddress(host: from, port: 0) else { throw SystemError(call: "inet_pton(\(from))", errno: EINVAL) }
                    // The port is chosen at connect (per destination), not at bind: many bound
                    // sockets would otherwise use up the ephemeral ports. Best effort (Linux only).
                    var one: Int32 = 1
                    Syscall.bestEffort("setsockopt(IP_BIND_ADDRESS_NO_PORT)") {
                        setsockopt(s.fd, Int32(IPPROTO_IP), Int32(SA_IP_BIND_ADDRESS_NO_PORT), &one, socklen_t(MemoryLayout<Int32>.size))
                    }
                    let length = local.length
                    try Syscall.call("bind(\(from))") {
                        withUnsafePointer(to: &local.storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(s.fd, $0, length) } }
                    }
                }
                // Non-blocking: EINPROGRESS is waited for with poll (after an EINTR the door calls
                // again: EALREADY while the connection goes on, EISCONN once it is made).
                if let failure = Syscall.bestEffort("connect(\(host):\(port))", { Glibc.connect(s.fd, a.pointee.ai_addr, a.pointee.ai_addrlen) }),
                   failure.errno != EISCONN {
                    guard failure.errno == EINPROGRESS || failure.errno == EALREADY else { throw failure }
                    try s.wait(for: Int16(POLLOUT), deadline: MonotonicClock.now() + UInt64(timeoutMilliseconds) * 1_000_000, call: "connect(\(host):\(port))")
                    var err: Int32 = 0
                    var len = socklen_t(MemoryLayout<Int32>.size)
                    try Syscall.call("getsockopt(SO_ERROR)") { getsockopt(s.fd, SOL_SOCKET, SO_ERROR, &err, &len) }
                    if err != 0 { throw SystemError(call: "connect(\(host):\(port))", errno: err) }
                }
                if !nonBlocking { try s.setBlocking(true) }
                return s
            } catch {
                last = error
            }
        }
        throw last
    }

    // MARK: Server

    /// A listening socket (non-blocking, SO_REUSEADDR) on a numeric address; port 0 picks one.
    public static func listen(host: String, port: UInt16, backlog: Int32) throws(SystemError) -> TCPSocket {
        guard var address = SocketAddress(host: host, port: port) else {
            throw SystemError(call: "inet_pton(\(host))", errno: EINVAL)
        }
        let s = TCPSocket(adopting: try Syscall.call("socket") {
            socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        })
        var one: Int32 = 1
        try Syscall.call("setsockopt(SO_REUSEADDR)") { setsockopt(s.fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size)) }
        let length = address.length
        try Syscall.call("bind(\(host):\(port))") {
            withUnsafePointer(to: &address.storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(s.fd, $0, length) } }
        }
        try Syscall.call("listen") { Glibc.listen(s.fd, backlog) }
        return s
    }

    /// The next connection from the backlog (non-blocking, close-on-exec) and its peer; nil when
    /// the backlog is empty (or a connection was aborted before it was taken).
    public func accept() throws(SystemError) -> (socket: TCPSocket, host: String, port: UInt16)? {
        guard let a = try acceptWithSource() else { return nil }
        return (a.socket, a.host, a.port)
    }

    /// `accept()`, with the peer's source (IPv4 address or IPv6 /64) for per-source accounting.
    func acceptWithSource() throws(SystemError) -> (socket: TCPSocket, host: String, port: UInt16, source: SourceKey)? {
        var storage = sockaddr_storage()
        var length = UInt32(MemoryLayout<sockaddr_storage>.size)
        let client: Int
        do throws(SystemError) {
            guard let c = try Syscall.nonBlocking("accept4", { Int(sa_accept(fd, &storage, &length)) }) else { return nil }
            client = c
        } catch where error.errno == ECONNABORTED {
            return nil
        }
        let peer = SocketAddress.describe(storage)
        return (TCPSocket(adopting: Int32(client)), peer.host, peer.port, SocketAddress.source(storage))
    }

    /// The bound local port.
    public var localPort: UInt16 {
        var bound = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let failed = Syscall.bestEffort("getsockname") {
            withUnsafeMutablePointer(to: &bound) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        }
        return failed == nil ? SocketAddress.describe(bound).port : 0
    }

    // MARK: Options

    public func setNoDelay() throws(SystemError) {
        var one: Int32 = 1
        try Syscall.call("setsockopt(TCP_NODELAY)") { setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size)) }
    }

    /// TCP_CORK: partial frames are held until uncorked or closed. Set on a listener, every
    /// accepted socket inherits it.
    public func setCork(_ on: Bool) throws(SystemError) {
        var value: Int32 = on ? 1 : 0
        try Syscall.call("setsockopt(TCP_CORK)") { setsockopt(fd, Int32(IPPROTO_TCP), TCP_CORK, &value, socklen_t(MemoryLayout<Int32>.size)) }
    }

    /// SO_SNDBUF: the kernel keeps at most about twice `bytes` (its bookkeeping included) queued for
    /// sending on this socket and stops autotuning it. Set on a listener, every accepted socket inherits it.
    public func setSendBuffer(bytes: Int) throws(SystemError) {
        var value = Int32(clamping: bytes)
        try Syscall.call("setsockopt(SO_SNDBUF)") { setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &value, socklen_t(MemoryLayout<Int32>.size)) }
    }

    /// SO_SNDBUF as the kernel reports it (twice what was set).
    public func sendBufferBytes() throws(SystemError) -> Int {
        var value: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        try Syscall.call("getsockopt(SO_SNDBUF)") { getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &value, &length) }
        return Int(value)
    }

    public func setBlocking(_ blocking: Bool) throws(SystemError) {
        let flags = try Syscall.call("fcntl(F_GETFL)") { fcntl(fd, F_GETFL) }
        try Syscall.call("fcntl(F_SETFL)") { fcntl(fd, F_SETFL, blocking ? flags & ~O_NONBLOCK : flags | O_NONBLOCK) }
    }

    /// Best effort: ENOTCONN when the peer already reset leaves nothing to shut.
    public func shutdownWrite() {
        Syscall.bestEffort("shutdown(SHUT_WR)") { shutdown(fd, Int32(SHUT_WR)) }
    }

    public func shutdownBoth() {
        Syscall.bestEffort("shutdown(SHUT_RDWR)") { shutdown(fd, Int32(SHUT_RDWR)) }
    }

    // MARK: Non-blocking I/O (the event loops)

    public func read(into buffer: UnsafeMutableRawBufferPointer, flags: Int32 = 0) -> IO {
        do throws(SystemError) {
            guard let n = try Syscall.nonBlocking("recv", { recv(fd, buffer.baseAddress, buffer.count, flags) }) else { return .wouldBlock }
            return n == 0 ? .endOfFile : .done(n)
        } catch {
            return .failed(error)
        }
    }

    public func write(_ bytes: UnsafeRawBufferPointer) -> IO {
        do throws(SystemError) {
            guard let n = try Syscall.nonBlocking("send", { Glibc.send(fd, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL)) }) else { return .wouldBlock }
            return .done(n)
        } catch {
            return .failed(error)
        }
    }

    /// Whether bytes from the peer wait unread in the kernel.
    public var hasUnreadInput: Bool {
        var byte: UInt8 = 0
        return ((try? Syscall.nonBlocking("recv(MSG_PEEK)", { recv(fd, &byte, 1, Int32(MSG_PEEK | MSG_DONTWAIT)) })) ?? 0) > 0
    }

    // MARK: Blocking I/O with deadlines (clients)

    /// Sends all of `bytes` before `timeoutMilliseconds` pass.
    public func sendAll(_ bytes: [UInt8], timeoutMilliseconds: Int = 5_000) throws(SystemError) {
        let deadline = MonotonicClock.now() + UInt64(timeoutMilliseconds) * 1_000_000
        var offset = 0
        while offset < bytes.count {
            let r = bytes.withUnsafeBytes { p in write(UnsafeRawBufferPointer(rebasing: p[offset...])) }
            switch r {
            case .done(let n): offset += n
            case .wouldBlock: try wait(for: Int16(POLLOUT), deadline: deadline, call: "send")
            case .failed(let e): throw e
            case .endOfFile: throw SystemError(call: "send", errno: EPIPE)
            }
        }
    }

    public func sendAll(_ text: String, timeoutMilliseconds: Int = 5_000) throws(SystemError) {
        try sendAll(Array(text.utf8), timeoutMilliseconds: timeoutMilliseconds)
    }

    /// Up to `max` bytes, waiting until `timeoutMilliseconds`; empty at end of file.
    public func receive(max: Int = 65_536, timeoutMilliseconds: Int = 5_000) throws(SystemError) -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: max)
        let n = try buffer.withUnsafeMutableBytes { b in
            Result { () throws(SystemError) in try receive(into: b, timeoutMilliseconds: timeoutMilliseconds) }
        }.get()
        return Array(buffer[0..<n])
    }

    /// `receive` into memory the caller keeps (a long-lived connection's reads, each into the same
    /// buffer: no allocation and no zeroing per read). Returns the bytes read; 0 when the peer closed.
    public func receive(into buffer: UnsafeMutableRawBufferPointer, timeoutMilliseconds: Int = 5_000) throws(SystemError) -> Int {
        let deadline = MonotonicClock.now() + UInt64(timeoutMilliseconds) * 1_000_000
        while true {
            switch read(into: buffer, flags: Int32(MSG_DONTWAIT)) {
            case .done(let n): return n
            case .endOfFile: return 0
            case .wouldBlock: try wait(for: Int16(POLLIN), deadline: deadline, call: "recv")
            case .failed(let e): throw e
            }
        }
    }

    /// Everything until the peer closes (or the deadline passes: then an error).
    public func receiveToEnd(timeoutMilliseconds: Int = 5_000, limit: Int = 16 << 20) throws(SystemError) -> [UInt8] {
        let deadline = MonotonicClock.now() + UInt64(timeoutMilliseconds) * 1_000_000
        var out: [UInt8] = []
        while out.count < limit {
            let left = deadline > MonotonicClock.now() ? Int((deadline - MonotonicClock.now()) / 1_000_000) + 1 : 0
            let chunk = try receive(timeoutMilliseconds: left)
            if chunk.isEmpty { return out }
            out += chunk
        }
        return out
    }

    private func wait(for events: Int16, deadline: UInt64, call: String) throws(SystemError) {
        while true {
            let now = MonotonicClock.now()
            guard now < deadline else { throw SystemError(call: call, errno: ETIMEDOUT) }
            if try Syscall.poll(fd, events: events, milliseconds: Int32(min(UInt64(Int32.max), (deadline - now) / 1_000_000 + 1))) { return }
        }
    }
}
