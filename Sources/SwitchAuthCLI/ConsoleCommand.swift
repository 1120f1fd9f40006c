import AdminConsole
import ArgumentParser
import Foundation
import Postgres
import Store
import SwitchAuthService

/// `switchauth console`: the operators' console and its operators.
struct ConsoleCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "console",
        abstract: "The operators' console (JSON API and HTML screens) and its operators.",
        discussion: """
            Serve:        switchauth console --config /etc/switchauth.conf   (127.0.0.1:8089; --host, --port)
            First admin:  switchauth console create-admin alice --config /etc/switchauth.conf   (prompts for the password)
            Operators:    switchauth console add-operator bob --role operator | read-only | admin
            API token:    switchauth console create-token bob --name billing   (printed once)
            """,
        subcommands: ConsoleSubcommands.all, defaultSubcommand: ConsoleServe.self)
}

enum ConsoleSubcommands {
    static var all: [any ParsableCommand.Type] {
        [ConsoleServe.self, CreateAdmin.self, AddOperator.self, SetOperatorPassword.self, ListOperators.self, CreateToken.self]
    }
}

/// Password options of the console's operators, as the device commands take them.
struct OperatorPasswordOptions: ParsableArguments {
    @Flag(name: .long, help: "Read the password from standard input (one line).") var passwordStdin = false
    @Option(name: .long, help: "Read the password from a file.") var passwordFile: String?
    @Flag(name: .long, help: "Generate a password and print it once.") var generatePassword = false

    func read() throws -> (password: String, generated: Bool) {
        try PasswordInput.read(stdin: passwordStdin, file: passwordFile, generate: generatePassword, argument: nil)
    }
}

/// Runs `body` with an operator store on the CLI's connection, turning refusals into messages.
func operators<T>(_ options: DatabaseOptions, _ body: (OperatorStore) throws -> T) throws -> T {
    let db = try options.connect()
    defer { db.close() }
    do {
        return try body(OperatorStore(db: db))
    } catch let e as AdminError {
        throw CLIError(e.message)
    } catch let e as PostgresError {
        throw CLIError(e.isConstraintViolation ? "refused by the database: \(e.message)" : e.debugDescription)
    }
}

struct CreateAdmin: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create-admin",
        abstract: "Create an operator with the admin role (the first one, or another).")
    @OptionGroup var options: DatabaseOptions
    @OptionGroup var password: OperatorPasswordOptions
    @Argument(help: "Operator name (1-64 of A-Z a-z 0-9 _ . @ -).") var name: String

    func run() throws {
        let (pw, generated) = try password.read()
        try operators(options) { s in _ = try s.create(name: name, role: .admin, password: pw) }
        if generated { Console.out("password: \(pw)") }
        Output.done("created admin \(name)", json: options.json, fields: ["operator": name, "role": Role.admin.rawValue])
    }
}

struct AddOperator: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "add-operator", abstract: "Create an operator with a role.")
    @OptionGroup var options: DatabaseOptions
    @OptionGroup var password: OperatorPasswordOptions
    @Argument(help: "Operator name.") var name: String
    @Option(help: "read-only, operator or admin.") var role: String = "operator"

    func run() throws {
        guard let r = Role(rawValue: role) else { throw ValidationError("--role must be read-only, operator or admin") }
        let (pw, generated) = try password.read()
        try operators(options) { s in _ = try s.create(name: name, role: r, password: pw) }
        if generated { Console.out("password: \(pw)") }
        Output.done("created \(r.rawValue) operator \(name)", json: options.json, fields: ["operator": name, "role": r.rawValue])
    }
}

struct SetOperatorPassword: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "set-password", abstract: "Set an operator's password (ends their sessions).")
    @OptionGroup var options: DatabaseOptions
    @OptionGroup var password: OperatorPasswordOptions
    @Argument(help: "Operator name.") var name: String

    func run() throws {
        let (pw, generated) = try password.read()
        try operators(options) { s in try s.setPassword(name: name, password: pw) }
        if generated { Console.out("password: \(pw)") }
        Output.done("password of \(name) set", json: options.json)
    }
}

struct ListOperators: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "operators", abstract: "List the console's operators.")
    @OptionGroup var options: DatabaseOptions
    func run() throws {
        Output.print(try operators(options) { try $0.list() }, json: options.json)
    }
}

struct CreateToken: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create-token",
        abstract: "Create an API token for an operator; it is printed once (only its SHA-256 is kept).")
    @OptionGroup var options: DatabaseOptions
    @Argument(help: "Operator name.") var operatorName: String
    @Option(help: "What the token is for.") var name: String = "api"

    func run() throws {
        let token = try operators(options) { try $0.createToken(operatorName: operatorName, tokenName: name) }
        Output.done(token, json: options.json, fields: ["token": token])
    }
}

struct ConsoleServe: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve the console (HTML and JSON API) on its own listener, loopback by default.",
        discussion: """
            Reads database_url and the decision settings from --config (the file 'switchauth serve' reads);
            the listener is set here. Stops on SIGTERM or SIGINT after in-flight requests finish.
            """)

    @OptionGroup var options: DatabaseOptions
    @Option(help: "Address to listen on.") var host = "127.0.0.1"
    @Option(help: "TCP port.") var port: UInt16 = 8089
    @Option(help: "Event-loop threads (socket I/O only).") var workers = 2
    @Option(help: "Database threads, each with its own connection.") var databaseThreads = 2
    @Flag(help: "Mark cookies Secure (when a TLS proxy is in front).") var secureCookies = false
    @Flag(help: "Listen on a non-loopback address (put TLS in front of it).") var forcePublic = false
    @Option(name: .customLong("allowed-host"), help: "A Host name the console answers to besides loopback and --host (repeatable; e.g. the TLS proxy's name).")
    var allowedHosts: [String] = []
    @Option(help: "Scheduling niceness of the console's threads (0-19): the mod_xml_curl listener keeps the CPU first.") var nice: Int32 = 10

    func validate() throws {
        let loopback = host == "localhost" || host == "::1" || host.hasPrefix("127.")
        if !loopback && !forcePublic {
            throw ValidationError("--host \(host) is not loopback: the console would take passwords in clear text; put a TLS proxy in front and add --force-public")
        }
        guard (1...64).contains(workers), (1...64).contains(databaseThreads) else { throw ValidationError("--workers and --database-threads must be 1-64") }
        guard (0...19).contains(nice) else { throw ValidationError("--nice must be 0-19") }
    }

    func run() throws {
        let config = try options.serviceConfig()
        let logger = makeLogger(config.logLevel)
        var db = config.databaseConfig
        db.sessionSettings = []          // the console's lists plan for themselves (no enable_seqscan=off)
        db.queryTimeoutMilliseconds = 5_000
        db.applicationName = "switchauth-console"
        var settings = ConsoleSettings(database: db)
        settings.host = host
        settings.port = port
        settings.workers = workers
        settings.databaseThreads = databaseThreads
        settings.directory = config.directory
        settings.dialplan = config.dialplan
        settings.secureCookies = secureCookies
        settings.allowedHosts = allowedHosts
        Service.blockTerminationSignals()
        // Before any thread starts, so that every thread of the console inherits it (Linux nice
        // values are per thread). The service's own threads, in its own process, are not touched.
        if nice > 0 { _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, nice) }
        let server: ConsoleServer
        do {
            server = try ConsoleServer(app: ConsoleApp(settings: settings), logger: logger)
            try server.start()
        } catch {
            throw CLIError("cannot start the console: \(error)")
        }
        Console.out("console on http://\(host.contains(":") ? "[\(host)]" : host):\(server.port)/")
        let sig = Service.waitForSignal()
        logger.notice("signal received", metadata: ["signal": .stringConvertible(sig)])
        server.stop()
    }
}
