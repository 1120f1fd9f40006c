import Foundation
import SystemCalls
#if canImport(Glibc)
import Glibc
#endif

/// A throwaway PostgreSQL cluster: initdb into a private temporary directory, listening on a unix
/// socket only (no TCP port), fsync off. Used by the test suite and by `switchauth demo`.
///
/// PostgreSQL refuses to run as root; when run as root the cluster is created and started as the
/// `postgres` system user (via `runuser`). A watchdog process stops the cluster and removes the
/// directory when the owning process dies, also when it crashes.
public final class TemporaryCluster: Sendable {
    public let directory: String
    public let binDirectory: String
    private let runAs: String?

    public struct ClusterError: Error, CustomStringConvertible {
        public var description: String
    }

    /// A connection config for `database` on this cluster.
    public func config(database: String = "postgres") -> ConnectionConfig {
        ConnectionConfig(parameters: [.init("host", directory), .init("port", "5432"), .init("user", "postgres"), .init("dbname", database)])
    }

    /// Finds `initdb`/`pg_ctl` on PATH or under /usr/lib/postgresql/*/bin (newest first).
    public static func findBinaries() -> String? {
        var candidates: [String] = []
        if let path = ProcessInfo.processInfo.environment["PATH"] {
            candidates += path.split(separator: ":").map(String.init)
        }
        if let versions = try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib/postgresql") {
            candidates += versions.sorted { (Int($0) ?? 0) > (Int($1) ?? 0) }.map { "/usr/lib/postgresql/\($0)/bin" }
        }
        for dir in candidates {
            let initdb = "\(dir)/initdb", pgctl = "\(dir)/pg_ctl"
            if FileManager.default.isExecutableFile(atPath: initdb) && FileManager.default.isExecutableFile(atPath: pgctl) {
                // Resolve symlinks so that pg_ctl finds its `postgres` binary beside it.
                return URL(fileURLWithPath: initdb).resolvingSymlinksInPath().deletingLastPathComponent().path
            }
        }
        return nil
    }

    /// Creates and starts the cluster. `log` receives one line per step. With `standbyOf`, the
    /// cluster is a hot standby of that one instead: a base backup of it (pg_basebackup -R),
    /// streaming its WAL over its unix socket.
    public init(standbyOf primary: TemporaryCluster? = nil, log: (String) -> Void = { _ in }) throws {
        guard let bin = Self.findBinaries() else {
            throw ClusterError(description: "PostgreSQL server binaries (initdb, pg_ctl) not found on PATH or under /usr/lib/postgresql/*/bin; install the Debian package 'postgresql'")
        }
        binDirectory = bin
        var template = Array("/tmp/switchauth-pg-XXXXXX".utf8CString)
        let made: String
        do {
            try Syscall.call("mkdtemp") { mkdtemp(&template) == nil ? -1 : 0 }
            made = String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
        } catch {
            throw ClusterError(description: "\(error)")
        }
        directory = made
        if geteuid() == 0 {
            guard let pw = getpwnam("postgres") else {
                throw ClusterError(description: "running as root, and PostgreSQL refuses root: create a 'postgres' system user (the Debian package does)")
            }
            try Syscall.call("chown(\(made))") { chown(made, pw.pointee.pw_uid, pw.pointee.pw_gid) }
            runAs = "postgres"
        } else {
            runAs = nil
        }
        try Syscall.call("chmod(\(made))") { chmod(made, 0o700) }
        if let primary {
            log("pg_basebackup of \(primary.directory) into \(directory)/data")
            try run("pg_basebackup", ["-h", primary.directory, "-p", "5432", "-U", "postgres", "-D", "\(directory)/data",
                                      "-R", "-X", "stream", "-c", "fast", "--no-sync"])
        } else {
            log("initdb \(directory)/data")
            try run("initdb", ["-D", "\(directory)/data", "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"])
        }
        let options = Self.serverOptions(directory)
        log("pg_ctl start")
        try run("pg_ctl", ["-D", "\(directory)/data", "-o", options, "-l", "\(directory)/server.log", "-w", "-t", "60", "start"])
        startWatchdog()
    }

    /// Stops the server at once and removes the directory.
    public func stop() {
        try? run("pg_ctl", ["-D", "\(directory)/data", "-m", "immediate", "-w", "stop"])
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Restarts the server (used to prove reconnects).
    public func restart() throws {
        try run("pg_ctl", ["-D", "\(directory)/data", "-m", "fast", "-w", "-t", "60", "restart"])
    }

    public func stopServer() throws {
        try run("pg_ctl", ["-D", "\(directory)/data", "-m", "fast", "-w", "stop"])
    }

    /// A hot standby becomes a primary (pg_ctl promote, waiting until it accepts writes).
    public func promote() throws {
        try run("pg_ctl", ["-D", "\(directory)/data", "-w", "-t", "60", "promote"])
    }

    static func serverOptions(_ directory: String) -> String {
        "-F -k \(directory) -c listen_addresses='' -c max_connections=300 -c synchronous_commit=off -c shared_buffers=64MB"
    }

    public func startServer() throws {
        let options = Self.serverOptions(directory)
        try run("pg_ctl", ["-D", "\(directory)/data", "-o", options, "-l", "\(directory)/server.log", "-w", "-t", "60", "start"])
    }

    /// The postmaster and every process it started (backends, background workers).
    public func serverProcesses() -> [pid_t] {
        guard let text = try? String(contentsOfFile: "\(directory)/data/postmaster.pid", encoding: .utf8),
              let first = text.split(separator: "\n").first, let postmaster = pid_t(first) else { return [] }
        var pids = [postmaster]
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        for e in entries {
            guard let pid = pid_t(e),
                  let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { continue }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            if fields.count > 1, pid_t(fields[1]) == postmaster { pids.append(pid) }
        }
        return pids
    }

    /// Hangs the server as a stalled host would: SIGSTOP to the postmaster and its children.
    /// Connections stay open and every statement waits. `thaw()` resumes it.
    public func freeze() {
        for pid in serverProcesses() { Syscall.bestEffort("kill(SIGSTOP)") { kill(pid, SIGSTOP) } }
    }

    public func thaw() {
        for pid in serverProcesses() { Syscall.bestEffort("kill(SIGCONT)") { kill(pid, SIGCONT) } }
    }

    private func command(_ tool: String, _ args: [String]) -> (String, [String]) {
        let path = "\(binDirectory)/\(tool)"
        if let runAs { return ("/usr/sbin/runuser", ["-u", runAs, "--", path] + args) }
        return (path, args)
    }

    private func run(_ tool: String, _ args: [String]) throws {
        let (exe, arguments) = command(tool, args)
        // Output goes to a file, not a pipe, and the child is waited for with waitpid: the server
        // that pg_ctl starts inherits descriptors and would hold a pipe (or Foundation's
        // termination-monitoring socket) open for its whole life.
        let outputPath = "\(directory)/\(tool).out"
        let pid = try spawn(exe, arguments, outputPath: outputPath)
        let status = try Syscall.waitForExit(pid)
        if Syscall.exitCode(status) != 0 {
            let text = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
            throw ClusterError(description: "\(tool) failed (status \(status)): \(text)")
        }
    }

    private func spawn(_ exe: String, _ arguments: [String], outputPath: String) throws -> pid_t {
        do {
            // A new process group: a Ctrl-C meant for the parent does not kill the server mid-test.
            return try spawnProcess(exe, arguments, outputPath: outputPath, newProcessGroup: true)
        } catch {
            throw ClusterError(description: "\(error)")
        }
    }

    /// A detached shell that waits for this process to end, then stops the cluster and removes it.
    private func startWatchdog() {
        let (exe, args) = command("pg_ctl", ["-D", "\(directory)/data", "-m", "immediate", "-w", "stop"])
        let quoted = ([exe] + args).map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }.joined(separator: " ")
        let script = "while kill -0 \(getpid()) 2>/dev/null; do sleep 1; done; \(quoted) >/dev/null 2>&1; rm -rf '\(directory)'"
        _ = try? spawn("/bin/sh", ["-c", script], outputPath: "/dev/null")
    }
}
