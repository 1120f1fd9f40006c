import Decisions
import HTTPServer
import Locking
import SystemCalls

/// Login throttling, in memory, per (operator name, source address): after `limit` failed logins
/// for one name from one address within `windowSeconds`, further attempts for that name from that
/// address are refused (429) without checking the password until the window ends. Failures
/// elsewhere never count against an operator's own address, so nobody can lock an operator out
/// from another address, and operators sharing an address (a TLS proxy without
/// `--trusted-proxy`, an office NAT) do not lock each other out. Guessing stays slow: `limit`
/// guesses per name and address per window, each costing a scrypt hash. Bounded: the oldest
/// entries go first (a `FailureThrottle`, as basic auth's).
public struct LoginThrottleState: Sendable {
    private var failures: FailureThrottle

    public init(limit: Int = 5, windowSeconds: Int = 900) {
        failures = FailureThrottle(limit: limit, windowSeconds: windowSeconds, maxKeys: 10_000)
    }

    static func key(name: String, client: String) -> String {
        // Operator names are at most 64 characters: a longer one cannot make the key longer.
        String(name.lowercased().prefix(64)) + "\u{0}" + String(client.prefix(64))
    }

    /// Seconds to wait when attempts for this name from this client are throttled; nil when allowed.
    /// `now` in monotonic nanoseconds.
    public func retryAfter(name: String, client: String, now: UInt64) -> Int? {
        failures.retryAfter(Self.key(name: name, client: client), now: now)
    }

    public mutating func failed(name: String, client: String, now: UInt64) {
        failures.recordFailure(Self.key(name: name, client: client), now: now)
    }

    public mutating func succeeded(name: String, client: String) {
        failures.forget(Self.key(name: name, client: client))
    }
}

public final class LoginThrottle: Sendable {
    private let state: Locked<LoginThrottleState>
    public init(limit: Int = 5, windowSeconds: Int = 900) {
        state = Locked(LoginThrottleState(limit: limit, windowSeconds: windowSeconds))
    }

    public func retryAfter(name: String, client: String) -> Int? {
        state.withLock { $0.retryAfter(name: name, client: client, now: MonotonicClock.now()) }
    }

    public func failed(name: String, client: String) { state.withLock { $0.failed(name: name, client: client, now: MonotonicClock.now()) } }
    public func succeeded(name: String, client: String) { state.withLock { $0.succeeded(name: name, client: client) } }
}
