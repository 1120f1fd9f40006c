import ArgumentParser
@testable import SwitchAuthCLI
import SwitchAuthService
import Testing

/// The console's settings are rows of the one configuration table (`console_*`); its flags
/// override them, and a non-loopback address is refused unless made public on purpose.
@Suite("Console settings")
struct ConsoleSettingsTests {
    @Test func configurationRowsThenFlags() throws {
        let config = try ServiceConfig.load(fileText: """
            console_listen_port = 9001
            console_workers = 3
            console_session_s = 3600
            console_trusted_proxies = 127.0.0.1, ::1
            console_secure_cookies = true
            """, environment: ["SWITCHAUTH_CONSOLE_NICE": "5"])
        let fromFile = try ConsoleServe.parse([]).consoleConfig(config)
        #expect(fromFile.host == "127.0.0.1" && fromFile.port == 9001 && fromFile.workers == 3 && fromFile.databaseConnections == 2)
        #expect(fromFile.sessionSeconds == 3600 && fromFile.trustedProxies == ["127.0.0.1", "::1"] && fromFile.secureCookies && fromFile.nice == 5)
        let flags = try ConsoleServe.parse(["--port", "9002", "--workers", "1", "--trusted-proxy", "127.0.0.2", "--nice", "0"]).consoleConfig(config)
        #expect(flags.port == 9002 && flags.workers == 1 && flags.trustedProxies == ["127.0.0.2"] && flags.nice == 0)
        #expect(flags.sessionSeconds == 3600, "a row without a flag keeps the file's value")
    }

    @Test func badValuesAndPublicAddressesAreRefused() throws {
        #expect(throws: ConfigError.self) { try ServiceConfig.load(fileText: "console_workers = 0", environment: [:]) }
        #expect(throws: ConfigError.self) { try ServiceConfig.load(fileText: "console_trusted_proxies = proxy.example", environment: [:]) }
        #expect(throws: ConfigError.self) { try ServiceConfig.load(fileText: "console_session_s = 10", environment: [:]) }
        let publicHost = try ServiceConfig.load(fileText: "console_listen_host = 0.0.0.0", environment: [:])
        #expect(throws: CLIError.self) { try ConsoleServe.parse([]).consoleConfig(publicHost) }
        #expect(try ConsoleServe.parse(["--force-public"]).consoleConfig(publicHost).host == "0.0.0.0")
        let forced = try ServiceConfig.load(fileText: "console_listen_host = 0.0.0.0\nconsole_force_public = yes", environment: [:])
        #expect(try ConsoleServe.parse([]).consoleConfig(forced).forcePublic)
        #expect(throws: (any Error).self) { try ConsoleServe.parse(["--workers", "0"]) }
    }
}
