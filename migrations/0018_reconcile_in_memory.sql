-- A reconciliation with a switch while an instance holds the admissions in memory (0015) is judged
-- in its ledger, which holds every slot (call_slots rows and journal entries alike); the database
-- only learns the switch's run and the runs it replaced, and the releases come with the holder's
-- next write as any hangup's do. Before, the holder made every slot up a call_slots row first
-- (the reconciliation judged rows), let switchauth_reconcile_slots delete most of them again and
-- read them all back: at 20,000 limited calls/s that was some 30,000 rows inserted, deleted and
-- read per switch every 30 s, a third of a second of PostgreSQL in which answers waited
-- (`switchauth-bench compare --smoke`, limits row: 17,701 -> 22,152 calls/s, p99 5.95 -> 4.68 ms,
-- 54 -> 43 µs a call).
--
-- A run a switch replaced is remembered ten minutes (`switch_runs_replaced`, filled by a trigger
-- whenever a reconciliation forgets a run in switch_cores): whichever instance reconciles the
-- switch first (one without the admissions deletes the rows of the earlier run and forgets it),
-- the holder's reconciliation must still know that run's slots as stale; forgotten, they were
-- slots of an unknown run, released only after a minute.
CREATE TABLE switch_runs_replaced (
    core_uuid   text PRIMARY KEY,
    endpoint    text NOT NULL,
    replaced_at timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION switchauth_note_replaced_run() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO switch_runs_replaced (core_uuid, endpoint) VALUES (OLD.core_uuid, OLD.endpoint)
    ON CONFLICT (core_uuid) DO UPDATE SET endpoint = EXCLUDED.endpoint, replaced_at = now();
    RETURN NULL;
END;
$$;
CREATE TRIGGER switch_cores_replaced AFTER DELETE ON switch_cores
    FOR EACH ROW EXECUTE FUNCTION switchauth_note_replaced_run();

-- switchauth_switch_run records the switch's run (`p_core_uuid` at `p_endpoint`), forgets the runs
-- it replaced there, and returns the runs replaced there within ten minutes (stale: their slots
-- are released) and every run a listener knows (not stale: a slot of a run that is neither is
-- released once a minute old), with 0009's housekeeping. The judgement itself is
-- AdmissionLedger.Reconciliation, the rules of switchauth_reconcile_slots.
CREATE FUNCTION switchauth_switch_run(p_endpoint text, p_core_uuid text)
RETURNS TABLE (core_uuid text, stale boolean) LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO switch_cores AS c (core_uuid, endpoint) VALUES (p_core_uuid, p_endpoint)
    ON CONFLICT ON CONSTRAINT switch_cores_pkey DO UPDATE SET endpoint = EXCLUDED.endpoint, seen_at = now();
    DELETE FROM switch_cores c WHERE c.endpoint = p_endpoint AND c.core_uuid <> p_core_uuid;
    DELETE FROM switch_runs_replaced r WHERE r.replaced_at < clock_timestamp() - interval '10 minutes' OR r.core_uuid = p_core_uuid;
    DELETE FROM fraud_counts WHERE window_start < clock_timestamp() - interval '2 days';
    DELETE FROM cps_windows WHERE cardinality(admitted) = 0
        OR admitted[cardinality(admitted)] < clock_timestamp() - interval '1 hour';
    RETURN QUERY SELECT r.core_uuid, true FROM switch_runs_replaced r WHERE r.endpoint = p_endpoint
       UNION ALL SELECT c.core_uuid, false FROM switch_cores c;
END;
$$;
