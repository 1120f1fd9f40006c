import AdminConsole
import ArgumentParser
import Foundation
import Postgres
import Store
import SwitchAuthService
import SystemCalls

/// Where the database is: `--database-url`, else `database_url` of `--config`, else
/// `$SWITCHAUTH_DATABASE_URL`, else the local socket database `switchauth`.
struct DatabaseOptions: ParsableArguments {
    @Option(name: .long, help: "Configuration file (key = value lines; see 'switchauth serve --help-config').")
    var config: String?

    @Option(name: .long, help: "libpq URL of the database, e.g. postgresql://switchauth@localhost/switchauth (the password comes from ~/.pgpass or PGPASSWORD).")
    var databaseURL: String?

    @Flag(name: .long, help: "Print JSON instead of a table.")
    var json = false

    @Flag(name: .long, help: "Return once a change is committed, without waiting until every instance's memory copy is bound to hold it (replica_staleness_ms): for scripts making many changes, where a lookup right after each one does not matter.")
    var noWait = false

    func serviceConfig() throws -> ServiceConfig {
        var text: String?
        if let config {
            do {
                text = try String(contentsOfFile: config, encoding: .utf8)
            } catch {
                throw ValidationError("cannot read configuration file \(config)")
            }
        }
        do {
            var c = try ServiceConfig.load(fileText: text, environment: ProcessInfo.processInfo.environment)
            if let databaseURL { c.databaseURL = databaseURL }
            return c
        } catch let e as ConfigError {
            throw ValidationError("configuration: \(e.message)")
        }
    }

    func connect(queryTimeoutMilliseconds: Int = 30_000) throws -> Connection {
        try connect(try serviceConfig(), queryTimeoutMilliseconds: queryTimeoutMilliseconds)
    }

    /// A connection for a command that may change what lookups see, and how long to wait after
    /// such a change (`waitUntilEveryCopyHolds`; nil: no wait, with `--no-wait` or `replica = false`).
    /// The session listens on the feed's channel to hear its own changes.
    func connectForChanges(queryTimeoutMilliseconds: Int = 30_000) throws -> (db: Connection, waitMilliseconds: Int?) {
        let c = try serviceConfig()
        let db = try connect(c, queryTimeoutMilliseconds: queryTimeoutMilliseconds)
        guard c.replica && !noWait else { return (db, nil) }
        do {
            try db.listen(ReplicaChange.channel)
        } catch let e as PostgresError {
            throw CLIError(e.debugDescription)
        }
        return (db, c.replicaStalenessMilliseconds)
    }

    private func connect(_ c: ServiceConfig, queryTimeoutMilliseconds: Int) throws -> Connection {
        var db = c.databaseConfig
        db.queryTimeoutMilliseconds = queryTimeoutMilliseconds
        db.connectTimeoutMilliseconds = 5_000
        db.sessionSettings.append("switchauth.actor=\(Admin.cliActor)")   // the audit log's "who"
        do {
            return try Connection(db)
        } catch let e as PostgresError {
            throw CLIError("cannot connect to the database: \(e.debugDescription)")
        }
    }
}

/// A clear message and exit status 1.
struct CLIError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// Runs an admin action, turning refusals into clear messages. A change lookups depend on is in
/// force when this returns: see `waitUntilEveryCopyHolds`.
@discardableResult
func admin<T>(_ options: DatabaseOptions, _ body: (Admin) throws -> T) throws -> T {
    let (db, wait) = try options.connectForChanges()
    do {
        let result = try body(Admin(db: db))
        if let wait { waitUntilEveryCopyHolds(db, stalenessMilliseconds: wait) }
        return result
    } catch let e as AdminError {
        throw CLIError(e.message)
    } catch let e as PostgresError {
        throw CLIError(e.isConstraintViolation ? "refused by the database: \(e.message)" : e.debugDescription)
    }
}

/// When the command committed a change the memory copies hold (its own notification on the
/// feed's channel came back, which PostgreSQL delivers after the commit), waits
/// `replica_staleness_ms` (+ 5 ms) from then (at least: a sleep). A copy answers only while it is proven to hold every
/// change committed up to `replica_staleness_ms` before the lookup (README, "Answering from
/// memory"), so from then on every instance answers with the change, whichever host it runs on: an
/// operator who suspends an account and places a call at once sees it refused. Durations only,
/// no shared clock. The services must not run with a longer `replica_staleness_ms` than this
/// command's configuration says. If the notifications cannot be read (the link dropped after the
/// commit), it waits all the same: the change may be committed, and the command must not say it
/// failed.
func waitUntilEveryCopyHolds(_ db: Connection, stalenessMilliseconds: Int) {
    guard ReplicaChange.committedBy(db) != false else { return }
    Thread.sleep(forTimeInterval: Double(stalenessMilliseconds + 5) / 1_000)
}

enum Output {
    /// Typed rows (the console's): under `--json` the JSON the console's API answers with, else a
    /// table whose columns are the JSON's keys.
    static func print<Row: Encodable>(rows: [Row], json: Bool) throws {
        let values = try rows.map { try JSON(encoding: $0) }
        if json {
            Console.out(JSON.array(values).pretty)
            return
        }
        let columns = values.first?.keys ?? []
        print(Table(columns: columns, rows: values.map { v in columns.map { v[$0].map(cell) ?? "" } }), json: false)
    }

    /// A value in a table's cell: text as it is, numbers in their text, true/false, nothing for
    /// null, a list of strings joined by commas, anything else as JSON.
    static func cell(_ value: JSON) -> String {
        switch value {
        case .null: return ""
        case .bool(let b): return b ? "true" : "false"
        case .string(let s): return s
        case .number(let n), .raw(let n): return n
        case .array(let items) where items.allSatisfy({ if case .string = $0 { return true } else { return false } }):
            return items.map(cell).joined(separator: ",")
        case .array, .object: return value.text
        }
    }

    /// One typed row: under `--json` one object, else a one-row table.
    static func print<Row: Encodable>(row: Row, json: Bool) throws {
        if json {
            Console.out(try JSON(encoding: row).pretty)
            return
        }
        try print(rows: [row], json: false)
    }

    static func print(_ table: Table, json: Bool) {
        if json {
            let objects = table.rows.map { row in
                Dictionary(uniqueKeysWithValues: zip(table.columns, row).map { ($0, $1) })
            }
            let data = (try? JSONSerialization.data(withJSONObject: objects, options: [.prettyPrinted, .sortedKeys])) ?? Data("[]".utf8)
            Console.out(String(decoding: data, as: UTF8.self))
            return
        }
        var widths = table.columns.map(\.count)
        for row in table.rows {
            for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) }
        }
        func line(_ cells: [String]) -> String {
            zip(cells, widths).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }.joined(separator: "  ")
                .trimmingCharacters(in: .whitespaces)
        }
        Console.out(line(table.columns.map { $0.uppercased() }))
        for row in table.rows { Console.out(line(row)) }
        if table.rows.isEmpty { Console.out("(none)") }
    }

    static func done(_ message: String, json: Bool, fields: [String: String] = [:]) {
        if json {
            var all = fields
            all["result"] = "ok"
            let data = (try? JSONSerialization.data(withJSONObject: all, options: [.sortedKeys])) ?? Data()
            Console.out(String(decoding: data, as: UTF8.self))
        } else {
            Console.out(message)
        }
    }
}

/// Password input: never echoed, never required on the command line.
enum PasswordInput {
    static func read(stdin: Bool, file: String?, generate: Bool, argument: String?) throws -> (password: String, generated: Bool) {
        if let argument {
            FileHandle.standardError.write(Data("warning: a password given as an argument can land in shell history and the process list; prefer --password-stdin or the prompt\n".utf8))
            return (argument, false)
        }
        if generate { return (RandomSecrets.password(), true) }
        if let file {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { throw CLIError("cannot read password file \(file)") }
            return (text.trimmingCharacters(in: .newlines), false)
        }
        if stdin || !Console.inputIsTerminal {
            guard let line = Console.readLine() else { throw CLIError("no password on standard input") }
            return (line, false)
        }
        let first = try prompt("Password: ")
        let second = try prompt("Repeat password: ")
        guard first == second else { throw CLIError("the passwords differ") }
        return (first, false)
    }

    static func prompt(_ text: String) throws -> String {
        FileHandle.standardError.write(Data(text.utf8))
        var old = termios()
        tcgetattr(0, &old)
        var quiet = old
        quiet.c_lflag &= ~tcflag_t(ECHO)
        tcsetattr(0, TCSANOW, &quiet)
        defer {
            tcsetattr(0, TCSANOW, &old)
            FileHandle.standardError.write(Data("\n".utf8))
        }
        guard let line = Console.readLine() else { throw CLIError("no password entered") }
        return line
    }

}
