import Foundation
import TestSupport
import SwitchAuthService
import Testing
#if canImport(FoundationXML)
import FoundationXML
#endif

/// Every file in freeswitch-conf/ parses, and the names there equal the service's defaults.
@Suite("freeswitch-conf")
struct FreeSWITCHConfTests {
    static var root: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../freeswitch-conf").standardized
    }

    /// Elements with their attributes, in document order.
    final class Collector: NSObject, XMLParserDelegate {
        var elements: [(name: String, attributes: [String: String])] = []
        var failed = false
        func parser(_ parser: XMLParser, didStartElement elementName: String, namespaceURI: String?, qualifiedName qName: String?, attributes attributeDict: [String: String] = [:]) {
            elements.append((elementName, attributeDict))
        }
        func parser(_ parser: XMLParser, parseErrorOccurred parseError: Error) { failed = true }
    }

    static func parse(_ relative: String) throws -> [(name: String, attributes: [String: String])] {
        let data = try Data(contentsOf: root.appendingPathComponent(relative))
        let parser = XMLParser(data: data)
        let c = Collector()
        parser.delegate = c
        let ok = parser.parse()
        guard ok, !c.failed else { throw TestHTTPError(description: "\(relative) is not well-formed XML") }
        return c.elements
    }

    static func params(_ elements: [(name: String, attributes: [String: String])]) -> [String: String] {
        var out: [String: String] = [:]
        for e in elements where e.name == "param" {
            if let n = e.attributes["name"], let v = e.attributes["value"] { out[n] = v }
        }
        return out
    }

    @Test func everyFileParses() throws {
        let files = FileManager.default.enumerator(atPath: Self.root.path)?.compactMap { $0 as? String }.filter { $0.hasSuffix(".xml") } ?? []
        #expect(files.count >= 8)
        for f in files { _ = try Self.parse(f) }
    }

    @Test func namesMatchServiceDefaults() throws {
        let d = ServiceConfig()
        // xml_curl points at the service's default address and path, for the three sections.
        let curl = try Self.parse("autoload_configs/xml_curl.conf.xml")
        let url = try #require(curl.first { $0.name == "param" && $0.attributes["name"] == "gateway-url" })
        #expect(url.attributes["value"] == "http://\(d.server.host):\(d.server.port)\(d.path)")
        #expect(url.attributes["bindings"] == "directory|configuration|dialplan")
        #expect(Int(Self.params(curl)["timeout"] ?? "") ?? 0 >= 1)
        // Basic auth on by default, with the placeholder the service refuses until
        // 'switchauth gateway-secret' replaces it on both sides.
        #expect(Self.params(curl)["gateway-credentials"] == "freeswitch:\(ServiceConfig.placeholderSecret)")
        #expect(Self.params(curl)["auth-scheme"] == "basic")
        #expect(Double(d.queryTimeoutMilliseconds) / 1000 < Double(Self.params(curl)["timeout"] ?? "0")!, "fail-closed answers come before the switch gives up")

        // IP-auth profile: the service's profile name, owned context and ACL list; no challenge.
        let ip = try Self.parse("sip_profiles/switchauth_ip.xml")
        let ipName = try #require(ip.first { $0.name == "profile" }?.attributes["name"])
        #expect(d.dialplan.ipAuthProfiles.contains(ipName))
        let ipParams = Self.params(ip)
        #expect(d.dialplan.ownedContexts.contains(ipParams["context"] ?? ""))
        #expect(ipParams["apply-inbound-acl"] == d.aclListName)
        #expect(ipParams["auth-calls"] == "false")

        // SIP-auth profile: digest for everyone, calls in the service's context.
        let sip = Self.params(try Self.parse("sip_profiles/switchauth_sip.xml"))
        #expect(sip["auth-calls"] == "true")
        #expect(d.dialplan.ownedContexts.contains(sip["context"] ?? ""))
        #expect(sip["apply-inbound-acl"] == nil, "ACL must not bypass digest for devices")
        #expect(d.directory.userContext == sip["context"])
        // MD5 alone on the main profile: phones that read only the first challenge or know only MD5
        // give up when SHA-256 is offered (seen with baresip 1.0 and sipp 3.6 in Tests/e2e).
        #expect(sip["rfc8760-auth-algorithms"] == "md5")

        // The SHA-256 profile is the same profile on another port, offering SHA-256 first.
        let sha = Self.params(try Self.parse("sip_profiles/switchauth_sip_sha256.xml"))
        #expect(sha["rfc8760-auth-algorithms"] == "sha-256,md5")
        #expect(sha["sip-port"] != sip["sip-port"])
        let differing = Set(sip.keys).union(sha.keys).filter { sip[$0] != sha[$0] }
        #expect(differing == ["sip-port", "rfc8760-auth-algorithms"], "switchauth_sip_sha256.xml drifted from switchauth_sip.xml")

        // The static acl.conf fallback names the same list and allows nobody.
        let acl = try Self.parse("autoload_configs/acl.conf.xml")
        #expect(acl.filter { $0.name == "list" }.map { $0.attributes["name"] } == [d.aclListName])
        #expect(acl.filter { $0.name == "node" }.isEmpty)

        // Dialplan: the owned context refuses when reached statically; the routing context exists.
        let owned = try Self.parse("dialplan/switchauth.xml")
        #expect(Set(owned.filter { $0.name == "context" }.compactMap { $0.attributes["name"] }) == d.dialplan.ownedContexts)
        #expect(owned.contains { $0.name == "action" && $0.attributes["application"] == "respond" })
        #expect(!owned.contains { $0.name == "action" && ["bridge", "transfer"].contains($0.attributes["application"] ?? "") })
        let routing = try Self.parse("dialplan/switchauth_routing.xml")
        #expect(routing.first { $0.name == "context" }?.attributes["name"] == d.dialplan.routingContext)

        // The static directory is empty: no vanilla users to fall back to.
        #expect(!(try Self.parse("directory/default.xml")).contains { $0.name == "user" })

        // Event socket on loopback with the password the service uses by default.
        let es = Self.params(try Self.parse("autoload_configs/event_socket.conf.xml"))
        #expect(es["listen-ip"] == "127.0.0.1")
        #expect(es["password"] == ServiceConfig.defaultEventSocketPassword)
        #expect(es["password"] != "ClueCon")
        #expect(d.eventSockets.map { "\($0.host):\($0.port)" } == ["\(es["listen-ip"]!):\(es["listen-port"]!)"])
    }
}
