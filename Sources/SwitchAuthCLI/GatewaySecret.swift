import ArgumentParser
import Foundation
import SwitchAuthService
import SystemCalls
#if canImport(Glibc)
import Glibc
#endif

/// `switchauth gateway-secret`: the basic-auth secret mod_xml_curl sends, generated once and written
/// into both places that must agree: SwitchAuth's configuration (`basic_auth = user:secret`) and
/// FreeSWITCH's `autoload_configs/xml_curl.conf.xml` (`gateway-credentials`). The secret is never
/// printed.
struct GatewaySecret: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gateway-secret",
        abstract: "Generate the secret FreeSWITCH sends with every lookup and write it into both configurations.",
        discussion: """
            switchauth gateway-secret --config /etc/switchauth/switchauth.conf --freeswitch-conf /etc/freeswitch
            Sets basic_auth in the SwitchAuth configuration file (created with mode 0600 if missing) and
            gateway-credentials in <freeswitch-conf>/autoload_configs/xml_curl.conf.xml (as shipped in
            freeswitch-conf/). Does nothing when both already hold the same generated secret, unless
            --rotate. Then restart switchauth and run: fs_cli -x 'reload mod_xml_curl'.
            """)

    @Option(help: "SwitchAuth configuration file to write basic_auth into.") var config: String
    @Option(help: "FreeSWITCH configuration directory (holding autoload_configs/xml_curl.conf.xml).") var freeswitchConf: String
    @Option(help: "User name FreeSWITCH sends.") var user = "freeswitch"
    @Flag(help: "Replace a secret that is already set.") var rotate = false
    @Option(help: "With --rotate: minutes the previous secret stays accepted (basic_auth_previous), so that no lookup is refused until every switch has reloaded mod_xml_curl.")
    var overlapMinutes = 60

    func validate() throws {
        guard (0...10_080).contains(overlapMinutes) else { throw ValidationError("--overlap-minutes: 0 to 10080 (a week)") }
        guard !user.isEmpty, user.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 | 0x20 >= 0x61 && $0 | 0x20 <= 0x7a) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-") }) else {
            throw ValidationError("--user: letters, digits, '-' and '_' only")
        }
    }

    static let credentialsPattern = #"(<param\s+name="gateway-credentials"\s+value=")([^"]*)(")"#
    static let basicAuthPattern = #"(?m)^[ \t]*basic_auth[ \t]*=.*$"#

    func run() throws {
        let xmlPath = (freeswitchConf as NSString).appendingPathComponent("autoload_configs/xml_curl.conf.xml")
        guard let xml = try? String(contentsOfFile: xmlPath, encoding: .utf8) else {
            throw CLIError("cannot read \(xmlPath): copy freeswitch-conf/ over the FreeSWITCH configuration first")
        }
        let credentials = try NSRegularExpression(pattern: Self.credentialsPattern)
        let xmlRange = NSRange(xml.startIndex..., in: xml)
        guard let match = credentials.firstMatch(in: xml, range: xmlRange), let valueRange = Range(match.range(at: 2), in: xml) else {
            throw CLIError("\(xmlPath) has no <param name=\"gateway-credentials\" value=\"...\"/> (freeswitch-conf/ ships one)")
        }
        let configText = (try? String(contentsOfFile: config, encoding: .utf8)) ?? ""
        let basic = try NSRegularExpression(pattern: Self.basicAuthPattern)
        let configRange = NSRange(configText.startIndex..., in: configText)
        let current: String? = basic.firstMatch(in: configText, range: configRange).flatMap { Range($0.range, in: configText) }.map { r in
            String(configText[r].split(separator: "=", maxSplits: 1)[1]).trimmingCharacters(in: .whitespaces)
        }
        let inXML = String(xml[valueRange])
        if !rotate, let current, current == inXML, !current.contains(ServiceConfig.placeholderSecret) {
            Console.out("already set: \(config) and \(xmlPath) hold the same secret (use --rotate to replace it)")
            return
        }
        let value = "\(user):\(Self.generateSecret())"
        let newXML = credentials.stringByReplacingMatches(in: xml, range: xmlRange, withTemplate: "$1\(value)$3")
        let line = "basic_auth = \(value)"
        var newConfig: String
        if current != nil {
            newConfig = basic.stringByReplacingMatches(in: configText, range: configRange, withTemplate: NSRegularExpression.escapedTemplate(for: line))
        } else {
            newConfig = configText + (configText.isEmpty || configText.hasSuffix("\n") ? "" : "\n")
                + "# Written by 'switchauth gateway-secret': equal to gateway-credentials in \(xmlPath).\n\(line)\n"
        }
        // The secret being replaced stays accepted for the overlap: switchauth is reloaded first, then
        // each switch's mod_xml_curl, and lookups sent with the old secret meanwhile still pass.
        var overlapUntil: String?
        if let current, !current.isEmpty, !current.contains(ServiceConfig.placeholderSecret), overlapMinutes > 0 {
            let until = ISO8601DateFormatter().string(from: Date().addingTimeInterval(Double(overlapMinutes) * 60))
            newConfig = try Self.setting("basic_auth_previous", current, in: newConfig)
            newConfig = try Self.setting("basic_auth_previous_until", until, in: newConfig)
            overlapUntil = until
        }
        // Both files are written beside themselves first, then renamed: a failure leaves both as they were.
        // Each file keeps its owner and mode (a packaged configuration is root:switchauth 0640, so
        // that the service may read it); a new configuration file is 0600.
        let xmlFile: DurableFile, configFile: DurableFile
        do {
            xmlFile = try DurableFile.prepare(Array(newXML.utf8), for: xmlPath, suffix: ".switchauth-tmp",
                                              attributes: DurableFile.Attributes.of(xmlPath) ?? .init(mode: 0o640))
        } catch {
            throw CLIError("cannot write \(xmlPath): \(error)")
        }
        do {
            configFile = try DurableFile.prepare(Array(newConfig.utf8), for: config, suffix: ".switchauth-tmp",
                                                 attributes: DurableFile.Attributes.of(config) ?? .init(mode: 0o600))
        } catch {
            xmlFile.abandon()
            throw CLIError("cannot write \(config): \(error)")
        }
        do {
            try configFile.commit()
        } catch {
            xmlFile.abandon()
            throw CLIError("cannot replace \(config): \(error)")
        }
        do {
            try xmlFile.commit()
        } catch {
            throw CLIError("wrote \(config) but cannot replace \(xmlPath): \(error); run again")
        }
        Console.out("""
            wrote basic_auth to \(config) and gateway-credentials to \(xmlPath) (user \(user), a new 256-bit secret; not shown)
            """)
        if let overlapUntil {
            Console.out("the previous secret stays accepted until \(overlapUntil) (basic_auth_previous)")
        }
        Console.out("next: reload or restart switchauth first, then on every switch: fs_cli -x 'reload mod_xml_curl'")
    }

    /// `key = value` replacing the key's line, or appended.
    static func setting(_ key: String, _ value: String, in text: String) throws -> String {
        let pattern = try NSRegularExpression(pattern: "(?m)^[ \\t]*\(key)[ \\t]*=.*$")
        let range = NSRange(text.startIndex..., in: text)
        let line = "\(key) = \(value)"
        if pattern.firstMatch(in: text, range: range) != nil {
            return pattern.stringByReplacingMatches(in: text, range: range, withTemplate: NSRegularExpression.escapedTemplate(for: line))
        }
        return text + (text.isEmpty || text.hasSuffix("\n") ? "" : "\n") + line + "\n"
    }

    /// 32 random bytes, base64url without padding: no ':' (the user separator) and nothing XML escapes.
    static func generateSecret() -> String { RandomSecrets.token() }
}
