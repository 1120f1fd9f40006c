#if canImport(Glibc)
import Glibc
#endif

/// The one monotonic clock: deadlines, timeouts, windows and durations, in nanoseconds
/// (CLOCK_MONOTONIC: never steps back, blind to the wall clock being set).
public enum MonotonicClock {
    @inline(__always)
    public static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }
}

/// The one wall clock (CLOCK_REALTIME): what is compared with PostgreSQL's timestamps (lockouts,
/// expiries), written in log lines, or shown to an operator. Never used for a duration.
public enum WallClock {
    /// Seconds and nanoseconds since the epoch.
    @inline(__always)
    public static func now() -> (seconds: Int, nanoseconds: Int) {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return (ts.tv_sec, ts.tv_nsec)
    }

    public static func milliseconds() -> Int64 {
        let t = now()
        return Int64(t.seconds) * 1000 + Int64(t.nanoseconds) / 1_000_000
    }

    public static func seconds() -> Double {
        let t = now()
        return Double(t.seconds) + Double(t.nanoseconds) / 1e9
    }
}
