@testable import AdminConsole
import Foundation
@testable import Store
import Testing

/// The store's typed rows written as JSON by their `Encodable` form: what the console answers and
/// the CLI prints under `--json`.
@Suite("JSON from typed rows")
struct JSONEncodingTests {
    @Test func keysInTheirDeclaredOrderAndAbsentOptionalsAsNull() throws {
        let row = AccountListRow(number: "1001", name: "Acme \"PBX\"", kind: "customer", status: "active", billing: "prepaid",
                                 balance: "12.3456", creditLimit: "0.0000", maxChannels: 2, expiresAt: nil,
                                 createdAt: "2026-12-07T00:00:00Z", updatedAt: "2026-12-07T00:00:01Z", ipSettings: 1, devices: 3,
                                 maxCPS: 0, callsUp: 1)
        #expect(try JSON(encoding: row).text == """
            {"number":"1001","name":"Acme \\"PBX\\"","kind":"customer","status":"active","billing":"prepaid","balance":"12.3456",\
            "credit_limit":"0.0000","max_channels":2,"expires_at":null,"created_at":"2026-12-07T00:00:00Z",\
            "updated_at":"2026-12-07T00:00:01Z","ip_settings":1,"devices":3,"max_cps":0,"calls_up":1}
            """)
    }

    @Test func rawJSONIsInsertedAsItIsAndArraysNest() throws {
        let audit = AuditListRow(id: 7, at: "2026-12-07T00:00:00Z", actor: "cli:root", action: "UPDATE", objectType: "accounts",
                                 objectID: "3", object: "1001", account: "1001", before: RawJSON(#"{"balance": 1.10}"#), after: nil)
        let text = try JSON(encoding: audit).text
        #expect(text.hasSuffix(#""account":"1001","before":{"balance": 1.10},"after":null}"#))
        let domain = DomainListRow(name: "voip.example.com", enabled: true, aliases: ["a.example", "b.example"], createdAt: "t")
        #expect(try JSON(encoding: [domain]).text == #"[{"name":"voip.example.com","enabled":true,"aliases":["a.example","b.example"],"created_at":"t"}]"#)
    }

    @Test func numbersKeepTheirExactText() throws {
        struct Amounts: Encodable {
            var decimal = Decimal(string: "1234567890.1234567891")!
            var big: Int64 = .max
            var small: Int8 = -5
            var ratio = 0.5
            var absent: Int? = nil
        }
        #expect(try JSON(encoding: Amounts()).text == #"{"decimal":1234567890.1234567891,"big":9223372036854775807,"small":-5,"ratio":0.5,"absent":null}"#)
        struct NotANumber: Encodable { var x = Double.nan }
        #expect(throws: EncodingError.self) { try JSON(encoding: NotANumber()) }
    }
}
