import Decisions
import Testing

@Suite struct FailureThrottleTests {
    static let s: UInt64 = 1_000_000_000

    /// (failures recorded at these seconds, asked at, expected retry-after)
    @Test(arguments: [
        ([0, 1], 2, nil),               // under the limit
        ([0, 1, 2], 3, 57),             // at the limit: until the first failure's window ends
        ([0, 1, 2], 59, 1),
        ([0, 1, 2], 60, nil),           // the window ended
        ([0, 30, 61], 62, nil),         // the third failure opened a new window: one failure in it
        ([0, 0, 0, 0], 0, 60),
    ] as [([UInt64], UInt64, Int?)])
    func windows(failures: [UInt64], at: UInt64, expected: Int?) {
        var t = FailureThrottle(limit: 3, windowSeconds: 60, maxKeys: 10)
        for f in failures { t.recordFailure("k", now: f * Self.s) }
        #expect(t.retryAfter("k", now: at * Self.s) == expected)
        #expect(t.retryAfter("other", now: at * Self.s) == nil, "per key")
    }

    @Test func aSuccessForgetsAndKeysAreBounded() {
        var t = FailureThrottle(limit: 2, windowSeconds: 60, maxKeys: 3)
        t.recordFailure("a", now: 0)
        t.recordFailure("a", now: 0)
        #expect(t.retryAfter("a", now: 1) == 60)
        t.forget("a")
        #expect(t.retryAfter("a", now: 1) == nil)
        for i in 0..<100 { t.recordFailure("k\(i)", now: UInt64(i)) }
        #expect(t.keyCount == 3)
    }
}
