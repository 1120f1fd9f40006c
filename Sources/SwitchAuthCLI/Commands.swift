import ArgumentParser
import Decisions
import Foundation
import LogLines
import Logging
import Postgres
import Store
import SwitchAuthService
import SystemCalls
#if canImport(Glibc)
import Glibc
#endif

public struct SwitchAuthCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "switchauth",
        abstract: "Authentication decisions for FreeSWITCH (mod_xml_curl), from PostgreSQL.",
        discussion: """
            Run 'switchauth demo' to see it answer real FreeSWITCH requests on a throwaway database.
            Operators: 'switchauth migrate', 'switchauth gateway-secret', then 'switchauth domain add',
            'account add', 'ip add', 'device add', and 'switchauth serve --config /etc/switchauth.conf'.
            """,
        subcommands: [Serve.self, Migrate.self, Demo.self, AccountCommand.self, IPCommand.self, DestinationCommand.self, FraudCommand.self, DeviceCommand.self,
                      DomainCommand.self, ImportCommand.self, Explain.self, Lockouts.self, GatewaySecret.self,
                      ConsoleCommand.self]
    )
    public init() {}
}

// MARK: serve

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve mod_xml_curl lookups (directory, acl.conf, dialplan), /healthz and /metrics.",
        discussion: "Stops on SIGTERM or SIGINT after in-flight requests finish; SIGHUP re-reads the configuration without dropping a request. Under systemd (Type=notify) it reports readiness once PostgreSQL answered and pings the watchdog. Settings come from --config and SWITCHAUTH_<KEY> environment variables.")

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
        Signals.blockTermination()
        // Under systemd (Type=notify): READY=1 once listening and PostgreSQL answered, the watchdog,
        // and SIGHUP (systemctl reload) re-reads the configuration without dropping a request.
        let host = ServiceHost(logger: logger)
        do {
            try host.start(config)
        } catch {
            throw CLIError("cannot start: \(error)")
        }
        let sig = Signals.waitForTermination(onReload: {
            logger.notice("signal received", metadata: ["signal": .stringConvertible(SIGHUP)])
            do {
                let next = try options.serviceConfig()
                try next.validate()
                try host.reload(next)
            } catch let e as ConfigError {
                logger.error("reload refused; the running configuration stays", metadata: ["error": .string(e.message)])
            } catch let e as ValidationError {
                logger.error("reload refused; the running configuration stays", metadata: ["error": .string(e.message)])
            } catch {
                logger.error("reload failed; the running configuration stays", metadata: ["error": .string("\(error)")])
            }
        })
        logger.notice("signal received", metadata: ["signal": .stringConvertible(sig)])
        host.stop()
    }
}

/// The process's logger: one line per event on standard error with key=value metadata, every
/// value from a request quoted and escaped (`LogFormat`). Bootstrapped once per process.
func makeLogger(_ level: String) -> Logger {
    _ = bootstrapLogging
    var logger = Logger(label: "switchauth")
    logger.logLevel = Logger.Level(rawValue: level) ?? .info
    return logger
}

private let bootstrapLogging: Void = LoggingSystem.bootstrap { label in
    KeyValueLogHandler(label: label)
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
        abstract: "List or clear brute-force lockouts (sources, users, and a source for one user); show the policy.",
        subcommands: [List.self, Clear.self, Policy.self], defaultSubcommand: List.self)

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List current lockouts (scope: source, user or source_user).")
        @OptionGroup var options: DatabaseOptions
        func run() throws {
            let entries = try admin(options) { a in try AuthFailures.locked(a.db) }
            Output.print(Table(columns: ["scope", "subject", "failures", "locked_until"],
                               rows: entries.map { [$0.scope.label, $0.subject, String($0.failures), $0.lockedUntil] }), json: options.json)
        }
    }

    struct Clear: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Clear the lockouts and counters of one subject (an IP, an IPv6 /64 or user@domain, with its source_user counters), or --all.")
        @OptionGroup var options: DatabaseOptions
        @Argument(help: "An IP address, an IPv6 /64 (2001:db8:1:2::/64) or user@domain.") var subject: String?
        @Flag(name: .long, help: "Clear every lockout and counter.") var all = false
        func validate() throws {
            if (subject == nil) == !all { throw ValidationError("name a subject or give --all") }
        }
        func run() throws {
            let n = try admin(options) { a in try AuthFailures.clear(a.db, subject: all ? nil : subject) }
            Output.done("cleared \(n)", json: options.json, fields: ["cleared": String(n)])
        }
    }

    struct Policy: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show the lockout policy in force (from --config and SWITCHAUTH_* variables).",
            discussion: "Budgets are failures within the window; a spent budget locks for the duration. Sources with a success for the user within the trust period are exempt from the source and user locks.")
        @OptionGroup var options: DatabaseOptions
        func run() throws {
            let p = try options.serviceConfig().lockout
            Output.print(Table(columns: ["budget", "failures", "window_s", "lock_s", "trusted_sources_exempt"], rows: [
                ["source_user", String(p.threshold), String(p.windowSeconds), String(p.lockSeconds), "no"],
                ["source", String(p.sourceThreshold), String(p.windowSeconds), String(p.lockSeconds), "yes"],
                ["user", String(p.userThreshold), String(p.windowSeconds), String(p.lockSeconds), "yes"],
            ]), json: options.json)
            if !options.json {
                Console.out("trust: a success keeps its source trusted for the user \(p.trustSeconds) s; sources are IPv4 addresses and IPv6 /64s")
            }
        }
    }
}
