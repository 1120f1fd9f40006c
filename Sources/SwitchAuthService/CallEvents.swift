import CSystemShims
import Decisions
import Foundation
import HTTPServer
import Locking
import Logging
import Postgres
import Store
import SystemCalls

/// Keeps the shared call slots (migration 0009) true to one switch: holds an event socket to it,
/// subscribed to the hangups of inbound channels, and releases each hung-up call's slot. Each time
/// it (re)connects, 2 s after, and every `reconcileSeconds` (30) after, it compares the slots of the switch's run
/// with the channels the switch has (`show channels`): a slot whose call is gone is released, and so
/// is every slot of an earlier run of the switch (a restart, a crash), the switch being known by its
/// own hostname and its event socket's port. Every instance listens to
/// every switch: a hangup is released by whichever hears it first; releasing twice is harmless.
final class CallEventListener: Sendable {
    let endpoint: EventSocketEndpoint
    let databaseConfig: ConnectionConfig
    let metrics: Metrics
    let logger: Logger
    let reconcileSeconds: Int
    private let thread: BackgroundThread
    /// The switch's run as last seen (Core-UUID), and whether the socket is up: for /metrics.
    let state = Locked<(core: String?, connected: Bool)>((nil, false))

    /// Where the slots are while this instance holds the admissions in memory.
    let admissions: AdmissionAuthority?

    init(endpoint: EventSocketEndpoint, databaseConfig: ConnectionConfig, metrics: Metrics, logger: Logger,
         reconcileSeconds: Int = 30, admissions: AdmissionAuthority? = nil) {
        self.admissions = admissions
        self.endpoint = endpoint
        self.databaseConfig = databaseConfig
        self.metrics = metrics
        self.logger = logger
        self.reconcileSeconds = reconcileSeconds
        let box = WeakOwner<CallEventListener>()
        thread = BackgroundThread(name: "calls-\(endpoint)") { t in box.owner?.run(t) }
        box.owner = self
    }


    func start() { thread.start() }
    func stop() { thread.stop() }

    private func run(_ t: BackgroundThread) {
        let db = Connection(lazy: databaseConfig)
        var failures = 0
        while !t.isStopping {
            do {
                try session(t, db)
                failures = 0
            } catch {
                // A session that got as far as connecting ends failures' silence: what broke it is logged.
                let wasConnected = state.withLock { s -> Bool in
                    defer { s.connected = false }
                    return s.connected
                }
                if wasConnected || !"\(error)".contains("Connection refused") { failures = 0 }
                metrics.listenerConnect("error")
                failures += 1
                // At most a second: the run of a switch that just started must be seen before its
                // first calls end (a run nobody saw is only released after a minute).
                let backoff = min(1_000, 100 << min(failures, 4))
                if failures == 1 || failures % 60 == 0 {
                    logger.warning("call event listener lost its switch; retrying", metadata: [
                        "switch": .string(endpoint.description), "error": .string("\(error)"), "retry_ms": .stringConvertible(backoff)])
                }
                t.sleep(milliseconds: backoff)
            }
        }
        state.withLock { $0.connected = false }
    }

    /// One connection: subscribe, reconcile, then release hangups until the socket fails or the
    /// service stops.
    private func session(_ t: BackgroundThread, _ db: Connection) throws {
        let socket = try TCPSocket.connect(host: endpoint.host, port: endpoint.port, timeoutMilliseconds: 2_000)
        defer { socket.close() }
        var stream = ESLStream(socket: socket)
        let greeting = try stream.next(timeoutMilliseconds: 2_000)
        guard greeting?.headers["Content-Type"] == "auth/request" else { throw ESLStream.Failure("no auth/request greeting") }
        try stream.command("auth \(endpoint.password)", expectOK: true)
        // Inbound legs only: the dialplan decision runs on them, so only they hold slots.
        try stream.command("event plain CHANNEL_HANGUP", expectOK: true)
        try stream.command("filter Call-Direction inbound", expectOK: true)
        metrics.listenerConnect("ok")
        state.withLock { $0.connected = true }
        logger.info("listening for hangups", metadata: ["switch": .string(endpoint.description)])
        // Subscribed first, then the switch's channels are read: no hangup falls between the two.
        var released: [String] = []
        try reconcile(&stream, db, &released)
        // Again 2 s after connecting (slots reserved just before it were too young to judge), then
        // every reconcileSeconds.
        var nextReconcile = MonotonicClock.now() + 2_000_000_000
        while !t.isStopping {
            if let message = try stream.next(timeoutMilliseconds: 250) {
                if let id = hangupID(message) { released.append(id) }
                // Released in batches: everything already read, then one statement.
                if stream.hasCompleteMessage && released.count < 500 { continue }
            }
            flush(db, &released)
            if MonotonicClock.now() >= nextReconcile {
                try reconcile(&stream, db, &released)
                nextReconcile = MonotonicClock.now() + UInt64(reconcileSeconds) * 1_000_000_000
            }
        }
        flush(db, &released)
    }

    private func hangupID(_ m: ESLStream.Message) -> String? {
        guard m.headers["Content-Type"] == "text/event-plain", m.eventHeader("Event-Name") == "CHANNEL_HANGUP",
              let id = m.eventHeader("Unique-ID"), !id.isEmpty else { return nil }
        return id
    }

    /// Releases what hung up. A database failure keeps them for the next try (and the next
    /// reconciliation releases them in any case).
    private func flush(_ db: Connection, _ released: inout [String]) {
        guard !released.isEmpty else { return }
        if let n = admissions?.release(released) {
            metrics.slotsReleased("hangup", n)
            released = []
            return
        }
        do {
            let n = try CallSlots.release(db, uniqueIDs: released)
            metrics.slotsReleased("hangup", n)
            released = []
        } catch {
            metrics.databaseError()
            if released.count > 100_000 { released.removeFirst(released.count - 100_000) }
        }
    }

    /// The switch's run and live channels against the slots of that run.
    private func reconcile(_ stream: inout ESLStream, _ db: Connection, _ released: inout [String]) throws {
        let core = try stream.api("global_getvar core_uuid", onEvent: { if let id = hangupID($0) { released.append(id) } })
            .trimmingCharacters(in: .whitespacesAndNewlines)
        guard DialplanDecider.isValidUUID(core) else { throw ESLStream.Failure("core_uuid: unexpected answer") }
        // The switch as itself, not as this instance names it: instances beside their own switch
        // may all list it as 127.0.0.1:8021, and two switches on one host differ by their port.
        let hostname = try stream.api("global_getvar hostname", onEvent: { if let id = hangupID($0) { released.append(id) } })
            .trimmingCharacters(in: .whitespacesAndNewlines)
        guard !hostname.isEmpty, hostname.utf8.count <= 253 else { throw ESLStream.Failure("hostname: unexpected answer") }
        let identity = "\(hostname):\(endpoint.port)"
        let before: String
        // The same moment on this instance's clock, which stamps the slots of its ledger.
        let beforeInLedger = AdmissionAuthority.nowMicroseconds() - AdmissionLedger.second
        do {
            before = try CallSlots.databaseNow(db)
        } catch {
            metrics.databaseError()
            logger.warning("call slots not reconciled: database unavailable", metadata: ["switch": .string(endpoint.description)])
            return
        }
        let json = try stream.api("show channels as json", onEvent: { if let id = hangupID($0) { released.append(id) } })
        guard let object = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any] else {
            throw ESLStream.Failure("show channels: not JSON")
        }
        let rows = object["rows"] as? [[String: Any]] ?? []
        let live = rows.compactMap { $0["uuid"] as? String }
        let previous = state.withLock { s -> String? in
            defer { s.core = core }
            return s.core
        }
        do {
            // Held in memory: judged in the ledger, which has every slot (migration 0018); the
            // database only records the switch's run. Elsewhere (or given back meanwhile) the
            // database judges its rows and its journal's slots (those of a holder that died).
            var n = 0
            var whole = false
            if let admissions, admissions.mode == .memory {
                let run = try CallSlots.switchRun(db, endpoint: identity, core: core)
                let judged = admissions.reconcile(AdmissionLedger.Reconciliation(
                    core: core, before: beforeInLedger, live: Set(live.map { CallKey($0) }), stale: run.stale, known: run.known,
                    unknownBefore: AdmissionAuthority.nowMicroseconds() - 60 * AdmissionLedger.second))
                (n, whole) = (judged.released, judged.whole)
            }
            if !whole {
                n += try CallSlots.reconcile(db, endpoint: identity, coreUUID: core, before: before, live: live)
            }
            metrics.slotsReleased("reconcile", n)
            if n > 0 || previous != core {
                logger.notice("call slots reconciled with the switch", metadata: [
                    "switch": .string(endpoint.description), "identity": .string(identity), "core_uuid": .string(core),
                    "live_channels": .stringConvertible(live.count), "released": .stringConvertible(n)])
            }
        } catch {
            metrics.databaseError()
            logger.warning("call slots not reconciled", metadata: ["switch": .string(endpoint.description), "error": .string("\(error)")])
        }
    }
}

/// mod_event_socket framing on a long-lived connection (freeswitch-conf/PROTOCOL.md §8): header
/// lines up to a blank line, then Content-Length bytes of body. A message is taken from the buffer
/// only once it is whole, so a read that times out mid-message loses nothing.
struct ESLStream {
    struct Failure: Error, CustomStringConvertible {
        var description: String
        init(_ d: String) { description = d }
    }

    struct Message {
        /// The framing headers (a few: Content-Type, Content-Length, Reply-Text).
        var headers: [String: String]
        /// Its own copy (a slice would keep the stream's buffer shared, and the next read copy it whole).
        var bodyBytes: [UInt8]
        var body: String { String(decoding: bodyBytes, as: UTF8.self) }

        /// A header of an event-plain body (`Name: value` lines, values percent-encoded), read
        /// where it is: a switch's event carries some 150 headers and the listener needs two.
        /// Found with memmem (a byte loop over the 6.4 KB of a hangup was most of the listener's
        /// 5 µs an event).
        func eventHeader(_ name: String) -> String? {
            let key = Array(("\n" + name + ":").utf8)
            return bodyBytes.withUnsafeBufferPointer { b -> String? in
                guard let base = b.baseAddress, b.count > 0 else { return nil }
                var start: Int
                if b.count >= key.count - 1, memcmp(base, key.withUnsafeBufferPointer { $0.baseAddress! + 1 }, key.count - 1) == 0 {
                    start = key.count - 1
                } else {
                    guard let hit = key.withUnsafeBufferPointer({ k in sa_memmem(base, b.count, k.baseAddress!, k.count) }) else { return nil }
                    start = UnsafeRawPointer(hit).assumingMemoryBound(to: UInt8.self) - base + key.count
                }
                let end = memchr(base + start, 10, b.count - start).map { UnsafeRawPointer($0).assumingMemoryBound(to: UInt8.self) - base } ?? b.count
                while start < end, b[start] == UInt8(ascii: " ") { start += 1 }
                var e = end
                while e > start, b[e - 1] == UInt8(ascii: " ") || b[e - 1] == 13 { e -= 1 }
                let value = UnsafeBufferPointer(rebasing: b[start..<e])
                let text = String(decoding: value, as: UTF8.self)
                return value.contains(UInt8(ascii: "%")) ? (text.removingPercentEncoding ?? text) : text
            }
        }
    }

    let socket: TCPSocket
    /// What was received and not taken yet: `buffer[start...]` (compacted when half of it is taken).
    private var buffer: [UInt8] = []
    private var start = 0
    /// What each read fills (then appended to `buffer`).
    private var scratch = [UInt8](repeating: 0, count: 65_536)

    init(socket: TCPSocket) { self.socket = socket }

    /// The next whole message, or nil when none arrived within the timeout.
    mutating func next(timeoutMilliseconds: Int) throws -> Message? {
        if let m = try take() { return m }
        let deadline = MonotonicClock.now() + UInt64(timeoutMilliseconds) * 1_000_000
        while true {
            let now = MonotonicClock.now()
            guard now < deadline else { return nil }
            // Read into the stream's own 64 KB and appended from there: a fresh zeroed array per
            // read, copied once more into the buffer, was a third of the copying of a hangup.
            let timeout = Int((deadline - now) / 1_000_000) + 1
            let result = scratch.withUnsafeMutableBytes { b in
                Result { () throws(SystemError) -> Int in try socket.receive(into: b, timeoutMilliseconds: timeout) }
            }
            let n: Int
            switch result {
            case .success(let count): n = count
            case .failure(let e):
                if e.errno == ETIMEDOUT { return nil }
                throw Failure("\(e)")
            }
            if n == 0 { throw Failure("the switch closed the event socket") }
            if start > 0, start * 2 >= buffer.count {
                buffer.removeFirst(start)
                start = 0
            }
            buffer.append(contentsOf: scratch[0..<n])
            if buffer.count - start > 32 << 20 { throw Failure("event socket message too large") }
            if let m = try take() { return m }
        }
    }

    var hasCompleteMessage: Bool { Self.frame(buffer[start...]) != nil }

    /// (header end, body length) of the first whole message in `bytes` (indices of `bytes`).
    private static func frame(_ bytes: ArraySlice<UInt8>) -> (headerEnd: Int, length: Int)? {
        let end = bytes.endIndex
        // The blank line that ends the framing headers, by memmem.
        guard let found = bytes.withUnsafeBufferPointer({ b -> Int? in
            guard let base = b.baseAddress, b.count >= 2 else { return nil }
            return sa_memmem(base, b.count, "\n\n", 2).map { UnsafeRawPointer($0).assumingMemoryBound(to: UInt8.self) - base }
        }) else { return nil }
        let i = bytes.startIndex + found
        var length = 0
        let key = Array("Content-Length:".utf8)
        var line = bytes.startIndex
        while line < i {
            let next = bytes[line..<i].firstIndex(of: 10) ?? i
            if next - line > key.count, bytes[line..<(line + key.count)].elementsEqual(key) {
                length = 0
                for b in bytes[(line + key.count)..<next] where b >= 0x30 && b <= 0x39 {
                    length = length &* 10 &+ Int(b - 0x30)
                    if length > 1 << 25 { break }
                }
            }
            line = next + 1
        }
        guard end - (i + 2) >= length else { return nil }
        return (i, length)
    }

    private mutating func take() throws -> Message? {
        guard let (end, length) = Self.frame(buffer[start...]) else { return nil }
        guard length < 1 << 24 else { throw Failure("event socket body too large") }
        // The framing headers as bytes (`Name: value` lines, the value without the blanks around
        // it): decoding them as Strings, split and trimmed through Foundation, was two thirds of
        // the listener's CPU a hangup in a profile (some 10 µs an event).
        var headers: [String: String] = [:]
        var line = start
        while line < end {
            let next = buffer[line..<end].firstIndex(of: 10) ?? end
            if let colon = buffer[line..<next].firstIndex(of: UInt8(ascii: ":")) {
                var v = colon + 1, e = next
                while v < e, buffer[v] == 32 || buffer[v] == 9 { v += 1 }
                while e > v, buffer[e - 1] == 32 || buffer[e - 1] == 9 || buffer[e - 1] == 13 { e -= 1 }
                headers[String(decoding: buffer[line..<colon], as: UTF8.self)] = String(decoding: buffer[v..<e], as: UTF8.self)
            }
            line = next + 1
        }
        let body = buffer[(end + 2)..<(end + 2 + length)]
        start = end + 2 + length
        if headers["Content-Type"] == "text/disconnect-notice" { throw Failure("the switch disconnected the event socket") }
        return Message(headers: headers, bodyBytes: Array(body))
    }

    private func send(_ line: String) throws {
        do {
            try socket.sendAll(line + "\n\n", timeoutMilliseconds: 2_000)
        } catch {
            throw Failure("send: \(error)")
        }
    }

    /// A command answered by command/reply (auth, event, filter).
    mutating func command(_ line: String, expectOK: Bool) throws {
        try send(line)
        let deadline = MonotonicClock.now() + 2_000_000_000
        while MonotonicClock.now() < deadline {
            guard let m = try next(timeoutMilliseconds: 500) else { continue }
            guard m.headers["Content-Type"] == "command/reply" else { continue }
            if expectOK, m.headers["Reply-Text"]?.hasPrefix("+OK") != true {
                throw Failure("\(line.split(separator: " ").first ?? ""): \(m.headers["Reply-Text"] ?? "no reply")")
            }
            return
        }
        throw Failure("\(line.split(separator: " ").first ?? ""): no reply within 2 s")
    }

    /// An `api` command's body; events read meanwhile go to `onEvent`.
    mutating func api(_ command: String, onEvent: (Message) -> Void) throws -> String {
        try send("api \(command)")
        let deadline = MonotonicClock.now() + 5_000_000_000
        while MonotonicClock.now() < deadline {
            guard let m = try next(timeoutMilliseconds: 500) else { continue }
            if m.headers["Content-Type"] == "api/response" {
                if m.body.hasPrefix("-ERR") { throw Failure("\(command): \(m.body.trimmingCharacters(in: .whitespacesAndNewlines))") }
                return m.body
            }
            onEvent(m)
        }
        throw Failure("\(command): no answer within 5 s")
    }
}
