import Foundation
import HTTPServer
import Locking
import Logging
import Synchronization
import SystemCalls
#if canImport(Glibc)
import Glibc
#endif

/// sd_notify(3) without libsystemd: one datagram per message to the unix socket systemd names in
/// `NOTIFY_SOCKET` (a path, or `@name` in the abstract namespace). Not under systemd: does nothing.
public struct SystemdNotifier: Sendable {
    public let path: String?

    public init(path: String?) {
        self.path = (path?.isEmpty ?? true) ? nil : path
    }

    public static func fromEnvironment() -> SystemdNotifier {
        SystemdNotifier(path: ProcessInfo.processInfo.environment["NOTIFY_SOCKET"])
    }

    /// The watchdog interval systemd expects pings within (`WATCHDOG_USEC`, for this process only).
    public static func watchdogNanoseconds() -> UInt64? {
        let env = ProcessInfo.processInfo.environment
        if let pid = env["WATCHDOG_PID"], Int32(pid) != getpid() { return nil }
        guard let usec = env["WATCHDOG_USEC"].flatMap(UInt64.init), usec > 0 else { return nil }
        return usec * 1_000
    }

    /// Sends `message` (e.g. "READY=1\nSTATUS=serving"); false when not under systemd or it failed.
    @discardableResult
    public func send(_ message: String) -> Bool {
        guard let path else { return false }
        guard let fd = try? Syscall.call("socket(AF_UNIX)", { socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }) else {
            return false
        }
        defer { Syscall.close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        var bytes = Array(path.utf8)
        if bytes.first == UInt8(ascii: "@") { bytes[0] = 0 } // abstract namespace
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard bytes.count < capacity else { return false }
        withUnsafeMutableBytes(of: &address.sun_path) { p in
            for (i, b) in bytes.enumerated() { p[i] = b }
        }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count + (bytes.first == 0 ? 0 : 1))
        let payload = Array(message.utf8)
        let sent = withUnsafePointer(to: &address) { a in
            a.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                payload.withUnsafeBytes { p in try? Syscall.size("sendto(NOTIFY_SOCKET)") { sendto(fd, p.baseAddress, p.count, Int32(MSG_NOSIGNAL), sa, length) } }
            }
        }
        return sent == payload.count
    }
}

/// The service as a supervisor sees it: `start` (READY=1 once the listener is up and PostgreSQL
/// has answered), `reload` with a new configuration without dropping a request (a new generation
/// takes over the listening socket and starts answering; the old one stops taking connections and
/// finishes its own; RELOADING=1, then READY=1), `stop` (STOPPING=1, drain), and the systemd
/// watchdog: WATCHDOG=1 at half the interval, only while every event loop keeps going round.
public final class ServiceHost: Sendable {
    let logger: Logger
    let notifier: SystemdNotifier
    private let current: Locked<Service?> = Locked(nil)
    private let readiness: Locked<BackgroundThread?> = Locked(nil)
    private let watchdog: BackgroundThread?

    public init(logger: Logger, notifier: SystemdNotifier = .fromEnvironment(), watchdogNanoseconds: UInt64? = SystemdNotifier.watchdogNanoseconds()) {
        self.logger = logger
        self.notifier = notifier
        let current = self.current
        if let interval = watchdogNanoseconds {
            watchdog = BackgroundThread(name: "watchdog") { t in
                while !t.isStopping {
                    t.sleep(milliseconds: Int(interval / 2 / 1_000_000))
                    guard let service = current.withLock({ $0 }) else { continue }
                    // A loop that stopped going round is a hung service: no ping, systemd restarts it.
                    if service.server.loopsAlive(within: interval / 2) {
                        notifier.send("WATCHDOG=1")
                    } else {
                        logger.critical("an event loop is not going round; withholding the watchdog ping")
                    }
                }
            }
        } else {
            watchdog = nil
        }
    }

    public var service: Service? { current.withLock { $0 } }

    public func start(_ config: ServiceConfig) throws {
        let service = try Service(config: config, logger: logger)
        try service.start()
        current.withLock { $0 = service }
        watchdog?.start()
        announceWhenReady(service, reloading: false)
    }

    /// A new generation with `config` takes over; the old one drains. Throws (and keeps the running
    /// generation) when the new one cannot start.
    public func reload(_ config: ServiceConfig) throws {
        guard let old = current.withLock({ $0 }) else { return try start(config) }
        notifier.send("RELOADING=1\nMONOTONIC_USEC=\(MonotonicClock.now() / 1_000)\nSTATUS=reloading the configuration")
        let sameAddress = old.config.server.host == config.server.host && old.config.server.port == config.server.port
        let next: Service
        do {
            next = try Service(config: config, logger: logger, listener: sameAddress ? old.server.listeningSocket : nil)
            try next.start()
        } catch {
            notifier.send("READY=1\nSTATUS=reload failed, previous configuration kept: \(error)")
            throw error
        }
        current.withLock { $0 = next }
        old.stop(handingOverListener: sameAddress)
        logger.notice("configuration reloaded", metadata: ["listen": .string("\(config.server.host):\(next.port)")])
        announceWhenReady(next, reloading: true)
    }

    public func stop() {
        notifier.send("STOPPING=1\nSTATUS=draining in-flight requests")
        readiness.withLock { $0 }?.stop()
        watchdog?.stop()
        current.withLock { $0 }?.stop()
    }

    /// READY=1 as soon as the database has answered (at once if it already has); meanwhile the
    /// service answers fail-closed and says so in STATUS.
    private func announceWhenReady(_ service: Service, reloading: Bool) {
        let notifier = self.notifier
        let ready = "READY=1\nSTATUS=serving on \(service.config.server.host):\(service.port)"
        if service.health.isUp {
            notifier.send(ready)
            return
        }
        notifier.send("STATUS=listening on \(service.config.server.host):\(service.port); waiting for PostgreSQL (answering fail-closed)")
        let waiter = BackgroundThread(name: "readiness") { t in
            while !t.isStopping {
                if service.health.isUp {
                    notifier.send(ready)
                    return
                }
                t.sleep(milliseconds: 50)
            }
        }
        readiness.withLock { previous in
            previous?.stop()
            previous = waiter
        }
        waiter.start()
    }
}
