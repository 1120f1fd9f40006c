import Foundation
import HTTPServer
import Postgres
import Synchronization
import SystemCalls

/// The hangups of the limits-on row, played the way a switch sends them: an event socket
/// (mod_event_socket's framing, freeswitch-conf/PROTOCOL.md §8) that answers the service's
/// listener (auth, the subscription, `global_getvar`, `show channels`) and sends a CHANNEL_HANGUP
/// as a real switch writes it (`ChannelHangup`, 6.4 KB) for every call slot over a second old:
/// read every 20 ms, sent a tenth at a time every 2 ms (a switch sends each as it happens; a burst
/// every 100 ms, then every 20 ms, put milliseconds of listener work between the requests). So the row's CPU counts
/// what an operator's service does for a call: the admission, the hangup event read and released,
/// and PostgreSQL's share of both, wherever the slots are held.
final class HangupFeed: Sendable {
    /// Its connection's name in pg_stat_activity (the benchmark shows its CPU apart).
    static let applicationName = "bench hangup feed"
    let port: UInt16
    let coreUUID: String
    private let listener: TCPSocket
    private let database: ConnectionConfig
    private let running = Atomic<Bool>(true)
    let hangupsSent = Atomic<Int>(0)

    init(coreUUID: String, database: ConnectionConfig) throws {
        listener = try TCPSocket.listen(host: "127.0.0.1", port: 0, backlog: 4)
        port = listener.localPort
        self.coreUUID = coreUUID
        self.database = database
    }

    func start() {
        Thread { [self] in serve() }.start()
    }

    func stop() {
        running.store(false, ordering: .relaxed)
        Syscall.sleep(nanoseconds: 300_000_000)
        listener.close()
    }

    private func serve() {
        var config = database
        config.applicationName = Self.applicationName
        guard let db = try? Connection(config) else { return }
        defer { db.close() }
        // The slots' statistics are those of an empty table (the planner would scan them all).
        _ = try? db.execute("SET enable_seqscan = off")
        while running.load(ordering: .relaxed) {
            guard let accepted = try? listener.accept() else {
                Syscall.sleep(nanoseconds: 20_000_000)
                continue
            }
            let socket = accepted.socket
            defer { socket.close() }
            try? socket.setBlocking(true)
            session(socket, db)
        }
    }

    /// One listener connection: its commands answered, then hangups until it goes or the row ends.
    private func session(_ socket: TCPSocket, _ db: Connection) {
        var buffer: [UInt8] = []
        func send(_ s: String) -> Bool { (try? socket.sendAll(s, timeoutMilliseconds: 2_000)) != nil }
        guard send("Content-Type: auth/request\n\n") else { return }
        var nextHangups = MonotonicClock.now()
        /// The newest journal row read (µs since the epoch, its `written_us`).
        var journalSeen: Int64 = 0
        var events: [UInt8] = []
        /// The calls read and not hung up yet, sent a tenth at a time every 2 ms (a switch sends
        /// each hangup as it happens; 400 at once every 20 ms were a burst of listener work
        /// between the requests that no switch makes).
        var due: [String] = []
        var sentOfDue = 0
        var slice = 1
        let hangup = ChannelHangup.Template(coreUUID: coreUUID)
        while running.load(ordering: .relaxed) {
            // Commands: "line\n\n".
            if let received = try? socket.receive(max: 65_536, timeoutMilliseconds: 2) {
                if received.isEmpty { return }
                buffer += received
            }
            while let end = Self.blankLine(buffer) {
                let command = String(decoding: buffer[..<end], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
                buffer.removeFirst(end + 2)
                let reply: String
                if command.hasPrefix("api ") {
                    let body: String
                    switch command.dropFirst(4) {
                    case "global_getvar core_uuid": body = coreUUID
                    case "global_getvar hostname": body = "bench-switch"
                    case "show channels as json": body = #"{"row_count":0}"#
                    default: body = "-ERR unknown"
                    }
                    reply = "Content-Type: api/response\nContent-Length: \(body.utf8.count)\n\n\(body)"
                } else {
                    reply = "Content-Type: command/reply\nReply-Text: +OK\n\n"
                }
                guard send(reply) else { return }
            }
            if sentOfDue < due.count {
                let part = due[sentOfDue..<min(sentOfDue + slice, due.count)]
                events.removeAll(keepingCapacity: true)
                for id in part { hangup.append(uniqueID: id, to: &events) }
                guard (try? socket.sendAll(events, timeoutMilliseconds: 2_000)) != nil else { return }
                hangupsSent.add(part.count, ordering: .relaxed)
                sentOfDue += part.count
            }
            guard MonotonicClock.now() >= nextHangups else { continue }
            nextHangups = MonotonicClock.now() + 20_000_000
            // The calls made over a second ago, each once: while the service holds the admissions
            // in memory they are the slots of its journal rows (migration 0017), read by the time
            // the row was written; else the slots of call_slots made between 2.5 s and 1 s ago, by
            // the second and millisecond their Unique-ID starts with (`Wrk`): a range of the
            // primary key, not a scan of every slot (which cost PostgreSQL 6 µs a call at 20,000
            // calls/s, a tenth of the row, and is no part of the service's work).
            let nowUs = Int64(WallClock.seconds() * 1_000_000)
            let upTo = nowUs - 1_000_000
            if journalSeen == 0 { journalSeen = nowUs - 2_500_000 }
            var ids: [String] = []
            if let r = try? db.execute("""
                SELECT max(j.written_us) OVER (), split_part(l, E'\t', 2) FROM admission_journal j, string_to_table(j.entries, E'\n') l
                 WHERE j.written_us > $1 AND j.written_us <= $2 AND l LIKE 'R%'
                """, [String(journalSeen), String(upTo)]), r.rowCount > 0 {
                journalSeen = (try? r.decode(0, 0, as: Int64.self)) ?? upTo
                for i in 0..<r.rowCount { ids.append(r.string(i, 1) ?? "") }
            } else {
                func id(_ ms: Int) -> String { String(format: "%08x-%04x", ms / 1000, ms % 1000) }
                let now = Int(nowUs / 1000)
                guard let r = try? db.execute("""
                    SELECT unique_id FROM call_slots WHERE unique_id >= $1 AND unique_id < $2 ORDER BY unique_id LIMIT 20000
                    """, [id(now - 2_500), id(now - 1_000)]) else { continue }
                for i in 0..<r.rowCount { ids.append(r.string(i, 0) ?? "") }
            }
            guard !ids.isEmpty else { continue }
            due.removeFirst(sentOfDue)
            sentOfDue = 0
            due += ids
            slice = max(1, (due.count + 9) / 10)
        }
    }

    static func blankLine(_ b: [UInt8]) -> Int? {
        guard b.count >= 2 else { return nil }
        for i in 0..<(b.count - 1) where b[i] == 10 && b[i + 1] == 10 { return i }
        return nil
    }
}
