import Decisions
import FreeSWITCHXML
import HTTPServer

/// One fuzz input through the whole request-to-decision path that needs no database:
/// HTTP parser (fed in two pieces split where the input says) -> form decoding -> request
/// classification -> directory and dialplan decisions over facts derived from the input -> XML.
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
        let fields = FormFields(FormDecoder.decode(body))
        guard let request = try? XMLCurlRequest(fields: fields) else { continue }
        let device = DeviceFacts(
            id: 1, username: "1001", realm: request.keyValue, enabled: first & 2 == 0,
            ha1MD5: DigestAlgorithm.md5.ha1(username: "1001", realm: request.keyValue, password: "pw"),
            ha1SHA256: DigestAlgorithm.sha256.ha1(username: "1001", realm: request.keyValue, password: "pw"),
            callerIDName: request.keyValue, callerIDNumber: "1",
            account: AccountFacts(id: 1, number: "A1", balance: first & 4 == 0 ? 1 : 0))
        var out: [[UInt8]] = []
        if let q = try? DirectoryDecider.classify(request) {
            let lockout = LockoutFacts(sourceLocked: first & 32 != 0, pairLocked: first & 128 != 0)
            let known = first & 16 == 0
            let d = DirectoryDecider.decide(q, domainKnown: first & 8 == 0, device: known ? device : nil,
                                            lockout: lockout, policy: DirectoryPolicy())
            if case .sipAuth(let s) = q, case .user = d.answer {
                precondition(known && device.enabled && !lockout.sourceLocked && !lockout.pairLocked,
                             "granted to an unknown, disabled or locked user")
                precondition(s.credentials.map { validDigest($0, device: device) } ?? false, "granted without a valid digest")
            }
            out.append(Documents.directory(d.answer))
        }
        if let q = try? DialplanDecider.classify(request, policy: DialplanPolicy(ownedContexts: ["switchauth", "public", "default"])) {
            let candidates = [IPSettingFacts(id: 1, name: request.keyValue, network: IPNetwork("0.0.0.0/0")!, prefix: "9",
                                             stripPrefix: first & 64 != 0, account: device.account)]
            let d: DialplanDecision
            switch q {
            case let .ip(c, s, dest): d = DialplanDecider.decideIP(context: c, source: s, destination: dest, candidates: candidates, policy: DialplanPolicy())
            case let .digest(c, _, _, dest): d = DialplanDecider.decideDigest(context: c, destination: dest, device: device, policy: DialplanPolicy())
            case let .unauthenticated(c, _): d = DialplanDecider.reject(c, .unauthenticated, "")
            case .notOwned: d = DialplanDecision(answer: .notFound, reason: .notOwned, detail: "")
            }
            out.append(Documents.dialplan(d.answer, reason: d.reason))
        }
        for doc in out {
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
