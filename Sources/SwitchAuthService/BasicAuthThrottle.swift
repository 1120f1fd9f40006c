import Decisions
import Locking

/// Throttling of HTTP basic auth per source (README, "Basic auth"): after `maxFailures` wrong or
/// missing credentials within `windowSeconds`, a source's failures get 429 instead of 401 until the
/// window ends. The right secret is checked first and always accepted (`LookupHandler.authorize`):
/// it is 256 bits, so guessing is bounded by the secret, and anything sharing the switch's address
/// could otherwise lock the switch out.
/// A source is an IPv4 address or an IPv6 /64. Pure: the state is a value (a `FailureThrottle`),
/// time is passed in.
public struct BasicAuthThrottle: Sendable, Equatable {
    public struct Policy: Sendable, Equatable {
        public var maxFailures: Int
        public var windowSeconds: Int
        /// Sources remembered at most: past it, expired entries are dropped, then the oldest one.
        public var maxSources: Int
        public init(maxFailures: Int = 10, windowSeconds: Int = 60, maxSources: Int = 10_000) {
            self.maxFailures = maxFailures
            self.windowSeconds = windowSeconds
            self.maxSources = maxSources
        }
    }

    public enum Verdict: Sendable, Equatable {
        /// Check the credentials.
        case check
        /// Refuse without checking, for this many more seconds.
        case throttled(retryAfterSeconds: Int)
    }

    public let policy: Policy
    private var failures: FailureThrottle

    public init(policy: Policy = Policy()) {
        self.policy = policy
        failures = FailureThrottle(limit: policy.maxFailures, windowSeconds: policy.windowSeconds, maxKeys: policy.maxSources)
    }

    public var sourceCount: Int { failures.keyCount }

    /// `now` in monotonic nanoseconds.
    public func verdict(source: String, now: UInt64) -> Verdict {
        failures.retryAfter(source, now: now).map { .throttled(retryAfterSeconds: $0) } ?? .check
    }

    public mutating func recordFailure(source: String, now: UInt64) {
        failures.recordFailure(source, now: now)
    }

    /// The source key of a peer address (the address itself if it does not parse).
    public static func source(peer: String) -> String { LockoutKeys.source(peer) ?? peer }
}

/// The throttle shared by every event loop.
public final class SharedBasicAuthThrottle: Sendable {
    private let state: Locked<BasicAuthThrottle>
    public init(policy: BasicAuthThrottle.Policy = .init()) { state = Locked(BasicAuthThrottle(policy: policy)) }
    public func verdict(source: String, now: UInt64) -> BasicAuthThrottle.Verdict { state.withLock { $0.verdict(source: source, now: now) } }
    /// The verdict for a peer address; while no source has failed, without parsing the address.
    public func verdict(peer: String, now: UInt64) -> BasicAuthThrottle.Verdict {
        state.withLock { t in t.sourceCount == 0 ? .check : t.verdict(source: BasicAuthThrottle.source(peer: peer), now: now) }
    }
    public func recordFailure(source: String, now: UInt64) { state.withLock { $0.recordFailure(source: source, now: now) } }
    public var sourceCount: Int { state.withLock { $0.sourceCount } }
}

/// At most one log line per `interval` for one kind of event (refused clients): the first event of
/// a quiet period is logged at once, the others are counted and summed up in the next line. An
/// attacker rotating sources thus writes one line per interval, not one per request. Pure.
public struct LogLineLimiter: Sendable, Equatable {
    public let intervalNanoseconds: UInt64
    private var lastLine: UInt64?
    private var suppressed = 0

    public init(intervalSeconds: Int = 10) { intervalNanoseconds = UInt64(intervalSeconds) * 1_000_000_000 }

    /// nil: stay quiet (the event is counted); otherwise log now, saying how many events were not
    /// logged since the previous line.
    public mutating func admit(now: UInt64) -> Int? {
        if let last = lastLine, now &- last < intervalNanoseconds {
            suppressed += 1
            return nil
        }
        lastLine = now
        defer { suppressed = 0 }
        return suppressed
    }
}
