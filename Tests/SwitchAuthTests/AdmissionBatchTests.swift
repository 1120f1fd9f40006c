import Decisions
import DatabaseTestSupport
import Foundation
import HTTPServer
import Locking
import Postgres
import Store
@testable import SwitchAuthService
import SystemCalls
import TestSupport
import Testing

/// Admissions in batches (migration 0012): a batch answers each call exactly as admitting the calls
/// one by one in the same order would, and batches taken concurrently over shared accounts and IP
/// settings neither deadlock nor exceed a limit.
@Suite("call admissions in batches")
struct AdmissionBatchTests {
    /// Accounts with a channel limit, a CPS limit and a fraud threshold, and an IP setting with a
    /// CPS limit; the calls drawn over them (a Unique-ID repeated now and then).
    static func seed(_ db: Connection) throws -> [CallAdmission] {
        let channels = try CallControlTests.account(db, "B-CH", channels: 3)
        let cps = try CallControlTests.account(db, "B-CPS", cps: 4)
        let free = try CallControlTests.account(db, "B-FREE")
        let admin = Admin(db: db)
        let ip = try admin.addIP(account: "B-FREE", name: "PBX", network: "192.0.2.9", prefix: "", strip: false, maxCPS: 5)
        let perMinute = try admin.setFraudThreshold(account: "B-FREE", metric: .callsPerMinute, prefix: "", warning: 6, critical: nil)
        let concurrent = try admin.setFraudThreshold(account: "B-FREE", metric: .concurrentCalls, prefix: "44", warning: 2, critical: nil)
        let thresholds = [FraudThreshold(id: perMinute, metric: .callsPerMinute, warning: 6, critical: nil),
                          FraudThreshold(id: concurrent, prefix: "44", metric: .concurrentCalls, warning: 2, critical: nil)]
        var g = SplitMix(seed: 42)
        return (0..<36).map { n in
            let uuid = n % 7 == 6 ? "call-\(n - 3)" : "call-\(n)"
            switch Int.random(in: 0..<4, using: &g) {
            case 0: return CallControlTests.admission(channels, uuid, channels: 3)
            case 1: return CallControlTests.admission(cps, uuid, cps: 4)
            case 2: return CallControlTests.admission(free, uuid, ipSetting: ip, ipCPS: 5)
            default:
                var a = CallControlTests.admission(free, uuid)
                a.destination = n % 2 == 0 ? "4420\(n)" : "3310\(n)"
                a.trackChannels = true
                a.fraudThresholds = FraudCheck.applicable(thresholds, destination: a.destination)
                return a
            }
        }
    }

    /// What a call got, without the windows' start times (clock readings).
    static func answer(_ a: CallSlots.Admission) -> String {
        "\(a.verdict) \(a.measurements.map { "\($0.thresholdID)=\($0.value)" })"
    }

    @Test func aBatchAnswersAsTheCallsOneByOne() throws {
        let alone = try Connection(try TestDatabase.shared.freshDatabase())
        let together = try Connection(try TestDatabase.shared.freshDatabase())
        defer { alone.close(); together.close() }
        let calls = try Self.seed(alone)
        #expect(try Self.seed(together) == calls, "the same ids in both databases")
        // Well inside one second each (the CPS windows are sliding seconds).
        let t0 = Date()
        let one = try calls.map { try Self.answer(CallSlots.admit(alone, $0)) }
        let t1 = Date()
        var batched: [String] = []
        var sizes: [Int] = []
        var g = SplitMix(seed: 9)
        var rest = calls[...]
        while !rest.isEmpty {
            let n = min(rest.count, Int.random(in: 1...9, using: &g))
            batched += try CallSlots.admit(together, batch: Array(rest.prefix(n))).map(Self.answer)
            sizes.append(n)
            rest = rest.dropFirst(n)
        }
        let t2 = Date()
        try #require(t1.timeIntervalSince(t0) < 0.9 && t2.timeIntervalSince(t1) < 0.9, "both runs inside one CPS window")
        #expect(batched == one, "batches \(sizes)")
        // Not vacuous: every verdict occurs.
        let all = one.joined(separator: " ")
        for v in ["admitted", "alreadyHeld", "channelLimit", "cpsLimit(ipSetting: false)", "cpsLimit(ipSetting: true)"] {
            #expect(all.contains(v), "\(v) in \(one)")
        }
        for table in ["call_slots", "cps_windows", "fraud_counts"] {
            let q = "SELECT count(*) FROM \(table)"
            #expect(try alone.execute(q).decode(0, 0, as: Int.self) == together.execute(q).decode(0, 0, as: Int.self), "\(table)")
        }
    }

    /// Six threads admit 60 batches of twelve calls over four accounts (max_channels 3) and two
    /// shared IP settings with a CPS limit (so their rows are locked), each batch in its own random
    /// order; a seventh admits calls one by one. No batch fails and each account ends with exactly
    /// its 3 calls. Without the function's lock order (all advisory locks, then all IP rows, both
    /// sorted) this fails: batches wait on each other until the statement timeout or the deadlock
    /// detector ends them.
    @Test func concurrentBatchesNeitherDeadlockNorExceed() throws {
        let config = try TestDatabase.shared.freshDatabase()
        let db = try Connection(config)
        defer { db.close() }
        let accounts = try (0..<4).map { try CallControlTests.account(db, "D\($0)", channels: 3) }
        let admin = Admin(db: db)
        let ips = try (0..<2).map { try admin.addIP(account: "D0", name: "P\($0)", network: "192.0.2.\(20 + $0)", prefix: "", strip: false,
                                                    maxCPS: 100_000) }
        let admitted = Locked([Int64: Int]())
        let failures = Locked([String]())
        DispatchQueue.concurrentPerform(iterations: 7) { worker in
            guard let c = try? Connection(config) else {
                failures.withLock { $0.append("connect") }
                return
            }
            defer { c.close() }
            var g = SplitMix(seed: UInt64(worker + 1))
            for round in 0..<60 {
                let batch = (0..<12).map { k in
                    CallControlTests.admission(accounts.randomElement(using: &g)!, "w\(worker)-r\(round)-\(k)", channels: 3,
                                               ipSetting: ips.randomElement(using: &g)!, ipCPS: 100_000)
                }
                do {
                    let answers = worker == 6 ? try batch.map { try CallSlots.admit(c, $0) } : try CallSlots.admit(c, batch: batch)
                    for (call, a) in zip(batch, answers) where a.verdict != .channelLimit(inUse: 3) {
                        guard case .admitted = a.verdict else {
                            failures.withLock { $0.append("\(a.verdict)") }
                            continue
                        }
                        admitted.withLock { $0[call.accountID, default: 0] += 1 }
                    }
                } catch {
                    failures.withLock { $0.append("\(error)") }
                }
            }
        }
        #expect(failures.withLock { $0 } == [])
        #expect(admitted.withLock { $0 } == Dictionary(uniqueKeysWithValues: accounts.map { ($0, 3) }))
        for a in accounts { #expect(try CallSlots.inUse(db, accountID: a) == 3) }
    }

    /// The pool's side: admissions queued behind a busy database thread are taken together and
    /// admitted in as few statements as the batch size allows, each finished with its own answer,
    /// in queue order.
    @Test func queuedAdmissionsAreTakenTogether() throws {
        let dbConfig = try TestDatabase.shared.freshDatabase()
        let db = try Connection(dbConfig)
        defer { db.close() }
        let account = try CallControlTests.account(db, "P5", channels: 5)
        var config = fixtureConfig(database: dbConfig)
        config.databaseConnections = 1
        let metrics = Metrics()
        let pool = DatabasePool(config: config, metrics: metrics)
        pool.start()
        defer { pool.stop() }
        let far = MonotonicClock.now() + 30_000_000_000
        let gate = DispatchSemaphore(value: 0)
        #expect(pool.submit(DatabaseJob(deadline: far) { _ in gate.wait() }))
        let answers = Locked([Int: AdmissionVerdict]())
        let done = DispatchGroup()
        for n in 0..<8 {
            done.enter()
            let call = CallControlTests.admission(account, "p\(n)", channels: 5)
            let work = AdmissionWork(call: call) { result, _ in
                answers.withLock { $0[n] = try? result.get().verdict }
                done.leave()
            }
            #expect(pool.submit(DatabaseJob(deadline: far, admission: work) { session in
                work.finish(Result { try CallSlots.admit(session.write, call) }, session)
            }))
        }
        gate.signal()
        #expect(done.wait(timeout: .now() + 20) == .success)
        let expected = Dictionary(uniqueKeysWithValues: (0..<8).map { n in
            (n, n < 5 ? AdmissionVerdict.admitted(inUse: n + 1) : .channelLimit(inUse: 5))
        })
        #expect(answers.withLock { $0 } == expected)
        let text = metrics.render(gauges: [])
        // 8 queued admissions, at most `admissionBatch` a statement.
        let statements = (8 + DatabasePool.admissionBatch - 1) / DatabasePool.admissionBatch
        #expect(text.contains("switchauth_call_admission_batches_total \(statements)\n"))
        #expect(text.contains("switchauth_call_admissions_batched_total 8\n"))
    }

    /// Through the service: 40 calls of one account (max_channels 5) at once, one database thread
    /// (so that admissions queue and are batched): exactly 5 are routed, 35 get 486.
    @Test func concurrentCallsThroughTheServiceHoldTheLimit() throws {
        let dbConfig = try TestDatabase.shared.freshDatabase()
        let db = try Connection(dbConfig)
        defer { db.close() }
        try seedFixtureData(db)
        try db.execute("UPDATE accounts SET max_channels = 5 WHERE number = '2002'")
        var config = fixtureConfig(database: dbConfig)
        config.databaseConnections = 1
        // call_limits = global needs an event socket: one where no switch listens (nothing hangs up).
        config.eventSockets = [EventSocketEndpoint(host: "127.0.0.1", port: 9, password: "ClueCon")]
        let s = try RunningService(config)
        defer { s.stop() }
        let port = s.port
        let fixture = String(decoding: try Fixtures.bytes("dialplan-after-acl-auth.http"), as: UTF8.self)
        let uuid = "f9216595-0793-481b-b915-1a71c9b3c43d"
        try #require(fixture.contains(uuid))
        let routed = Locked(0), busy = Locked(0), other = Locked([String]())
        DispatchQueue.concurrentPerform(iterations: 40) { n in
            // Another Unique-ID of the same length: the Content-Length stays right.
            let request = fixture.replacingOccurrences(of: uuid, with: String(format: "%08x-0000-4000-8000-000000000000", n))
            guard let text = try? exchange(port, Array(request.utf8)).text else {
                other.withLock { $0.append("no answer") }
                return
            }
            if text.contains("switchauth_allow") {
                routed.withLock { $0 += 1 }
            } else if text.contains("486 ") {
                busy.withLock { $0 += 1 }
            } else {
                other.withLock { $0.append(text) }
            }
        }
        #expect(other.withLock { $0 } == [])
        #expect(routed.withLock { $0 } == 5)
        #expect(busy.withLock { $0 } == 35)
        // Admitted in this instance's memory (it holds the admissions); the database's copy has
        // them within milliseconds.
        #expect(s.service.admissions?.inUse(account: 2) == 5)
        #expect(waitUntil(seconds: 5) { (try? CallSlots.inUse(db, accountID: 2)) == 5 })
    }
}
