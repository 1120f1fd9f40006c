import Foundation
import Locking

/// Login throttling, in memory, per (operator name, source address): after `limit` failed logins
/// for one name from one address within `windowSeconds`, further attempts for that name from that
/// address are refused (429) without checking the password until the window ends. Failures
/// elsewhere never count against an operator's own address, so nobody can lock an operator out
/// from another address, and operators sharing an address (a TLS proxy without
/// `--trusted-proxy`, an office NAT) do not lock each other out. Guessing stays slow: `limit`
/// guesses per name and address per window, each costing a scrypt hash. Bounded: the oldest
/// entries go first.
public struct LoginThrottleState: Sendable {
    public var limit: Int
    public var windowSeconds: Double
    var entries: [String: (count: Int, start: Double)] = [:]
    static let maxEntries = 10_000

    public init(limit: Int = 5, windowSeconds: Double = 900) {
        self.limit = limit
        self.windowSeconds = windowSeconds
    }

    static func keys(name: String, client: String) -> [(String, Int)] {
        // Operator names are at most 64 characters: a longer one cannot make the key longer.
        [(String(name.lowercased().prefix(64)) + "\u{0}" + String(client.prefix(64)), 1)]
    }

    /// Seconds to wait when attempts for this name or client are throttled; nil when allowed.
    public func retryAfter(name: String, client: String, now: Double) -> Int? {
        for (key, factor) in Self.keys(name: name, client: client) {
            if let e = entries[key], now - e.start < windowSeconds, e.count >= limit * factor {
                return max(1, Int((windowSeconds - (now - e.start)).rounded(.up)))
            }
        }
        return nil
    }

    public mutating func failed(name: String, client: String, now: Double) {
        if entries.count >= Self.maxEntries {
            entries = entries.filter { now - $0.value.start < windowSeconds }
            if entries.count >= Self.maxEntries, let oldest = entries.min(by: { $0.value.start < $1.value.start }) {
                entries[oldest.key] = nil
            }
        }
        for (key, _) in Self.keys(name: name, client: client) {
            if let e = entries[key], now - e.start < windowSeconds {
                entries[key] = (e.count + 1, e.start)
            } else {
                entries[key] = (1, now)
            }
        }
    }

    public mutating func succeeded(name: String, client: String) {
        for (key, _) in Self.keys(name: name, client: client) { entries[key] = nil }
    }
}

public final class LoginThrottle: Sendable {
    private let state: Locked<LoginThrottleState>
    public init(limit: Int = 5, windowSeconds: Double = 900) {
        state = Locked(LoginThrottleState(limit: limit, windowSeconds: windowSeconds))
    }

    static func now() -> Double { Date().timeIntervalSince1970 }

    public func retryAfter(name: String, client: String) -> Int? {
        state.withLock { $0.retryAfter(name: name, client: client, now: Self.now()) }
    }

    public func failed(name: String, client: String) { state.withLock { $0.failed(name: name, client: client, now: Self.now()) } }
    public func succeeded(name: String, client: String) { state.withLock { $0.succeeded(name: name, client: client) } }
}
