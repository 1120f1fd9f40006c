import AdminConsole
import ArgumentParser
import Foundation
import Postgres
import Store

/// `switchauth console`: the operators' console and its operators.
struct ConsoleCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "console",
        abstract: "The operators' console (JSON API and HTML screens) and its operators.",
        discussion: """
            First admin:  switchauth console create-admin alice --config /etc/switchauth.conf   (prompts for the password)
            Operators:    switchauth console add-operator bob --role operator | read-only | admin
            API token:    switchauth console create-token bob --name billing   (printed once)
            """,
        subcommands: ConsoleSubcommands.all)
}

enum ConsoleSubcommands {
    static var all: [any ParsableCommand.Type] {
        [CreateAdmin.self, AddOperator.self, SetOperatorPassword.self, ListOperators.self, CreateToken.self]
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
