import ArgumentParser
import Decisions
import Foundation
import Store

extension AccountKind: ExpressibleByArgument {}
extension Billing: ExpressibleByArgument {}

// MARK: account

struct AccountCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "account",
        abstract: "Customers and carriers: status, balance, channel limit, expiry.",
        discussion: """
            A call is allowed only for an active, unexpired account. Customers also need funds:
            prepaid balance above 0, or postpaid balance + credit limit above 0 (else 402).
            Carriers are not balance-gated. max-channels 0 means unlimited.
            """,
        subcommands: [Add.self, List.self, Show.self, Update.self, Suspend.self, Resume.self, Close.self, Balance.self])

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add an account.")
        @OptionGroup var options: DatabaseOptions
        @Argument(help: "Account number (the accountcode), e.g. 1000042.") var number: String
        @Option(help: "Display name.") var name: String
        @Option(help: "customer or carrier.") var kind: AccountKind = .customer
        @Option(help: "prepaid or postpaid.") var billing: Billing = .prepaid
        @Option(help: "Starting balance.") var balance: String = "0"
        @Option(help: "Credit limit (postpaid).") var creditLimit: String = "0"
        @Option(help: "Concurrent channels allowed, across every switch; 0 = unlimited.") var maxChannels: Int = 0
        @Option(help: "Calls per second allowed, across every switch; 0 = unlimited.") var maxCps: Int = 0
        @Option(help: "Expiry, e.g. 2027-01-31T00:00:00Z.") var expires: String?
        func run() throws {
            var input = Admin.AccountInput(number: number, name: name)
            input.maxCPS = maxCps
            input.kind = kind
            input.billing = billing
            input.balance = balance
            input.creditLimit = creditLimit
            input.maxChannels = maxChannels
            input.expiresAt = expires
            let id = try admin(options) { try $0.addAccount(input) }
            Output.done("added account \(number)", json: options.json, fields: ["id": String(id), "number": number])
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List accounts.")
        @OptionGroup var options: DatabaseOptions
        func run() throws { try Output.print(rows: try admin(options) { try $0.accounts() }, json: options.json) }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one account.")
        @OptionGroup var options: DatabaseOptions
        @Argument var number: String
        func run() throws { try Output.print(row: try admin(options) { try $0.account(number) }, json: options.json) }
    }

    struct Update: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Change an account's name, billing, credit limit, channel or calls-per-second limit, or expiry.")
        @OptionGroup var options: DatabaseOptions
        @Argument var number: String
        @Option var name: String?
        @Option var billing: Billing?
        @Option var creditLimit: String?
        @Option var maxChannels: Int?
        @Option(help: "Calls per second allowed, across every switch; 0 = unlimited.") var maxCps: Int?
        @Option(help: "Expiry, e.g. 2027-01-31T00:00:00Z.") var expires: String?
        @Flag(help: "Remove the expiry.") var noExpiry = false
        func run() throws {
            var u = Admin.AccountUpdate()
            u.name = name
            u.billing = billing
            u.creditLimit = creditLimit
            u.maxChannels = maxChannels
            u.maxCPS = maxCps
            u.expiresAt = expires
            u.clearExpiry = noExpiry
            try admin(options) { try $0.updateAccount(number, u) }
            Output.done("updated account \(number)", json: options.json)
        }
    }

    struct Suspend: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Suspend: no registrations, no calls (403), IPs leave acl.conf.")
        @OptionGroup var options: DatabaseOptions
        @Argument var number: String
        func run() throws {
            try admin(options) { try $0.setStatus(number, .suspended) }
            Output.done("suspended account \(number)", json: options.json)
        }
    }

    struct Resume: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Make a suspended or closed account active again.")
        @OptionGroup var options: DatabaseOptions
        @Argument var number: String
        func run() throws {
            try admin(options) { try $0.setStatus(number, .active) }
            Output.done("resumed account \(number)", json: options.json)
        }
    }

    struct Close: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Close an account (kept for records; refused like suspended).")
        @OptionGroup var options: DatabaseOptions
        @Argument var number: String
        func run() throws {
            try admin(options) { try $0.setStatus(number, .closed) }
            Output.done("closed account \(number)", json: options.json)
        }
    }

    struct Balance: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show, set (--set) or adjust (--add, may be negative) a balance.")
        @OptionGroup var options: DatabaseOptions
        @Argument var number: String
        @Option(help: "New balance.") var set: String?
        @Option(help: "Amount to add; negative to charge, written --add=-12.50.") var add: String?
        func validate() throws {
            if set != nil && add != nil { throw ValidationError("give --set or --add, not both") }
        }
        func run() throws {
            let b = try admin(options) { try $0.balance(number, set: set, adjust: add) }
            Output.done(b, json: options.json, fields: ["balance": b])
        }
    }
}

// MARK: ip

struct IPCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ip",
        abstract: "IP settings: calls from an address or network, for destinations starting with a prefix.",
        discussion: """
            Example (the seed's two PBXs behind one address):
              switchauth ip add 1001 --name PBX1 --ip 203.0.113.10 --prefix 91
              switchauth ip add 1012 --name PBX12 --ip 203.0.113.10 --prefix 92
            A call from 203.0.113.10 to 91... is PBX1's, to 92... PBX12's, anything else gets 403.
            The longest matching prefix wins, then the most specific network.
            """,
        subcommands: [Add.self, List.self, Remove.self, Enable.self, Disable.self])

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add an IP setting to an account.")
        @OptionGroup var options: DatabaseOptions
        @Argument(help: "Account number.") var account: String
        @Option(help: "Name, e.g. PBX1.") var name: String
        @Option(help: "IP address (one host) or CIDR network, IPv4 or IPv6.") var ip: String
        @Option(help: "Destination prefix, digits only; empty = any destination.") var prefix: String = ""
        @Flag(help: "Strip the prefix from the destination before routing.") var strip = false
        @Option(help: "Calls per second allowed from this setting, across every switch; 0 = unlimited.") var maxCps: Int = 0
        func run() throws {
            let id = try admin(options) { try $0.addIP(account: account, name: name, network: ip, prefix: prefix, strip: strip, maxCPS: maxCps) }
            Output.done("added IP setting \(id)", json: options.json, fields: ["id": String(id)])
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List IP settings (of one account with --account).")
        @OptionGroup var options: DatabaseOptions
        @Option var account: String?
        func run() throws { try Output.print(rows: try admin(options) { try $0.ipSettings(account: account) }, json: options.json) }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove an IP setting by id.")
        @OptionGroup var options: DatabaseOptions
        @Argument var id: Int64
        func run() throws {
            try admin(options) { try $0.removeIP(id: id) }
            Output.done("removed IP setting \(id)", json: options.json)
        }
    }

    struct Enable: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Enable an IP setting.")
        @OptionGroup var options: DatabaseOptions
        @Argument var id: Int64
        func run() throws {
            try admin(options) { try $0.setIPEnabled(id: id, true) }
            Output.done("enabled IP setting \(id)", json: options.json)
        }
    }

    struct Disable: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Disable an IP setting (it leaves acl.conf; its calls get 403).")
        @OptionGroup var options: DatabaseOptions
        @Argument var id: Int64
        func run() throws {
            try admin(options) { try $0.setIPEnabled(id: id, false) }
            Output.done("disabled IP setting \(id)", json: options.json)
        }
    }
}

// MARK: destination

struct DestinationCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "destination",
        abstract: "Destination prefix lists: what calls may dial, for every account or for one.",
        discussion: """
            Examples:
              switchauth destination deny 1900 --note "premium rate"      (every account)
              switchauth destination allow 1900 --account 1001           (this account may)
              switchauth destination allow 44 --account 1012             (1012 dials only 44...)
            The longest matching prefix decides; an account's rule beats a global one of the same
            length, deny beats allow. An account with allow rules of its own dials only what they
            (or a global allow) begin. Refusals: 403 (destination_denied, destination_not_allowed).
            """,
        subcommands: [Deny.self, Allow.self, List.self, Remove.self])

    struct RuleOptions: ParsableArguments {
        @Argument(help: "Destination prefix: 1-32 of 0-9 + * #.") var prefix: String
        @Option(help: "Account number; without it the rule applies to every account.") var account: String?
        @Option(help: "Why (shown in explain and the decision log).") var note: String = ""
    }

    struct Deny: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Deny destinations beginning with a prefix.")
        @OptionGroup var options: DatabaseOptions
        @OptionGroup var rule: RuleOptions
        func run() throws {
            let id = try admin(options) { try $0.addDestinationRule(account: rule.account, action: .deny, prefix: rule.prefix, note: rule.note) }
            Output.done("added destination rule \(id): deny \(rule.prefix) for \(rule.account.map { "account \($0)" } ?? "every account")",
                        json: options.json, fields: ["id": String(id)])
        }
    }

    struct Allow: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Allow destinations beginning with a prefix.")
        @OptionGroup var options: DatabaseOptions
        @OptionGroup var rule: RuleOptions
        func run() throws {
            let id = try admin(options) { try $0.addDestinationRule(account: rule.account, action: .allow, prefix: rule.prefix, note: rule.note) }
            Output.done("added destination rule \(id): allow \(rule.prefix) for \(rule.account.map { "account \($0)" } ?? "every account")",
                        json: options.json, fields: ["id": String(id)])
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the rules (with --account: those that apply to it).")
        @OptionGroup var options: DatabaseOptions
        @Option var account: String?
        func run() throws { Output.print(try admin(options) { try $0.listDestinationRules(account: account) }, json: options.json) }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a rule by id.")
        @OptionGroup var options: DatabaseOptions
        @Argument var id: Int64
        func run() throws {
            try admin(options) { try $0.removeDestinationRule(id: id) }
            Output.done("removed destination rule \(id)", json: options.json)
        }
    }
}

// MARK: fraud

extension FraudThreshold.Metric: ExpressibleByArgument {}

struct FraudCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fraud",
        abstract: "Fraud thresholds per account: a warning level (logged, counted, webhook) and a critical one (account suspended).",
        discussion: """
            Metrics: calls_per_minute (calls admitted in the current UTC minute), attempts_per_day
            (calls attempted, admitted or not, in the current UTC day), concurrent_calls (calls up).
            A level is passed when the value goes above it; passing critical suspends the account at
            once (audited; every switch is told) and refuses the call with 403 fraud_critical.
            Examples:
              switchauth fraud set 1001 --metric calls_per_minute --warning 30 --critical 60
              switchauth fraud set 1001 --metric attempts_per_day --prefix 882 --critical 20
            Counted with call_limits = global only.
            """,
        subcommands: [Set.self, List.self, Remove.self, Events.self])

    struct Set: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Set (add or replace) a threshold.")
        @OptionGroup var options: DatabaseOptions
        @Argument(help: "Account number.") var account: String
        @Option(help: "calls_per_minute, attempts_per_day or concurrent_calls.") var metric: FraudThreshold.Metric
        @Option(help: "Destination prefix the threshold counts (empty: every destination).") var prefix: String = ""
        @Option(help: "Warning level.") var warning: Int?
        @Option(help: "Critical level: passing it suspends the account.") var critical: Int?
        func run() throws {
            let id = try admin(options) {
                try $0.setFraudThreshold(account: account, metric: metric, prefix: prefix, warning: warning, critical: critical)
            }
            Output.done("fraud threshold \(id) of account \(account): \(metric.rawValue)\(prefix.isEmpty ? "" : " to \(prefix)") warning \(warning.map(String.init) ?? "-") critical \(critical.map(String.init) ?? "-")",
                        json: options.json, fields: ["id": String(id)])
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List thresholds (of one account with --account).")
        @OptionGroup var options: DatabaseOptions
        @Option var account: String?
        func run() throws { Output.print(try admin(options) { try $0.listFraudThresholds(account: account) }, json: options.json) }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a threshold by id.")
        @OptionGroup var options: DatabaseOptions
        @Argument var id: Int64
        func run() throws {
            try admin(options) { try $0.removeFraudThreshold(id: id) }
            Output.done("removed fraud threshold \(id)", json: options.json)
        }
    }

    struct Events: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Levels passed, newest first.")
        @OptionGroup var options: DatabaseOptions
        @Option var account: String?
        @Option(help: "At most this many.") var limit: Int = 100
        func run() throws { Output.print(try admin(options) { try $0.listFraudEvents(account: account, limit: limit) }, json: options.json) }
    }
}

// MARK: device

struct PasswordOptions: ParsableArguments {
    @Flag(help: "Read the password from standard input (one line).") var passwordStdin = false
    @Option(help: "Read the password from a file.") var passwordFile: String?
    @Flag(help: "Generate a password and print it once.") var generatePassword = false
    @Option(help: "The password itself (lands in shell history: prefer the prompt or --password-stdin).") var password: String?

    func read() throws -> (String, Bool) {
        try PasswordInput.read(stdin: passwordStdin, file: passwordFile, generate: generatePassword, argument: password)
    }
}

struct DeviceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "device",
        abstract: "SIP devices (username, password, domain) that register and call with digest auth.",
        discussion: "Only the HA1 digests (MD5 and SHA-256, over the domain's name as realm) are stored, never the password.",
        subcommands: [Add.self, List.self, Show.self, Passwd.self, Enable.self, Disable.self, Remove.self])

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add a device; the password is prompted for unless given another way.")
        @OptionGroup var options: DatabaseOptions
        @Argument(help: "Account number.") var account: String
        @Option(help: "SIP username, e.g. 1001.") var username: String
        @Option(help: "SIP domain (its primary name).") var domain: String
        @Option(help: "Caller-ID name.") var callerIdName: String = ""
        @Option(help: "Caller-ID number.") var callerIdNumber: String = ""
        @OptionGroup var secret: PasswordOptions
        func run() throws {
            let (password, generated) = try secret.read()
            var input = Admin.DeviceInput(account: account, domain: domain, username: username, password: password)
            input.callerIDName = callerIdName
            input.callerIDNumber = callerIdNumber
            let id = try admin(options) { try $0.addDevice(input) }
            var fields = ["id": String(id), "device": "\(username)@\(domain)"]
            if generated { fields["generated_secret"] = password }
            Output.done("added device \(username)@\(domain)" + (generated ? "\ngenerated secret (shown once): \(password)" : ""), json: options.json, fields: fields)
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List devices (of one account with --account).")
        @OptionGroup var options: DatabaseOptions
        @Option var account: String?
        func run() throws { try Output.print(rows: try admin(options) { try $0.devices(account: account) }, json: options.json) }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a device (user@domain).")
        @OptionGroup var options: DatabaseOptions
        @Argument var device: String
        func run() throws { try Output.print(row: try admin(options) { try $0.device(device) }, json: options.json) }
    }

    struct Passwd: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Set a device's password (user@domain).")
        @OptionGroup var options: DatabaseOptions
        @Argument var device: String
        @OptionGroup var secret: PasswordOptions
        func run() throws {
            let (password, generated) = try secret.read()
            try admin(options) { try $0.setPassword(device, password: password) }
            Output.done("password set for \(device)" + (generated ? "\ngenerated secret (shown once): \(password)" : ""), json: options.json,
                        fields: generated ? ["generated_secret": password] : [:])
        }
    }

    struct Enable: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Enable a device.")
        @OptionGroup var options: DatabaseOptions
        @Argument var device: String
        func run() throws {
            try admin(options) { try $0.setDeviceEnabled(device, true) }
            Output.done("enabled \(device)", json: options.json)
        }
    }

    struct Disable: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Disable a device (its registrations and calls get 403).")
        @OptionGroup var options: DatabaseOptions
        @Argument var device: String
        func run() throws {
            try admin(options) { try $0.setDeviceEnabled(device, false) }
            Output.done("disabled \(device)", json: options.json)
        }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a device.")
        @OptionGroup var options: DatabaseOptions
        @Argument var device: String
        func run() throws {
            try admin(options) { try $0.removeDevice(device) }
            Output.done("removed \(device)", json: options.json)
        }
    }
}

// MARK: domain

struct DomainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "domain",
        abstract: "SIP domains and their aliases (the server's IP address and other host names).",
        discussion: """
            The domain's name is the digest realm its devices' HA1s are computed over. Set the SIP
            profile's challenge-realm to it (freeswitch-conf does) so that devices that reach the
            server by IP address or by an alias compute the same HA1.
            """,
        subcommands: [Add.self, Alias.self, List.self, Remove.self, RemoveAlias.self])

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add a domain.")
        @OptionGroup var options: DatabaseOptions
        @Argument var name: String
        func run() throws {
            try admin(options) { try $0.addDomain(name) }
            Output.done("added domain \(name)", json: options.json)
        }
    }

    struct Alias: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add an alias (e.g. the server's IP) to a domain.")
        @OptionGroup var options: DatabaseOptions
        @Argument var domain: String
        @Argument var alias: String
        func run() throws {
            try admin(options) { try $0.addAlias(domain: domain, alias: alias) }
            Output.done("added alias \(alias) to \(domain)", json: options.json)
        }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a domain and its aliases (refused while devices use it).")
        @OptionGroup var options: DatabaseOptions
        @Argument var name: String
        func run() throws {
            try admin(options) { try ConsoleStore(db: $0.db).removeDomain(name) }
            Output.done("removed domain \(name)", json: options.json)
        }
    }

    struct RemoveAlias: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "remove-alias", abstract: "Remove an alias of a domain.")
        @OptionGroup var options: DatabaseOptions
        @Argument var domain: String
        @Argument var alias: String
        func run() throws {
            try admin(options) { try ConsoleStore(db: $0.db).removeAlias(domain: domain, alias: alias) }
            Output.done("removed alias \(alias) of \(domain)", json: options.json)
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List domains with aliases.")
        @OptionGroup var options: DatabaseOptions
        func run() throws { Output.print(try admin(options) { try $0.listDomains() }, json: options.json) }
    }
}
