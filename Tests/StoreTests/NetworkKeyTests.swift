import Decisions
@testable import Store
import TestSupport
import Testing

/// The copy finds an address's IP settings by masking it to each prefix length in use and hashing
/// two words (`NetworkKey`). Checked here against `IPNetwork.contains`, setting by setting, with
/// no database: every length of both families, host routes, /0, and networks added and removed.
@Suite("memory copy: networks by key")
struct NetworkKeyTests {
    /// A random address of the family, drawn from a few small pools so that networks overlap.
    static func address(v6: Bool, _ g: inout SplitMix) -> IPAddress {
        if v6 {
            var b = [UInt8](repeating: 0, count: 16)
            b[0] = 0x20; b[1] = 0x01; b[2] = 0x0d; b[3] = 0xb8
            for i in 4..<16 { b[i] = UInt8.random(in: 0...3, using: &g) << 6 | UInt8.random(in: 0...1, using: &g) }
            return IPAddress(bytes: b)
        }
        return IPAddress(bytes: [10, UInt8.random(in: 0...3, using: &g), UInt8.random(in: 0...3, using: &g),
                                 UInt8.random(in: 0...255, using: &g) & 0xc3])
    }

    @Test func keysAreNetworks() {
        var g = SplitMix(seed: 7)
        for _ in 0..<5000 {
            let v6 = Bool.random(using: &g)
            let a = Self.address(v6: v6, &g)
            let length = Int.random(in: 0...(v6 ? 128 : 32), using: &g)
            let network = IPNetwork(address: a.masked(to: length), prefixLength: length)!
            #expect(NetworkKey(a).masked(to: length) == NetworkKey(network), "\(network)")
            // Another address keys to the same network exactly when the network contains it.
            let b = Self.address(v6: v6, &g)
            #expect((NetworkKey(b).masked(to: length) == NetworkKey(network)) == network.contains(b), "\(b) in \(network)")
        }
        // The same bits in another family, or at another length, are another network.
        #expect(NetworkKey(IPNetwork("0.0.0.0/0")!) != NetworkKey(IPNetwork("::/0")!))
        #expect(NetworkKey(IPNetwork("10.0.0.0/8")!) != NetworkKey(IPNetwork("10.0.0.0/16")!))
    }

    @Test func candidatesAreTheContainingSettings() {
        var g = SplitMix(seed: 11)
        let tables = ReplicaTables()
        let account = ReplicaAccount(facts: AccountFacts(id: 1, number: "1", maxChannels: 1), expiresAtMilliseconds: nil)
        tables.setAccount(1, account)
        var settings: [Int64: IPNetwork] = [:]
        for round in 0..<3000 {
            let id = Int64.random(in: 1...400, using: &g)
            if round % 5 == 4 {
                tables.setIPSetting(id, nil)
                settings[id] = nil
                continue
            }
            let v6 = Bool.random(using: &g)
            let a = Self.address(v6: v6, &g)
            let length = [0, 1, 7, 8, 9, 16, 24, 30, 31, 32, 63, 64, 65, 120, 127, 128]
                .filter { $0 <= (v6 ? 128 : 32) }.randomElement(using: &g)!
            let network = IPNetwork(address: a.masked(to: length), prefixLength: length)!
            tables.setIPSetting(id, ReplicaIPSetting(id: id, accountID: 1, name: "s\(id)", network: network, prefix: "",
                                                     stripPrefix: false, enabled: true))
            settings[id] = network
            if round % 10 == 0 {
                for _ in 0..<20 {
                    let probe = Self.address(v6: Bool.random(using: &g), &g)
                    let expected = settings.filter { $0.value.contains(probe) }.keys.sorted()
                    #expect(tables.ipCandidates(probe, now: 0)?.map(\.id) == expected, "\(probe)")
                }
            }
        }
        #expect(settings.count > 100)
    }
}

/// A lookup finds a trust record by the key of `user@domain` hashed from its parts (no String built
/// per lookup); the record was keyed by the subject as the database holds it. The two must agree
/// for every split of the bytes across the hasher's eight-byte words, and differ when they differ.
@Suite("memory copy: trust keys")
struct TrustKeyTests {
    @Test func partsHashAsTheWhole() {
        for userLength in 0..<20 {
            for domainLength in [0, 1, 7, 8, 9, 17, 30] {
                let user = String(repeating: "u", count: userLength), domain = String(repeating: "d", count: domainLength)
                for source in ["", "198.51.100.7", "2001:db8::1"] {
                    #expect(ReplicaTables.trustKey(user: user, domain: domain, source: source)
                            == ReplicaTables.trustKey(subject: user + "@" + domain, source: source), "\(userLength) \(domainLength) \(source)")
                }
            }
        }
        #expect(ReplicaTables.trustKey(user: "a", domain: "b", source: "1.2.3.4") != ReplicaTables.trustKey(subject: "a@b", source: "1.2.3.5"))
        #expect(ReplicaTables.trustKey(user: "a", domain: "bc", source: "") != ReplicaTables.trustKey(subject: "a@b", source: "c"))
    }

    @Test func aTrustedPairIsFoundByItsParts() {
        let tables = ReplicaTables()
        tables.setTrust(subject: "1001@voip.example.com", source: "203.0.113.5", lastSuccess: 42)
        #expect(tables.trusted[ReplicaTables.trustKey(user: "1001", domain: "voip.example.com", source: "203.0.113.5")] == 42)
        #expect(tables.trusted[ReplicaTables.trustKey(user: "1001", domain: "voip.example.com", source: "203.0.113.6")] == nil)
    }
}
