import Decisions
import Foundation
import HTTPServer
import Locking
import Logging
import Synchronization

/// Sends each fraud level passed (first time per threshold, level and window) to `fraud_webhook_url`
/// as a JSON POST, from a thread of its own: the call's answer never waits for it. http:// only
/// (a local relay forwards to anything that needs TLS); a failed POST is retried with back-off, at
/// most 1,000 alerts are held (past that they are dropped and counted; every one is also logged and
/// kept in the fraud_events table).
public final class FraudAlerts: Sendable {
    struct Target: Sendable {
        var host: String
        var port: UInt16
        var path: String
    }

    /// `http://host[:port]/path`; nil when it is not one.
    public static func isValidURL(_ url: String) -> Bool { target(url) != nil }

    static func target(_ url: String) -> Target? {
        guard url.hasPrefix("http://") else { return nil }
        let rest = url.dropFirst("http://".count)
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        let hostPort = rest[..<slash]
        let path = slash == rest.endIndex ? "/" : String(rest[slash...])
        var host = String(hostPort), port: UInt16 = 80
        if hostPort.hasPrefix("["), let close = hostPort.firstIndex(of: "]") {
            host = String(hostPort[hostPort.index(after: hostPort.startIndex)..<close])
            let after = hostPort[hostPort.index(after: close)...]
            if after.hasPrefix(":") { guard let p = UInt16(after.dropFirst()) else { return nil }; port = p }
        } else if let colon = hostPort.lastIndex(of: ":") {
            host = String(hostPort[..<colon])
            guard let p = UInt16(hostPort[hostPort.index(after: colon)...]) else { return nil }
            port = p
        }
        guard !host.isEmpty, !path.contains(where: { $0 == "\r" || $0 == "\n" || $0 == " " }) else { return nil }
        return Target(host: host, port: port, path: path)
    }

    private let queue = Monitor<[[UInt8]]>([])
    private let thread: BackgroundThread
    final class Counters: Sendable {
        let sent = Atomic<UInt64>(0)
        let dropped = Atomic<UInt64>(0)
    }
    let counters = Counters()

    public init?(url: String, logger: Logger) {
        guard let target = Self.target(url) else { return nil }
        let queue = self.queue
        let counters = self.counters
        thread = BackgroundThread(name: "fraud-webhook") { t in
            var failures = 0
            while !t.isStopping {
                let next = queue.wait(until: { !$0.isEmpty }, timeoutNanoseconds: 200_000_000) { $0.first }
                guard let next, let body = next else { continue }
                do {
                    try Self.post(target, body)
                    queue.withLock { q in if !q.isEmpty { q.removeFirst() } }
                    counters.sent.add(1, ordering: .relaxed)
                    failures = 0
                } catch {
                    failures += 1
                    let backoff = min(30_000, 500 << min(failures, 6))
                    logger.warning("fraud webhook failed; will retry", metadata: ["error": .string("\(error)"), "retry_ms": .stringConvertible(backoff)])
                    t.sleep(milliseconds: backoff)
                }
            }
        }
    }

    public func start() { thread.start() }
    public func stop() { thread.stop() }

    public func send(_ crossing: FraudCrossing, account: AccountFacts, uniqueID: String) {
        let event: [String: Any] = [
            "event": "fraud_threshold", "level": crossing.level.rawValue, "account": account.number, "account_id": account.id,
            "metric": crossing.threshold.metric.rawValue, "prefix": crossing.threshold.prefix, "value": crossing.value,
            "level_value": crossing.levelValue, "threshold_id": crossing.threshold.id,
            "window_start": ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: Double(crossing.windowMilliseconds) / 1000)),
            "unique_id": uniqueID, "action": crossing.level == .critical ? "account_suspended" : "none",
        ]
        guard let data = try? JSONSerialization.data(withJSONObject: event, options: [.sortedKeys]) else { return }
        let accepted = queue.withLock { q -> Bool in
            guard q.count < 1_000 else { return false }
            q.append([UInt8](data))
            return true
        }
        if !accepted { counters.dropped.add(1, ordering: .relaxed) }
    }

    /// One POST; a 2xx answer is success.
    static func post(_ target: Target, _ body: [UInt8]) throws {
        let socket = try TCPSocket.connect(host: target.host, port: target.port, timeoutMilliseconds: 2_000)
        defer { socket.close() }
        let host = target.host.contains(":") ? "[\(target.host)]" : target.host
        let head = "POST \(target.path) HTTP/1.1\r\nHost: \(host):\(target.port)\r\nContent-Type: application/json\r\n"
            + "Content-Length: \(body.count)\r\nUser-Agent: switchauth\r\nConnection: close\r\n\r\n"
        try socket.sendAll(Array(head.utf8) + body, timeoutMilliseconds: 2_000)
        let answer = try socket.receiveToEnd(timeoutMilliseconds: 5_000, limit: 64 << 10)
        let status = String(decoding: answer.prefix(32), as: UTF8.self).split(separator: " ").dropFirst().first.flatMap { Int($0) }
        guard let status, (200..<300).contains(status) else {
            throw ESLStream.Failure("webhook answered \(status.map(String.init) ?? "nothing")")
        }
    }
}
