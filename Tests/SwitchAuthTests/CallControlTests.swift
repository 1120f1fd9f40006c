import Decisions
import DatabaseTestSupport
import Foundation
import Locking
import Postgres
import Store
import SwitchAuthService
import HTTPServer
import Logging
import Testing

/// The shared call controls (migration 0009) against a real PostgreSQL: slots per call, the exact
/// calls-per-second window, release and reconciliation.
@Suite("call controls")
struct CallControlTests {
    static func account(_ db: Connection, _ number: String, channels: Int = 0, cps: Int = 0) throws -> Int64 {
        var input = Admin.AccountInput(number: number, name: "Account \(number)")
        input.balance = "10"
        input.maxChannels = channels
        input.maxCPS = cps
        return try Admin(db: db).addAccount(input)
    }

    static func admission(_ account: Int64, _ uuid: String, core: String = "core-1", channels: Int = 0, cps: Int = 0,
                          ipSetting: Int64? = nil, ipCPS: Int = 0) -> CallAdmission {
        CallAdmission(uniqueID: uuid, coreUUID: core, accountID: account, maxChannels: channels, accountCPS: cps,
                      ipSettingID: ipSetting, ipSettingCPS: ipCPS)
    }

    @Test func channelSlotsAreHeldReleasedAndIdempotent() throws {
        let db = try Connection(try TestDatabase.shared.freshDatabase())
        let id = try Self.account(db, "C2", channels: 2)
        #expect(try CallSlots.admit(db, Self.admission(id, "u1", channels: 2)).verdict == .admitted(inUse: 1))
        #expect(try CallSlots.admit(db, Self.admission(id, "u1", channels: 2)).verdict == .alreadyHeld, "a second lookup of one call")
        #expect(try CallSlots.admit(db, Self.admission(id, "u2", channels: 2)).verdict == .admitted(inUse: 2))
        #expect(try CallSlots.admit(db, Self.admission(id, "u3", channels: 2)).verdict == .channelLimit(inUse: 2))
        #expect(try CallSlots.inUse(db, accountID: id) == 2, "a refused call takes no slot")
        #expect(try CallSlots.release(db, uniqueIDs: ["u1", "not-a-slot"]) == 1)
        #expect(try CallSlots.release(db, uniqueIDs: ["u1"]) == 0, "released twice: harmless")
        #expect(try CallSlots.admit(db, Self.admission(id, "u3", channels: 2)).verdict == .admitted(inUse: 2))
    }

    /// 16 connections admit 50 calls at once against max_channels 5: exactly 5 get a slot.
    @Test func concurrentAdmissionsNeverExceedTheLimit() throws {
        let config = try TestDatabase.shared.freshDatabase()
        let db = try Connection(config)
        let id = try Self.account(db, "C5", channels: 5)
        let admitted = Locked(0)
        DispatchQueue.concurrentPerform(iterations: 16) { worker in
            guard let c = try? Connection(config) else { return }
            for n in 0..<50 where n % 16 == worker {
                if case .admitted = try? CallSlots.admit(c, Self.admission(id, "call-\(n)", channels: 5)).verdict {
                    admitted.withLock { $0 += 1 }
                }
            }
        }
        #expect(admitted.withLock { $0 } == 5)
        #expect(try CallSlots.inUse(db, accountID: id) == 5)
    }

    /// The window is exact: max_cps calls in any second, whichever subject trips first; a refused
    /// call spends nothing.
    @Test func callsPerSecondWindowIsExact() throws {
        let db = try Connection(try TestDatabase.shared.freshDatabase())
        let id = try Self.account(db, "CPS3", cps: 3)
        var verdicts: [AdmissionVerdict] = []
        for n in 0..<6 { verdicts.append(try CallSlots.admit(db, Self.admission(id, "c\(n)", cps: 3)).verdict) }
        #expect(verdicts == [.admitted(inUse: 0), .admitted(inUse: 0), .admitted(inUse: 0),
                             .cpsLimit(ipSetting: false), .cpsLimit(ipSetting: false), .cpsLimit(ipSetting: false)])
        let ip = try Admin(db: db).addIP(account: "CPS3", name: "PBX", network: "192.0.2.7", prefix: "", strip: false, maxCPS: 1)
        Thread.sleep(forTimeInterval: 1.05)
        #expect(try CallSlots.admit(db, Self.admission(id, "d1", cps: 3, ipSetting: ip, ipCPS: 1)).verdict == .admitted(inUse: 0))
        #expect(try CallSlots.admit(db, Self.admission(id, "d2", cps: 3, ipSetting: ip, ipCPS: 1)).verdict == .cpsLimit(ipSetting: true))
        // The IP setting's refusal spent none of the account's allowance: two more pass without it.
        #expect(try CallSlots.admit(db, Self.admission(id, "d3", cps: 3)).verdict == .admitted(inUse: 0))
        #expect(try CallSlots.admit(db, Self.admission(id, "d4", cps: 3)).verdict == .admitted(inUse: 0))
        #expect(try CallSlots.admit(db, Self.admission(id, "d5", cps: 3)).verdict == .cpsLimit(ipSetting: false))
    }

    /// Against a switch's live channels: gone calls of its run are released (not the youngest), and
    /// every slot of an earlier run at the same endpoint; another endpoint's slots stay.
    @Test func reconciliationReleasesWhatTheSwitchNoLongerHas() throws {
        let db = try Connection(try TestDatabase.shared.freshDatabase())
        let id = try Self.account(db, "R9", channels: 9)
        for (uuid, core) in [("live", "run-2"), ("gone", "run-2"), ("old-run", "run-1"), ("other-switch", "run-x")] {
            _ = try CallSlots.admit(db, Self.admission(id, uuid, core: core, channels: 9)).verdict
        }
        #expect(try CallSlots.reconcile(db, endpoint: "10.0.0.1:8021", coreUUID: "run-1", before: "-infinity", live: []) == 0)
        #expect(try CallSlots.reconcile(db, endpoint: "10.0.0.2:8021", coreUUID: "run-x", before: "-infinity", live: []) == 0)
        Thread.sleep(forTimeInterval: 1.1)
        _ = try CallSlots.admit(db, Self.admission(id, "young", core: "run-2", channels: 9)).verdict
        let before = try CallSlots.databaseNow(db)
        // run-2 is now at 10.0.0.1: run-1's slot goes, and of run-2's, the one not live (the
        // young one was reserved after `before` and is left for the next round).
        #expect(try CallSlots.reconcile(db, endpoint: "10.0.0.1:8021", coreUUID: "run-2", before: before, live: ["live"]) == 2)
        let left = try db.execute("SELECT unique_id FROM call_slots ORDER BY unique_id")
        #expect((0..<left.rowCount).compactMap { left.string($0, 0) } == ["live", "other-switch", "young"])
        // A run no listener ever saw: released once its slot is a minute old, not before.
        _ = try CallSlots.admit(db, Self.admission(id, "unseen-new", core: "run-unseen", channels: 9)).verdict
        _ = try CallSlots.admit(db, Self.admission(id, "unseen-old", core: "run-unseen", channels: 9)).verdict
        try db.execute("UPDATE call_slots SET reserved_at = now() - interval '61 seconds' WHERE unique_id = 'unseen-old'")
        #expect(try CallSlots.reconcile(db, endpoint: "10.0.0.1:8021", coreUUID: "run-2", before: "-infinity", live: ["live"]) == 1)
        #expect(try db.execute("SELECT count(*) FROM call_slots WHERE unique_id LIKE 'unseen%'").decode(0, 0, as: Int.self) == 1)
    }

    /// Fraud thresholds: counted per call in the database, judged by FraudCheck; a warning is
    /// recorded once per window, a critical level suspends the account (audited as the fraud check)
    /// and frees the call's slot.
    @Test func fraudLevelsAreCountedRecordedOnceAndSuspend() throws {
        let db = try Connection(try TestDatabase.shared.freshDatabase())
        let id = try Self.account(db, "F1")
        let admin = Admin(db: db)
        let perMinute = try admin.setFraudThreshold(account: "F1", metric: .callsPerMinute, prefix: "", warning: 2, critical: 4)
        let premium = try admin.setFraudThreshold(account: "F1", metric: .concurrentCalls, prefix: "1900", warning: nil, critical: 1)
        let thresholds = [FraudThreshold(id: perMinute, metric: .callsPerMinute, warning: 2, critical: 4),
                          FraudThreshold(id: premium, prefix: "1900", metric: .concurrentCalls, warning: nil, critical: 1)]
        func call(_ n: Int, _ destination: String) throws -> (CallSlots.Admission, [FraudCrossing]) {
            var a = Self.admission(id, "f\(n)")
            a.destination = destination
            a.trackChannels = true
            a.fraudThresholds = FraudCheck.applicable(thresholds, destination: destination)
            let r = try CallSlots.admit(db, a)
            return (r, FraudCheck.crossings(a.fraudThresholds, r.measurements))
        }
        var levels: [[FraudCrossing.Level]] = []
        for n in 1...4 {
            let (r, crossings) = try call(n, "4420\(n)")
            #expect(r.measurements.map(\.value) == [n], "calls this minute, counted by the database")
            levels.append(crossings.map(\.level))
            for c in crossings {
                let first = try CallSlots.recordFraud(db, accountID: id, c, uniqueID: "f\(n)")
                #expect(first == (n == 3), "the warning is recorded by its first call only")
            }
        }
        #expect(levels == [[], [], [.warning], [.warning]])
        // A second premium call up passes the concurrent critical level (the minute's count is at 5: critical too).
        _ = try call(5, "19001")
        let (r, crossings) = try call(6, "19002")
        #expect(r.measurements.count == 2)
        let critical = try #require(crossings.first { $0.threshold.id == premium })
        #expect(critical.level == .critical && critical.value == 2)
        #expect(try CallSlots.recordFraud(db, accountID: id, critical, uniqueID: "f6"))
        #expect(try db.execute("SELECT status FROM accounts WHERE id = $1::bigint", [String(id)]).decode(0, 0, as: String.self) == "suspended")
        #expect(try db.execute("SELECT count(*) FROM call_slots WHERE unique_id = 'f6'").decode(0, 0, as: Int.self) == 0, "the refused call's slot is freed")
        let audit = try db.execute("SELECT actor FROM audit_log WHERE object_type = 'accounts' AND action = 'update' ORDER BY id DESC LIMIT 1")
        #expect(audit.rowCount == 1 && (audit.string(0, 0) ?? "").hasPrefix("fraud check: concurrent_calls > 1"))
        #expect(try admin.listFraudEvents(account: "F1").rows.count == 2)
        #expect(throws: AdminError.self) { try admin.setFraudThreshold(account: "F1", metric: .callsPerMinute, prefix: "", warning: 5, critical: 5) }
        #expect(throws: AdminError.self) { try admin.setFraudThreshold(account: "F1", metric: .callsPerMinute, prefix: "x", warning: 1, critical: nil) }
    }
}

/// The fraud webhook: what a receiver gets, and which URLs are taken.
@Suite("fraud webhook")
struct FraudWebhookTests {
    @Test func urls() {
        for ok in ["http://127.0.0.1:9000/hook", "http://alerts.example/fraud", "http://[::1]:8080/x?y=1"] {
            #expect(FraudAlerts.isValidURL(ok), "\(ok)")
        }
        for bad in ["https://alerts.example/", "ftp://x/", "http://:80/", "http://host:99999/", "http://host/a b", "alerts.example"] {
            #expect(!FraudAlerts.isValidURL(bad), "\(bad)")
        }
    }

    /// A critical crossing is POSTed as JSON to a receiver that answers 204.
    @Test func postsTheCrossingAsJSON() throws {
        let listener = try TCPSocket.listen(host: "127.0.0.1", port: 0, backlog: 4)
        defer { listener.close() }
        let received = Locked<[UInt8]>([])
        let done = DispatchSemaphore(value: 0)
        Thread {
            defer { done.signal() }
            // The listener is non-blocking: accept until the client comes (10 s at most).
            var accepted: TCPSocket?
            for _ in 0..<1_000 {
                if let (s, _, _) = (try? listener.accept()) ?? nil { accepted = s; break }
                usleep(10_000)
            }
            guard let peer = accepted else { return }
            defer { peer.close() }
            var bytes: [UInt8] = []
            while !String(decoding: bytes, as: UTF8.self).contains("}"), let chunk = try? peer.receive(timeoutMilliseconds: 5_000), !chunk.isEmpty {
                bytes += chunk
            }
            received.withLock { $0 = bytes }
            try? peer.sendAll("HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
        }.start()
        let alerts = try #require(FraudAlerts(url: "http://127.0.0.1:\(listener.localPort)/fraud", logger: Logger(label: "test")))
        alerts.start()
        defer { alerts.stop() }
        let threshold = FraudThreshold(id: 9, prefix: "882", metric: .attemptsPerDay, warning: 10, critical: 20)
        alerts.send(FraudCrossing(threshold: threshold, level: .critical, value: 21, windowMilliseconds: 1_796_428_800_000),
                    account: AccountFacts(id: 4, number: "1012"), uniqueID: "u-1")
        #expect(done.wait(timeout: .now() + 10) == .success)
        let text = String(decoding: received.withLock { $0 }, as: UTF8.self)
        #expect(text.hasPrefix("POST /fraud HTTP/1.1\r\n"))
        #expect(text.contains("Content-Type: application/json"))
        let body = try #require(text.components(separatedBy: "\r\n\r\n").last)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any])
        #expect(json["account"] as? String == "1012" && json["level"] as? String == "critical")
        #expect(json["metric"] as? String == "attempts_per_day" && json["prefix"] as? String == "882")
        #expect(json["value"] as? Int == 21 && json["level_value"] as? Int == 20 && json["action"] as? String == "account_suspended")
    }
}
