import Foundation
import HTTPServer
import Synchronization
import TestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Answers `/big` with `bigSize` bytes (a byte pattern the client checks), anything else at once.
final class BigAnswerHandler: RequestHandler, Sendable {
    static let bigSize = 4 << 20
    static let big: [UInt8] = (0..<bigSize).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 13) }

    func handle(_ request: HTTPRequest, context: RequestContext, responder: Responder) -> HandlerResult {
        if request.head.path == "/big" { return .now(HTTPResponse(status: .ok, body: Self.big)) }
        return .now(HTTPResponse(status: .ok, text: "ok\n"))
    }

    func shutdown() {}
}

private func startServer(_ configure: (inout ServerConfig) -> Void, handler: any RequestHandler & Sendable = StubHandler { _ in .now }) throws -> HTTPServer {
    var config = ServerConfig(host: "127.0.0.1", port: 0, workers: 2)
    configure(&config)
    let server = try HTTPServer(config: config)
    try server.start { _ in handler }
    return server
}

/// Whether the server has closed (or answered, e.g. a 503) this connection: readable or hung up now.
private func hasNews(_ c: RawClient) -> Bool {
    var p = pollfd(fd: c.socket.fd, events: Int16(POLLIN), revents: 0)
    return poll(&p, 1, 0) > 0
}

/// The server side of each established connection to `port`, from /proc/net/tcp: bytes the kernel
/// holds queued for sending (tx_queue: sent but unacknowledged plus unsent).
private func serverSendQueues(port: UInt16) -> [Int] {
    // Read to the end (a /proc file has no size, and one read returns a page at most).
    let fd = open("/proc/net/tcp", O_RDONLY)
    guard fd >= 0 else { return [] }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65_536)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n <= 0 { break }
        bytes += chunk[0..<n]
    }
    let text = String(decoding: bytes, as: UTF8.self)
    var out: [Int] = []
    for line in text.split(separator: "\n").dropFirst() {
        let f = line.split(separator: " ", omittingEmptySubsequences: true)
        guard f.count > 4, f[3] == "01" else { continue }
        let local = f[1].split(separator: ":")
        guard local.count == 2, UInt16(local[1], radix: 16) == port else { continue }
        let queues = f[4].split(separator: ":")
        if let tx = Int(queues[0], radix: 16) { out.append(tx) }
    }
    return out
}

@Suite("admission: eviction, per-source cap, first byte, non-readers")
struct AdmissionTests {
    /// (1) Idle peers from one address hold every slot and reopen each one they lose; the switch's
    /// address still gets all its answers (each new connection of the switch evicts an idle one).
    @Test func idleFloodDoesNotLockTheSwitchOut() throws {
        let server = try startServer {
            $0.maxConnections = 64
            $0.maxConnectionsPerSource = 64        // no per-source cap: eviction alone must do it
            $0.firstByteTimeoutMilliseconds = 10_000
            $0.requestTimeoutMilliseconds = 10_000
            $0.idleTimeoutMilliseconds = 10_000
        }
        defer { server.stop() }
        let port = server.port
        let stop = Atomic<Bool>(false)
        let opened = Atomic<Int>(0)
        let flood = Thread {
            // Every slot taken first, then held and reopened.
            var open: [RawClient] = []
            for _ in 0..<64 { if let c = try? RawClient(port: port, source: "127.0.0.5") { open.append(c) } }
            opened.add(64, ordering: .relaxed)
            while !stop.load(ordering: .relaxed) {
                open.removeAll(where: hasNews)     // evicted or refused: dropped, and reopened below
                if open.count < 80, let c = try? RawClient(port: port, source: "127.0.0.5") {
                    open.append(c)
                    opened.add(1, ordering: .relaxed)
                }
                usleep(100)
            }
        }
        flood.start()
        defer { stop.store(true, ordering: .relaxed) }
        #expect(waitFor(seconds: 5) { opened.load(ordering: .relaxed) >= 64 && server.counters.open.value == 64 })
        Thread.sleep(forTimeInterval: 0.3)
        var ok = 0
        var failures: [String: Int] = [:]
        for i in 0..<100 {
            do {
                let r = try exchange(port, get("/switch\(i)"), source: "127.0.0.1")
                if r.status == 200 { ok += 1 } else { failures["status \(r.status)", default: 0] += 1 }
            } catch {
                failures["\(error)", default: 0] += 1
            }
        }
        stop.store(true, ordering: .relaxed)
        let c = server.counters
        print("switch beside 64+ idle peers reopening (\(opened.load(ordering: .relaxed)) reopened): \(ok)/100 answered 200, failures \(failures); evicted \(c.evictedIdle.load(ordering: .relaxed)), refused over limit \(c.rejectedOverLimit.load(ordering: .relaxed))")
        #expect(ok == 100)
        #expect(c.evictedIdle.load(ordering: .relaxed) > 0)
        #expect(c.open.value <= 64)
    }

    /// (2) One source holds at most `maxConnectionsPerSource`; the next gets the fast 503; another
    /// source is still served, and a slot freed by the source is its again.
    @Test func perSourceCapRefusesTheExcess() throws {
        let server = try startServer {
            $0.maxConnections = 64
            $0.maxConnectionsPerSource = 8
            $0.firstByteTimeoutMilliseconds = 30_000
        }
        defer { server.stop() }
        var clients: [RawClient] = []
        for _ in 0..<20 { clients.append(try RawClient(port: server.port, source: "127.0.0.6")) }
        var refused = 0, open: [RawClient] = []
        for c in clients {
            c.setReceiveTimeout(milliseconds: 300)
            if let r = c.readResponse() {
                #expect(r.status == 503)
                refused += 1
            } else {
                open.append(c)
            }
        }
        #expect(refused == 12 && open.count == 8, "refused \(refused), open \(open.count)")
        #expect(server.counters.rejectedPerSource.load(ordering: .relaxed) == 12)
        #expect(try exchange(server.port, get("/other"), source: "127.0.0.7").status == 200)
        // The held ones are served, and one closed frees a slot for the same source.
        open[0].send(get("/held"))
        #expect(open[0].readResponse()?.status == 200)
        #expect(waitFor(seconds: 3) { server.counters.open.value == 7 })
        #expect(try exchange(server.port, get("/again"), source: "127.0.0.6").status == 200)
    }

    /// (3) A connection that sends nothing is closed at the first-byte deadline, well before the
    /// request deadline; one that has sent part of a request is not.
    @Test func firstByteDeadlineClosesASilentConnection() throws {
        let server = try startServer {
            $0.firstByteTimeoutMilliseconds = 300
            $0.requestTimeoutMilliseconds = 10_000
        }
        defer { server.stop() }
        let silent = try RawClient(port: server.port)
        let partial = try RawClient(port: server.port)
        partial.send("GET /partial HTTP/1.1\r\n")
        let t0 = Date()
        silent.setReceiveTimeout(seconds: 5)
        #expect(silent.isClosedByPeer())
        let seconds = Date().timeIntervalSince(t0)
        #expect(seconds < 3, "closed after \(seconds) s")
        #expect(server.counters.firstByteTimeouts.load(ordering: .relaxed) == 1)
        Thread.sleep(forTimeInterval: 0.5)
        partial.send("Host: x\r\nConnection: close\r\n\r\n")
        #expect(partial.readResponse()?.status == 200, "a request under way keeps the request deadline")
    }

    /// (4) Peers pipelining requests without reading: each is cut at the write deadline (counted
    /// from the first write that could not complete, not restarted by partial writes), and what the
    /// server holds for each (kernel send queue, user-space output) stays bounded meanwhile.
    @Test func pipeliningNonReadersAreCutAndBounded() throws {
        let server = try startServer {
            $0.writeTimeoutMilliseconds = 1_000
            $0.idleTimeoutMilliseconds = 30_000
            $0.requestTimeoutMilliseconds = 30_000
        }
        defer { server.stop() }
        let count = 20
        var clients: [RawClient] = []
        for _ in 0..<count { clients.append(try RawClient(port: server.port)) }
        for c in clients { try c.socket.setBlocking(false) }
        let batch = Array((0..<2_000).map { _ in get("/healthz", close: false) }.joined())
        var closedAt = [Double?](repeating: nil, count: count)
        // When the server stopped taking requests (the client's sends would block): its output is
        // backed up by then, so its write deadline runs.
        var stalledAt = [Double?](repeating: nil, count: count)
        var maxKernel = 0, maxUser = 0
        let t0 = Date()
        while Date().timeIntervalSince(t0) < 8 && closedAt.contains(where: { $0 == nil }) {
            for (i, c) in clients.enumerated() where closedAt[i] == nil {
                var p = pollfd(fd: c.socket.fd, events: Int16(POLLOUT), revents: 0)
                _ = poll(&p, 1, 0)
                if p.revents & Int16(POLLERR | POLLHUP) != 0 {
                    closedAt[i] = Date().timeIntervalSince(t0)
                } else if p.revents & Int16(POLLOUT) != 0 {
                    switch batch.withUnsafeBytes({ c.socket.write($0) }) {
                    case .failed: closedAt[i] = Date().timeIntervalSince(t0)
                    case .wouldBlock: if stalledAt[i] == nil { stalledAt[i] = Date().timeIntervalSince(t0) }
                    default: break
                    }
                } else if stalledAt[i] == nil {
                    stalledAt[i] = Date().timeIntervalSince(t0)
                }
            }
            maxKernel = max(maxKernel, serverSendQueues(port: server.port).max() ?? 0)
            maxUser = max(maxUser, server.counters.unsentBytes.load(ordering: .relaxed))
            usleep(10_000)
        }
        let times = closedAt.compactMap { $0 }
        let afterStall = zip(closedAt, stalledAt).compactMap { closed, stalled in closed.map { $0 - (stalled ?? 0) } }
        print("20 pipelining non-readers: closed \(times.count)/\(count), last at \(String(format: "%.2f", times.max() ?? -1)) s, at most \(String(format: "%.2f", afterStall.max() ?? -1)) s after its sends stalled; largest server send queue \(maxKernel) bytes, user-space unsent at most \(maxUser) bytes in all; write timeouts \(server.counters.writeTimeouts.load(ordering: .relaxed))")
        #expect(times.count == count, "every non-reader cut")
        #expect((afterStall.max() ?? 99) < 5, "within write_timeout_ms (1 s) and a margin for a loaded 2-core machine (before the fix none was cut in 8 s)")
        #expect(maxKernel <= 1 << 20, "kernel send queue per connection bounded by SO_SNDBUF")
        #expect(maxUser <= count * (256 << 10), "user-space output per connection bounded")
        #expect(server.counters.writeTimeouts.load(ordering: .relaxed) == count)
    }

    /// (5) A 4 MiB answer still reaches a client that reads slowly (about 3 MB/s) but steadily.
    @Test func largeAnswerReachesASlowReader() throws {
        let server = try startServer({ $0.writeTimeoutMilliseconds = 5_000 }, handler: BigAnswerHandler())
        defer { server.stop() }
        let c = try RawClient(port: server.port)
        c.send(get("/big"))
        var received: [UInt8] = []
        let t0 = Date()
        while Date().timeIntervalSince(t0) < 20 {
            guard let chunk = try? c.socket.receive(max: 16_384, timeoutMilliseconds: 5_000), !chunk.isEmpty else { break }
            received += chunk
            usleep(5_000)
        }
        let r = try #require(TestResponse.parse(&received), "a whole response")
        print("4 MiB answer to a slow reader: \(r.body.count) bytes in \(String(format: "%.2f", Date().timeIntervalSince(t0))) s")
        #expect(r.status == 200)
        #expect(r.body == BigAnswerHandler.big)
        #expect(server.counters.writeTimeouts.load(ordering: .relaxed) == 0)
    }
}
