import Foundation
import HTTPServer
import Locking
import Synchronization
import SystemCalls
#if canImport(Glibc)
import Glibc
#endif

/// A load generator shaped like mod_xml_curl: blocking sockets, one new TCP connection per request
/// (or keep-alive, separately), full responses read by Content-Length. Every loop is bounded by a
/// duration; only loopback addresses are accepted.
struct LoadGenerator {
    let host: String
    let port: UInt16
    let keepAlive: Bool
    /// Builds one request's bytes; called per request with a per-thread generator.
    let makeRequest: @Sendable (inout Xoshiro) -> [UInt8]

    init(host: String = "127.0.0.1", port: UInt16, keepAlive: Bool, makeRequest: @escaping @Sendable (inout Xoshiro) -> [UInt8]) {
        precondition(host.hasPrefix("127.") || host == "::1", "load tests target loopback only")
        self.host = host
        self.port = port
        self.keepAlive = keepAlive
        self.makeRequest = makeRequest
    }

    struct ClosedLoopResult {
        var requests: Int
        var errors: Int
        var seconds: Double
        var perSecond: Double { Double(requests) / seconds }
    }

    struct OpenLoopResult {
        /// Latencies in nanoseconds from each request's *scheduled* time (no coordinated omission).
        var latencies: [UInt64]
        var errors: Int
        var seconds: Double
        var offeredRate: Double

        func percentile(_ p: Double) -> Double {
            guard !latencies.isEmpty else { return .nan }
            let sorted = latencies.sorted()
            let i = min(sorted.count - 1, Int((p / 100) * Double(sorted.count)))
            return Double(sorted[i]) / 1e6
        }
        var max: Double { Double(latencies.max() ?? 0) / 1e6 }
        var achieved: Double { Double(latencies.count) / seconds }
        func late(afterMilliseconds ms: Double) -> Int { latencies.filter { Double($0) / 1e6 > ms }.count }

        /// Adds another run's requests (same offered rate): percentiles over both.
        mutating func pool(_ other: OpenLoopResult) {
            latencies += other.latencies
            errors += other.errors
            seconds += other.seconds
        }
    }

    /// `clients` threads, each sending as fast as answers come back, for `seconds`.
    func closedLoop(clients: Int, seconds: Double) -> ClosedLoopResult {
        let total = Atomic<Int>(0), errors = Atomic<Int>(0)
        let end = now() + UInt64(seconds * 1e9)
        let group = DispatchGroup()
        let start = now()
        for t in 0..<clients {
            group.enter()
            let gen = self
            Thread {
                var rng = Xoshiro(seed: UInt64(t + 1) &* 0x9E3779B97F4A7C15)
                var conn: TCPSocket?
                var reader = ResponseReader()
                while now() < end {
                    if conn == nil { conn = gen.connectSocket(); reader = ResponseReader() }
                    guard let c = conn else { errors.wrappingAdd(1, ordering: .relaxed); continue }
                    let ok = gen.roundTrip(c, gen.makeRequest(&rng), &reader)
                    if ok { total.wrappingAdd(1, ordering: .relaxed) } else { errors.wrappingAdd(1, ordering: .relaxed) }
                    if !gen.keepAlive || !ok { c.close(); conn = nil }
                }
                conn?.close()
                group.leave()
            }.start()
        }
        group.wait()
        return ClosedLoopResult(requests: total.load(ordering: .relaxed), errors: errors.load(ordering: .relaxed),
                                seconds: Double(now() - start) / 1e9)
    }

    /// A fixed offered rate for `seconds`, spread over `threads` senders; each request's latency is
    /// measured from when it was due, so a stall counts against every request it delayed.
    func openLoop(rate: Double, seconds: Double, threads: Int) -> OpenLoopResult {
        let perThread = rate / Double(threads)
        let interval = 1e9 / perThread
        let count = Int(perThread * seconds)
        let lock = Locked<[UInt64]>([])
        let errors = Atomic<Int>(0)
        let start = now() + 50_000_000
        let group = DispatchGroup()
        for t in 0..<threads {
            group.enter()
            let gen = self
            Thread {
                var rng = Xoshiro(seed: UInt64(t + 11) &* 0x9E3779B97F4A7C15)
                var mine: [UInt64] = []
                mine.reserveCapacity(count)
                let offset = UInt64(Double(t) * interval / Double(threads))
                var conn: TCPSocket?
                var reader = ResponseReader()
                for i in 0..<count {
                    let due = start + offset + UInt64(Double(i) * interval)
                    let n = now()
                    if n < due { sleepUntil(due) }
                    let request = gen.makeRequest(&rng)
                    if conn == nil { conn = gen.connectSocket(); reader = ResponseReader() }
                    let ok = conn.map { gen.roundTrip($0, request, &reader) } ?? false
                    if ok { mine.append(now() - due) } else { errors.wrappingAdd(1, ordering: .relaxed) }
                    if !gen.keepAlive || !ok { conn?.close(); conn = nil }
                }
                conn?.close()
                lock.withLock { $0 += mine }
                group.leave()
            }.start()
        }
        group.wait()
        let elapsed = Double(now() - start) / 1e9
        return OpenLoopResult(latencies: lock.withLock { $0 }, errors: errors.load(ordering: .relaxed), seconds: elapsed, offeredRate: rate)
    }

    /// A new connection (TCP_NODELAY, 5 s deadlines); nil if it could not be made.
    func connectSocket() -> TCPSocket? {
        guard let s = try? TCPSocket.connect(host: host, port: port, timeoutMilliseconds: 5_000) else { return nil }
        try? s.setNoDelay()
        return s
    }

    /// Sends a request and reads one whole response; true on a 2xx.
    func roundTrip(_ socket: TCPSocket, _ request: [UInt8], _ reader: inout ResponseReader) -> Bool {
        guard (try? socket.sendAll(request)) != nil else { return false }
        guard let status = reader.read(socket) else { return false }
        return status >= 200 && status < 300
    }
}

/// Reads HTTP/1.1 responses (Content-Length framed) from a socket.
struct ResponseReader {
    var buffer: [UInt8] = []
    var scratch = [UInt8](repeating: 0, count: 65536)
    /// Body size of the last response read.
    var lastBody = 0

    mutating func read(_ socket: TCPSocket) -> Int? {
        while true {
            if let (status, consumed, body) = parse() {
                buffer.removeFirst(consumed)
                lastBody = body
                return status
            }
            guard let chunk = try? socket.receive(max: 65_536, timeoutMilliseconds: 5_000), !chunk.isEmpty else { return nil }
            buffer.append(contentsOf: chunk)
        }
    }

    private func parse() -> (Int, Int, Int)? {
        let n = buffer.count
        guard n >= 16 else { return nil }
        var end = -1
        var i = 0
        while i + 3 < n {
            if buffer[i] == 13 && buffer[i + 1] == 10 && buffer[i + 2] == 13 && buffer[i + 3] == 10 { end = i; break }
            i += 1
        }
        guard end >= 0 else { return nil }
        let head = String(decoding: buffer[0..<end], as: UTF8.self)
        let status = Int(head.dropFirst(9).prefix(3)) ?? 0
        var length = 0
        for line in head.split(separator: "\r\n") where line.lowercased().hasPrefix("content-length:") {
            length = Int(line.dropFirst(15).trimmingCharacters(in: .whitespaces)) ?? 0
        }
        guard n >= end + 4 + length else { return nil }
        return (status, end + 4 + length, length)
    }
}

/// xoshiro256** — fast, seedable, per thread.
struct Xoshiro: RandomNumberGenerator {
    var s: (UInt64, UInt64, UInt64, UInt64)
    init(seed: UInt64) {
        var x = seed
        func splitmix() -> UInt64 {
            x &+= 0x9E3779B97F4A7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58476D1CE4E5B9
            z = (z ^ (z >> 27)) &* 0x94D049BB133111EB
            return z ^ (z >> 31)
        }
        s = (splitmix(), splitmix(), splitmix(), splitmix())
    }
    mutating func next() -> UInt64 {
        let result = ((s.1 &* 5) << 7 | (s.1 &* 5) >> 57) &* 9
        let t = s.1 << 17
        s.2 ^= s.0; s.3 ^= s.1; s.1 ^= s.2; s.0 ^= s.3; s.2 ^= t
        s.3 = (s.3 << 45) | (s.3 >> 19)
        return result
    }
    mutating func int(_ range: ClosedRange<Int>) -> Int {
        range.lowerBound + Int(next() % UInt64(range.count))
    }
}

func now() -> UInt64 { MonotonicClock.now() }

func sleepUntil(_ t: UInt64) {
    while true {
        let n = now()
        if n >= t { return }
        let d = t - n
        if d < 50_000 { continue } // spin the last 50 µs
        var ts = timespec(tv_sec: Int(d / 1_000_000_000), tv_nsec: Int(d % 1_000_000_000) - 40_000)
        if ts.tv_nsec < 0 { ts.tv_nsec = 0 }
        Syscall.sleep(nanoseconds: UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec))
    }
}
