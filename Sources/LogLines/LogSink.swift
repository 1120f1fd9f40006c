import ByteBuffers
import Foundation
import Locking
import Synchronization
import SystemCalls
#if canImport(Glibc)
import Glibc
#endif

/// Where log lines go on their way to a descriptor (standard error: the journal under systemd).
///
/// A line is appended to a buffer and the caller returns: the `write(2)` happens on the sink's own
/// thread, which takes what was buffered every `gatherMilliseconds` (sooner once `flushBytes` are
/// buffered) and writes it in one call. A lookup that logs its decision thus pays for formatting
/// and an append, not for a system call or for a slow reader of the log (a journald under
/// pressure, a terminal).
///
/// Each thread appends to a buffer of its own (`shardCount` of them, by the thread's ordinal): the
/// event loops never meet on a lock here. With one shared buffer they did (~35 times a second
/// at saturation, seen with strace), and a loop that found the lock held by a thread the kernel had
/// just preempted waited for that thread's next time slice with its connections. Under load the
/// appenders do not wake the writer either: it comes every `gatherMilliseconds` while lines flow,
/// and is woken by the first line after a quiet moment (it then sleeps up to `idleMilliseconds`).
/// Lines of one thread reach the descriptor in the order they were appended; lines of two threads
/// gathered in one take are written thread by thread.
///
/// Bounded: past `capacityBytes` buffered in all, lines are dropped and counted
/// (`switchauth_log_lines_dropped`), and a line saying how many is written once the reader catches
/// up. Everything buffered is written at `flush()`, which the process also runs at exit.
public final class LogSink: Sendable {
    public static let standardError: LogSink = {
        let sink = LogSink(descriptor: 2)
        atexit { LogSink.standardError.flush() }
        return sink
    }()

    static let shardCount = 64
    static let idleMilliseconds: UInt64 = 200

    private struct Shard {
        var buffer: [UInt8] = []
        var dropped: UInt64 = 0
    }

    private struct WriterState {
        var poked = false
        var started = false
        /// Set by `stop()`: the writer writes what is buffered and exits; later lines are dropped.
        var stopping = false
        var exited = false
    }

    private let descriptor: Int32
    public let capacityBytes: Int
    let flushBytes: Int
    let gatherNanoseconds: UInt64
    private let shards: [Locked<Shard>]
    /// Bytes in all the shards' buffers (the bound).
    private let buffered = Atomic<Int>(0)
    private let stopping = Atomic<Bool>(false)
    /// The writer found nothing at its last take: the next line wakes it.
    private let writerIdle = Atomic<Bool>(true)
    private let writer = Monitor(WriterState())
    /// Held while the shards are taken and written, so that a thread's lines reach the descriptor
    /// in the order it appended them (the writer thread and `flush()` both write).
    private let writing = Locked(())
    /// The last write after `stop()` is done: the descriptor is never written again (held under
    /// `writing`).
    private let finished = Atomic<Bool>(false)
    private let droppedTotal = Atomic<UInt64>(0)

    public init(descriptor: Int32, capacityBytes: Int = 8 << 20, flushBytes: Int = 64 << 10, gatherMilliseconds: Int = 20) {
        self.descriptor = descriptor
        self.capacityBytes = capacityBytes
        self.flushBytes = flushBytes
        self.gatherNanoseconds = UInt64(gatherMilliseconds) * 1_000_000
        shards = (0..<Self.shardCount).map { _ in Locked(Shard()) }
    }

    /// Lines dropped because the buffer was full, since start.
    public var dropped: UInt64 { droppedTotal.load(ordering: .relaxed) }

    /// Appends one line (with its newline). Never waits for the descriptor.
    public func append(_ line: [UInt8]) {
        line.withUnsafeBytes { append($0) }
    }

    /// The same from bytes the caller holds.
    public func append(_ line: UnsafeRawBufferPointer) {
        guard !stopping.load(ordering: .relaxed) else { return }
        let n = line.count
        let shard = shards[ThreadOrdinal.current % Self.shardCount]
        let total = buffered.wrappingAdd(n, ordering: .relaxed).newValue
        guard total <= capacityBytes else {
            buffered.wrappingSubtract(n, ordering: .relaxed)
            shard.withLock { $0.dropped += 1 }
            return
        }
        shard.withLock { $0.buffer.append(contentsOf: line) }
        // The writer is woken by the first line after a quiet moment and when a take's worth is
        // buffered; otherwise it comes on its own every gatherMilliseconds.
        // (One appender wakes it from idle: the flag is cleared by whoever sees it set.)
        if (writerIdle.load(ordering: .relaxed) && writerIdle.exchange(false, ordering: .relaxed))
            || (total >= flushBytes && total - n < flushBytes) { wakeWriter() }
    }

    private func wakeWriter() {
        let start = writer.withLock(wake: .all) { w -> Bool in
            w.poked = true
            defer { w.started = true }
            return !w.started && !w.stopping
        }
        if start { startWriter() }
    }

    /// Writes everything buffered now, on the calling thread.
    public func flush() {
        writing.withLock { _ in
            if !finished.load(ordering: .relaxed) { writeTaken() }
        }
    }

    /// The last write: what is buffered, then never the descriptor again.
    private func finish() {
        writing.withLock { _ in
            if !finished.load(ordering: .relaxed) { writeTaken() }
            finished.store(true, ordering: .relaxed)
        }
    }

    /// Writes what is buffered, ends the writer thread and returns once it has exited: after it the
    /// sink never touches its descriptor again, so the caller may close it. Lines appended later are
    /// dropped. For a sink whose descriptor is closed before the process ends (a test's pipe); the
    /// process's own sink is flushed at exit instead.
    public func stop() {
        stopping.store(true, ordering: .relaxed)
        let started = writer.withLock(wake: .all) { w -> Bool in
            w.stopping = true
            return w.started
        }
        if started {
            _ = writer.wait(until: { $0.exited }) { _ in () }
        } else {
            finish()
        }
    }

    private func startWriter() {
        let thread = Thread { [self] in
            var idle = false
            while true {
                // While lines flow: a take every gatherMilliseconds, or sooner when poked (a take's
                // worth buffered). Quiet: until the next line pokes it, or idleMilliseconds.
                let timeout = idle ? Self.idleMilliseconds * 1_000_000 : gatherNanoseconds
                let stop = writer.wait(until: { $0.poked || $0.stopping }, timeoutNanoseconds: timeout) { w -> Bool in
                    w.poked = false
                    return w.stopping
                } ?? writer.withLock(wake: .none) { $0.stopping }
                if idle && !stop {
                    // Woken by a first line: let the others of this moment join it.
                    _ = writer.wait(until: { $0.stopping }, timeoutNanoseconds: gatherNanoseconds) { _ in () }
                }
                // Stopping: lines appended from now on are dropped (append checks first; one
                // racing past the check stays unwritten), and this write is the last.
                if stop {
                    finish()
                    writer.withLock(wake: .all) { $0.exited = true }
                    return
                }
                let wrote = writing.withLock { _ in writeTaken() }
                idle = !wrote
                writerIdle.store(idle, ordering: .relaxed)
            }
        }
        thread.name = "log-writer"
        thread.start()
    }

    /// Takes every shard's buffer and writes them; the caller holds `writing`. Whether anything
    /// was taken.
    @discardableResult
    private func writeTaken() -> Bool {
        var chunk: [UInt8] = []
        var dropped: UInt64 = 0
        for shard in shards {
            let (taken, lost) = shard.withLock { s -> ([UInt8], UInt64) in
                guard !s.buffer.isEmpty || s.dropped > 0 else { return ([], 0) }
                let taken = (s.buffer, s.dropped)
                // The next lines go into room made here, not grown by the appending thread.
                s.buffer = []
                s.buffer.reserveCapacity(min(taken.0.count, flushBytes * 2))
                s.dropped = 0
                return taken
            }
            dropped += lost
            if taken.isEmpty { continue }
            buffered.wrappingSubtract(taken.count, ordering: .relaxed)
            if chunk.isEmpty { chunk = taken } else { chunk += taken }
        }
        if dropped > 0 {
            droppedTotal.add(dropped, ordering: .relaxed)
            var line = ByteWriter(capacity: 160)
            LogFormat.append(into: &line, timestamp: LogTimestamp.now(), level: .warning, label: "switchauth",
                             message: "log lines dropped: the log's reader is slower than the service",
                             metadata: ["lines": .stringConvertible(dropped)])
            line.append(UInt8(ascii: "\n"))
            chunk += line.bytes
        }
        guard !chunk.isEmpty else { return false }
        Self.writeAll(descriptor, chunk)
        return true
    }

    /// write(2) until done (EAGAIN waited out with a short poll); any other error drops the chunk:
    /// there is nowhere else to report it.
    static func writeAll(_ fd: Int32, _ bytes: [UInt8]) {
        _ = try? Syscall.writeAll(fd, bytes)
    }
}
