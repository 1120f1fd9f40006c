-- Admissions in batches (issue 21's cost): a database thread that finds several calls queued admits
-- them in one statement and one transaction, in queue order, each exactly as
-- switchauth_admit_call (0009) admits it alone (one row per call: its position and that function's
-- answer). One round trip and one commit serve the batch.
--
-- Lock order, so that batches and single admissions cannot deadlock: every account's advisory lock
-- (class 1936) in ascending key order, then every IP setting's CPS row in ascending subject order,
-- both before any call is admitted. A single admission takes one advisory lock, then at most one
-- IP setting row: the same order. Locks already held are taken again at no cost.
CREATE FUNCTION switchauth_admit_calls(p_unique_ids text[], p_core_uuids text[], p_accounts bigint[],
                                       p_max_channels integer[], p_account_cps integer[], p_ip_settings bigint[],
                                       p_ip_cps integer[], p_destinations text[], p_track boolean[])
RETURNS TABLE (call_index integer, call_answer text) LANGUAGE plpgsql AS $$
DECLARE
    n    integer := cardinality(p_unique_ids);
    k    integer;
    s    text;
BEGIN
    IF cardinality(p_core_uuids) <> n OR cardinality(p_accounts) <> n OR cardinality(p_max_channels) <> n
       OR cardinality(p_account_cps) <> n OR cardinality(p_ip_settings) <> n OR cardinality(p_ip_cps) <> n
       OR cardinality(p_destinations) <> n OR cardinality(p_track) <> n THEN
        RAISE EXCEPTION 'switchauth_admit_calls: arrays of different lengths';
    END IF;
    PERFORM set_config('synchronous_commit', 'off', true);
    FOR k IN SELECT DISTINCT (a % 2147483647)::integer FROM unnest(p_accounts) a ORDER BY 1 LOOP
        PERFORM pg_advisory_xact_lock(1936, k);
    END LOOP;
    FOR s IN SELECT DISTINCT 'i:' || u.ip FROM unnest(p_ip_settings, p_ip_cps) u(ip, cps)
              WHERE u.ip IS NOT NULL AND u.cps > 0 ORDER BY 1 LOOP
        INSERT INTO cps_windows (subject) VALUES (s) ON CONFLICT DO NOTHING;
        PERFORM 1 FROM cps_windows WHERE subject = s FOR UPDATE;
    END LOOP;
    FOR i IN 1 .. n LOOP
        call_index := i;
        call_answer := switchauth_admit_call(p_unique_ids[i], p_core_uuids[i], p_accounts[i], p_max_channels[i],
                                             p_account_cps[i], p_ip_settings[i], p_ip_cps[i], p_destinations[i], p_track[i]);
        RETURN NEXT;
    END LOOP;
END;
$$;
