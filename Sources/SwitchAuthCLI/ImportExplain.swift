import ArgumentParser
import Decisions
import FreeSWITCHXML
import Foundation
import Logging
import Postgres
import Store
import SwitchAuthService

// MARK: import

/// CSV import of domains, accounts, IP settings and devices in one transaction: all or nothing.
struct ImportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Import domains, accounts, IP settings and devices from CSV, all or nothing.",
        discussion: """
            The first line names the columns; each later line is one record, chosen by the 'record'
            column. Columns a record does not use may be empty or absent.
              record=domain   name [, alias]          (alias adds an alias to domain 'name')
              record=account  account, name [, kind, billing, balance, credit_limit, max_channels]
              record=ip       account, name, ip [, prefix, strip]
              record=device   account, username, domain, password [, caller_id_name, caller_id_number]
            Example:
              record,account,name,ip,prefix,username,domain,password
              domain,,voip.example.com,,,,,
              account,1001,PBX1,,,,,
              ip,1001,PBX1,203.0.113.10,91,,,
              device,1001,,,,1001,voip.example.com,s3cret-pass
            Any error names its line and leaves the database unchanged. Passwords are hashed on import.
            """)

    @OptionGroup var options: DatabaseOptions
    @Argument(help: "CSV file (- for standard input).") var file: String

    func run() throws {
        let text: String
        if file == "-" {
            text = String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self)
        } else {
            guard let t = try? String(contentsOfFile: file, encoding: .utf8) else { throw CLIError("cannot read \(file)") }
            text = t
        }
        let rows = try CSV.parse(text)
        guard let header = rows.first else { throw CLIError("empty file") }
        let columns = header.fields.map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
        guard columns.contains("record") else { throw CLIError("line 1: no 'record' column") }
        let db = try options.connect()
        var counts: [String: Int] = [:]
        do {
            try db.transaction { tx in
                let a = Admin(db: tx)
                for row in rows.dropFirst() where !row.fields.allSatisfy({ $0.isEmpty }) {
                    guard row.fields.count <= columns.count else { throw CLIError("line \(row.line): more fields than columns") }
                    var v: [String: String] = [:]
                    for (i, f) in row.fields.enumerated() { v[columns[i]] = f }
                    func need(_ k: String) throws -> String {
                        guard let x = v[k], !x.isEmpty else { throw CLIError("line \(row.line): '\(k)' is required for record \(v["record"] ?? "")") }
                        return x
                    }
                    do {
                        switch v["record"]?.lowercased() ?? "" {
                        case "domain":
                            let name = try need("name")
                            if let alias = v["alias"], !alias.isEmpty { try a.addAlias(domain: name, alias: alias) } else { try a.addDomain(name) }
                        case "account":
                            var input = Admin.AccountInput(number: try need("account"), name: try need("name"))
                            if let k = v["kind"], !k.isEmpty {
                                guard let kind = AccountKind(rawValue: k) else { throw AdminError("kind must be customer or carrier") }
                                input.kind = kind
                            }
                            if let b = v["billing"], !b.isEmpty {
                                guard let billing = Billing(rawValue: b) else { throw AdminError("billing must be prepaid or postpaid") }
                                input.billing = billing
                            }
                            if let b = v["balance"], !b.isEmpty { input.balance = b }
                            if let c = v["credit_limit"], !c.isEmpty { input.creditLimit = c }
                            if let m = v["max_channels"], !m.isEmpty {
                                guard let n = Int(m) else { throw AdminError("max_channels must be a whole number") }
                                input.maxChannels = n
                            }
                            try a.addAccount(input)
                        case "ip":
                            let strip = ["1", "true", "yes"].contains((v["strip"] ?? "").lowercased())
                            try a.addIP(account: try need("account"), name: try need("name"), network: try need("ip"), prefix: v["prefix"] ?? "", strip: strip)
                        case "device":
                            var input = Admin.DeviceInput(account: try need("account"), domain: try need("domain"),
                                                          username: try need("username"), password: try need("password"))
                            input.callerIDName = v["caller_id_name"] ?? ""
                            input.callerIDNumber = v["caller_id_number"] ?? ""
                            try a.addDevice(input)
                        case let other:
                            throw AdminError("unknown record type '\(other)' (domain, account, ip, device)")
                        }
                    } catch let e as AdminError {
                        throw CLIError("line \(row.line): \(e.message)")
                    } catch let e as PostgresError {
                        throw CLIError("line \(row.line): \(e.debugDescription)")
                    }
                    counts[v["record"]!.lowercased(), default: 0] += 1
                }
            }
        } catch let e as CLIError {
            throw CLIError("\(e.description); nothing was imported")
        }
        let summary = ["domain", "account", "ip", "device"].map { "\(counts[$0] ?? 0) \($0)" }.joined(separator: ", ")
        Output.done("imported \(summary)", json: options.json, fields: counts.mapValues(String.init))
    }
}

/// RFC 4180 CSV: quoted fields with doubled quotes and embedded commas or newlines.
enum CSV {
    struct Row { var line: Int; var fields: [String] }

    static func parse(_ text: String) throws -> [Row] {
        var rows: [Row] = []
        var fields: [String] = []
        var field = ""
        var inQuotes = false
        var line = 1
        var rowLine = 1
        var chars = Array(text.unicodeScalars)[...]
        while let c = chars.first {
            chars = chars.dropFirst()
            if inQuotes {
                if c == "\"" {
                    if chars.first == "\"" { field.unicodeScalars.append("\""); chars = chars.dropFirst() } else { inQuotes = false }
                } else {
                    if c == "\n" { line += 1 }
                    field.unicodeScalars.append(c)
                }
                continue
            }
            switch c {
            case "\"": inQuotes = true
            case ",": fields.append(field); field = ""
            case "\r": continue
            case "\n":
                fields.append(field)
                rows.append(Row(line: rowLine, fields: fields))
                fields = []
                field = ""
                line += 1
                rowLine = line
            default: field.unicodeScalars.append(c)
            }
        }
        if inQuotes { throw CLIError("line \(rowLine): unterminated quoted field") }
        if !field.isEmpty || !fields.isEmpty {
            fields.append(field)
            rows.append(Row(line: rowLine, fields: fields))
        }
        return rows
    }
}

// MARK: explain

struct Explain: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show every step of a decision and the SIP answer, from the live database.",
        discussion: """
            IP authentication:   switchauth explain --ip 203.0.113.10 --destination 9112345
            A device:            switchauth explain --user 1001@voip.example.com [--destination 15551234]
            """)

    @OptionGroup var options: DatabaseOptions
    @Option(help: "Source IP of a call.") var ip: String?
    @Option(help: "A device, user@domain.") var user: String?
    @Option(help: "Destination number.") var destination: String?
    @Flag(help: "Also print the XML answer.") var xml = false

    func validate() throws {
        if (ip == nil) == (user == nil) { throw ValidationError("give --ip (with --destination) or --user") }
        if ip != nil && destination == nil { throw ValidationError("--ip needs --destination") }
    }

    func run() throws {
        let config = try options.serviceConfig()
        let db = try options.connect()
        // The service's own pipeline: the request FreeSWITCH would send is classified, its facts
        // read and decided by the same functions the running service calls.
        let logger = Logger(label: "explain", factory: { _ in SwiftLogNoOpLogHandler() })
        let metrics = Metrics()
        let resolver = Resolver(config: config, metrics: metrics, acl: ACLCache(file: nil), logger: logger,
                                statistics: LockoutStatistics(config: config, logger: logger))
        let explanation: Explanation
        if let ip {
            explanation = try resolver.explainCall(from: ip, to: destination!, db: db)
        } else if let user {
            guard let at = user.lastIndex(of: "@") else { throw ValidationError("--user must be user@domain") }
            explanation = try resolver.explainDevice(String(user[..<at]), domain: String(user[user.index(after: at)...]),
                                                     destination: destination, db: db)
        } else {
            return
        }
        for (i, step) in explanation.steps.enumerated() {
            Console.out(step.hasPrefix("=>") || step.hasPrefix("  ") ? step : "\(i + 1). \(step)")
        }
        if xml, let text = explanation.dialplanXML { Console.out(text) }
    }
}
