import Foundation
import HTTPServer
import Locking
import Synchronization
import SystemCalls
import TestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A handler whose answers the test decides: at once, later from another thread, or never (the
/// loop's deadline then sends the fallback). No database anywhere.
final class StubHandler: RequestHandler, Sendable {
    enum Plan: Sendable {
        case now
        case later(afterMilliseconds: Int, deadlineMilliseconds: Int)
    }

    let plan: @Sendable (HTTPRequest) -> Plan
    let lateAnswers = Atomic<Int>(0)

    init(plan: @escaping @Sendable (HTTPRequest) -> Plan) {
        self.plan = plan
    }

    func handle(_ request: HTTPRequest, context: RequestContext, responder: Responder) -> HandlerResult {
        let path = String(request.head.path)
        switch plan(request) {
        case .now:
            return .now(HTTPResponse(status: .ok, text: "now \(path)\n"))
        case let .later(after, deadline):
            let answer = HTTPResponse(status: .ok, text: "later \(path)\n")
            Thread {
                usleep(UInt32(after) * 1000)
                self.lateAnswers.wrappingAdd(1, ordering: .relaxed)
                responder.respond(answer)
            }.start()
            return .later(deadline: MonotonicClock.now() + UInt64(deadline) * 1_000_000,
                          fallback: { HTTPResponse(status: .serviceUnavailable, text: "fallback \(path)\n") })
        }
    }

    func shutdown() {}
}

func startServer(workers: Int = 2, _ plan: @escaping @Sendable (HTTPRequest) -> StubHandler.Plan) throws -> (HTTPServer, StubHandler) {
    var config = ServerConfig(host: "127.0.0.1", port: 0, workers: workers)
    config.idleTimeoutMilliseconds = 2_000
    let server = try HTTPServer(config: config)
    let handler = StubHandler(plan: plan)
    try server.start { _ in handler }
    return (server, handler)
}

func get(_ path: String, close: Bool = true) -> [UInt8] {
    Array("GET \(path) HTTP/1.1\r\nHost: x\r\n\(close ? "Connection: close\r\n" : "")\r\n".utf8)
}

@Suite("HTTP server with a stub handler")
struct ServerTests {
    @Test func immediateAnswerAndCloseAsAsked() throws {
        let (server, _) = try startServer { _ in .now }
        defer { server.stop() }
        let c = try RawClient(port: server.port)
        c.send(get("/a"))
        let r = try #require(c.readResponse())
        #expect(r.status == 200 && r.text == "now /a\n")
        #expect(r.headers["connection"] == "close")
        c.setReceiveTimeout(seconds: 1)
        #expect(c.isClosedByPeer(), "closed right after the answer the client asked to close after")
    }

    /// Accepted sockets start corked (so that an answer and its FIN share a segment); one that
    /// stays open must be uncorked after its answer, or each answer would wait for the kernel's
    /// 200 ms cork ceiling. Three answers in a row on one connection, each well before that.
    @Test func keepAliveAnswersAreNotHeldByTheCork() throws {
        let (server, _) = try startServer { req in
            req.head.path == "/later" ? .later(afterMilliseconds: 1, deadlineMilliseconds: 2_000) : .now
        }
        defer { server.stop() }
        let c = try RawClient(port: server.port)
        for path in ["/a", "/later", "/b"] {
            let t0 = MonotonicClock.now()
            c.send(get(path, close: false))
            let r = try #require(c.readResponse())
            let ms = Double(MonotonicClock.now() - t0) / 1e6
            #expect(r.status == 200)
            #expect(ms < 100, "\(path) answered after \(ms) ms")
        }
    }

    /// A close the server decides (here: a malformed request) while the client's bytes are still
    /// unread: the server lingers instead of closing at once, so the 400 is not destroyed by a reset.
    @Test func serverChosenCloseWithUnreadBytesKeepsTheResponse() throws {
        let (server, _) = try startServer { _ in .now }
        defer { server.stop() }
        let c = try RawClient(port: server.port)
        c.send(Array("GET /a HTTP/1.1\r\nHost: x\r\nbad header line\r\n\r\n".utf8) + [UInt8](repeating: UInt8(ascii: "x"), count: 100_000))
        let r = try #require(c.readResponse())
        #expect(r.status == 400)
        #expect(r.headers["connection"] == "close")
        c.setReceiveTimeout(seconds: 2)
        #expect(c.peerEnd() == .finished, "a FIN after the response (shutdown, then discard), not a reset")
    }

    @Test func laterAnswerFromAnotherThread() throws {
        let (server, _) = try startServer { _ in .later(afterMilliseconds: 30, deadlineMilliseconds: 2_000) }
        defer { server.stop() }
        let t0 = Date()
        let r = try exchange(server.port, get("/x"))
        #expect(r.status == 200 && r.text == "later /x\n")
        #expect(Date().timeIntervalSince(t0) >= 0.03)
        #expect(server.counters.deadlineFallbacks.load(ordering: .relaxed) == 0)
    }

    @Test func deadlineSendsTheFallbackAndDropsTheLateAnswer() throws {
        let (server, handler) = try startServer { req in
            req.head.path == "/slow" ? .later(afterMilliseconds: 300, deadlineMilliseconds: 50) : .now
        }
        defer { server.stop() }
        let c = try RawClient(port: server.port)
        let t0 = Date()
        c.send(get("/slow", close: false))
        let r = try #require(c.readResponse())
        let took = Date().timeIntervalSince(t0)
        #expect(r.status == 503 && r.text == "fallback /slow\n")
        #expect(took >= 0.045 && took < 0.250, "the fallback at the deadline (took \(took) s)")
        // The same connection goes on; the late answer (at 300 ms) must not be taken for the next one.
        c.send(get("/next", close: false))
        #expect(c.readResponse()?.text == "now /next\n")
        Thread.sleep(forTimeInterval: 0.4)
        #expect(handler.lateAnswers.load(ordering: .relaxed) == 1)
        c.send(get("/after", close: false))
        #expect(c.readResponse()?.text == "now /after\n")
        #expect(server.counters.deadlineFallbacks.load(ordering: .relaxed) == 1)
        #expect(server.counters.inFlightDeferred.load(ordering: .relaxed) == 0)
    }

    @Test func pipelinedAnswersKeepRequestOrder() throws {
        let (server, _) = try startServer { req in
            req.head.path == "/first" ? .later(afterMilliseconds: 80, deadlineMilliseconds: 2_000) : .now
        }
        defer { server.stop() }
        let c = try RawClient(port: server.port)
        c.send(get("/first", close: false) + get("/second", close: false) + get("/third", close: true))
        #expect(c.readResponse()?.text == "later /first\n")
        #expect(c.readResponse()?.text == "now /second\n")
        #expect(c.readResponse()?.text == "now /third\n")
    }

    @Test func stopAnswersAwaitedRequestsBeforeClosing() throws {
        let (server, _) = try startServer { _ in .later(afterMilliseconds: 150, deadlineMilliseconds: 2_000) }
        let c = try RawClient(port: server.port)
        c.send(get("/inflight"))
        Thread.sleep(forTimeInterval: 0.05)
        server.stop()
        #expect(c.readResponse()?.text == "later /inflight\n")
        #expect(server.counters.abortedOnStop.load(ordering: .relaxed) == 0)
    }

    @Test func stopBeforeStartReturnsAtOnce() throws {
        let server = try HTTPServer(config: ServerConfig(host: "127.0.0.1", port: 0, workers: 2))
        let t0 = Date()
        server.stop()
        #expect(Date().timeIntervalSince(t0) < 0.1)
    }

    /// A connection per request from 16 clients at once, as mod_xml_curl opens them: none refused,
    /// and the server never holds many more connections than requests in flight (the closes of
    /// answered connections are not starved by new ones).
    @Test func connectionPerRequestUnderLoadHoldsNoStragglers() throws {
        let (server, _) = try startServer { _ in .now }
        defer { server.stop() }
        let port = server.port
        let failures = Atomic<Int>(0), done = Atomic<Int>(0), maxOpen = Atomic<Int>(0)
        let running = Atomic<Bool>(true)
        let sampler = Thread {
            while running.load(ordering: .relaxed) {
                let open = server.counters.open.value
                if open > maxOpen.load(ordering: .relaxed) { maxOpen.store(open, ordering: .relaxed) }
                usleep(1000)
            }
        }
        sampler.start()
        let group = DispatchGroup()
        for _ in 0..<16 {
            group.enter()
            Thread {
                for _ in 0..<150 {
                    if let r = try? exchange(port, get("/q")), r.status == 200 { done.wrappingAdd(1, ordering: .relaxed) } else { failures.wrappingAdd(1, ordering: .relaxed) }
                }
                group.leave()
            }.start()
        }
        group.wait()
        running.store(false, ordering: .relaxed)
        #expect(failures.load(ordering: .relaxed) == 0)
        #expect(done.load(ordering: .relaxed) == 2_400)
        #expect(server.counters.rejectedOverLimit.load(ordering: .relaxed) == 0)
        #expect(maxOpen.load(ordering: .relaxed) <= 64, "open connections stayed near the 16 in flight (max \(maxOpen.load(ordering: .relaxed)))")
        #expect(waitFor(seconds: 2) { server.counters.open.value == 0 })
    }
}

func waitFor(seconds: Double, _ condition: () -> Bool) -> Bool {
    let end = Date().addingTimeInterval(seconds)
    while Date() < end {
        if condition() { return true }
        usleep(10_000)
    }
    return condition()
}

@Suite("queue and thread lifecycle")
struct ConcurrencyTests {
    @Test func boundedQueueRefusesWhenFullAndDrainsAfterClose() {
        let q = BoundedQueue<Int>(capacity: 2)
        #expect(q.offer(1) && q.offer(2))
        #expect(!q.offer(3), "full: refused at once")
        q.close()
        #expect(!q.offer(4), "closed")
        #expect(q.take() == 1 && q.take() == 2)
        #expect(q.take() == nil)
    }

    /// take(upTo:joining:) takes the head, then only the run of joinable elements right behind it.
    @Test func boundedQueueTakesARunTogether() {
        let q = BoundedQueue<Int>(capacity: 16)
        for v in [1, 2, 4, 6, 8, 10, 3, 12, 14] { #expect(q.offer(v)) }
        let even: (Int) -> Bool = { $0 % 2 == 0 }
        #expect(q.take(upTo: 8, joining: even) == [1], "a head that does not join is taken alone")
        #expect(q.take(upTo: 3, joining: even) == [2, 4, 6], "at most the limit")
        #expect(q.take(upTo: 8, joining: even) == [8, 10], "up to the first that does not join")
        #expect(q.take(upTo: 8, joining: even) == [3])
        q.close()
        #expect(q.take(upTo: 8, joining: even) == [12, 14], "drained after close")
        #expect(q.take(upTo: 8, joining: even) == nil)
    }

    /// Readers run together while a writer keeps getting its turn (writers are preferred): the
    /// writer's 200 increments all land while four threads read without pause, and no reader ever
    /// sees the two halves of the pair disagree.
    @Test func readWriteLockedLetsTheWriterThrough() {
        let pair = ReadWriteLocked((0, 0))
        let stop = Atomic<Bool>(false)
        let torn = Atomic<Int>(0)
        let writer = Thread {
            for _ in 0..<200 {
                pair.write { $0.0 += 1; usleep(10); $0.1 += 1 }
            }
            stop.store(true, ordering: .releasing)
        }
        let readers = (0..<4).map { _ in
            Thread {
                while !stop.load(ordering: .acquiring) {
                    pair.read { if $0.0 != $0.1 { torn.wrappingAdd(1, ordering: .relaxed) } }
                }
            }
        }
        for r in readers { r.start() }
        writer.start()
        #expect(waitFor(seconds: 20) { stop.load(ordering: .acquiring) }, "the writer was not starved")
        #expect(torn.load(ordering: .relaxed) == 0)
        #expect(pair.read { $0 } == (200, 200))
    }

    @Test func backgroundThreadStopsBeforeStartAndAfterRun() {
        let never = BackgroundThread(name: "never") { _ in }
        let t0 = Date()
        never.stop()
        never.stop()
        never.start() // after stop: does nothing
        #expect(Date().timeIntervalSince(t0) < 0.1)

        let ticks = Atomic<Int>(0)
        let t = BackgroundThread(name: "ticker") { me in
            while !me.isStopping {
                ticks.wrappingAdd(1, ordering: .relaxed)
                me.sleep(milliseconds: 10_000) // returns early on stop
            }
        }
        t.start()
        #expect(waitFor(seconds: 2) { ticks.load(ordering: .relaxed) >= 1 })
        let t1 = Date()
        t.stop()
        #expect(Date().timeIntervalSince(t1) < 1.0, "stop interrupts sleep")
    }
}
