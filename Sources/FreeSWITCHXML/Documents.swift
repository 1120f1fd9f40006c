import ByteBuffers
import Decisions

/// The one writer every document goes through. Attribute values are escaped for XML and for
/// FreeSWITCH's preprocessor: `$` is written as `&#36;`, so `$${...}` can never appear in the raw
/// text that the preprocessor expands, while the XML parser still reads a `$`. Control characters
/// (which XML 1.0 forbids) are dropped.
///
/// The bytes go to a `ByteWriter`: one copy per piece of markup or value (through
/// `Array.append(contentsOf:)` a dialplan answer's 56 pieces were 5 % of its lookup).
public struct XMLWriter: ~Copyable {
    private var out: ByteWriter

    public init(capacity: Int = 1024) {
        out = ByteWriter(capacity: capacity)
    }

    /// What was written.
    public var bytes: [UInt8] { out.bytes }

    /// Trusted markup (element names, fixed attribute names) only.
    public mutating func raw(_ s: StaticString) { out.append(s) }

    /// Bytes already escaped (a fragment rendered once).
    mutating func append(escapedBytes: [UInt8]) { out.append(escapedBytes) }

    /// Bytes 0x20-0x3F that are written as they are: all but `"` `$` `&` `'` `<` `>`.
    static let plainBelow64: UInt64 = 0xafff_ff2b_0000_0000

    public mutating func escaped(_ s: String) {
        var s = s
        s.withUTF8 { buf in
            // Most values need nothing: found eight bytes at a time, then copied in one append.
            if !Self.needsEscaping(buf) {
                out.append(buf)
                return
            }
            // Runs of bytes that need nothing are copied in one append.
            var start = 0
            for i in 0..<buf.count {
                let b = buf[i]
                // Most bytes need nothing: all from 0x40 (but DEL), UTF-8 beyond ASCII, and the
                // printable ASCII below 0x40 other than " $ & ' < > (bits of `plainBelow64`).
                if b >= 0x40 ? b != 0x7f : (Self.plainBelow64 >> UInt64(b)) & 1 != 0 { continue }
                let replacement: StaticString
                switch b {
                case UInt8(ascii: "&"): replacement = "&amp;"
                case UInt8(ascii: "<"): replacement = "&lt;"
                case UInt8(ascii: ">"): replacement = "&gt;"
                case UInt8(ascii: "\""): replacement = "&quot;"
                case UInt8(ascii: "'"): replacement = "&#39;"
                case UInt8(ascii: "$"): replacement = "&#36;"
                case 0x09: replacement = "&#9;"
                case 0x0a: replacement = "&#10;"
                case 0x0d: replacement = "&#13;"
                case 0x00..<0x20, 0x7f: replacement = "" // dropped
                default: continue
                }
                if i > start { out.append(buf.baseAddress! + start, count: i - start) }
                raw(replacement)
                start = i + 1
            }
            if buf.count > start { out.append(buf.baseAddress! + start, count: buf.count - start) }
        }
    }

    /// Whether any byte is one `escaped` replaces or drops: below 0x20, `"` `$` `&` `'` `<` `>` or
    /// DEL. Eight bytes a step (the classic has-zero and has-less-than tests on the word, exact for
    /// "any"); bytes from 0x80 (UTF-8 beyond ASCII) need nothing.
    @inline(__always)
    static func needsEscaping(_ buf: UnsafeBufferPointer<UInt8>) -> Bool {
        let n = buf.count
        guard let p = buf.baseAddress else { return false }
        var i = 0
        let ones: UInt64 = 0x0101_0101_0101_0101, highs: UInt64 = 0x8080_8080_8080_8080
        while i + 8 <= n {
            let w = UnsafeRawPointer(p + i).loadUnaligned(as: UInt64.self)
            @inline(__always) func has(_ c: UInt64) -> UInt64 {
                let x = w ^ (ones &* c)
                return (x &- ones) & ~x & highs
            }
            let below = (w &- ones &* 0x20) & ~w & highs
            if below | has(0x22) | has(0x24) | has(0x26) | has(0x27) | has(0x3C) | has(0x3E) | has(0x7F) != 0 { return true }
            i += 8
        }
        while i < n {
            let b = p[i]
            if !(b >= 0x40 ? b != 0x7f : (plainBelow64 >> UInt64(b)) & 1 != 0) { return true }
            i += 1
        }
        return false
    }

    /// `<name attr="value" .../>` with escaped values.
    public mutating func element(_ name: StaticString, _ attributes: [(StaticString, String)], close: Bool = true) {
        raw("<")
        raw(name)
        for (key, value) in attributes { attribute(key, value) }
        close ? raw("/>") : raw(">")
    }

    /// `<name key="value"/>`: the one- and two-attribute shapes of the hot documents, without an
    /// array of attributes per element.
    public mutating func element(_ name: StaticString, _ key: StaticString, _ value: String, close: Bool = true) {
        raw("<")
        raw(name)
        attribute(key, value)
        close ? raw("/>") : raw(">")
    }

    public mutating func element(_ name: StaticString, _ key1: StaticString, _ value1: String,
                                 _ key2: StaticString, _ value2: String, close: Bool = true) {
        raw("<")
        raw(name)
        attribute(key1, value1)
        attribute(key2, value2)
        close ? raw("/>") : raw(">")
    }

    /// `<action application="set" data="NAME=VALUE"/>`, the value escaped, without building the
    /// `NAME=VALUE` string first. `name` is a channel variable's name: letters, digits and `_`.
    public mutating func setAction(_ name: StaticString, _ value: String) {
        raw(#"<action application="set" data=""#)
        raw(name)
        raw("=")
        escaped(value)
        raw("\"/>")
    }

    /// The same with a decimal value (its text fits a small String: nothing allocated).
    public mutating func setAction(_ name: StaticString, _ value: Int64) {
        setAction(name, String(value))
    }

    private mutating func attribute(_ key: StaticString, _ value: String) {
        raw(" ")
        raw(key)
        raw("=\"")
        escaped(value)
        raw("\"")
    }

    public var string: String { String(decoding: bytes, as: UTF8.self) }
}

/// FreeSWITCH XML documents (freeswitch-conf/PROTOCOL.md §3, §6, §7). Pure: values in, bytes out.
public enum Documents {
    /// The not-found document: FreeSWITCH moves on to the next binding, then its static tree.
    public static let notFound: [UInt8] = Array(
        #"<document type="freeswitch/xml"><section name="result"><result status="not found"/></section></document>"#.utf8)

    /// `dial-string` for `user/<id>@<domain>` bridges. Written through the escaper: `${` reaches
    /// FreeSWITCH as text for run-time expansion; `$${` never appears in the raw document.
    public static let dialString =
        "{^^:sip_invite_domain=${dialed_domain}:presence_id=${dialed_user}@${dialed_domain}}${sofia_contact(*/${dialed_user}@${dialed_domain})}"

    public static func directory(_ answer: DirectoryAnswer) -> [UInt8] {
        var w = XMLWriter()
        switch answer {
        case .notFound:
            return notFound
        case .domainWithoutUser(let domain):
            w.raw(#"<document type="freeswitch/xml"><section name="directory">"#)
            w.element("domain", "name", domain, close: false)
            w.raw("<users/></domain></section></document>")
        case let .user(domain, user):
            // The markup between two values written as one piece: the element helpers append a
            // piece per `<`, name, key and quote (a hundred appends a document, 4 % of a lookup).
            w.raw(#"<document type="freeswitch/xml"><section name="directory"><domain name=""#)
            w.escaped(domain)
            w.raw(#""><users><user id=""#)
            w.escaped(user.id)
            if let ms = user.cacheableMilliseconds {
                w.raw(#"" cacheable=""#)
                w.escaped(String(ms))
            }
            w.raw(#""><params><param name="a1-hash" value=""#)
            w.escaped(user.a1Hash)
            w.raw(#""/>"#)
            w.append(escapedBytes: fixedParams)
            w.raw("</params><variables>")
            for v in user.variables {
                w.raw(#"<variable name=""#)
                w.escaped(v.name)
                w.raw(#"" value=""#)
                w.escaped(v.value)
                w.raw(#""/>"#)
            }
            w.raw("</variables></user></users></domain></section></document>")
        }
        return w.bytes
    }

    /// The params every published user has, rendered (and escaped) once.
    static let fixedParams: [UInt8] = {
        var w = XMLWriter(capacity: 256)
        w.element("param", "name", "allow-empty-password", "value", "false")
        w.element("param", "name", "dial-string", "value", dialString)
        return w.bytes
    }()

    public static func acl(listName: String, networks: [IPNetwork]) -> [UInt8] {
        acl(listName: listName, networks: networks.map(\.description))
    }

    /// `networks` in CIDR text, in the order they are to be listed.
    public static func acl(listName: String, networks: [String]) -> [UInt8] {
        var w = XMLWriter(capacity: 200 + networks.count * 48)
        w.raw(#"<document type="freeswitch/xml"><section name="configuration">"#)
        w.raw(#"<configuration name="acl.conf" description="Network Lists"><network-lists>"#)
        w.element("list", [("name", listName), ("default", "deny")], close: false)
        for n in networks {
            w.element("node", [("type", "allow"), ("cidr", n)])
        }
        w.raw("</list></network-lists></configuration></section></document>")
        return w.bytes
    }

    /// Characters FreeSWITCH would expand or split in application data are removed from
    /// free-text values (caller-ID names); identifiers are already restricted by the schema.
    static func dataSafe(_ s: String) -> String {
        String(String.UnicodeScalarView(s.unicodeScalars.filter { c in
            c != "$" && c != "{" && c != "}" && c != "'" && c != "\"" && c != "\\" && c.value >= 0x20 && c.value != 0x7f
        }))
    }

    public static func dialplan(_ answer: DialplanAnswer, reason: Reason) -> [UInt8] {
        var w = XMLWriter()
        switch answer {
        case .notFound:
            return notFound
        case let .reject(context, rejection):
            w.raw(#"<document type="freeswitch/xml"><section name="dialplan" description="SwitchAuth">"#)
            w.element("context", "name", context, close: false)
            w.raw(#"<extension name="switchauth_reject"><condition>"#)
            w.setAction("switchauth_reason", reason.rawValue)
            w.element("action", "application", "respond", "data", "\(rejection.code) \(rejection.phrase)")
            w.raw("</condition></extension></context></section></document>")
        case let .allow(context, a):
            w.raw(#"<document type="freeswitch/xml"><section name="dialplan" description="SwitchAuth">"#)
            w.element("context", "name", context, close: false)
            w.raw(#"<extension name="switchauth_allow"><condition>"#)
            w.setAction("accountcode", a.account.number)
            w.setAction("switchauth_account_id", a.account.id)
            w.setAction("switchauth_auth_method", a.method)
            if let id = a.ipSettingID { w.setAction("switchauth_ip_setting_id", id) }
            if let id = a.deviceID { w.setAction("switchauth_device_id", id) }
            if let n = a.callerIDName { w.setAction("effective_caller_id_name", dataSafe(n)) }
            if let n = a.callerIDNumber { w.setAction("effective_caller_id_number", dataSafe(n)) }
            w.setAction("switchauth_reason", reason.rawValue)
            if a.globalLimits {
                // The slot is held in the shared database; the hangup event releases it.
                if a.account.maxChannels > 0 { w.setAction("switchauth_slot", "global") }
            } else if a.account.maxChannels > 0 {
                // The transfer below sends the channel back to ROUTING, and FreeSWITCH releases every
                // limit it holds on that state change unless `limit_ignore_transfer` is true
                // (freeswitch-conf/PROTOCOL.md §7). Without it the limit counted for milliseconds.
                w.setAction("limit_ignore_transfer", "true")
                // `hash REALM ACCOUNT MAX !USER_BUSY`, each value escaped where it goes (escaping
                // is byte by byte: the same bytes as the whole data escaped at once).
                w.raw(#"<action application="limit" data="hash "#)
                w.escaped(a.limitRealm)
                w.raw(" ")
                w.escaped(a.account.number)
                w.raw(" ")
                w.escaped(String(a.account.maxChannels))
                w.raw(#" !USER_BUSY"/>"#)
            }
            w.raw(#"<action application="transfer" data=""#)
            w.escaped(a.destination)
            w.raw(" XML ")
            w.escaped(a.routingContext)
            w.raw(#""/>"#)
            w.raw("</condition></extension></context></section></document>")
        }
        return w.bytes
    }
}
