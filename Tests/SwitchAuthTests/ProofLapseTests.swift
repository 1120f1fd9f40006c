import HTTPServer
@testable import SwitchAuthService
import SystemCalls
import Testing

/// The copy's proof lapses are counted where they happen (the feed thread), so that an operator
/// can tell a late heartbeat from a lost feed: a heartbeat that returns after the previous proof
/// expired counts one lapse and its gap; a timely one counts nothing; a first proof (after a load)
/// is not a lapse.
@Suite("memory copy proof lapses")
struct ProofLapseTests {
    @Test func lateHeartbeatsAreCounted() {
        let replica = Replica(stalenessMilliseconds: 100)
        let t = MonotonicClock.now()
        let ms: UInt64 = 1_000_000
        replica.proveCurrent(asOf: t, now: t + 5 * ms)
        #expect(replica.proofLapses.load(ordering: .relaxed) == 0, "a first proof")
        replica.proveCurrent(asOf: t + 20 * ms, now: t + 30 * ms)
        #expect(replica.proofLapses.load(ordering: .relaxed) == 0, "on time")
        // The previous proof (t + 20 ms) expired at t + 120 ms; this heartbeat is back at t + 400 ms.
        replica.proveCurrent(asOf: t + 40 * ms, now: t + 400 * ms)
        #expect(replica.proofLapses.load(ordering: .relaxed) == 1)
        #expect(replica.lapsedNanoseconds.load(ordering: .relaxed) == 280 * ms)
        #expect(replica.slowestHeartbeatNanoseconds.load(ordering: .relaxed) == 360 * ms)
        // An older heartbeat arriving late neither moves the proof back nor counts again.
        replica.proveCurrent(asOf: t + 30 * ms, now: t + 410 * ms)
        #expect(replica.proofLapses.load(ordering: .relaxed) == 1)
        #expect(replica.slowestHeartbeatNanoseconds.load(ordering: .relaxed) == 380 * ms)
    }
}
