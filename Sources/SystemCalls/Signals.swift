#if canImport(Glibc)
import Glibc
#endif

/// The process's termination and reload signals, taken synchronously by the thread that waits for
/// them (no handler runs in an arbitrary thread): `blockTermination` first, before any thread
/// starts (threads inherit the mask), then `waitForTermination` where the process waits to stop.
public enum Signals {
    /// Blocks SIGTERM, SIGINT and SIGHUP in this thread and every thread started after, so that
    /// `waitForTermination` takes them; ignores SIGPIPE (a write to a closed socket is then an
    /// error value, EPIPE, not the process's death).
    public static func blockTermination() {
        var set = termination(reload: true)
        try? Syscall.returningErrorNumber("pthread_sigmask") { pthread_sigmask(SIG_BLOCK, &set, nil) }
        signal(SIGPIPE, SIG_IGN)
    }

    /// Waits for SIGTERM or SIGINT and returns it. With `onReload`, each SIGHUP calls it and the
    /// wait goes on (without, SIGHUP stays blocked: a reload is not offered).
    public static func waitForTermination(onReload: (() -> Void)? = nil) -> Int32 {
        var set = termination(reload: onReload != nil)
        while true {
            var sig: Int32 = 0
            guard (try? Syscall.returningErrorNumber("sigwait") { sigwait(&set, &sig) }) != nil else { continue }
            if sig == SIGHUP, let onReload {
                onReload()
                continue
            }
            return sig
        }
    }

    private static func termination(reload: Bool) -> sigset_t {
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGTERM)
        sigaddset(&set, SIGINT)
        if reload { sigaddset(&set, SIGHUP) }
        return set
    }
}
