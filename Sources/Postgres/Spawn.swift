import SystemCalls
#if canImport(Glibc)
import Glibc
#endif

/// Starts `exe` with posix_spawn: standard input from /dev/null, standard output and error to
/// `outputPath` (a file, never a pipe that a daemonizing child would hold open). `environment`
/// replaces the process's environment when given. Returns the child's pid; the caller reaps it.
public func spawnProcess(_ exe: String, _ arguments: [String], outputPath: String,
                         environment: [String: String]? = nil, newProcessGroup: Bool = false) throws -> pid_t {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    posix_spawn_file_actions_adddup2(&actions, 1, 2)
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    if newProcessGroup {
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP))
        posix_spawnattr_setpgroup(&attributes, 0)
    }
    let argv: [UnsafeMutablePointer<CChar>?] = ([exe] + arguments).map { strdup($0) } + [nil]
    defer { argv.forEach { free($0) } }
    var pid: pid_t = 0
    if let environment {
        let envp: [UnsafeMutablePointer<CChar>?] = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { envp.forEach { free($0) } }
        try Syscall.returningErrorNumber("posix_spawn(\(exe))") { posix_spawn(&pid, exe, &actions, &attributes, argv, envp) }
    } else {
        try Syscall.returningErrorNumber("posix_spawn(\(exe))") { posix_spawn(&pid, exe, &actions, &attributes, argv, environ) }
    }
    return pid
}
