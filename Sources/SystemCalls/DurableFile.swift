#if canImport(Glibc)
import Glibc
#endif

/// A file replaced so that a crash or power loss at any moment leaves the old content or the new,
/// whole: the bytes go to a temporary file beside the destination, flushed to disk (fsync) before
/// it is renamed over the destination, and the directory is flushed after (only then is the rename
/// itself durable). In two steps (`prepare`, `commit`) for a caller that replaces several files and
/// wants none replaced when one cannot be written.
public struct DurableFile: Sendable {
    public let path: String
    public let temporaryPath: String

    /// Ownership and mode of the new file.
    public struct Attributes: Sendable {
        public var mode: mode_t
        public var owner: (uid: uid_t, gid: gid_t)?
        public init(mode: mode_t, owner: (uid: uid_t, gid: gid_t)? = nil) {
            self.mode = mode
            self.owner = owner
        }

        /// The attributes of the file at `path` now (to keep them across a replacement), if it exists.
        public static func of(_ path: String) -> Attributes? {
            var st = stat()
            guard stat(path, &st) == 0 else { return nil }
            return Attributes(mode: st.st_mode & 0o7777, owner: (st.st_uid, st.st_gid))
        }
    }

    /// Writes and flushes `bytes` into `path + suffix`. On failure nothing is left behind.
    public static func prepare(_ bytes: [UInt8], for path: String, suffix: String = ".tmp",
                               attributes: Attributes) throws(SystemError) -> DurableFile {
        let temp = path + suffix
        let fd = try Syscall.call("open(\(temp))") { open(temp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600) }
        let file = DurableFile(path: path, temporaryPath: temp)
        do throws(SystemError) {
            if let owner = attributes.owner { try Syscall.call("fchown(\(temp))") { fchown(fd, owner.uid, owner.gid) } }
            try Syscall.call("fchmod(\(temp))") { fchmod(fd, attributes.mode) }
            try Syscall.writeAll(fd, bytes, name: "write(\(temp))")
            try Syscall.call("fsync(\(temp))") { fsync(fd) }
        } catch {
            Syscall.close(fd)
            file.abandon()
            throw error
        }
        Syscall.close(fd)
        return file
    }

    /// Renames the flushed temporary file over the destination, then flushes the directory. A
    /// failed rename leaves the temporary file removed and the destination as it was.
    public func commit() throws(SystemError) {
        do throws(SystemError) {
            try Syscall.call("rename(\(temporaryPath), \(path))") { rename(temporaryPath, path) }
        } catch {
            abandon()
            throw error
        }
        let slash = path.lastIndex(of: "/")
        let directory = slash.map { $0 == path.startIndex ? "/" : String(path[..<$0]) } ?? "."
        let dirFD = try Syscall.call("open(\(directory))") { open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
        defer { Syscall.close(dirFD) }
        try Syscall.call("fsync(\(directory))") { fsync(dirFD) }
    }

    /// Removes the temporary file (a replacement given up).
    public func abandon() {
        Syscall.bestEffort("unlink(\(temporaryPath))") { unlink(temporaryPath) }
    }

    /// `prepare` then `commit`.
    public static func write(_ bytes: [UInt8], to path: String, attributes: Attributes) throws(SystemError) {
        try prepare(bytes, for: path, attributes: attributes).commit()
    }
}
