@testable import HTTPServer
import Testing

/// The event loop's timing rules as values: no socket, no clock.
@Suite struct ConnectionPhaseTests {
    static let ms: UInt64 = 1_000_000
    static let t = ConnectionTimeouts(request: 5_000 * ms, firstByte: 1_000 * ms, idle: 60_000 * ms, write: 10_000 * ms)

    @Test(arguments: [
        (ConnectionPhase.lingering(until: 7 * ms), UInt64(7 * ms), ConnectionTimeoutCause?.none),
        (.awaitingAnswer(answerDue: 300 * ms), 10_300 * ms, nil),
        (.awaitingAnswer(answerDue: 50 * ms), 10_100 * ms, nil),        // due already: from now
        (.writing(since: 100 * ms), 10_100 * ms, .write),
        (.readingRequest(since: 100 * ms), 5_100 * ms, .request),
        (.awaitingFirstByte(since: 100 * ms), 1_100 * ms, .firstByte),  // the shorter first-byte timeout
        (.idle(since: 100 * ms), 60_100 * ms, nil),
    ])
    func deadlinesAndCauses(phase: ConnectionPhase, deadline: UInt64, cause: ConnectionTimeoutCause?) {
        #expect(phase.deadline(Self.t, now: 100 * Self.ms) == deadline)
        #expect(phase.timeoutCause == cause)
    }

    @Test func aFirstByteTimeoutLongerThanTheRequestTimeoutIsCappedByIt() {
        let t = ConnectionTimeouts(request: 500 * Self.ms, firstByte: 2_000 * Self.ms, idle: 0, write: 0)
        #expect(ConnectionPhase.awaitingFirstByte(since: 0).deadline(t, now: 0) == 500 * Self.ms)
    }

    @Test func phaseFollowsTheConnectionsFields() {
        let c = ClientConnection(socket: TCPSocket(adopting: -1), context: RequestContext(peerHost: "127.0.0.1", peerPort: 1),
                                 source: SourceKey(bits: 0, v6: false), limits: HTTPLimits(), now: 40)
        #expect(c.phase == .awaitingFirstByte(since: 40), "accepted, nothing read")
        _ = c.parser.feed(Array("GET / HT".utf8))
        c.requestStarted = 41
        #expect(c.phase == .readingRequest(since: 41))
        c.writeStarted = 42
        #expect(c.phase == .writing(since: 42), "unsent output comes before a partial request")
        c.lingering = true
        c.deadline = 99
        #expect(c.phase == .lingering(until: 99))
        let d = ClientConnection(socket: TCPSocket(adopting: -1), context: RequestContext(peerHost: "127.0.0.1", peerPort: 1),
                                 source: SourceKey(bits: 0, v6: false), limits: HTTPLimits(), now: 40)
        d.served = 1
        d.requestStarted = nil
        d.lastActivity = 50
        #expect(d.phase == .idle(since: 50), "between requests")
    }
}
