import Postgres
import SwitchAuthCLI

/// The switchauth CLI end to end against the throwaway PostgreSQL, in-process (output and standard
/// input bound per task, so these run in parallel).
public struct CLIResult {
    public var code: Int32
    public var out: String
    public var err: String
}

/// `wait`: whether a command that changes what lookups see waits until every memory copy must hold
/// it (`replica_staleness_ms`); off here, where no service runs beside the command, unless a test
/// is about that wait.
public func cli(_ args: [String], db: ConnectionConfig?, input: [String] = [], wait: Bool = false) -> CLIResult {
    let url = db.map { $0.parameters.map { "\($0.key)=\($0.value)" }.joined(separator: " ") }
    let buffer = OutputBuffer()
    var code: Int32 = 0
    var err = ""
    Console.$capture.withValue(buffer) {
        Console.$input.withValue(InputLines(input)) {
            do {
                var command = try SwitchAuthCommand.parseAsRoot(args + (url.map { ["--database-url", $0] + (wait ? [] : ["--no-wait"]) } ?? []))
                try command.run()
            } catch {
                code = SwitchAuthCommand.exitCode(for: error).rawValue
                err = SwitchAuthCommand.message(for: error)
            }
        }
    }
    return CLIResult(code: code, out: buffer.value, err: err)
}

