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
-- A run a switch replaced is kept ten minutes as such (`replaced_at`) instead of being forgotten
-- at once: whichever instance reconciles the switch first (one without the admissions deletes the
-- rows of the earlier run), the holder's reconciliation must still know that run's slots as
-- stale; forgotten, they were slots of an unknown run, released only after a minute.
ALTER TABLE switch_cores ADD COLUMN replaced_at timestamptz;

-- 0017's reconciliation (the database modes, and instances without the admissions), with the
-- replaced runs kept ten minutes: their slots are still judged stale meanwhile.
CREATE OR REPLACE FUNCTION switchauth_reconcile_slots(p_endpoint text, p_core_uuid text, p_before timestamptz, p_live text[],
                                           p_judge_journal boolean)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    gone text[] := '{}';
BEGIN
    INSERT INTO switch_cores (core_uuid, endpoint) VALUES (p_core_uuid, p_endpoint)
    ON CONFLICT (core_uuid) DO UPDATE SET endpoint = EXCLUDED.endpoint, seen_at = now(), replaced_at = NULL;
    IF p_judge_journal AND EXISTS (SELECT 1 FROM admission_journal) THEN
        SELECT coalesce(array_agg(l.unique_id), '{}') INTO gone FROM switchauth_live_journal() l
         WHERE l.core_uuid IN (SELECT c.core_uuid FROM switch_cores c WHERE c.endpoint = p_endpoint AND c.core_uuid <> p_core_uuid)
            OR (l.core_uuid = p_core_uuid AND l.reserved_at < p_before AND l.unique_id NOT IN (SELECT unnest(p_live)));
    END IF;
    WITH d AS (
        DELETE FROM call_slots s
         WHERE s.core_uuid IN (SELECT c.core_uuid FROM switch_cores c WHERE c.endpoint = p_endpoint AND c.core_uuid <> p_core_uuid)
        RETURNING s.unique_id
    ) SELECT gone || coalesce(array_agg(d.unique_id), '{}') INTO gone FROM d;
    UPDATE switch_cores SET replaced_at = clock_timestamp()
     WHERE endpoint = p_endpoint AND core_uuid <> p_core_uuid AND replaced_at IS NULL;
    DELETE FROM switch_cores WHERE replaced_at < clock_timestamp() - interval '10 minutes';
    WITH d AS (
        DELETE FROM call_slots s
         WHERE s.core_uuid = p_core_uuid AND s.reserved_at < p_before AND NOT (s.unique_id = ANY (p_live))
        RETURNING s.unique_id
    ) SELECT gone || coalesce(array_agg(d.unique_id), '{}') INTO gone FROM d;
    -- A run no listener ever reached (it died before one connected, or its switch is missing from
    -- event_sockets): its slots are released once a minute old, so a lost switch can never keep an
    -- account's channels taken.
    WITH d AS (
        DELETE FROM call_slots s
         WHERE s.reserved_at < clock_timestamp() - interval '60 seconds'
           AND NOT EXISTS (SELECT 1 FROM switch_cores c WHERE c.core_uuid = s.core_uuid)
        RETURNING s.unique_id
    ) SELECT gone || coalesce(array_agg(d.unique_id), '{}') INTO gone FROM d;
    PERFORM switchauth_journal_release(gone);
    -- Housekeeping: windows of fraud counts and CPS that can no longer matter.
    DELETE FROM fraud_counts WHERE window_start < clock_timestamp() - interval '2 days';
    DELETE FROM cps_windows WHERE cardinality(admitted) = 0
        OR admitted[cardinality(admitted)] < clock_timestamp() - interval '1 hour';
    RETURN cardinality(gone);
END;
$$;

-- switchauth_switch_run records the switch's run (`p_core_uuid` at `p_endpoint`), marks the runs
-- it replaced, and returns every run a listener knows: stale (replaced at this switch, within ten
-- minutes: their slots are released) or not (a slot of a run that is neither is released once a
-- minute old), with 0009's housekeeping. The judgement itself is AdmissionLedger.Reconciliation,
-- the rules of switchauth_reconcile_slots.
CREATE FUNCTION switchauth_switch_run(p_endpoint text, p_core_uuid text)
RETURNS TABLE (core_uuid text, stale boolean) LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO switch_cores AS c (core_uuid, endpoint) VALUES (p_core_uuid, p_endpoint)
    ON CONFLICT ON CONSTRAINT switch_cores_pkey DO UPDATE SET endpoint = EXCLUDED.endpoint, seen_at = now(), replaced_at = NULL;
    UPDATE switch_cores c SET replaced_at = clock_timestamp()
     WHERE c.endpoint = p_endpoint AND c.core_uuid <> p_core_uuid AND c.replaced_at IS NULL;
    DELETE FROM switch_cores c WHERE c.replaced_at < clock_timestamp() - interval '10 minutes';
    DELETE FROM fraud_counts WHERE window_start < clock_timestamp() - interval '2 days';
    DELETE FROM cps_windows WHERE cardinality(admitted) = 0
        OR admitted[cardinality(admitted)] < clock_timestamp() - interval '1 hour';
    RETURN QUERY SELECT c.core_uuid, c.endpoint = p_endpoint AND c.replaced_at IS NOT NULL FROM switch_cores c;
END;
$$;
