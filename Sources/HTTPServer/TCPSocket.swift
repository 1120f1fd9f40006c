import CSystemShims
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The one TCP socket type of the project: the server's listener and connections, the event-socket
/// client, the demo, the benchmark and the tests all use it. It owns its descriptor (closed once, by
/// `close()` or `deinit`) and checks every system call: a failure is a `SocketError` naming the call
/// and errno, EINTR is retried, and EAGAIN on a non-blocking socket is a value (`wouldBlock`), never
/// an error. Blocking operations take a deadline and wait with poll(2).
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
        case failed(SocketError)
    }

    /// Takes ownership of an open descriptor.
    public init(adopting fd: Int32) {
        self.fd = fd
    }

    deinit {
        close()
    }

    /// Closes the descriptor (once; later calls do nothing, later I/O fails with EBADF).
    public func close() {
        if fd >= 0 && !closed.exchange(true, ordering: .acquiringAndReleasing) { Glibc.close(fd) }
    }

    // MARK: Client

    /// Connects to `host` (a numeric address or a name) within `timeoutMilliseconds`, optionally from
    /// the local address `from`. The socket is left blocking unless `nonBlocking`.
    public static func connect(host: String, port: UInt16, timeoutMilliseconds: Int = 5_000, from: String? = nil,
                               nonBlocking: Bool = false) throws(SocketError) -> TCPSocket {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_NUMERICSERV
        var result: UnsafeMutablePointer<addrinfo>?
        var h = host
        if h.hasPrefix("["), h.hasSuffix("]") { h = String(h.dropFirst().dropLast()) }
        let rc = getaddrinfo(h, String(port), &hints, &result)
        guard rc == 0, let first = result else { throw SocketError(call: "getaddrinfo(\(host))", errno: EHOSTUNREACH) }
        defer { freeaddrinfo(result) }
        var last = SocketError(call: "connect(\(host):\(port))", errno: EHOSTUNREACH)
        var ai: UnsafeMutablePointer<addrinfo>? = first
        while let a = ai {
            ai = a.pointee.ai_next
            do throws(SocketError) {
                let s = TCPSocket(adopting: try syscall("socket") {
                    socket(a.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
                })
                if let from {
                    guard var local = SocketAddress(host: from, port: 0) else { throw SocketError(call: "inet_pton(\(from))", errno: EINVAL) }
                    // The port is chosen at connect (per destination), not at bind: many bound
                    // sockets would otherwise use up the ephemeral ports. Best effort (Linux only).
                    var one: Int32 = 1
                    _ = setsockopt(s.fd, Int32(IPPROTO_IP), 24 /* IP_BIND_ADDRESS_NO_PORT */, &one, socklen_t(MemoryLayout<Int32>.size))
                    let length = local.length
                    try syscall("bind(\(from))") {
                        withUnsafePointer(to: &local.storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(s.fd, $0, length) } }
                    }
                }
                if Glibc.connect(s.fd, a.pointee.ai_addr, a.pointee.ai_addrlen) != 0 {
                    guard errno == EINPROGRESS || errno == EINTR else { throw SocketError(call: "connect(\(host):\(port))", errno: errno) }
                    try s.wait(for: Int16(POLLOUT), deadline: Clock.now() + UInt64(timeoutMilliseconds) * 1_000_000, call: "connect(\(host):\(port))")
                    var err: Int32 = 0
                    var len = socklen_t(MemoryLayout<Int32>.size)
                    try syscall("getsockopt(SO_ERROR)") { getsockopt(s.fd, SOL_SOCKET, SO_ERROR, &err, &len) }
                    if err != 0 { throw SocketError(call: "connect(\(host):\(port))", errno: err) }
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
    public static func listen(host: String, port: UInt16, backlog: Int32) throws(SocketError) -> TCPSocket {
        guard var address = SocketAddress(host: host, port: port) else {
            throw SocketError(call: "inet_pton(\(host))", errno: EINVAL)
        }
        let s = TCPSocket(adopting: try syscall("socket") {
            socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        })
        var one: Int32 = 1
        try syscall("setsockopt(SO_REUSEADDR)") { setsockopt(s.fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size)) }
        let length = address.length
        try syscall("bind(\(host):\(port))") {
            withUnsafePointer(to: &address.storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(s.fd, $0, length) } }
        }
        try syscall("listen") { Glibc.listen(s.fd, backlog) }
        return s
    }

    /// The next connection from the backlog (non-blocking, close-on-exec) and its peer; nil when
    /// the backlog is empty (or a connection was aborted before it was taken).
    public func accept() throws(SocketError) -> (socket: TCPSocket, host: String, port: UInt16)? {
        guard let a = try acceptWithSource() else { return nil }
        return (a.socket, a.host, a.port)
    }

    /// `accept()`, with the peer's source (IPv4 address or IPv6 /64) for per-source accounting.
    func acceptWithSource() throws(SocketError) -> (socket: TCPSocket, host: String, port: UInt16, source: SourceKey)? {
        while true {
            var storage = sockaddr_storage()
            var length = UInt32(MemoryLayout<sockaddr_storage>.size)
            let client = sa_accept(fd, &storage, &length)
            if client >= 0 {
                let peer = SocketAddress.describe(storage)
                return (TCPSocket(adopting: client), peer.host, peer.port, SocketAddress.source(storage))
            }
            switch errno {
            case EINTR: continue
            case EAGAIN, ECONNABORTED: return nil
            default: throw SocketError(call: "accept4", errno: errno)
            }
        }
    }

    /// The bound local port.
    public var localPort: UInt16 {
        var bound = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let rc = withUnsafeMutablePointer(to: &bound) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        return rc == 0 ? SocketAddress.describe(bound).port : 0
    }

    // MARK: Options

    public func setNoDelay() throws(SocketError) {
        var one: Int32 = 1
        try syscall("setsockopt(TCP_NODELAY)") { setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size)) }
    }

    /// TCP_CORK: partial frames are held until uncorked or closed. Set on a listener, every
    /// accepted socket inherits it.
    public func setCork(_ on: Bool) throws(SocketError) {
        var value: Int32 = on ? 1 : 0
        try syscall("setsockopt(TCP_CORK)") { setsockopt(fd, Int32(IPPROTO_TCP), TCP_CORK, &value, socklen_t(MemoryLayout<Int32>.size)) }
    }

    /// SO_SNDBUF: the kernel keeps at most about twice `bytes` (its bookkeeping included) queued for
    /// sending on this socket and stops autotuning it. Set on a listener, every accepted socket inherits it.
    public func setSendBuffer(bytes: Int) throws(SocketError) {
        var value = Int32(clamping: bytes)
        try syscall("setsockopt(SO_SNDBUF)") { setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &value, socklen_t(MemoryLayout<Int32>.size)) }
    }

    /// SO_SNDBUF as the kernel reports it (twice what was set).
    public func sendBufferBytes() throws(SocketError) -> Int {
        var value: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        try syscall("getsockopt(SO_SNDBUF)") { getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &value, &length) }
        return Int(value)
    }

    public func setBlocking(_ blocking: Bool) throws(SocketError) {
        let flags = try syscall("fcntl(F_GETFL)") { fcntl(fd, F_GETFL) }
        try syscall("fcntl(F_SETFL)") { fcntl(fd, F_SETFL, blocking ? flags & ~O_NONBLOCK : flags | O_NONBLOCK) }
    }

    public func shutdownWrite() {
        // ENOTCONN when the peer already reset: nothing left to shut.
        _ = shutdown(fd, Int32(SHUT_WR))
    }

    public func shutdownBoth() {
        _ = shutdown(fd, Int32(SHUT_RDWR))
    }

    // MARK: Non-blocking I/O (the event loops)

    public func read(into buffer: UnsafeMutableRawBufferPointer, flags: Int32 = 0) -> IO {
        while true {
            let n = recv(fd, buffer.baseAddress, buffer.count, flags)
            if n > 0 { return .done(n) }
            if n == 0 { return .endOfFile }
            switch errno {
            case EINTR: continue
            case EAGAIN: return .wouldBlock
            default: return .failed(SocketError(call: "recv", errno: errno))
            }
        }
    }

    public func write(_ bytes: UnsafeRawBufferPointer) -> IO {
        while true {
            let n = Glibc.send(fd, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL))
            if n >= 0 { return .done(n) }
            switch errno {
            case EINTR: continue
            case EAGAIN: return .wouldBlock
            default: return .failed(SocketError(call: "send", errno: errno))
            }
        }
    }

    /// Whether bytes from the peer wait unread in the kernel.
    public var hasUnreadInput: Bool {
        var byte: UInt8 = 0
        return recv(fd, &byte, 1, Int32(MSG_PEEK | MSG_DONTWAIT)) > 0
    }

    // MARK: Blocking I/O with deadlines (clients)

    /// Sends all of `bytes` before `timeoutMilliseconds` pass.
    public func sendAll(_ bytes: [UInt8], timeoutMilliseconds: Int = 5_000) throws(SocketError) {
        let deadline = Clock.now() + UInt64(timeoutMilliseconds) * 1_000_000
        var offset = 0
        while offset < bytes.count {
            let r = bytes.withUnsafeBytes { p in write(UnsafeRawBufferPointer(rebasing: p[offset...])) }
            switch r {
            case .done(let n): offset += n
            case .wouldBlock: try wait(for: Int16(POLLOUT), deadline: deadline, call: "send")
            case .failed(let e): throw e
            case .endOfFile: throw SocketError(call: "send", errno: EPIPE)
            }
        }
    }

    public func sendAll(_ text: String, timeoutMilliseconds: Int = 5_000) throws(SocketError) {
        try sendAll(Array(text.utf8), timeoutMilliseconds: timeoutMilliseconds)
    }

    /// Up to `max` bytes, waiting until `timeoutMilliseconds`; empty at end of file.
    public func receive(max: Int = 65_536, timeoutMilliseconds: Int = 5_000) throws(SocketError) -> [UInt8] {
        let deadline = Clock.now() + UInt64(timeoutMilliseconds) * 1_000_000
        var buffer = [UInt8](repeating: 0, count: max)
        while true {
            let r = buffer.withUnsafeMutableBytes { read(into: $0, flags: Int32(MSG_DONTWAIT)) }
            switch r {
            case .done(let n): return Array(buffer[0..<n])
            case .endOfFile: return []
            case .wouldBlock: try wait(for: Int16(POLLIN), deadline: deadline, call: "recv")
            case .failed(let e): throw e
            }
        }
    }

    /// Everything until the peer closes (or the deadline passes: then an error).
    public func receiveToEnd(timeoutMilliseconds: Int = 5_000, limit: Int = 16 << 20) throws(SocketError) -> [UInt8] {
        let deadline = Clock.now() + UInt64(timeoutMilliseconds) * 1_000_000
        var out: [UInt8] = []
        while out.count < limit {
            let left = deadline > Clock.now() ? Int((deadline - Clock.now()) / 1_000_000) + 1 : 0
            let chunk = try receive(timeoutMilliseconds: left)
            if chunk.isEmpty { return out }
            out += chunk
        }
        return out
    }

    private func wait(for events: Int16, deadline: UInt64, call: String) throws(SocketError) {
        while true {
            let now = Clock.now()
            guard now < deadline else { throw SocketError(call: call, errno: ETIMEDOUT) }
            var p = pollfd(fd: fd, events: events, revents: 0)
            let r = poll(&p, 1, Int32(min(UInt64(Int32.max), (deadline - now) / 1_000_000 + 1)))
            if r > 0 { return }
            if r < 0 && errno != EINTR { throw SocketError(call: "poll", errno: errno) }
        }
    }
}
