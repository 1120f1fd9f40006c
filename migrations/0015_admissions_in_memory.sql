-- Admissions in memory (issue 21's cost: 268 µs and p99 19.8 ms a call with limits on, most of it
-- PostgreSQL running switchauth_admit_call statement by statement for every call).
--
-- One SwitchAuth instance at a time may hold the admissions: it holds the lease (the session-level
-- advisory lock 1937/0 on a connection of its own), decides every call against its memory (slots,
-- CPS windows, fraud counts) and writes what changed here every few milliseconds
-- (switchauth_flush_admissions), so that these tables are its copy, a few milliseconds behind.
-- While it does, admission_authority.mode is 'memory' and switchauth_admit_call answers 'memory'
-- instead of admitting: an instance without the lease that must admit a call asks for the
-- admissions to come back here (database_wanted_at) and retries; the holder then writes what it
-- has (its CPS windows too) and sets mode 'database' (switchauth_admissions_to_database), and every
-- instance admits here, as 0009 does, until nobody has asked for 30 s. Taking the admissions back
-- into memory waits for every admission in flight here (the lock 1937/1, shared by each admission,
-- exclusive for the switch), then reads these tables.
--
-- An instance that dies holding the lease loses what it had not written yet (at most the last
-- flush interval's admissions: those calls hold no slot until they end) and the CPS windows of its
-- last second; whoever takes the lease next refuses CPS-limited calls for one second (safely
-- conservative) unless the admissions were last in the database. `epoch` fences a holder that lost
-- its lease without noticing: its flushes are refused.
CREATE TABLE admission_authority (
    id                  boolean PRIMARY KEY DEFAULT true CHECK (id),
    mode                text NOT NULL DEFAULT 'database' CHECK (mode IN ('database', 'memory')),
    epoch               bigint NOT NULL DEFAULT 0,
    holder              text NOT NULL DEFAULT '' CHECK (length(holder) <= 200),
    since               timestamptz NOT NULL DEFAULT now(),
    database_wanted_at  timestamptz,
    -- Who asked (its holder text): a holder does not answer its own asking of an earlier moment.
    database_wanted_by  text NOT NULL DEFAULT '' CHECK (length(database_wanted_by) <= 200)
);
INSERT INTO admission_authority DEFAULT VALUES;

CREATE OR REPLACE FUNCTION switchauth_admit_call(p_unique_id text, p_core_uuid text, p_account bigint, p_max_channels integer,
                                      p_account_cps integer, p_ip_setting bigint, p_ip_cps integer,
                                      p_destination text, p_track boolean)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    t         timestamptz := clock_timestamp();
    in_use    integer := 0;
    acct_win  timestamptz[];
    ip_win    timestamptz[];
    verdict   text;
    admitted  boolean := false;
    counts    text := '';
    windows   text := '';
    th        record;
    w         timestamptz;
    v         integer;
BEGIN
    -- The commit does not wait for the WAL flush: a call's answer is not held up by an fsync (it
    -- was: 4 database threads made 2,000 admissions/s). What a crash of PostgreSQL itself can lose
    -- is the last moments of admissions (wal_writer_delay, 200 ms, three times at most): those calls
    -- then hold no slot, and an account may exceed its limits by them until they end.
    PERFORM set_config('synchronous_commit', 'off', true);
    -- 0015: while an instance holds the admissions in its memory, these tables are its copy, not
    -- the authority: the caller asks for them to come back here (or takes the lease) and retries.
    PERFORM pg_advisory_xact_lock_shared(1937, 1);
    IF (SELECT a.mode FROM admission_authority a) = 'memory' THEN
        RETURN 'memory||';
    END IF;
    IF EXISTS (SELECT 1 FROM call_slots WHERE unique_id = p_unique_id) THEN
        RETURN 'held||';
    END IF;
    PERFORM pg_advisory_xact_lock(1936, (p_account % 2147483647)::integer);
    IF p_account_cps > 0 THEN
        SELECT array(SELECT x FROM unnest(cw.admitted) x WHERE x > t - interval '1 second' ORDER BY x)
          INTO acct_win FROM cps_windows cw WHERE cw.subject = 'a:' || p_account FOR UPDATE;
        IF NOT FOUND THEN
            INSERT INTO cps_windows (subject) VALUES ('a:' || p_account) ON CONFLICT DO NOTHING;
            acct_win := '{}';
        END IF;
        IF cardinality(acct_win) >= p_account_cps THEN
            verdict := 'cps:account';
        END IF;
    END IF;
    IF verdict IS NULL AND p_ip_setting IS NOT NULL AND p_ip_cps > 0 THEN
        SELECT array(SELECT x FROM unnest(cw.admitted) x WHERE x > t - interval '1 second' ORDER BY x)
          INTO ip_win FROM cps_windows cw WHERE cw.subject = 'i:' || p_ip_setting FOR UPDATE;
        IF NOT FOUND THEN
            -- Under the account's lock; another account's call from the same IP setting may race
            -- the insert, so the row is then read again locked.
            INSERT INTO cps_windows (subject) VALUES ('i:' || p_ip_setting) ON CONFLICT DO NOTHING;
            SELECT array(SELECT x FROM unnest(cw.admitted) x WHERE x > t - interval '1 second' ORDER BY x)
              INTO ip_win FROM cps_windows cw WHERE cw.subject = 'i:' || p_ip_setting FOR UPDATE;
        END IF;
        IF cardinality(ip_win) >= p_ip_cps THEN
            verdict := 'cps:ip_setting';
        END IF;
    END IF;
    IF verdict IS NULL AND (p_max_channels > 0 OR p_track) THEN
        SELECT count(*) INTO in_use FROM call_slots WHERE account_id = p_account;
        IF p_max_channels > 0 AND in_use >= p_max_channels THEN
            verdict := 'channels:' || in_use;
        ELSE
            INSERT INTO call_slots (unique_id, account_id, core_uuid, destination, reserved_at)
            VALUES (p_unique_id, p_account, p_core_uuid, p_destination, t) ON CONFLICT (unique_id) DO NOTHING;
            in_use := in_use + 1;
        END IF;
    END IF;
    IF verdict IS NULL THEN
        admitted := true;
        verdict := 'ok:' || in_use;
        IF acct_win IS NOT NULL THEN
            UPDATE cps_windows SET admitted = acct_win || t WHERE subject = 'a:' || p_account;
        END IF;
        IF ip_win IS NOT NULL THEN
            UPDATE cps_windows SET admitted = ip_win || t WHERE subject = 'i:' || p_ip_setting;
        END IF;
    END IF;
    FOR th IN SELECT f.id, f.metric, f.prefix FROM fraud_thresholds f
               WHERE f.account_id = p_account AND starts_with(p_destination, f.prefix) ORDER BY f.id LOOP
        IF th.metric = 'concurrent_calls' THEN
            w := date_trunc('second', t);
            SELECT count(*) INTO v FROM call_slots s WHERE s.account_id = p_account AND starts_with(s.destination, th.prefix);
        ELSIF th.metric = 'calls_per_minute' AND NOT admitted THEN
            CONTINUE;
        ELSE
            w := CASE th.metric WHEN 'calls_per_minute' THEN date_trunc('minute', t) ELSE date_trunc('day', t, 'UTC') END;
            INSERT INTO fraud_counts (threshold_id, window_start, n) VALUES (th.id, w, 1)
            ON CONFLICT (threshold_id, window_start) DO UPDATE SET n = fraud_counts.n + 1
            RETURNING n INTO v;
        END IF;
        counts := counts || CASE WHEN counts = '' THEN '' ELSE ',' END || th.id || '=' || v;
        windows := windows || CASE WHEN windows = '' THEN '' ELSE ',' END || floor(extract(epoch FROM w) * 1000)::bigint;
    END LOOP;
    RETURN verdict || '|' || counts || '|' || windows;
END;
$$;

-- Takes the admissions into memory (the caller holds the lease), in one statement: waits for the
-- admissions in flight here (the lock 1937/1), then returns what they left, a row each (times in µs
-- since the epoch):
--   ('e', mode before, new epoch, now)
--   ('s', unique_id, account_id, reserved_at, core_uuid, destination)   a slot
--   ('w', subject, admitted, -)                                          a CPS admission of the last second
--   ('c', -, threshold_id, window_start, n)                              a fraud count of a current window
CREATE FUNCTION switchauth_admissions_to_memory(p_holder text)
RETURNS TABLE (kind text, key text, n1 bigint, n2 bigint, n3 bigint, t1 text, t2 text) LANGUAGE plpgsql AS $$
DECLARE
    before text;
    e      bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(1937, 1);
    SELECT a.mode INTO before FROM admission_authority a FOR UPDATE;
    UPDATE admission_authority a SET mode = 'memory', epoch = a.epoch + 1, holder = p_holder, since = clock_timestamp()
    RETURNING a.epoch INTO e;
    RETURN QUERY
        SELECT 'e', before, e, (extract(epoch FROM clock_timestamp()) * 1000000)::bigint, NULL::bigint, NULL::text, NULL::text
        UNION ALL
        SELECT 's', s.unique_id, s.account_id, (extract(epoch FROM s.reserved_at) * 1000000)::bigint, NULL, s.core_uuid, s.destination
          FROM call_slots s
        UNION ALL
        SELECT 'w', w.subject, (extract(epoch FROM x) * 1000000)::bigint, NULL, NULL, NULL, NULL
          FROM cps_windows w, unnest(w.admitted) x WHERE x > clock_timestamp() - interval '1 second'
        UNION ALL
        SELECT 'c', NULL, f.threshold_id, (extract(epoch FROM f.window_start) * 1000000)::bigint, f.n, NULL, NULL
          FROM fraud_counts f WHERE f.window_start > clock_timestamp() - interval '1 day 1 minute';
END;
$$;

-- What the holder changed since its last flush: slots reserved (inserted unless there), slots
-- released, fraud counts added (times in µs since the epoch). Refused ('lost') unless the caller's epoch still holds the
-- admissions; 'wanted' when an instance asked for them in the database in the last 10 s, else 'ok'.
CREATE FUNCTION switchauth_flush_admissions(p_epoch bigint, p_ids text[], p_accounts bigint[], p_cores text[],
                                            p_destinations text[], p_at bigint[], p_released text[],
                                            p_thresholds bigint[], p_windows bigint[], p_deltas integer[])
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    wanted timestamptz;
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    SELECT CASE WHEN a.database_wanted_by <> a.holder THEN a.database_wanted_at END INTO wanted
      FROM admission_authority a WHERE a.mode = 'memory' AND a.epoch = p_epoch;
    IF NOT FOUND THEN
        RETURN 'lost';
    END IF;
    IF cardinality(p_ids) > 0 THEN
        INSERT INTO call_slots (unique_id, account_id, core_uuid, destination, reserved_at)
        SELECT u.i, u.a, u.c, u.d, to_timestamp(u.t / 1000000.0) FROM unnest(p_ids, p_accounts, p_cores, p_destinations, p_at) u(i, a, c, d, t)
        ON CONFLICT (unique_id) DO NOTHING;
    END IF;
    IF cardinality(p_released) > 0 THEN
        DELETE FROM call_slots WHERE unique_id = ANY (p_released);
    END IF;
    IF cardinality(p_thresholds) > 0 THEN
        -- A threshold deleted meanwhile counts nothing more.
        INSERT INTO fraud_counts (threshold_id, window_start, n)
        SELECT u.t, to_timestamp(u.w / 1000000.0), u.d FROM unnest(p_thresholds, p_windows, p_deltas) u(t, w, d)
         WHERE EXISTS (SELECT 1 FROM fraud_thresholds f WHERE f.id = u.t)
        ON CONFLICT (threshold_id, window_start) DO UPDATE SET n = fraud_counts.n + EXCLUDED.n;
    END IF;
    RETURN CASE WHEN wanted > clock_timestamp() - interval '10 seconds' THEN 'wanted' ELSE 'ok' END;
END;
$$;

-- The holder gives the admissions back to the database (asked for, or stopping): after its last
-- flush, its CPS windows (subject, admitted time; several rows a subject) replace the stored ones.
-- Returns false when the epoch no longer holds them (nothing written).
CREATE FUNCTION switchauth_admissions_to_database(p_epoch bigint, p_subjects text[], p_times bigint[])
RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    UPDATE admission_authority a SET mode = 'database', since = clock_timestamp()
     WHERE a.mode = 'memory' AND a.epoch = p_epoch;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    INSERT INTO cps_windows (subject, admitted)
    SELECT u.s, array_agg(to_timestamp(u.t / 1000000.0) ORDER BY u.t) FROM unnest(p_subjects, p_times) u(s, t) GROUP BY u.s
    ON CONFLICT (subject) DO UPDATE SET admitted = EXCLUDED.admitted;
    RETURN true;
END;
$$;

-- An instance without the lease that must admit calls here: recorded (the holder reads it at its
-- next flush, within milliseconds) and kept fresh while it goes on admitting here.
CREATE FUNCTION switchauth_want_database_admissions(p_by text) RETURNS void LANGUAGE sql AS $$
    UPDATE admission_authority SET database_wanted_at = clock_timestamp(), database_wanted_by = p_by
$$;
