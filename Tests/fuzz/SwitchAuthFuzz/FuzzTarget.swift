import Decisions
import FreeSWITCHXML
import HTTPServer
import Logging
import Store
import SwitchAuthService

/// The service's own pipeline with no database: `Resolver.classify` and `Resolver.decide` are the
/// functions the event loops and the database threads call; only the facts are made up here.
let resolver: Resolver = {
    var config = ServiceConfig()
    config.dialplan.ownedContexts = ["switchauth", "public", "default"]
    config.eventSockets = []
    let metrics = Metrics()
    let logger = Logger(label: "fuzz", factory: { _ in SwiftLogNoOpLogHandler() })
    return Resolver(config: config, metrics: metrics, acl: ACLCache(file: nil), logger: logger,
                    failures: FailureRecorder(config: config, metrics: metrics, logger: logger))
}()

/// One fuzz input through the whole request-to-decision path:
/// HTTP parser (fed in two pieces split where the input says) -> form decoding -> `classify` ->
/// facts derived from the input -> `decide` (decision and XML), and `fallback`.
/// Invariants: nothing traps; no answer contains `$${`; a parsed body is never longer than the input.
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
        let lookup = resolver.classify(FormFields(FormDecoder.decode(body)))
        var realm = "fuzz"
        if case .directory(_, let q) = lookup { realm = q.domain }
        let device = DeviceFacts(
            id: 1, username: "1001", realm: realm, enabled: first & 2 == 0,
            ha1MD5: DigestAlgorithm.md5.ha1(username: "1001", realm: realm, password: "pw"),
            ha1SHA256: DigestAlgorithm.sha256.ha1(username: "1001", realm: realm, password: "pw"),
            callerIDName: realm, callerIDNumber: "1",
            account: AccountFacts(id: 1, number: "A1", balance: first & 4 == 0 ? 1 : 0))
        let facts: LookupFacts
        switch lookup {
        case .answered: facts = .none
        case .directory:
            facts = .directory(DirectoryFactsResult(domainKnown: first & 8 == 0, device: first & 16 == 0 ? device : nil,
                                                    lockout: LockoutFacts(ipLocked: first & 32 != 0)))
        case .acl: facts = .acl(["192.0.2.0/24", realm])
        case .dialplan(_, let q):
            switch q {
            case .ip:
                facts = .ipCandidates([IPSettingFacts(id: 1, name: realm, network: IPNetwork("0.0.0.0/0")!, prefix: "9",
                                                      stripPrefix: first & 64 != 0, account: device.account)])
            default: facts = .device(device)
            }
        }
        let (outcome, _) = resolver.decide(lookup, facts)
        for doc in [outcome.body, resolver.fallback(lookup).body] {
            var i = 0
            while i + 2 < doc.count {
                precondition(!(doc[i] == 36 && doc[i + 1] == 36 && doc[i + 2] == 123), "preprocessor expansion in an answer")
                i += 1
            }
        }
    }
}
