import DatabaseTestSupport
import Postgres
import Store
import Testing

@Suite("the console's lists as typed rows")
struct ConsoleQueriesTests {
    @Test func pagesBothWaysAndRefusesAForeignCursor() throws {
        let db = try Connection(try TestDatabase.shared.freshDatabase())
        let a = Admin(db: db)
        for n in ["7001", "7002", "7003"] { try a.addAccount(Admin.AccountInput(number: n, name: "acct \(n)")) }
        let q = ConsoleQueries(db: db)
        let first = try q.accounts(q: "acct", status: nil, kind: nil, cursor: nil, limit: 2)
        #expect(first.items.map(\.number) == ["7001", "7002"] && first.total == 3 && first.totalExact)
        #expect(first.nextCursor == "7002" && first.prevCursor == nil)
        let second = try q.accounts(q: "acct", status: nil, kind: nil, cursor: first.nextCursor, limit: 2)
        #expect(second.items.map(\.number) == ["7003"] && second.nextCursor == nil && second.prevCursor == "<7003")
        let back = try q.accounts(q: "acct", status: nil, kind: nil, cursor: second.prevCursor, limit: 2)
        #expect(back.items.map(\.number) == ["7001", "7002"])
        let row = try #require(try q.account("7002"))
        #expect(row.name == "acct 7002" && row.status == "active" && row.maxChannels == 0 && row.expiresAt == nil && row.devices == 0)
        #expect(throws: BadCursor.self) { try q.accounts(q: nil, status: nil, kind: nil, cursor: "not a number!", limit: 2) }
        #expect(throws: BadCursor.self) { try q.devices(account: nil, domain: nil, q: nil, cursor: "-1", limit: 2) }
    }
}
