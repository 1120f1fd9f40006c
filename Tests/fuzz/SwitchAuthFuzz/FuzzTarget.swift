import Decisions
import FreeSWITCHXML
import HTTPServer
import Logging
import Lookups
import Store
import SwitchAuthService

/// The service's own pipeline with no database: `Resolver.classify` and `Resolver.decide` are the
/// functions the event loops and the database threads call; only the facts are made up here.
let resolver: Resolver = {
    var config = ServiceConfig()
    config.dialplan.ownedContexts = ["switchauth", "public", "default"]
    config.eventSockets = []
    return Resolver.offline(config)
}()

/// One fuzz input through the whole request-to-decision path:
/// HTTP parser (fed in two pieces split where the input says) -> form decoding -> `classify` ->
/// facts derived from the input -> `decide` (decision and XML), and `fallback`.
/// Invariants: nothing traps; no answer contains `$${`; a parsed body is never longer than the input;
/// no grant without valid credentials: a sip_auth lookup publishes the user only when its digest
/// verifies against the device's HA1 (checked here independently of the decider, by recomputing the
/// response), the device and account may register and no lock applies.
public func fuzzOne(_ bytes: [UInt8]) {
    guard let first = bytes.first else { return }
    let input = Array(bytes.dropFirst())
    var bodies: [[UInt8]] = []
    if first & 1 == 0 {
        var parser = HTTPRequestParser(limits: HTTPLimits(maxHeaderBytes: 8192, maxHeaderCount: 64, maxBodyBytes: 65536))
        let split = input.isEmpty ? 0 : Int(first) % (input.count + 1)
        for event in parser.feed(input[..<split]) + parser.feed(input[split...]) {
            if case .request(let r) = event {
                precondition(r.body.count <= input.count, "body longer than input")
                bodies.append(r.body)
            }
        }
    } else {
        bodies.append(input)
    }
    for body in bodies {
        // The service's lazy form and the eager decoding agree on every field name in the body.
        let lazy = FormFields(encoded: body), eager = FormFields(FormDecoder.decode(body))
        precondition(lazy == eager, "lazy and eager forms differ")
        for name in Set(eager.pairs.map(\.name)).union(["section", "user", "sip_auth_response", ""]) {
            precondition(lazy.lookup(name) == eager.lookup(name), "lookup of a field differs")
        }
        let lookup = resolver.classify(lazy)
        var realm = "fuzz"
        if case .directory(_, let q) = lookup { realm = q.domain }
        let device = DeviceFacts(
            id: 1, username: "1001", realm: realm, enabled: first & 2 == 0,
            ha1MD5: DigestAlgorithm.md5.ha1(username: "1001", realm: realm, password: "pw"),
            ha1SHA256: DigestAlgorithm.sha256.ha1(username: "1001", realm: realm, password: "pw"),
            callerIDName: realm, callerIDNumber: "1",
            account: AccountFacts(id: 1, number: "A1", balance: first & 4 == 0 ? 1 : 0))
        let lockout = LockoutFacts(sourceLocked: first & 32 != 0, pairLocked: first & 128 != 0)
        let known = first & 16 == 0
        let facts: LookupFacts
        switch lookup {
        case .answered: facts = .none
        case .directory:
            facts = .directory(DirectoryFactsResult(domainKnown: first & 8 == 0, device: known ? device : nil, lockout: lockout))
        case .acl: facts = .acl(["192.0.2.0/24", realm])
        case .dialplan(_, let q):
            switch q {
            case .ip:
                facts = .ipCandidates([IPSettingFacts(id: 1, name: realm, network: IPNetwork("0.0.0.0/0")!, prefix: "9",
                                                      stripPrefix: first & 64 != 0, account: device.account)])
            default: facts = .device(device)
            }
        }
        var (outcome, effect) = resolver.decide(lookup, facts)
        if case let .admitCall(admission, decision) = effect {
            // A limited call is answered once the shared counters admit it: that answer is checked.
            outcome = resolver.admitted(lookup, decision, admission, .success(CallSlots.Admission(verdict: .admitted(inUse: 1), measurements: [])), db: nil)
        }
        if case .directory(_, .sipAuth(let s)) = lookup, outcome.body.count > 0,
           String(decoding: outcome.body, as: UTF8.self).contains("<user id=") {
            precondition(known && device.enabled && !lockout.sourceLocked && !lockout.pairLocked,
                         "granted to an unknown, disabled or locked user")
            precondition(s.credentials.map { validDigest($0, device: device) } ?? false, "granted without a valid digest")
        }
        for doc in [outcome.body, resolver.fallback(lookup).body] {
            var i = 0
            while i + 2 < doc.count {
                precondition(!(doc[i] == 36 && doc[i + 1] == 36 && doc[i + 2] == 123), "preprocessor expansion in an answer")
                i += 1
            }
        }
    }
}

/// RFC 2617 / RFC 8760 response recomputed from the device's HA1, without the decider's code path.
func validDigest(_ c: DigestCredentials, device: DeviceFacts) -> Bool {
    let response = c.response.lowercased()
    for (algorithm, ha1) in [(DigestAlgorithm.md5, device.ha1MD5), (.sha256, device.ha1SHA256)] {
        guard c.realm.lowercased() == device.realm.lowercased() else { return false }
        let ha2 = algorithm.hash("\(c.method):\(c.uri)")
        let expected: String
        if let qop = c.qop {
            expected = algorithm.hash("\(ha1):\(c.nonce):\(c.nc ?? ""):\(c.cnonce ?? ""):\(qop):\(ha2)")
        } else {
            expected = algorithm.hash("\(ha1):\(c.nonce):\(ha2)")
        }
        if expected == response { return true }
    }
    return false
}
