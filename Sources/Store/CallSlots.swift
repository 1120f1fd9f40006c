import Decisions
import Foundation
import Postgres

/// The call controls shared by every switch and instance (migration 0009): a slot per call of an
/// account with max_channels, and the calls admitted per second of an account or IP setting.
public enum CallSlots {
    public struct Admission: Sendable, Equatable {
        public var verdict: AdmissionVerdict
        /// The call's fraud thresholds, counted (including it).
        public var measurements: [FraudMeasurement]
    }

    /// Admits one call against every limit that applies and counts it for its fraud thresholds,
    /// atomically (`switchauth_admit_call`).
    public static func admit(_ db: Connection, _ a: CallAdmission) throws -> Admission {
        let r = try db.execute("SELECT switchauth_admit_call($1, $2, $3::bigint, $4::int, $5::int, $6::bigint, $7::int, $8, $9::bool)", [
            a.uniqueID, a.coreUUID, String(a.accountID), String(a.maxChannels), String(a.accountCPS),
            a.ipSettingID.map(String.init), String(a.ipSettingCPS), a.destination, a.trackChannels ? "true" : "false",
        ])
        let text: String = try r.decode(0, 0)
        guard let admission = parse(text) else {
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
            guard let admission = parse(text) else {
                throw PostgresError(kind: .decoding, operation: "switchauth_admit_calls", message: "unexpected answer \(text)")
            }
            return admission
        }
    }

    /// `<verdict>|<id>=<value>,...|<window ms>,...`.
    static func parse(_ text: String) -> Admission? {
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

    /// The switch's live channels against the slots of its run (`switchauth_reconcile_slots`).
    /// Returns the slots released.
    public static func reconcile(_ db: Connection, endpoint: String, coreUUID: String, before: String, live: [String]) throws -> Int {
        let r = try db.execute("SELECT switchauth_reconcile_slots($1, $2, $3::timestamptz, $4::text[])",
                               [endpoint, coreUUID, before, TrustBatch.textArray(live)], retry: .idempotent)
        return try r.decode(0, 0, as: Int.self)
    }

    /// Calls an account has up now, across every switch.
    public static func inUse(_ db: Connection, accountID: Int64) throws -> Int {
        try db.execute("SELECT count(*) FROM call_slots WHERE account_id = $1::bigint", [String(accountID)]).decode(0, 0, as: Int.self)
    }
}
