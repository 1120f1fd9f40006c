import ArgumentParser
import Decisions
import FreeSWITCHXML
import Foundation
import Logging
import Postgres
import Store
import SwitchAuthService

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
        let resolver = Resolver.offline(config)
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
