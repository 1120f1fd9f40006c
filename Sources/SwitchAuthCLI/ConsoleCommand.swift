import AdminConsole
import ArgumentParser
import Foundation
import Postgres
import Store
import SwitchAuthService
import SystemCalls

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
            Revoke:       switchauth console tokens [bob]; switchauth console revoke-token ID
            Disable:      switchauth console disable-operator bob   (enable-operator bob)
            """,
        subcommands: ConsoleSubcommands.all, defaultSubcommand: ConsoleServe.self)
}

enum ConsoleSubcommands {
    static var all: [any ParsableCommand.Type] {
        [ConsoleServe.self, CreateAdmin.self, AddOperator.self, SetOperatorPassword.self, ListOperators.self, CreateToken.self,
         ListTokens.self, RevokeToken.self, DisableOperator.self, EnableOperator.self]
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
        Output.done("created operator \(name) with role \(r.rawValue)", json: options.json, fields: ["operator": name, "role": r.rawValue])
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
        let rows = try operators(options) { try ConsoleStore(db: $0.db).operators() }
        Output.print(Table(columns: ["name", "role", "disabled", "created_at"],
                           rows: rows.map { [$0.name, $0.role, $0.disabled ? "t" : "f", $0.createdAt] }), json: options.json)
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

struct ListTokens: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "tokens", abstract: "List API tokens (newest first, revoked ones too; never the token itself).")
    @OptionGroup var options: DatabaseOptions
    @Argument(help: "Only this operator's tokens.") var operatorName: String?

    func run() throws {
        let rows = try operators(options) { try ConsoleStore(db: $0.db).tokens(operator: operatorName) }
        Output.print(Table(columns: ["id", "operator", "name", "starts_with", "created_at", "last_used_at", "revoked_at"],
                           rows: rows.map { [String($0.id), $0.operator, $0.name, $0.hint + "…", $0.createdAt, $0.lastUsedAt ?? "", $0.revokedAt ?? ""] }),
                     json: options.json)
    }
}

struct RevokeToken: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "revoke-token", abstract: "Revoke an API token: it stops working at once (audited).")
    @OptionGroup var options: DatabaseOptions
    @Argument(help: "The token's id (see 'switchauth console tokens').") var id: Int64

    func run() throws {
        let t = try operators(options) { try ConsoleStore(db: $0.db).revokeToken(id) }
        Output.done("revoked token \(t.id) (\(t.name) of \(t.operator))", json: options.json, fields: ["id": String(t.id), "operator": t.operator])
    }
}

struct DisableOperator: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "disable-operator",
        abstract: "Disable an operator: their sessions end, their API tokens stop working, they cannot log in (audited). Not the last enabled admin.")
    @OptionGroup var options: DatabaseOptions
    @Argument(help: "Operator name.") var name: String

    func run() throws {
        try operators(options) { try ConsoleStore(db: $0.db).setOperatorDisabled(name, true) }
        Output.done("disabled operator \(name)", json: options.json, fields: ["operator": name])
    }
}

struct EnableOperator: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "enable-operator", abstract: "Enable a disabled operator again (audited).")
    @OptionGroup var options: DatabaseOptions
    @Argument(help: "Operator name.") var name: String

    func run() throws {
        try operators(options) { try ConsoleStore(db: $0.db).setOperatorDisabled(name, false) }
        Output.done("enabled operator \(name)", json: options.json, fields: ["operator": name])
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
    // Each flag overrides its row of the configuration (`console_*`, see `serve --help-config`).
    @Option(help: "Address to listen on (console_listen_host; default 127.0.0.1).") var host: String?
    @Option(help: "TCP port (console_listen_port; default 8089).") var port: UInt16?
    @Option(help: "Event-loop threads, socket I/O only (console_workers; default 2).") var workers: Int?
    @Option(help: "Database threads, each with its own connection (console_database_connections; default 2).") var databaseThreads: Int?
    @Flag(help: "Mark cookies Secure, when a TLS proxy is in front (console_secure_cookies).") var secureCookies = false
    @Flag(help: "Listen on a non-loopback address; put TLS in front of it (console_force_public).") var forcePublic = false
    @Option(name: .customLong("allowed-host"), help: "A Host name the console answers to besides loopback and --host (repeatable; e.g. the TLS proxy's name; console_allowed_hosts).")
    var allowedHosts: [String] = []
    @Option(name: .customLong("trusted-proxy"), help: "Address of a TLS proxy in front (repeatable): from it, the client's address is the last X-Forwarded-For entry (for the login throttle and the audit log; console_trusted_proxies).")
    var trustedProxies: [String] = []
    @Option(help: "Scheduling niceness of the console's threads, 0-19: the mod_xml_curl listener keeps the CPU first (console_nice; default 10).") var nice: Int?

    func validate() throws {
        if let workers, !(1...64).contains(workers) { throw ValidationError("--workers must be 1-64") }
        if let databaseThreads, !(1...64).contains(databaseThreads) { throw ValidationError("--database-threads must be 1-64") }
        if let nice, !(0...19).contains(nice) { throw ValidationError("--nice must be 0-19") }
    }

    /// The configuration's console rows with the flags given applied over them.
    func consoleConfig(_ config: ServiceConfig) throws -> ConsoleConfig {
        var c = config.console
        if let host { c.host = host }
        if let port { c.port = port }
        if let workers { c.workers = workers }
        if let databaseThreads { c.databaseConnections = databaseThreads }
        if let nice { c.nice = nice }
        if secureCookies { c.secureCookies = true }
        if forcePublic { c.forcePublic = true }
        if !allowedHosts.isEmpty { c.allowedHosts = allowedHosts }
        if !trustedProxies.isEmpty { c.trustedProxies = trustedProxies }
        if !c.isLoopback && !c.forcePublic {
            throw CLIError("the console's address \(c.host) is not loopback: it would take passwords in clear text; put a TLS proxy in front and add --force-public (console_force_public = true)")
        }
        return c
    }

    func run() throws {
        let config = try options.serviceConfig()
        let console = try consoleConfig(config)
        let logger = makeLogger(config.logLevel)
        var db = config.databaseConfig
        db.sessionSettings = []          // the console's lists plan for themselves (no enable_seqscan=off)
        db.queryTimeoutMilliseconds = 5_000
        db.applicationName = "switchauth-console"
        var settings = ConsoleSettings(database: db)
        settings.service = config
        settings.service.console = console   // the file's rows with the flags applied
        if config.replica { settings.changeInForceAfterMilliseconds = config.replicaStalenessMilliseconds + 5 }
        Signals.blockTermination()
        // Before any thread starts, so that every thread of the console inherits it (Linux nice
        // values are per thread). The service's own threads, in its own process, are not touched.
        if console.nice > 0 { _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, Int32(console.nice)) }
        let server: ConsoleServer
        do {
            server = try ConsoleServer(app: ConsoleApp(settings: settings, logger: logger), logger: logger)
            try server.start()
        } catch {
            throw CLIError("cannot start the console: \(error)")
        }
        Console.out("console on http://\(console.host.contains(":") ? "[\(console.host)]" : console.host):\(server.port)/")
        let sig = Signals.waitForTermination()
        logger.notice("signal received", metadata: ["signal": .stringConvertible(sig)])
        server.stop()
    }
}
