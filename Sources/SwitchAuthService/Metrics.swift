import Foundation
import Locking

/// Process-wide counters, rendered in the Prometheus text exposition format at `GET /metrics`.
public final class Metrics: Sendable {
    static let buckets: [Double] = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.025, 0.05, 0.1, 0.25, 0.5, 1]

    struct Histogram {
        var counts = [UInt64](repeating: 0, count: Metrics.buckets.count)
        var sum = 0.0
        var count: UInt64 = 0

        mutating func record(_ seconds: Double) {
            for (i, b) in Metrics.buckets.enumerated() where seconds <= b { counts[i] += 1 }
            sum += seconds
            count += 1
        }

        /// Another shard's observations added to these.
        mutating func add(_ other: Histogram) {
            for i in counts.indices { counts[i] += other.counts[i] }
            sum += other.sum
            count += other.count
        }
    }

    struct RequestKey: Hashable {
        var section: String
        var outcome: String
    }

    /// What every lookup records, kept per thread (`ThreadOrdinal`): the event loops count their
    /// requests without meeting on one lock (they did, at saturation), `render` adds the shards up.
    struct RequestCounts {
        var requests: [RequestKey: UInt64] = [:]
        var durations: [String: Histogram] = [:]
    }

    struct State {
        var databaseErrors: UInt64 = 0
        var authFailures: [String: UInt64] = [:]
        var lockouts: [String: UInt64] = [:]
        var basicAuth: [String: UInt64] = [:]
        var eslPushes: [String: UInt64] = [:]
        var aclServedFromCache: UInt64 = 0
        /// Lookups refused at once because the queue to the database threads was full.
        var shed: UInt64 = 0
        /// Lookups answered fail-closed at once because the database was known to be down.
        var circuitOpen: UInt64 = 0
        /// Lookups whose deadline passed before a database thread took them (the fallback went out).
        var expiredInQueue: UInt64 = 0
        var admissionBatches: UInt64 = 0
        var admissionsBatched: UInt64 = 0
        /// Calls admitted against the shared counters, by result.
        var admissions: [String: UInt64] = [:]
        /// Slots released, by how (hangup, reconcile).
        var slotsReleased: [String: UInt64] = [:]
        /// Event-socket listener (re)connections, by result.
        var listenerConnects: [String: UInt64] = [:]
        /// Fraud levels passed (first call per threshold, level and window), by "level metric".
        var fraud: [String: UInt64] = [:]
    }

    private let state = Locked(State())
    static let requestShardCount = 16
    private let requestShards: [Locked<RequestCounts>] = (0..<Metrics.requestShardCount).map { _ in Locked(RequestCounts()) }

    public init() {}

    public func observe(section: String, outcome: String, seconds: Double) {
        requestShards[ThreadOrdinal.current % Self.requestShardCount].withLock { s in
            // In place: no key built, no histogram copied per request.
            s.requests[RequestKey(section: section, outcome: outcome), default: 0] += 1
            s.durations[section, default: Histogram()].record(seconds)
        }
    }

    public func databaseError() { state.withLock { $0.databaseErrors += 1 } }
    public func authFailure(scope: String) { state.withLock { $0.authFailures[scope, default: 0] += 1 } }
    public func lockout(scope: String) { state.withLock { $0.lockouts[scope, default: 0] += 1 } }
    /// A basic-auth outcome: `wrong_password`, `missing`, `throttled`.
    public func basicAuth(_ outcome: String) { state.withLock { $0.basicAuth[outcome, default: 0] += 1 } }
    public func eslPush(result: String) { state.withLock { $0.eslPushes[result, default: 0] += 1 } }
    public func aclFromCache() { state.withLock { $0.aclServedFromCache += 1 } }

    public func lookupShed() { state.withLock { $0.shed += 1 } }
    public func lookupCircuitOpen() { state.withLock { $0.circuitOpen += 1 } }
    public func lookupExpiredInQueue() { state.withLock { $0.expiredInQueue += 1 } }
    /// A statement that admitted `calls` queued admissions together.
    public func admissionBatch(_ calls: Int) {
        state.withLock {
            $0.admissionBatches += 1
            $0.admissionsBatched += UInt64(calls)
        }
    }

    /// `admitted`, `held`, `channel_limit`, `cps_limit`, `error`.
    public func callAdmission(_ result: String) { state.withLock { $0.admissions[result, default: 0] += 1 } }
    public func slotsReleased(_ how: String, _ n: Int) {
        guard n > 0 else { return }
        state.withLock { $0.slotsReleased[how, default: 0] += UInt64(n) }
    }
    public func fraudLevel(_ level: String, metric: String) { state.withLock { $0.fraud["\(level) \(metric)", default: 0] += 1 } }
    public func listenerConnect(_ result: String) { state.withLock { $0.listenerConnects[result, default: 0] += 1 } }

    public var databaseErrors: UInt64 { state.withLock { $0.databaseErrors } }

    /// The exposition text. `gauges` are added as they are (name, help, value).
    public func render(gauges: [(name: String, help: String, value: Double)]) -> String {
        let s = state.withLock { $0 }
        var counts = RequestCounts()
        for shard in requestShards {
            let part = shard.withLock { $0 }
            counts.requests.merge(part.requests, uniquingKeysWith: +)
            counts.durations.merge(part.durations) { a, b in
                var h = a
                h.add(b)
                return h
            }
        }
        var out = ""
        out += "# HELP switchauth_requests_total Lookups answered, by section and outcome (reason code).\n"
        out += "# TYPE switchauth_requests_total counter\n"
        for key in counts.requests.keys.sorted(by: { ($0.section, $0.outcome) < ($1.section, $1.outcome) }) {
            out += "switchauth_requests_total{section=\"\(label(key.section))\",outcome=\"\(label(key.outcome))\"} \(counts.requests[key]!)\n"
        }
        out += "# HELP switchauth_request_duration_seconds Time from parsed request to response bytes, by section.\n"
        out += "# TYPE switchauth_request_duration_seconds histogram\n"
        for section in counts.durations.keys.sorted() {
            let h = counts.durations[section]!
            for (i, b) in Self.buckets.enumerated() {
                out += "switchauth_request_duration_seconds_bucket{section=\"\(label(section))\",le=\"\(b)\"} \(h.counts[i])\n"
            }
            out += "switchauth_request_duration_seconds_bucket{section=\"\(label(section))\",le=\"+Inf\"} \(h.count)\n"
            out += "switchauth_request_duration_seconds_sum{section=\"\(label(section))\"} \(h.sum)\n"
            out += "switchauth_request_duration_seconds_count{section=\"\(label(section))\"} \(h.count)\n"
        }
        out += "# HELP switchauth_database_errors_total Statements that failed or timed out.\n"
        out += "# TYPE switchauth_database_errors_total counter\nswitchauth_database_errors_total \(s.databaseErrors)\n"
        /// A counter family with one label.
        func family(_ name: String, _ help: String, _ labelName: String, _ values: [String: UInt64]) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) counter\n"
            for k in values.keys.sorted() { out += "\(name){\(labelName)=\"\(label(k))\"} \(values[k]!)\n" }
        }
        /// A counter without labels.
        func counter(_ name: String, _ help: String, _ value: UInt64) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) counter\n\(name) \(value)\n"
        }
        family("switchauth_auth_failures_total", "Failed digest attempts counted, by budget (source, user, source_user).", "scope", s.authFailures)
        family("switchauth_lockouts_total", "Lockouts begun by this instance, by budget.", "scope", s.lockouts)
        family("switchauth_basic_auth_refusals_total", "Requests refused by HTTP basic auth, by cause (wrong, throttled).", "cause", s.basicAuth)
        family("switchauth_esl_commands_total", "Event-socket commands sent to switches, by result.", "result", s.eslPushes)
        counter("switchauth_acl_served_from_cache_total", "acl.conf answers served from the last known good list.", s.aclServedFromCache)
        counter("switchauth_lookups_shed_total", "Lookups refused with 503 because max_queued_lookups were already waiting (FreeSWITCH tries its next binding).", s.shed)
        counter("switchauth_lookups_circuit_open_total", "Lookups answered fail-closed without asking the database, while it was known to be down.", s.circuitOpen)
        counter("switchauth_lookups_expired_in_queue_total", "Lookups whose deadline passed while queued (their fail-closed fallback was sent).", s.expiredInQueue)
        family("switchauth_call_admissions_total", "Calls of limited accounts or IP settings checked against the shared counters (call_limits = global), by result.", "result", s.admissions)
        counter("switchauth_call_admission_batches_total", "Statements that admitted several queued calls together (one round trip and one commit for all).", s.admissionBatches)
        counter("switchauth_call_admissions_batched_total", "Calls admitted in those statements (the rest were admitted one per statement).", s.admissionsBatched)
        family("switchauth_call_slots_released_total", "Call slots released by this instance, by how (hangup event, reconciliation against a switch's live channels).", "how", s.slotsReleased)
        family("switchauth_event_listener_connects_total", "Event-socket listener connections to switches, by result.", "result", s.listenerConnects)
        out += "# HELP switchauth_fraud_levels_passed_total Fraud threshold levels passed (once per threshold, level and window), by level and metric; critical suspends the account.\n"
        out += "# TYPE switchauth_fraud_levels_passed_total counter\n"
        for k in s.fraud.keys.sorted() {
            let parts = k.split(separator: " ")
            out += "switchauth_fraud_levels_passed_total{level=\"\(label(parts[0]))\",metric=\"\(label(parts[1]))\"} \(s.fraud[k]!)\n"
        }
        // A gauge's name may carry labels (`name{scope="user"}`): HELP and TYPE once per family.
        var described: Set<Substring> = []
        for g in gauges {
            let family = g.name.prefix { $0 != "{" }
            if described.insert(family).inserted { out += "# HELP \(family) \(g.help)\n# TYPE \(family) gauge\n" }
            out += "\(g.name) \(g.value)\n"
        }
        return out
    }

    private func label<S: StringProtocol>(_ s: S) -> String {
        s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "\n", with: "\\n")
    }
}
