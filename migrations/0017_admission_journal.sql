-- A call's slot costs PostgreSQL a row only if the call lasts (issue 21's cost: 10 µs of the
-- admissions' backend a call at 19,000 limited calls/s, a row inserted by the holder's flush and
-- deleted at the hangup, for calls that mostly last seconds).
--
-- While an instance holds the admissions in memory (0015), each flush now appends ONE row here:
-- the slots reserved since the last flush and the slots released, as lines of text (stored as
-- they come: text arrays cost PostgreSQL 0.45 µs an element to parse, more than the row). A slot reaches call_slots only once its call has been up `slot_rows_after` (5 s, the
-- holder's constant) and is still up; a call shorter than that is two array entries here and
-- nothing in call_slots. A journal row goes (in the flush that writes those slots) once every
-- call it reserved is 6 s old: by then each one is either released or in call_slots.
--
-- So while mode is 'memory' the slots are call_slots plus the journal's reserved entries minus its
-- released ones (switchauth_live_journal). Every way out of memory mode, and every way into it
-- (a takeover after a holder that died), first applies the journal to call_slots
-- (switchauth_apply_admission_journal): the database modes and the readers of call_slots see the
-- whole table as before. What a dead holder's successor finds is what it found before: every slot
-- written up to the holder's last flush.
--
-- The journal is UNLOGGED: no WAL for rows that live seconds. A crash of PostgreSQL (or a
-- promoted standby) starts it empty; the holder, which goes on with its memory when its lease
-- comes back under the same epoch, then writes the rows of its calls that last as before. What
-- is lost is only what a holder dying in the same moment leaves: the slots of its calls of the
-- last 6 s, which then count for nothing until they end.
CREATE UNLOGGED TABLE admission_journal (
    -- The holder's clock at the flush (µs since the epoch): what the journal is pruned by.
    written_us    bigint NOT NULL,
    epoch         bigint NOT NULL,
    -- A line per entry, each ending in a newline, fields separated by tabs:
    --   R <unique_id> <account_id> <reserved µs since the epoch> <core_uuid> <destination>
    --   X <unique_id>                                   (a release)
    -- Unique-IDs and Core-UUIDs are [0-9A-Za-z-] (the service admits no other); a destination's
    -- control bytes and '%' are percent-encoded.
    entries       text NOT NULL,
    PRIMARY KEY (written_us, epoch)
);
-- Stored out of line as it is, never tried with pglz first (it was the backend's first cost in a
-- profile; a journal row lives seconds).
ALTER TABLE admission_journal ALTER COLUMN entries SET STORAGE EXTERNAL;

-- The journal's slots still up (reserved, not released, not in call_slots yet).
CREATE FUNCTION switchauth_live_journal()
RETURNS TABLE (unique_id text, account_id bigint, core_uuid text, destination text, reserved_at timestamptz)
LANGUAGE sql STABLE AS $$
    WITH entries AS (
        SELECT j.written_us, string_to_array(l, E'\t') f FROM admission_journal j, string_to_table(j.entries, E'\n') l WHERE l <> ''
    ), reserved AS (
        SELECT DISTINCT ON (e.f[2]) e.f[2] AS i, e.f[3]::bigint AS a, e.f[5] AS c, e.f[6] AS d, e.f[4]::bigint AS t
          FROM entries e WHERE e.f[1] = 'R'
         ORDER BY e.f[2], e.written_us
    ), released AS (
        SELECT DISTINCT e.f[2] AS i FROM entries e WHERE e.f[1] = 'X'
    )
    SELECT r.i, r.a, r.c, coalesce(r.d, ''), to_timestamp(r.t / 1000000.0)
      FROM reserved r
     WHERE NOT EXISTS (SELECT 1 FROM released x WHERE x.i = r.i)
       AND NOT EXISTS (SELECT 1 FROM call_slots s WHERE s.unique_id = r.i)
$$;

-- Makes call_slots whole: the journal's live slots inserted, its releases applied, the journal
-- emptied. Returns the slots inserted.
CREATE FUNCTION switchauth_apply_admission_journal()
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    n integer;
BEGIN
    INSERT INTO call_slots (unique_id, account_id, core_uuid, destination, reserved_at)
    SELECT l.unique_id, l.account_id, l.core_uuid, l.destination, l.reserved_at FROM switchauth_live_journal() l
    ON CONFLICT (unique_id) DO NOTHING;
    GET DIAGNOSTICS n = ROW_COUNT;
    DELETE FROM call_slots WHERE unique_id IN (
        SELECT split_part(l, E'\t', 2) FROM admission_journal j, string_to_table(j.entries, E'\n') l WHERE l LIKE 'X%');
    DELETE FROM admission_journal;
    RETURN n;
END;
$$;

-- The calls an account has up, wherever their slots are (call_slots, or the holder's journal).
CREATE FUNCTION switchauth_calls_up(p_account bigint)
RETURNS bigint LANGUAGE sql STABLE AS $$
    SELECT (SELECT count(*) FROM call_slots s WHERE s.account_id = p_account)
         + (SELECT count(*) FROM switchauth_live_journal() l WHERE l.account_id = p_account)
$$;

-- Every other delete from call_slots while a journal exists is written to it as a release too
-- (a hangup or a reconciliation heard by an instance that does not hold the admissions, a
-- critical fraud level): the journal's reservation of that call must not bring it back.
CREATE FUNCTION switchauth_journal_release(p_ids text[]) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF cardinality(p_ids) = 0 OR NOT EXISTS (SELECT 1 FROM admission_journal) THEN
        RETURN;
    END IF;
    INSERT INTO admission_journal (written_us, epoch, entries)
    SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint, a.epoch,
           (SELECT string_agg('X' || E'\t' || i || E'\n', '') FROM unnest(p_ids) i)
      FROM admission_authority a
    ON CONFLICT (written_us, epoch) DO UPDATE SET entries = admission_journal.entries || EXCLUDED.entries;
END;
$$;

CREATE OR REPLACE FUNCTION switchauth_release_slots(p_unique_ids text[]) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    n integer;
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    DELETE FROM call_slots WHERE unique_id = ANY (p_unique_ids);
    GET DIAGNOSTICS n = ROW_COUNT;
    PERFORM switchauth_journal_release(p_unique_ids);
    RETURN n;
END;
$$;

CREATE OR REPLACE FUNCTION switchauth_fraud_event(p_account bigint, p_threshold bigint, p_level text, p_value integer,
                                                  p_level_value integer, p_window_ms bigint, p_unique_id text)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    th   record;
    n    integer;
BEGIN
    SELECT metric, prefix INTO th FROM fraud_thresholds WHERE id = p_threshold;
    INSERT INTO fraud_events (account_id, threshold_id, metric, prefix, level, value, level_value, window_start, unique_id)
    VALUES (p_account, p_threshold, coalesce(th.metric, ''), coalesce(th.prefix, ''), p_level, p_value, p_level_value,
            to_timestamp(p_window_ms / 1000.0), p_unique_id)
    ON CONFLICT (threshold_id, level, window_start) DO NOTHING;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF p_level = 'critical' THEN
        PERFORM set_config('switchauth.actor', 'fraud check: ' || coalesce(th.metric, '?') || ' > ' || p_level_value, true);
        UPDATE accounts SET status = 'suspended' WHERE id = p_account AND status = 'active';
        DELETE FROM call_slots WHERE unique_id = p_unique_id;
        PERFORM switchauth_journal_release(ARRAY[p_unique_id]);
    END IF;
    RETURN n = 1;
END;
$$;

-- 0009's reconciliation, with the journal: its slots still up are judged as the rows are (a
-- holder that died left them), and every slot released is a journal release as well. The holder
-- itself, which made every slot a row just before, passes p_judge_journal false: the parse of its
-- whole journal (some 100,000 lines at 20,000 calls/s) would find nothing.
DROP FUNCTION switchauth_reconcile_slots(text, text, timestamptz, text[]);
CREATE FUNCTION switchauth_reconcile_slots(p_endpoint text, p_core_uuid text, p_before timestamptz, p_live text[],
                                           p_judge_journal boolean)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    gone text[] := '{}';
BEGIN
    INSERT INTO switch_cores (core_uuid, endpoint) VALUES (p_core_uuid, p_endpoint)
    ON CONFLICT (core_uuid) DO UPDATE SET endpoint = EXCLUDED.endpoint, seen_at = now();
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
    DELETE FROM switch_cores WHERE endpoint = p_endpoint AND core_uuid <> p_core_uuid;
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

-- The flush (0016's, with the journal): p_entries are the journal's lines for the slots reserved
-- since the last flush and the released slots that never reached call_slots; p_row_ids.. the
-- slots old enough for call_slots, p_released the slots released that are in it (journal
-- releases too); journal rows written at or before p_prune_us go.
DROP FUNCTION switchauth_flush_admissions(bigint, text[], bigint[], text[], text[], bigint[], text[], bigint[], bigint[], integer[]);
CREATE FUNCTION switchauth_flush_admissions(p_epoch bigint, p_now_us bigint, p_prune_us bigint, p_entries text,
                                            p_row_ids text[], p_row_accounts bigint[], p_row_cores text[], p_row_destinations text[],
                                            p_row_at bigint[], p_released text[],
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
    IF p_entries <> '' OR cardinality(p_released) > 0 THEN
        -- Rows deleted are journal releases too: a slot whose row was made and deleted within the
        -- journal's seconds must not come back from its reservation there.
        -- Two flushes at one microsecond (a clock stepped back): one row, both flushes' entries.
        INSERT INTO admission_journal (written_us, epoch, entries)
        VALUES (p_now_us, p_epoch, p_entries || coalesce((SELECT string_agg('X' || E'\t' || r || E'\n', '') FROM unnest(p_released) r), ''))
        ON CONFLICT (written_us, epoch) DO UPDATE SET entries = admission_journal.entries || EXCLUDED.entries;
    END IF;
    IF cardinality(p_row_ids) > 0 THEN
        -- Plain insert (the ledger writes each slot once); a flush whose commit reached the database
        -- but whose answer did not is written again, and only then are rows already there skipped.
        BEGIN
            INSERT INTO call_slots (unique_id, account_id, core_uuid, destination, reserved_at)
            SELECT u.i, u.a, u.c, u.d, to_timestamp(u.t / 1000000.0)
              FROM unnest(p_row_ids, p_row_accounts, p_row_cores, p_row_destinations, p_row_at) u(i, a, c, d, t);
        EXCEPTION WHEN unique_violation THEN
            INSERT INTO call_slots (unique_id, account_id, core_uuid, destination, reserved_at)
            SELECT u.i, u.a, u.c, u.d, to_timestamp(u.t / 1000000.0)
              FROM unnest(p_row_ids, p_row_accounts, p_row_cores, p_row_destinations, p_row_at) u(i, a, c, d, t)
            ON CONFLICT (unique_id) DO NOTHING;
        END;
    END IF;
    IF cardinality(p_released) > 0 THEN
        DELETE FROM call_slots WHERE unique_id = ANY (p_released);
    END IF;
    DELETE FROM admission_journal WHERE written_us <= p_prune_us AND epoch = p_epoch;
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

-- Into memory (0015's, with the journal applied first: a holder that died left its journal).
CREATE OR REPLACE FUNCTION switchauth_admissions_to_memory(p_holder text)
RETURNS TABLE (kind text, key text, n1 bigint, n2 bigint, n3 bigint, t1 text, t2 text) LANGUAGE plpgsql AS $$
DECLARE
    before text;
    e      bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(1937, 1);
    SELECT a.mode INTO before FROM admission_authority a FOR UPDATE;
    PERFORM switchauth_apply_admission_journal();
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

-- Back to the database (0015's, with the journal applied: the database modes read call_slots).
CREATE OR REPLACE FUNCTION switchauth_admissions_to_database(p_epoch bigint, p_subjects text[], p_times bigint[])
RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    UPDATE admission_authority a SET mode = 'database', since = clock_timestamp()
     WHERE a.mode = 'memory' AND a.epoch = p_epoch;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM switchauth_apply_admission_journal();
    INSERT INTO cps_windows (subject, admitted)
    SELECT u.s, array_agg(to_timestamp(u.t / 1000000.0) ORDER BY u.t) FROM unnest(p_subjects, p_times) u(s, t) GROUP BY u.s
    ON CONFLICT (subject) DO UPDATE SET admitted = EXCLUDED.admitted;
    RETURN true;
END;
$$;
