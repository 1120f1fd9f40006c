import Decisions
import Foundation
import Postgres

/// The call controls shared by every switch and instance (migration 0009): a slot per call of an
/// account with max_channels, and the calls admitted per second of an account or IP setting.
public enum CallSlots {
    /// Admits one call against every limit that applies, atomically (`switchauth_admit_call`).
    public static func admit(_ db: Connection, _ a: CallAdmission) throws -> AdmissionVerdict {
        let r = try db.execute("SELECT switchauth_admit_call($1, $2, $3::bigint, $4::int, $5::int, $6::bigint, $7::int)", [
            a.uniqueID, a.coreUUID, String(a.accountID), String(a.maxChannels), String(a.accountCPS),
            a.ipSettingID.map(String.init), String(a.ipSettingCPS),
        ])
        let text: String = try r.decode(0, 0)
        guard let verdict = AdmissionVerdict(databaseText: text) else {
            throw PostgresError(kind: .decoding, operation: "switchauth_admit_call", message: "unexpected answer \(text)")
        }
        return verdict
    }

    /// Releases the slots of calls that hung up (one statement for a batch of hangup events).
    /// Returns how many slots there were.
    @discardableResult
    public static func release(_ db: Connection, uniqueIDs: [String]) throws -> Int {
        guard !uniqueIDs.isEmpty else { return 0 }
        let r = try db.execute("WITH d AS (DELETE FROM call_slots WHERE unique_id = ANY($1::text[]) RETURNING 1) SELECT count(*) FROM d",
                               [TrustBatch.textArray(uniqueIDs)], retry: .idempotent)
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
