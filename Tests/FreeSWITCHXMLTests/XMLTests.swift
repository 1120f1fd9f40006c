import Decisions
import Foundation
import TestSupport
import FreeSWITCHXML
import Testing
#if canImport(FoundationXML)
import FoundationXML
#endif

@Suite("FreeSWITCH XML rendering")
struct XMLTests {
    static func text(_ b: [UInt8]) -> String { String(decoding: b, as: UTF8.self) }

    @Test(arguments: [
        ("plain", "plain"),
        ("a&b", "a&amp;b"), ("<x>", "&lt;x&gt;"), ("\"q\"", "&quot;q&quot;"), ("it's", "it&#39;s"),
        ("$${hostname}", "&#36;&#36;{hostname}"), ("${x}", "&#36;{x}"),
        ("ünï ☎", "ünï ☎"), ("a\u{0}b\u{1}c\u{7f}", "abc"), ("line\nbreak", "line&#10;break"),
    ])
    func escaping(input: String, expected: String) {
        var w = XMLWriter()
        w.escaped(input)
        #expect(w.string == expected)
        #expect(!w.string.contains("$${"))
    }

    /// Every ASCII byte at every offset of a 19-byte value (across the eight-byte steps of the
    /// fast test and its tail), and two of them in one value: the same as escaping byte by byte.
    @Test func everyByteAtEveryOffset() {
        func reference(_ b: UInt8) -> String {
            switch b {
            case UInt8(ascii: "&"): return "&amp;"
            case UInt8(ascii: "<"): return "&lt;"
            case UInt8(ascii: ">"): return "&gt;"
            case UInt8(ascii: "\""): return "&quot;"
            case UInt8(ascii: "'"): return "&#39;"
            case UInt8(ascii: "$"): return "&#36;"
            case 0x09, 0x0a, 0x0d: return "&#\(b);"
            case 0x00..<0x20, 0x7f: return ""
            default: return String(UnicodeScalar(b))
            }
        }
        for b in UInt8(0)..<0x80 {
            for offset in 0..<19 {
                var value = Array(repeating: UInt8(ascii: "a"), count: 19)
                value[offset] = b
                value[(offset + 11) % 19] = b == 0x7f ? UInt8(ascii: "<") : 0x7f
                var w = XMLWriter()
                w.escaped(String(decoding: value, as: UTF8.self))
                #expect(w.string == value.map(reference).joined(), "byte \(b) at \(offset)")
            }
        }
    }

    /// A `set` action is the bytes of the general element writer with `NAME=VALUE` as its data,
    /// for strings (escaped) and for integers (written as digits).
    @Test(arguments: [Int64.min, -1, 0, 7, 10, 99, 1_000_042, Int64.max])
    func setActionWithAnInteger(value: Int64) {
        var fast = XMLWriter(), general = XMLWriter()
        fast.setAction("switchauth_account_id", value)
        general.element("action", "application", "set", "data", "switchauth_account_id=\(value)")
        #expect(fast.string == general.string)
    }

    @Test(arguments: ["1001", "", "a&b<c>\"d'e$f", "tab\tx", "ünï"])
    func setActionWithAString(value: String) {
        var fast = XMLWriter(), general = XMLWriter()
        fast.setAction("accountcode", value)
        general.element("action", "application", "set", "data", "accountcode=\(value)")
        #expect(fast.string == general.string)
    }

    @Test func notFoundDocument() {
        #expect(Self.text(Documents.notFound) == #"<document type="freeswitch/xml"><section name="result"><result status="not found"/></section></document>"#)
    }

    @Test func domainWithoutUser() {
        #expect(Self.text(Documents.directory(.domainWithoutUser(domain: "voip.example.com")))
                == #"<document type="freeswitch/xml"><section name="directory"><domain name="voip.example.com"><users/></domain></section></document>"#)
    }

    @Test func directoryUserGolden() {
        let user = PublishedUser(id: "1001", a1Hash: "0123456789abcdef0123456789abcdef", cacheableMilliseconds: nil, variables: [
            .init("accountcode", "1000042"), .init("user_context", "switchauth"), .init("effective_caller_id_name", "O'Brien & <Sons> $${x}"),
        ])
        let expected = #"<document type="freeswitch/xml"><section name="directory"><domain name="voip.example.com"><users><user id="1001"><params>"#
            + #"<param name="a1-hash" value="0123456789abcdef0123456789abcdef"/><param name="allow-empty-password" value="false"/>"#
            + #"<param name="dial-string" value="{^^:sip_invite_domain=&#36;{dialed_domain}:presence_id=&#36;{dialed_user}@&#36;{dialed_domain}}&#36;{sofia_contact(*/&#36;{dialed_user}@&#36;{dialed_domain})}"/>"#
            + #"</params><variables><variable name="accountcode" value="1000042"/><variable name="user_context" value="switchauth"/>"#
            + #"<variable name="effective_caller_id_name" value="O&#39;Brien &amp; &lt;Sons&gt; &#36;&#36;{x}"/></variables></user></users></domain></section></document>"#
        #expect(Self.text(Documents.directory(.user(domain: "voip.example.com", user))) == expected)
        var cached = user
        cached.cacheableMilliseconds = 60000
        #expect(Self.text(Documents.directory(.user(domain: "voip.example.com", cached))).contains(#"<user id="1001" cacheable="60000">"#))
    }

    @Test func aclGolden() {
        let doc = Documents.acl(listName: "switchauth_ip", networks: ["203.0.113.10/32", "2001:db8::/32"].compactMap(IPNetwork.init))
        #expect(Self.text(doc) == #"<document type="freeswitch/xml"><section name="configuration"><configuration name="acl.conf" description="Network Lists"><network-lists><list name="switchauth_ip" default="deny"><node type="allow" cidr="203.0.113.10/32"/><node type="allow" cidr="2001:db8::/32"/></list></network-lists></configuration></section></document>"#)
        #expect(Self.text(Documents.acl(listName: "switchauth_ip", networks: [String]())).contains(#"<list name="switchauth_ip" default="deny"></list>"#))
    }

    @Test func dialplanRejectGolden() {
        let doc = Documents.dialplan(.reject(context: "switchauth", .forbidden), reason: .noIPMatch)
        #expect(Self.text(doc) == #"<document type="freeswitch/xml"><section name="dialplan" description="SwitchAuth"><context name="switchauth"><extension name="switchauth_reject"><condition><action application="set" data="switchauth_reason=no_ip_match"/><action application="respond" data="403 Forbidden"/></condition></extension></context></section></document>"#)
    }

    @Test func dialplanAllowGolden() {
        let a = DialplanAllowance(account: AccountFacts(id: 7, number: "1012", name: "1012", kind: .customer, status: .active, billing: .prepaid, balance: 10, creditLimit: 0, maxChannels: 10, expired: false), method: "ip", ipSettingID: 11, deviceID: nil,
                                  destination: "9212345", callerIDName: "Desk ${evil} 'x'", callerIDNumber: "1555",
                                  routingContext: "switchauth_routing", limitRealm: "switchauth")
        let doc = Self.text(Documents.dialplan(.allow(context: "switchauth", a), reason: .ok))
        #expect(doc == #"<document type="freeswitch/xml"><section name="dialplan" description="SwitchAuth"><context name="switchauth"><extension name="switchauth_allow"><condition>"#
                + #"<action application="set" data="accountcode=1012"/><action application="set" data="switchauth_account_id=7"/>"#
                + #"<action application="set" data="switchauth_auth_method=ip"/><action application="set" data="switchauth_ip_setting_id=11"/>"#
                + #"<action application="set" data="effective_caller_id_name=Desk evil x"/><action application="set" data="effective_caller_id_number=1555"/>"#
                + #"<action application="set" data="switchauth_reason=ok"/><action application="set" data="limit_ignore_transfer=true"/><action application="limit" data="hash switchauth 1012 10 !USER_BUSY"/>"#
                + #"<action application="transfer" data="9212345 XML switchauth_routing"/></condition></extension></context></section></document>"#)
    }

    /// call_limits = global: the slot is held in the shared database, so no per-switch `limit`
    /// (which would count N times with N switches); the channel is marked for the hangup listener.
    @Test func dialplanAllowGlobalLimitsHasNoLimitHash() {
        let a = DialplanAllowance(account: AccountFacts(id: 7, number: "1012", maxChannels: 10), method: "ip", ipSettingID: 11, deviceID: nil,
                                  destination: "9212345", callerIDName: nil, callerIDNumber: nil,
                                  routingContext: "switchauth_routing", limitRealm: "switchauth", globalLimits: true)
        let doc = Self.text(Documents.dialplan(.allow(context: "switchauth", a), reason: .ok))
        #expect(!doc.contains("limit"))
        #expect(doc.contains(#"<action application="set" data="switchauth_slot=global"/><action application="transfer" data="9212345 XML switchauth_routing"/>"#))
    }

    /// Every rendered document is well-formed XML (checked with Foundation's parser).
    @Test func documentsAreWellFormed() throws {
        let weird = "<&>\"'$${x}\u{1}ü"
        let docs = [
            Documents.notFound,
            Documents.directory(.domainWithoutUser(domain: weird)),
            Documents.directory(.user(domain: weird, PublishedUser(id: weird, a1Hash: weird, cacheableMilliseconds: 5, variables: [.init(weird, weird)]))),
            Documents.acl(listName: weird, networks: [IPNetwork("10.0.0.0/8")!]),
            Documents.dialplan(.reject(context: weird, .paymentRequired), reason: .insufficientBalance),
        ]
        for d in docs {
            #expect(try XMLDocumentCheck.isWellFormed(d))
            #expect(!Self.text(d).contains("$${"))
        }
    }
}

