import ArgumentParser
import Decisions
import Foundation
import HTTPServer
import Logging
import Postgres
import Store
import SwitchAuthService
import SystemCalls

/// `switchauth demo`: a throwaway PostgreSQL, the seed's examples, the service on loopback, and
/// curl commands that replay real FreeSWITCH request shapes.
struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run SwitchAuth on a throwaway PostgreSQL with the seed's examples and print curl commands to try.",
        discussion: "Needs the PostgreSQL server binaries (Debian: postgresql). Everything is removed on exit (Ctrl-C).")

    @Option(help: "Port to listen on (127.0.0.1).") var port: UInt16 = 8088
    @Flag(help: "Replay the printed requests, check each answer, and exit (non-zero on a mismatch).") var selfTest = false
    @Option(help: "Log level: trace, debug, info, notice, warning, error or critical.") var logLevel: String = "notice"

    func validate() throws {
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical (got '\(logLevel)')")
        }
    }

    static let devicePassword = "demo-1001-secret"

    struct Example {
        var title: String
        var body: String
        var expect: String
    }

    static func examples() -> [Example] {
        let fixed = "hostname=demo&section=directory&tag_name=domain&key_name=name&key_value=voip.example.com"
        let nonce = "9b8f3c1e-demo-nonce", cnonce = "0a4f113b", nc = "00000001", uri = "sip:voip.example.com"
        let ha1 = DigestAlgorithm.md5.ha1(username: "1001", realm: "voip.example.com", password: devicePassword)
        let ha2 = DigestAlgorithm.md5.hash("REGISTER:\(uri)")
        let response = DigestAlgorithm.md5.hash("\(ha1):\(nonce):\(nc):\(cnonce):auth:\(ha2)")
        func register(_ response: String) -> String {
            fixed + "&Event-Name=REQUEST_PARAMS&action=sip_auth&sip_profile=switchauth_sip&sip_user_agent=demo"
                + "&sip_auth_username=1001&sip_auth_realm=voip.example.com&sip_auth_nonce=\(nonce)&sip_auth_uri=sip%3Avoip.example.com"
                + "&sip_auth_qop=auth&sip_auth_cnonce=\(cnonce)&sip_auth_nc=\(nc)&sip_auth_response=\(response)&sip_auth_method=REGISTER"
                + "&client_port=5060&key=id&user=1001&domain=voip.example.com&ip=198.51.100.20"
        }
        func call(from ip: String, to dest: String) -> String {
            "hostname=demo&section=dialplan&tag_name=&key_name=&key_value=&Event-Name=REQUEST_PARAMS&Caller-Network-Addr=\(ip)"
                + "&Caller-Destination-Number=\(dest)&Caller-Context=switchauth&variable_sip_network_ip=\(ip)"
                + "&variable_sip_authorized=true&variable_sip_acl_authed_by=switchauth_ip&variable_sofia_profile_name=switchauth_ip"
                + "&Hunt-Destination-Number=\(dest)&Hunt-Context=switchauth"
        }
        return [
            Example(title: "acl.conf: the networks FreeSWITCH lets in without credentials",
                    body: "hostname=demo&section=configuration&tag_name=configuration&key_name=name&key_value=acl.conf",
                    expect: #"<node type="allow" cidr="203.0.113.10/32"/>"#),
            Example(title: "REGISTER of 1001@voip.example.com with the right password: the user with its a1-hash",
                    body: register(response), expect: #"<param name="a1-hash" value="\#(ha1)"/>"#),
            Example(title: "REGISTER with a wrong password: the domain without the user (FreeSWITCH answers 403; counted for lockout)",
                    body: register(String(repeating: "0", count: 32)), expect: #"<domain name="voip.example.com"><users/></domain>"#),
            Example(title: "Call from 203.0.113.10 to 9112345: PBX1's prefix 91 -> allowed, accountcode 1001",
                    body: call(from: "203.0.113.10", to: "9112345"), expect: #"data="accountcode=1001""#),
            Example(title: "Call from 203.0.113.10 to 9212345: PBX12's prefix 92 -> allowed, accountcode 1012",
                    body: call(from: "203.0.113.10", to: "9212345"), expect: #"data="accountcode=1012""#),
            Example(title: "Call from 203.0.113.10 to 9312345: no prefix matches -> 403 Forbidden",
                    body: call(from: "203.0.113.10", to: "9312345"), expect: #"data="403 Forbidden""#),
            Example(title: "Call from 203.0.113.99 (no IP setting) -> 403 Forbidden",
                    body: call(from: "203.0.113.99", to: "9112345"), expect: #"data="403 Forbidden""#),
            Example(title: "Call from 198.51.100.50 (account 1050, prepaid, balance 0) -> 402 Payment Required",
                    body: call(from: "198.51.100.50", to: "4412345"), expect: #"data="402 Payment Required""#),
        ]
    }

    /// The seed's examples (one transaction).
    static func seed(_ db: Connection) throws {
        try db.transaction { tx in
            let a = Admin(db: tx)
            try a.addDomain("voip.example.com")
            try a.addAlias(domain: "voip.example.com", alias: "198.51.100.1")
            var pbx1 = Admin.AccountInput(number: "1001", name: "PBX1")
            pbx1.balance = "100"
            try a.addAccount(pbx1)
            var pbx12 = Admin.AccountInput(number: "1012", name: "PBX12")
            pbx12.billing = .postpaid
            pbx12.creditLimit = "500"
            pbx12.maxChannels = 10
            try a.addAccount(pbx12)
            try a.addIP(account: "1001", name: "PBX1", network: "203.0.113.10", prefix: "91", strip: false)
            try a.addIP(account: "1012", name: "PBX12", network: "203.0.113.10", prefix: "92", strip: false)
            var retail = Admin.AccountInput(number: "1000042", name: "Retail customer")
            retail.balance = "25"
            try a.addAccount(retail)
            var device = Admin.DeviceInput(account: "1000042", domain: "voip.example.com", username: "1001", password: devicePassword)
            device.callerIDName = "Front desk"
            device.callerIDNumber = "15550101001"
            try a.addDevice(device)
            var broke = Admin.AccountInput(number: "1050", name: "Out of credit")
            broke.balance = "0"
            try a.addAccount(broke)
            try a.addIP(account: "1050", name: "Broke PBX", network: "198.51.100.50", prefix: "", strip: false)
        }
    }

    func run() throws {
        Console.out("Starting a throwaway PostgreSQL ...")
        let cluster: TemporaryCluster
        do {
            cluster = try TemporaryCluster { Console.out("  \($0)") }
        } catch {
            throw CLIError("\(error)")
        }
        defer { cluster.stop() }
        let dbConfig = cluster.config(database: "postgres")
        let db = try Connection(dbConfig)
        let applied = try Migrator(directory: Migrator.defaultDirectory()).migrate(db)
        Console.out("Applied \(applied.count) migrations; loading the seed's examples (PBX1 and PBX12 on 203.0.113.10, device 1001@voip.example.com) ...")
        try Self.seed(db)
        db.close()

        var config = ServiceConfig()
        config.databaseURL = "host=\(cluster.directory) port=5432 user=postgres dbname=postgres"
        config.server.port = port
        config.server.workers = 2
        config.logLevel = logLevel
        config.eventSockets = [] // no FreeSWITCH next to the demo
        // As in production, lookups need the secret FreeSWITCH would send (gateway-credentials).
        let secret = GatewaySecret.generateSecret()
        config.basicAuthUser = "freeswitch"
        config.basicAuthPassword = secret
        try config.validate()
        let logger = makeLogger(logLevel)
        Signals.blockTermination()
        let service = try Service(config: config, logger: logger)
        try service.start()
        let url = "http://127.0.0.1:\(service.port)\(config.path)"
        Console.out("\nSwitchAuth is answering on \(url)   (metrics: http://127.0.0.1:\(service.port)/metrics)\n")
        var failures = 0
        for (i, e) in Self.examples().enumerated() {
            Console.out("\(i + 1). \(e.title)")
            Console.out("   curl -s -u freeswitch:\(secret) \(url) --data-binary '\(e.body)'")
            if selfTest {
                let answer = try HTTPGet.post(host: "127.0.0.1", port: service.port, path: config.path, body: e.body,
                                              credentials: "freeswitch:\(secret)")
                let ok = answer.contains(e.expect)
                if !ok { failures += 1 }
                Console.out("   \(ok ? "ok" : "MISMATCH"): \(ok ? e.expect : answer)")
            }
            Console.out("")
        }
        if selfTest {
            service.stop()
            if failures > 0 { throw CLIError("\(failures) demo answers differed") }
            Console.out("All \(Self.examples().count) demo answers are as documented.")
            return
        }
        Console.out("Try 'switchauth explain --ip 203.0.113.10 --destination 9112345 --database-url \"\(config.databaseURL)\"' in another shell.")
        Console.out("Press Ctrl-C to stop; the database is removed.")
        _ = Signals.waitForTermination()
        service.stop()
    }
}

/// A tiny blocking HTTP/1.1 client for the demo's self-test (one request per connection, like mod_xml_curl).
enum HTTPGet {
    static func post(host: String, port: UInt16, path: String, body: String, credentials: String) throws -> String {
        let auth = Data(credentials.utf8).base64EncodedString()
        let request = "POST \(path) HTTP/1.1\r\nHost: \(host):\(port)\r\nUser-Agent: freeswitch-xml/1.0\r\nAccept: */*\r\nAuthorization: Basic \(auth)\r\nContent-Length: \(body.utf8.count)\r\nContent-Type: application/x-www-form-urlencoded\r\nConnection: close\r\n\r\n\(body)"
        let out: [UInt8]
        do {
            let socket = try TCPSocket.connect(host: host, port: port, timeoutMilliseconds: 5_000)
            try socket.sendAll(request)
            out = try socket.receiveToEnd(timeoutMilliseconds: 5_000)
        } catch {
            throw CLIError("\(error)")
        }
        return String(decoding: out, as: UTF8.self)
    }
}
