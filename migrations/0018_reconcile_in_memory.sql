-- A reconciliation with a switch while an instance holds the admissions in memory (0015) is judged
-- in its ledger, which holds every slot (call_slots rows and journal entries alike); the database
-- only learns the switch's run and the runs it replaced, and the releases come with the holder's
-- next write as any hangup's do. Before, the holder made every slot up a call_slots row first
-- (the reconciliation judged rows), let switchauth_reconcile_slots delete most of them again and
-- read them all back: at 20,000 limited calls/s that was some 30,000 rows inserted, deleted and
-- read per switch every 30 s, a third of a second of PostgreSQL in which answers waited
-- (measured: 54 -> 46 µs a limited call, p99 5.95 -> 5.31 ms at saturation without it).
--
-- switchauth_switch_run records the switch's run (`p_core_uuid` at `p_endpoint`), forgets the
-- runs it replaced, and returns them (stale: their slots are released) and every run a listener
-- still knows (not stale: a slot of a run that is neither is released once a minute old), with
-- 0009's housekeeping. The judgement itself is AdmissionLedger.Reconciliation, the rules of
-- switchauth_reconcile_slots, which the database modes keep using.
CREATE FUNCTION switchauth_switch_run(p_endpoint text, p_core_uuid text)
RETURNS TABLE (core_uuid text, stale boolean) LANGUAGE plpgsql AS $$
DECLARE
    replaced text[];
BEGIN
    INSERT INTO switch_cores AS c (core_uuid, endpoint) VALUES (p_core_uuid, p_endpoint)
    ON CONFLICT ON CONSTRAINT switch_cores_pkey DO UPDATE SET endpoint = EXCLUDED.endpoint, seen_at = now();
    WITH d AS (
        DELETE FROM switch_cores c WHERE c.endpoint = p_endpoint AND c.core_uuid <> p_core_uuid RETURNING c.core_uuid
    ) SELECT coalesce(array_agg(d.core_uuid), '{}') INTO replaced FROM d;
    DELETE FROM fraud_counts WHERE window_start < clock_timestamp() - interval '2 days';
    DELETE FROM cps_windows WHERE cardinality(admitted) = 0
        OR admitted[cardinality(admitted)] < clock_timestamp() - interval '1 hour';
    RETURN QUERY SELECT r, true FROM unnest(replaced) r
       UNION ALL SELECT c.core_uuid, false FROM switch_cores c;
END;
$$;
