import ArgumentParser
import Decisions
import Foundation
import Logging
import Postgres
import Store
import SwitchAuthService

public struct SwitchAuthCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "switchauth",
        abstract: "Authentication decisions for FreeSWITCH (mod_xml_curl), from PostgreSQL.",
        discussion: """
            Run 'switchauth demo' to see it answer real FreeSWITCH requests on a throwaway database.
            Operators: 'switchauth migrate', then 'switchauth domain add', 'account add', 'ip add',
            'device add', and 'switchauth serve --config /etc/switchauth.conf'.
            """,
        subcommands: [Serve.self, Migrate.self, Demo.self, AccountCommand.self, IPCommand.self, DeviceCommand.self,
                      DomainCommand.self, ImportCommand.self, Explain.self, Lockouts.self, ConsoleCommand.self]
    )
    public init() {}
}

// MARK: serve

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve mod_xml_curl lookups (directory, acl.conf, dialplan), /healthz and /metrics.",
        discussion: "Stops on SIGTERM or SIGINT after in-flight requests finish. Settings come from --config and SWITCHAUTH_<KEY> environment variables.")

    @OptionGroup var options: DatabaseOptions

    @Flag(name: .long, help: "List every setting with its default and exit.")
    var helpConfig = false

    func run() throws {
        if helpConfig {
            for r in ServiceConfig.reference {
                Console.out("\(r.key.padding(toLength: 22, withPad: " ", startingAt: 0)) default \(r.defaultValue.padding(toLength: 26, withPad: " ", startingAt: 0)) \(r.meaning)")
            }
            return
        }
        let config = try options.serviceConfig()
        do { try config.validate() } catch let e as ConfigError { throw ValidationError(e.message) }
        let logger = makeLogger(config.logLevel)
        Service.blockTerminationSignals()
        let service: Service
        do {
            service = try Service(config: config, logger: logger)
            try service.start()
        } catch {
            throw CLIError("cannot start: \(error)")
        }
        let sig = Service.waitForSignal()
        logger.notice("signal received", metadata: ["signal": .stringConvertible(sig)])
        service.stop()
    }
}

/// The process's logger: swift-log's stream handler on standard error, one line per event with
/// key=value metadata. The logging system is bootstrapped once per process.
func makeLogger(_ level: String) -> Logger {
    _ = bootstrapLogging
    var logger = Logger(label: "switchauth")
    logger.logLevel = Logger.Level(rawValue: level) ?? .info
    return logger
}

private let bootstrapLogging: Void = LoggingSystem.bootstrap { label in
    StreamLogHandler.standardError(label: label)
}

// MARK: migrate

struct Migrate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Apply pending SQL migrations (each in its own transaction), or list them with --status.",
        discussion: "Refuses to run when an applied migration file was edited. Re-running is a no-op.")

    @OptionGroup var options: DatabaseOptions

    @Flag(name: .long, help: "List applied and pending migrations; change nothing.")
    var status = false

    @Option(name: .long, help: "Directory of NNNN_name.sql files (default: $SWITCHAUTH_MIGRATIONS, ./migrations, or the one this binary was built with).")
    var migrations: String?

    func run() throws {
        let db = try options.connect()
        do {
            let migrator = try Migrator(directory: migrations ?? Migrator.defaultDirectory())
            if status {
                Output.print(Table(columns: ["version", "name", "status", "applied_at"],
                                   rows: try migrator.status(db).map { [$0.version, $0.name, $0.status.rawValue, $0.appliedAt ?? ""] }),
                             json: options.json)
                return
            }
            let ran = try migrator.migrate(db)
            Output.done(ran.isEmpty ? "up to date" : ran.map { "applied \($0.version)_\($0.name)" }.joined(separator: "\n"),
                        json: options.json, fields: ["applied": ran.map { "\($0.version)_\($0.name)" }.joined(separator: ",")])
        } catch let e as MigrationError {
            throw CLIError(e.description)
        } catch let e as PostgresError {
            throw CLIError("migration failed: \(e.debugDescription)")
        }
    }
}

// MARK: lockouts

struct Lockouts: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List or clear brute-force lockouts (source IPs and user@domain).",
        subcommands: [List.self, Clear.self], defaultSubcommand: List.self)

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List current lockouts.")
        @OptionGroup var options: DatabaseOptions
        func run() throws {
            let entries = try admin(options) { a in try AuthFailures.locked(a.db) }
            Output.print(Table(columns: ["scope", "subject", "failures", "locked_until"],
                               rows: entries.map { [$0.scope, $0.subject, String($0.failures), $0.lockedUntil] }), json: options.json)
        }
    }

    struct Clear: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Clear the lockout and counter of one subject (an IP or user@domain), or --all.")
        @OptionGroup var options: DatabaseOptions
        @Argument(help: "An IP address or user@domain.") var subject: String?
        @Flag(name: .long, help: "Clear every lockout and counter.") var all = false
        func validate() throws {
            if (subject == nil) == !all { throw ValidationError("name a subject or give --all") }
        }
        func run() throws {
            let n = try admin(options) { a in try AuthFailures.clear(a.db, subject: all ? nil : subject) }
            Output.done("cleared \(n)", json: options.json, fields: ["cleared": String(n)])
        }
    }
}
