import Decisions
import Foundation
import Postgres

/// The call controls shared by every switch and instance (migration 0009): a slot per call of an
/// account with max_channels, and the calls admitted per second of an account or IP setting.
public enum CallSlots {
    /// What the shared counters say of a call, the database's or the ledger's (migration 0015):
    /// one type.
    public typealias Admission = AdmissionLedger.Answer

    /// Admits one call against every limit that applies and counts it for its fraud thresholds,
    /// atomically (`switchauth_admit_call`).
    public static func admit(_ db: Connection, _ a: CallAdmission) throws -> Admission {
        let r = try db.execute("SELECT switchauth_admit_call($1, $2, $3::bigint, $4::int, $5::int, $6::bigint, $7::int, $8, $9::bool)", [
            a.uniqueID, a.coreUUID, String(a.accountID), String(a.maxChannels), String(a.accountCPS),
            a.ipSettingID.map(String.init), String(a.ipSettingCPS), a.destination, a.trackChannels ? "true" : "false",
        ])
        let text: String = try r.decode(0, 0)
        guard let admission = try parse(text) else {
            throw PostgresError(kind: .decoding, operation: "switchauth_admit_call", message: "unexpected answer \(text)")
        }
        return admission
    }

    /// Admits several calls in one statement and one transaction (`switchauth_admit_calls`), in
    /// order, each exactly as `admit` would alone: the answers in the same order. A database
    /// thread batches the admissions it finds queued together; one round trip and one commit serve
    /// them all.
    public static func admit(_ db: Connection, batch: [CallAdmission]) throws -> [Admission] {
        guard batch.count > 1 else { return try batch.map { try admit(db, $0) } }
        func ints(_ values: [Int64?]) -> String {
            "{" + values.map { $0.map(String.init) ?? "NULL" }.joined(separator: ",") + "}"
        }
        let r = try db.execute("""
            SELECT call_answer FROM switchauth_admit_calls($1::text[], $2::text[], $3::bigint[], $4::int[], $5::int[],
                                                           $6::bigint[], $7::int[], $8::text[], $9::bool[])
             ORDER BY call_index
            """, [
                TrustBatch.textArray(batch.map(\.uniqueID)), TrustBatch.textArray(batch.map(\.coreUUID)),
                ints(batch.map { $0.accountID }), ints(batch.map { Int64($0.maxChannels) }), ints(batch.map { Int64($0.accountCPS) }),
                ints(batch.map(\.ipSettingID)), ints(batch.map { Int64($0.ipSettingCPS) }),
                TrustBatch.textArray(batch.map(\.destination)), "{" + batch.map { $0.trackChannels ? "t" : "f" }.joined(separator: ",") + "}",
            ])
        guard r.rowCount == batch.count else {
            throw PostgresError(kind: .decoding, operation: "switchauth_admit_calls", message: "\(r.rowCount) answers for \(batch.count) calls")
        }
        return try (0..<batch.count).map { i in
            let text: String = try r.decode(i, 0)
            guard let admission = try parse(text) else {
                throw PostgresError(kind: .decoding, operation: "switchauth_admit_calls", message: "unexpected answer \(text)")
            }
            return admission
        }
    }

    /// The database did not admit the call: an instance holds the admissions in its memory
    /// (migration 0015). The caller asks for them to come back (or takes the lease) and retries.
    public struct AdmissionsInMemory: Error, CustomStringConvertible {
        public var description: String { "the admissions are held in an instance's memory" }
    }

    /// `<verdict>|<id>=<value>,...|<window ms>,...`; `memory||` throws `AdmissionsInMemory`.
    static func parse(_ text: String) throws -> Admission? {
        if text == "memory||" { throw AdmissionsInMemory() }
        let parts = text.split(separator: "|", omittingEmptySubsequences: false)
        guard parts.count == 3, let verdict = AdmissionVerdict(databaseText: String(parts[0])) else { return nil }
        let counts = parts[1].split(separator: ","), windows = parts[2].split(separator: ",")
        guard counts.count == windows.count else { return nil }
        var measurements: [FraudMeasurement] = []
        for (c, w) in zip(counts, windows) {
            let kv = c.split(separator: "=")
            guard kv.count == 2, let id = Int64(kv[0]), let value = Int(kv[1]), let ms = Int64(w) else { return nil }
            measurements.append(FraudMeasurement(thresholdID: id, value: value, windowMilliseconds: ms))
        }
        return Admission(verdict: verdict, measurements: measurements)
    }

    /// Records a level passed (once per threshold, level and window) and, for a critical one,
    /// suspends the account and releases the call's slot, in one transaction
    /// (`switchauth_fraud_event`). Returns whether this call recorded it first.
    public static func recordFraud(_ db: Connection, accountID: Int64, _ c: FraudCrossing, uniqueID: String) throws -> Bool {
        try db.execute("SELECT switchauth_fraud_event($1::bigint, $2::bigint, $3, $4::int, $5::int, $6::bigint, $7)", [
            String(accountID), String(c.threshold.id), c.level.rawValue, String(c.value), String(c.levelValue),
            String(c.windowMilliseconds), uniqueID,
        ]).decode(0, 0)
    }

    /// Releases the slots of calls that hung up (one statement for a batch of hangup events).
    /// Returns how many slots there were.
    @discardableResult
    public static func release(_ db: Connection, uniqueIDs: [String]) throws -> Int {
        guard !uniqueIDs.isEmpty else { return 0 }
        let r = try db.execute("SELECT switchauth_release_slots($1::text[])", [TrustBatch.textArray(uniqueIDs)], retry: .idempotent)
        return try r.decode(0, 0, as: Int.self)
    }

    /// The database's clock now: the reconciliation only releases slots reserved before the switch
    /// was asked for its channels (less a margin for the switch's own channel table, which is written
    /// a moment after a channel is created).
    public static func databaseNow(_ db: Connection) throws -> String {
        try db.execute("SELECT (clock_timestamp() - interval '1 second')::text").decode(0, 0)
    }

    /// The switch's live channels against the slots of its run (`switchauth_reconcile_slots`), the
    /// journal's slots judged as the rows are (migration 0017: they may be a dead holder's).
    /// Returns the slots released. (Its `p_judge_journal` was false for the holder, which made
    /// every slot a row first; since 0018 the holder judges in its ledger.)
    public static func reconcile(_ db: Connection, endpoint: String, coreUUID: String, before: String, live: [String]) throws -> Int {
        let r = try db.execute("SELECT switchauth_reconcile_slots($1, $2, $3::timestamptz, $4::text[], true)",
                               [endpoint, coreUUID, before, TrustBatch.textArray(live)], retry: .idempotent)
        return try r.decode(0, 0, as: Int.self)
    }

    /// The switch's run as its reconciliation in the holder's ledger needs it (migration 0018):
    /// `core` recorded as the run at `endpoint`; `stale`, the runs it replaced there (forgotten
    /// now); `known`, every run a listener knows.
    public static func switchRun(_ db: Connection, endpoint: String, core: String) throws -> (stale: Set<String>, known: Set<String>) {
        let r = try db.execute("SELECT core_uuid, stale FROM switchauth_switch_run($1, $2)", [endpoint, core], retry: .idempotent)
        var run: (stale: Set<String>, known: Set<String>) = ([], [])
        for i in 0..<r.rowCount {
            let (uuid, stale): (String, Bool) = (try r.decode(i, 0), try r.decode(i, 1))
            if stale { run.stale.insert(uuid) } else { run.known.insert(uuid) }
        }
        return run
    }

    /// Calls an account has up now, across every switch (rows and the holder's journal, 0017).
    public static func inUse(_ db: Connection, accountID: Int64) throws -> Int {
        try db.execute("SELECT switchauth_calls_up($1::bigint)", [String(accountID)]).decode(0, 0, as: Int.self)
    }

    // MARK: Admissions in memory (migration 0015)

    /// The lease of the admissions: a session-level advisory lock, held by the connection that took
    /// it until it closes. True when this connection holds it now.
    public static func tryLease(_ db: Connection) throws -> Bool {
        try db.execute("SELECT pg_try_advisory_lock(1937, 0)").decode(0, 0)
    }

    /// Gives up the lease. True when it was held.
    @discardableResult
    public static func releaseLease(_ db: Connection) throws -> Bool {
        try db.execute("SELECT pg_advisory_unlock(1937, 0)").decode(0, 0)
    }

    /// Reads what the switch into memory reads (a new connection's first reads fill its caches).
    public static func warm(_ db: Connection) throws {
        try db.execute("""
            SELECT (SELECT count(*) FROM admission_authority) + (SELECT count(*) FROM call_slots)
                 + (SELECT count(*) FROM cps_windows) + (SELECT count(*) FROM fraud_counts) + (SELECT count(*) FROM admission_journal)
            """)
    }

    public struct Authority: Sendable, Equatable {
        public var mode: String
        public var epoch: Int64
        /// Seconds since an instance last asked for the admissions in the database (nil: never).
        public var wantedSecondsAgo: Double?
    }

    /// The admissions' row as `holder` sees it (its own asking for them is not counted).
    public static func authority(_ db: Connection, holder: String) throws -> Authority {
        let r = try db.execute("""
            SELECT mode, epoch, CASE WHEN database_wanted_by <> $1 THEN extract(epoch FROM clock_timestamp() - database_wanted_at)::float8 END
              FROM admission_authority
            """, [holder], retry: .idempotent)
        return Authority(mode: try r.decode(0, 0), epoch: try r.decode(0, 1), wantedSecondsAgo: r.string(0, 2).flatMap(Double.init))
    }

    /// What the database holds of the admissions, read when an instance takes them into memory.
    public struct Stored: Sendable {
        public var epoch: Int64
        public var modeBefore: String
        public var slots: [String: AdmissionLedger.Slot]
        public var windows: [AdmissionLedger.Subject: [Int64]]
        public var counts: [AdmissionLedger.CountKey: Int]
        /// The database's clock at the read (µs since the epoch).
        public var now: Int64
    }

    /// Takes the admissions into memory (the caller holds the lease): one statement that waits for
    /// the admissions in flight in the database and reads what they left.
    public static func takeIntoMemory(_ db: Connection, holder: String) throws -> Stored {
        let r = try db.execute("SELECT kind, key, n1, n2, n3, t1, t2 FROM switchauth_admissions_to_memory($1)", [holder])
        var stored = Stored(epoch: 0, modeBefore: "", slots: [:], windows: [:], counts: [:], now: 0)
        stored.slots.reserveCapacity(r.rowCount)
        for i in 0..<r.rowCount {
            switch r.string(i, 0) {
            case "e":
                stored.modeBefore = try r.decode(i, 1)
                stored.epoch = try r.decode(i, 2)
                stored.now = try r.decode(i, 3)
            case "s":
                stored.slots[try r.decode(i, 1)] = AdmissionLedger.Slot(accountID: try r.decode(i, 2), coreUUID: try r.decode(i, 5),
                                                                       destination: try r.decode(i, 6), reservedAt: try r.decode(i, 3))
            case "w":
                guard let subject = AdmissionLedger.Subject(text: try r.decode(i, 1)) else { continue }
                stored.windows[subject, default: []].append(try r.decode(i, 2))
            case "c":
                stored.counts[AdmissionLedger.CountKey(thresholdID: try r.decode(i, 2), windowStart: try r.decode(i, 3))] = try r.decode(i, 4)
            default:
                throw PostgresError(kind: .decoding, operation: "switchauth_admissions_to_memory", message: "unexpected row")
            }
        }
        guard stored.epoch > 0 else {
            throw PostgresError(kind: .decoding, operation: "switchauth_admissions_to_memory", message: "no epoch")
        }
        return stored
    }

    /// Every slot the database holds as a row (`withJournal`: and every slot of the holder's
    /// journal still up, migration 0017: every call the database knows to be up).
    public static func slots(_ db: Connection, withJournal: Bool = false) throws -> [String: AdmissionLedger.Slot] {
        let columns = "unique_id, account_id, core_uuid, destination, (extract(epoch FROM reserved_at) * 1000000)::bigint"
        let r = try db.execute("SELECT \(columns) FROM call_slots"
                               + (withJournal ? " UNION ALL SELECT \(columns) FROM switchauth_live_journal()" : ""))
        var out: [String: AdmissionLedger.Slot] = [:]
        out.reserveCapacity(r.rowCount)
        for i in 0..<r.rowCount {
            out[try r.decode(i, 0)] = AdmissionLedger.Slot(accountID: try r.decode(i, 1), coreUUID: try r.decode(i, 2),
                                                           destination: try r.decode(i, 3), reservedAt: try r.decode(i, 4))
        }
        return out
    }

    /// What a flush answers: the epoch lost the admissions, or an instance wants them in the database.
    public enum FlushAnswer: String, Sendable { case ok, wanted, lost }

    /// Writes what the holder changed since its last flush (one statement, asynchronous commit):
    /// the new slots and the releases of slots without a row as one journal row, the slots up for
    /// `AdmissionLedger.rowAfter` as rows (migration 0017). `now`: the holder's clock when it took
    /// the changes (µs since the epoch); journal rows older than `journalKept` go.
    public static func flush(_ db: Connection, epoch: Int64, now: Int64, _ changes: AdmissionLedger.Changes) throws -> FlushAnswer {
        func ints(_ values: some Sequence<Int64>) -> String { "{" + values.map(String.init).joined(separator: ",") + "}" }
        let rows = Array(changes.rows)
        let counts = Array(changes.counts)
        let r = try db.execute("""
            SELECT switchauth_flush_admissions($1::bigint, $2::bigint, $3::bigint, $4::text, $5::text[], $6::bigint[], $7::text[],
                                               $8::text[], $9::bigint[], $10::text[], $11::bigint[], $12::bigint[], $13::int[])
            """, [
                String(epoch), String(now), String(now - AdmissionLedger.journalKept), journalEntries(changes),
                TrustBatch.textArray(rows.map(\.key.text)), ints(rows.map(\.value.accountID)),
                TrustBatch.textArray(rows.map(\.value.coreUUID)), TrustBatch.textArray(rows.map(\.value.destination)),
                ints(rows.map(\.value.reservedAt)), TrustBatch.textArray(changes.released.map(\.text)),
                ints(counts.map(\.key.thresholdID)), ints(counts.map(\.key.windowStart)), ints(counts.map { Int64($0.value) }),
            ])
        let text: String = try r.decode(0, 0)
        guard let answer = FlushAnswer(rawValue: text) else {
            throw PostgresError(kind: .decoding, operation: "switchauth_flush_admissions", message: "unexpected answer \(text)")
        }
        return answer
    }

    private static let hexDigits = Array("0123456789ABCDEF".utf8)

    /// The journal's lines for `changes` (migration 0017): `R`, Unique-ID, account, reserved µs,
    /// Core-UUID, destination for a slot reserved; `X`, Unique-ID for a slot released without a row.
    /// Tab-separated, each line ending in a newline; a destination's control bytes, DEL and '%'
    /// are percent-encoded (Unique-IDs and Core-UUIDs are [0-9A-Za-z-]: the service admits no other).
    public static func journalEntries(_ changes: AdmissionLedger.Changes) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(changes.reservedSlots.count * 112 + changes.forgotten.count * 40)
        func text(_ s: String) { out.append(contentsOf: s.utf8) }
        func number(_ n: Int64) { text(String(n)) }
        for (key, slot) in changes.reservedSlots {
            out.append(UInt8(ascii: "R")); out.append(9)
            text(key.text); out.append(9)
            number(slot.accountID); out.append(9)
            number(slot.reservedAt); out.append(9)
            text(slot.coreUUID); out.append(9)
            for b in slot.destination.utf8 {
                if b < 0x20 || b == 0x7f || b == UInt8(ascii: "%") {
                    out.append(UInt8(ascii: "%")); out.append(hexDigits[Int(b >> 4)]); out.append(hexDigits[Int(b & 15)])
                } else {
                    out.append(b)
                }
            }
            out.append(10)
        }
        for key in changes.forgotten {
            out.append(UInt8(ascii: "X")); out.append(9)
            text(key.text); out.append(10)
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Gives the admissions back to the database with the holder's CPS windows. False when the
    /// epoch no longer held them.
    public static func giveToDatabase(_ db: Connection, epoch: Int64, windows: [(subject: AdmissionLedger.Subject, times: ArraySlice<Int64>)]) throws -> Bool {
        var subjects: [String] = [], times: [Int64] = []
        for w in windows {
            for t in w.times {
                subjects.append(w.subject.text)
                times.append(t)
            }
        }
        return try db.execute("SELECT switchauth_admissions_to_database($1::bigint, $2::text[], $3::bigint[])", [
            String(epoch), TrustBatch.textArray(subjects), "{" + times.map(String.init).joined(separator: ",") + "}",
        ]).decode(0, 0)
    }

    /// This instance must admit calls in the database (it got `AdmissionsInMemory`, or goes on
    /// admitting there): recorded for the holder.
    public static func wantDatabase(_ db: Connection, by holder: String) throws {
        try db.execute("SELECT switchauth_want_database_admissions($1)", [holder], retry: .idempotent)
    }
}
