/// The one throttle of the project (HTTP basic auth per source, console logins per operator and
/// address): failures per key in fixed windows. A key's window opens at its first failure; after
/// `limit` failures within `windowNanoseconds` the key is throttled (`retryAfter` says for how many
/// more seconds) until that window ends, then counting starts again from one. Bounded: past
/// `maxKeys`, expired keys are dropped, then the oldest one, so rotating keys cannot exhaust memory.
/// Pure: time is passed in, monotonic nanoseconds (`MonotonicClock.now()`).
public struct FailureThrottle: Sendable, Equatable {
    public var limit: Int
    public var windowNanoseconds: UInt64
    public var maxKeys: Int

    struct Entry: Sendable, Equatable {
        var windowStart: UInt64
        var failures: Int
    }
    private(set) var entries: [String: Entry] = [:]

    public init(limit: Int, windowSeconds: Int, maxKeys: Int) {
        self.limit = limit
        windowNanoseconds = UInt64(max(0, windowSeconds)) * 1_000_000_000
        self.maxKeys = max(1, maxKeys)
    }

    public var keyCount: Int { entries.count }

    /// Seconds until `key` may try again (at least 1); nil when it may now.
    public func retryAfter(_ key: String, now: UInt64) -> Int? {
        guard let e = entries[key], now &- e.windowStart < windowNanoseconds, e.failures >= limit else { return nil }
        return Int((e.windowStart + windowNanoseconds - now + 999_999_999) / 1_000_000_000)
    }

    public mutating func recordFailure(_ key: String, now: UInt64) {
        if var e = entries[key] {
            if now &- e.windowStart >= windowNanoseconds { e = Entry(windowStart: now, failures: 0) }
            e.failures += 1
            entries[key] = e
            return
        }
        if entries.count >= maxKeys {
            entries = entries.filter { now &- $0.value.windowStart < windowNanoseconds }
            if entries.count >= maxKeys, let oldest = entries.min(by: { $0.value.windowStart < $1.value.windowStart }) {
                entries.removeValue(forKey: oldest.key)
            }
        }
        entries[key] = Entry(windowStart: now, failures: 1)
    }

    /// Forgets `key`'s failures (a success).
    public mutating func forget(_ key: String) {
        entries.removeValue(forKey: key)
    }
}
