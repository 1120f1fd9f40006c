#if canImport(Glibc)
import Glibc
#endif

/// A failed system call: what was called (with its argument when that says more, e.g. a path) and
/// errno. `description` reads `open(/etc/x.tmp) failed: Permission denied (errno 13)`.
public struct SystemError: Error, CustomStringConvertible, Sendable, Equatable {
    public var call: String
    public var errno: Int32
    public init(call: String, errno: Int32) {
        self.call = call
        self.errno = errno
    }
    public var description: String { "\(call) failed: \(String(cString: strerror(errno))) (errno \(errno))" }
}

/// The one door of the project's C calls to the kernel, in the spirit of SwiftNIO's `System.swift`:
/// every call is retried on EINTR, a failure is a `SystemError` naming the call (errno read at
/// once, before anything else can change it), EAGAIN is a value where the caller is non-blocking,
/// and an errno that can only mean a bug of this process stops it (`unacceptable`): EFAULT (a bad
/// pointer) always, EBADF when closing (a descriptor closed twice may by then belong to another
/// part of the process: going on would close or read someone else's file).
/// Names are autoclosures: the hot calls (recv, send, accept) build no string unless they fail.
public enum Syscall {
    /// A call that returns an `Int32`, negative with errno on failure.
    @discardableResult @inline(__always)
    public static func call(_ name: @autoclosure () -> String, _ body: () -> Int32) throws(SystemError) -> Int32 {
        Int32(truncatingIfNeeded: try size(name(), { Int(body()) }))
    }

    /// A call that returns a size (`ssize_t`), negative with errno on failure.
    @discardableResult @inline(__always)
    public static func size(_ name: @autoclosure () -> String, _ body: () -> Int) throws(SystemError) -> Int {
        while true {
            let r = body()
            if r >= 0 { return r }
            let e = errno
            if e == EINTR { continue }
            unacceptable(e, name())
            throw SystemError(call: name(), errno: e)
        }
    }

    /// A non-blocking call: nil when it would block (EAGAIN), the result otherwise.
    @inline(__always)
    public static func nonBlocking(_ name: @autoclosure () -> String, _ body: () -> Int) throws(SystemError) -> Int? {
        while true {
            let r = body()
            if r >= 0 { return r }
            let e = errno
            if e == EINTR { continue }
            if e == EAGAIN || e == EWOULDBLOCK { return nil }
            unacceptable(e, name())
            throw SystemError(call: name(), errno: e)
        }
    }

    /// A call that returns its error number instead of setting errno (posix_spawn, the pthread
    /// calls): zero is success.
    public static func returningErrorNumber(_ name: @autoclosure () -> String, _ body: () -> Int32) throws(SystemError) {
        let r = body()
        guard r != 0 else { return }
        unacceptable(r, name())
        throw SystemError(call: name(), errno: r)
    }

    /// A call whose failure leaves nothing to do (shutdown of a socket the peer already reset, a
    /// temporary file removed after an error): retried on EINTR, a failure returned as a value for
    /// whoever wants it, never thrown. A bug's errno still stops the process.
    @discardableResult
    public static func bestEffort(_ name: @autoclosure () -> String, _ body: () -> Int32) -> SystemError? {
        do {
            try call(name(), body)
            return nil
        } catch {
            return error
        }
    }

    /// close(2) of a descriptor this process owns, once. Never retried: Linux releases the
    /// descriptor even when close is interrupted, and a retry could close a descriptor another
    /// thread has just been given. EBADF means it was closed already: a bug.
    public static func close(_ fd: Int32) {
        if Glibc.close(fd) == 0 { return }
        let e = errno
        precondition(e != EBADF, "close(\(fd)): not an open descriptor (closed twice?)")
        unacceptable(e, "close")
        // EIO and the like: the descriptor is released all the same; what a write left in the
        // kernel is the caller's to check with fsync before closing (`DurableFile` does).
    }

    /// Sleeps `nanoseconds`, the whole time even when signals interrupt it.
    public static func sleep(nanoseconds: UInt64) {
        var request = timespec(tv_sec: Int(nanoseconds / 1_000_000_000), tv_nsec: Int(nanoseconds % 1_000_000_000))
        var remaining = timespec()
        while nanosleep(&request, &remaining) != 0 {
            guard errno == EINTR else { return }
            request = remaining
        }
    }

    /// Waits for child `pid` to exit; its raw status (see `exitCode`).
    public static func waitForExit(_ pid: pid_t) throws(SystemError) -> Int32 {
        var status: Int32 = 0
        try call("waitpid(\(pid))") { waitpid(pid, &status, 0) }
        return status
    }

    /// A `waitpid` status as an exit code: the code of a normal exit, 128 + the signal otherwise.
    public static func exitCode(_ status: Int32) -> Int32 {
        status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    }

    /// Writes all of `bytes` to a blocking descriptor (or, when it is non-blocking, waiting up to
    /// `pollMilliseconds` each time it would block).
    public static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, name: @autoclosure () -> String = "write",
                                pollMilliseconds: Int32 = 100) throws(SystemError) {
        var offset = 0
        while offset < bytes.count {
            if let n = try nonBlocking(name(), { Glibc.write(fd, bytes.baseAddress! + offset, bytes.count - offset) }) {
                offset += n
            } else {
                _ = try poll(fd, events: Int16(POLLOUT), milliseconds: pollMilliseconds)
            }
        }
    }

    /// `writeAll` of an array.
    public static func writeAll(_ fd: Int32, _ bytes: [UInt8], name: @autoclosure () -> String = "write") throws(SystemError) {
        var failure: SystemError?
        bytes.withUnsafeBytes { raw in
            do throws(SystemError) { try writeAll(fd, raw, name: name()) } catch { failure = error }
        }
        if let failure { throw failure }
    }

    /// Waits until `fd` has `events` (POLLIN, POLLOUT) or `milliseconds` pass; true when it has.
    /// EINTR restarts the wait with what is left of it only as far as the caller's deadline goes:
    /// callers with a deadline call again with the time left.
    public static func poll(_ fd: Int32, events: Int16, milliseconds: Int32) throws(SystemError) -> Bool {
        var p = pollfd(fd: fd, events: events, revents: 0)
        return try call("poll") { Glibc.poll(&p, 1, milliseconds) } > 0
    }

    /// Stops the process on an errno that only a bug of this process can cause.
    @inline(__always)
    static func unacceptable(_ e: Int32, _ name: @autoclosure () -> String) {
        precondition(e != EFAULT, "\(name()): EFAULT (a bad pointer passed to the kernel)")
    }
}
