/// Fraud thresholds (README, "Call controls"): per account, optionally per destination prefix, a
/// warning level (logged, counted, sent to the webhook) and a critical level (the account is
/// suspended at once and the call refused). Counted in the shared database at admission; judged here.
public struct FraudThreshold: Sendable, Equatable {
    public enum Metric: String, Sendable, CaseIterable {
        /// Calls admitted in the current UTC minute.
        case callsPerMinute = "calls_per_minute"
        /// Calls attempted, admitted or not, in the current UTC day.
        case attemptsPerDay = "attempts_per_day"
        /// The account's calls up (to destinations beginning with the prefix).
        case concurrentCalls = "concurrent_calls"
    }

    public var id: Int64
    /// '' = every destination.
    public var prefix: String
    public var metric: Metric
    public var warning: Int?
    public var critical: Int?

    public init(id: Int64, prefix: String = "", metric: Metric, warning: Int?, critical: Int?) {
        self.id = id
        self.prefix = prefix
        self.metric = metric
        self.warning = warning
        self.critical = critical
    }

    public var summary: String {
        "\(metric.rawValue)\(prefix.isEmpty ? "" : " to \(prefix)…") warning \(warning.map(String.init) ?? "-") critical \(critical.map(String.init) ?? "-") (threshold \(id))"
    }
}

/// One threshold's value as counted for a call (including it), and the window it was counted in.
public struct FraudMeasurement: Sendable, Equatable {
    public var thresholdID: Int64
    public var value: Int
    /// Epoch milliseconds of the window's start (concurrent calls: the second of the count).
    public var windowMilliseconds: Int64

    public init(thresholdID: Int64, value: Int, windowMilliseconds: Int64) {
        self.thresholdID = thresholdID
        self.value = value
        self.windowMilliseconds = windowMilliseconds
    }
}

/// A level passed: the value is above it.
public struct FraudCrossing: Sendable, Equatable {
    public enum Level: String, Sendable { case warning, critical }
    public var threshold: FraudThreshold
    public var level: Level
    public var value: Int
    public var windowMilliseconds: Int64

    public var levelValue: Int { (level == .critical ? threshold.critical : threshold.warning) ?? 0 }

    public init(threshold: FraudThreshold, level: Level, value: Int, windowMilliseconds: Int64) {
        self.threshold = threshold
        self.level = level
        self.value = value
        self.windowMilliseconds = windowMilliseconds
    }
}

public enum FraudCheck {
    /// The thresholds that a call to `destination` is counted for.
    public static func applicable(_ thresholds: [FraudThreshold], destination: String) -> [FraudThreshold] {
        thresholds.filter { destination.hasPrefix($0.prefix) }
    }

    /// For each measured threshold, the highest level its value passes (none when within both).
    public static func crossings(_ thresholds: [FraudThreshold], _ measurements: [FraudMeasurement]) -> [FraudCrossing] {
        var out: [FraudCrossing] = []
        for m in measurements {
            guard let t = thresholds.first(where: { $0.id == m.thresholdID }) else { continue }
            if let c = t.critical, m.value > c {
                out.append(FraudCrossing(threshold: t, level: .critical, value: m.value, windowMilliseconds: m.windowMilliseconds))
            } else if let w = t.warning, m.value > w {
                out.append(FraudCrossing(threshold: t, level: .warning, value: m.value, windowMilliseconds: m.windowMilliseconds))
            }
        }
        return out
    }
}
