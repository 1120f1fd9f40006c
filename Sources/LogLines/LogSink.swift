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
/// A line is appended to a buffer under a mutex and the caller returns: the `write(2)` happens on
/// the sink's own thread, which waits for the first line, gathers for up to `gatherMilliseconds`
/// (or until `flushBytes` are buffered) and writes them in one call. A lookup that logs its
/// decision thus pays for formatting and an append, not for a system call or for a slow reader of
/// the log (a journald under pressure, a terminal). Bounded: past `capacityBytes` buffered, lines
/// are dropped and counted (`switchauth_log_lines_dropped`), and a line saying how many is written
/// once the reader catches up. Everything buffered is written at `flush()`, which the process
/// also runs at exit.
public final class LogSink: Sendable {
    public static let standardError: LogSink = {
        let sink = LogSink(descriptor: 2)
        atexit { LogSink.standardError.flush() }
        return sink
    }()

    private struct State {
        var buffer: [UInt8] = []
        var droppedSinceWrite: UInt64 = 0
        var writerStarted = false
        /// Set by `stop()`: the writer writes what is buffered and exits; later lines are dropped.
        var stopping = false
        var writerExited = false
    }

    private let descriptor: Int32
    public let capacityBytes: Int
    let flushBytes: Int
    let gatherNanoseconds: UInt64
    private let state = Monitor(State())
    /// Held while a gathered chunk is taken and written, so that chunks reach the descriptor in the
    /// order their lines were appended (the writer thread and `flush()` both write).
    private let writing = Locked(())
    private let droppedTotal = Atomic<UInt64>(0)

    public init(descriptor: Int32, capacityBytes: Int = 8 << 20, flushBytes: Int = 64 << 10, gatherMilliseconds: Int = 20) {
        self.descriptor = descriptor
        self.capacityBytes = capacityBytes
        self.flushBytes = flushBytes
        self.gatherNanoseconds = UInt64(gatherMilliseconds) * 1_000_000
    }

    /// Lines dropped because the buffer was full, since start.
    public var dropped: UInt64 { droppedTotal.load(ordering: .relaxed) }

    /// Appends one line (with its newline). Never waits for the descriptor.
    public func append(_ line: [UInt8]) {
        line.withUnsafeBytes { append($0) }
    }

    /// The same from bytes the caller holds.
    public func append(_ line: UnsafeRawBufferPointer) {
        let (wake, start) = state.withLock(wake: .none) { s -> (Bool, Bool) in
            guard !s.stopping else { return (false, false) }
            guard s.buffer.count + line.count <= capacityBytes else {
                s.droppedSinceWrite += 1
                return (false, false)
            }
            let wasEmpty = s.buffer.isEmpty
            s.buffer.append(contentsOf: line)
            let start = !s.writerStarted
            s.writerStarted = true
            return (wasEmpty || (s.buffer.count >= flushBytes && s.buffer.count - line.count < flushBytes), start)
        }
        if start { startWriter() }
        if wake { state.withLock(wake: .all) { _ in } }
    }

    /// Writes everything buffered now, on the calling thread.
    public func flush() {
        writing.withLock { _ in writeTaken() }
    }

    /// Writes what is buffered, ends the writer thread and returns once it has exited: after it the
    /// sink never touches its descriptor again, so the caller may close it. Lines appended later are
    /// dropped. For a sink whose descriptor is closed before the process ends (a test's pipe); the
    /// process's own sink is flushed at exit instead.
    public func stop() {
        let started = state.withLock(wake: .all) { s -> Bool in
            s.stopping = true
            return s.writerStarted
        }
        if started {
            _ = state.wait(until: { $0.writerExited }) { _ in () }
        } else {
            flush()
        }
    }

    private func startWriter() {
        let thread = Thread { [self] in
            while true {
                let stop = state.wait(until: { !$0.buffer.isEmpty || $0.droppedSinceWrite > 0 || $0.stopping }) { $0.stopping } ?? false
                if !stop {
                    // Gather: more lines join this write unless the buffer is already large.
                    _ = state.wait(until: { $0.buffer.count >= self.flushBytes || $0.stopping }, timeoutNanoseconds: gatherNanoseconds) { _ in () }
                }
                // Once stopping is seen no line can join the buffer (append checks it under the
                // same lock), so this write is the last.
                writing.withLock { _ in writeTaken() }
                if stop {
                    state.withLock(wake: .all) { $0.writerExited = true }
                    return
                }
            }
        }
        thread.name = "log-writer"
        thread.start()
    }

    /// Takes the buffer and writes it; the caller holds `writing`.
    private func writeTaken() {
        var (chunk, dropped) = state.withLock(wake: .none) { s -> ([UInt8], UInt64) in
            let taken = (s.buffer, s.droppedSinceWrite)
            s.buffer = []
            s.buffer.reserveCapacity(min(taken.0.count, flushBytes * 2))
            s.droppedSinceWrite = 0
            return taken
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
        Self.writeAll(descriptor, chunk)
    }

    /// write(2) until done (EAGAIN waited out with a short poll); any other error drops the chunk:
    /// there is nowhere else to report it.
    static func writeAll(_ fd: Int32, _ bytes: [UInt8]) {
        _ = try? Syscall.writeAll(fd, bytes)
    }
}
