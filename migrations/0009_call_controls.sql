-- Call controls that hold across every switch and every SwitchAuth instance (README: "Call
-- controls"): the concurrent calls of an account and the calls per second of an account or an IP
-- setting are counted here, in the one database every instance shares, not per switch.

-- Calls per second allowed; 0 means unlimited.
ALTER TABLE accounts ADD COLUMN max_cps integer NOT NULL DEFAULT 0 CHECK (max_cps >= 0);
ALTER TABLE ip_settings ADD COLUMN max_cps integer NOT NULL DEFAULT 0 CHECK (max_cps >= 0);

-- One row per call holding a channel of a limited account: reserved by the dialplan decision,
-- keyed by the channel's Unique-ID, deleted by the switch's hangup event (any instance that hears
-- it) or by the reconciliation against the switch's live channels (core_uuid names the switch's
-- run: a restarted switch has a new one, and its old run's calls are all gone).
-- No CHECK constraints (PostgreSQL parses each one again for every row a function inserts, seen in
-- profiles of the admission; the service admits only UUIDs it has checked) and no foreign key (its
-- check locks the account's row, a write, on every call): a slot of a deleted account counts for
-- nobody and goes at its hangup or the next reconciliation like any other.
CREATE TABLE call_slots (
    unique_id    text PRIMARY KEY,
    account_id   bigint NOT NULL,
    core_uuid    text NOT NULL,
    -- As routed: concurrent-call fraud thresholds may be per destination prefix.
    destination  text NOT NULL DEFAULT '',
    reserved_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX call_slots_account ON call_slots (account_id);
CREATE INDEX call_slots_core ON call_slots (core_uuid);

-- The switch runs seen by the listeners: `endpoint` is the switch as itself (its hostname and its
-- event socket's port, not an address some instance reaches it by). When a listener finds another
-- core at a switch, the slots of every earlier core of that switch are gone.
CREATE TABLE switch_cores (
    core_uuid  text PRIMARY KEY CHECK (length(core_uuid) BETWEEN 1 AND 64),
    endpoint   text NOT NULL CHECK (length(endpoint) BETWEEN 1 AND 300),
    seen_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX switch_cores_endpoint ON switch_cores (endpoint);

-- Calls admitted in the last second per limited subject ('a:<account id>', 'i:<ip setting id>'):
-- a sliding window, exact (never more than max_cps calls admitted in any second).
CREATE TABLE cps_windows (
    subject  text PRIMARY KEY,
    admitted timestamptz[] NOT NULL DEFAULT '{}'
);

-- Fraud thresholds per account, optionally per destination prefix ('' = every destination):
--   calls_per_minute   calls admitted in the current minute (fixed UTC minute windows)
--   attempts_per_day   calls attempted, admitted or not, in the current UTC day
--   concurrent_calls   the account's calls up (to destinations beginning with the prefix)
-- Passing `warning` is logged, counted and sent to the webhook; passing `critical` suspends the
-- account at once (audited) and refuses the call. "Passing" is a value above the level.
CREATE TABLE fraud_thresholds (
    id          bigserial PRIMARY KEY,
    account_id  bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    prefix      text NOT NULL DEFAULT '' CHECK (prefix ~ '^[0-9+*#]{0,32}$'),
    metric      text NOT NULL CHECK (metric IN ('calls_per_minute', 'attempts_per_day', 'concurrent_calls')),
    warning     integer CHECK (warning > 0),
    critical    integer CHECK (critical > 0),
    created_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (warning IS NOT NULL OR critical IS NOT NULL),
    CHECK (warning IS NULL OR critical IS NULL OR warning < critical),
    UNIQUE (account_id, prefix, metric)
);
CREATE TRIGGER fraud_thresholds_rows AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON fraud_thresholds
    FOR EACH STATEMENT EXECUTE FUNCTION switchauth_rows_announce('p');

-- The counts of the windowed thresholds (one row per threshold and window; old windows pruned).
CREATE TABLE fraud_counts (
    threshold_id  bigint NOT NULL REFERENCES fraud_thresholds (id) ON DELETE CASCADE,
    window_start  timestamptz NOT NULL,
    n             integer NOT NULL,
    PRIMARY KEY (threshold_id, window_start)
);

-- Every level passed, once per threshold, level and window: the record of what was notified and
-- done (a critical one suspended the account).
CREATE TABLE fraud_events (
    id            bigserial PRIMARY KEY,
    at            timestamptz NOT NULL DEFAULT clock_timestamp(),
    account_id    bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    threshold_id  bigint REFERENCES fraud_thresholds (id) ON DELETE SET NULL,
    metric        text NOT NULL,
    prefix        text NOT NULL,
    level         text NOT NULL CHECK (level IN ('warning', 'critical')),
    value         integer NOT NULL,
    level_value   integer NOT NULL,
    window_start  timestamptz NOT NULL,
    unique_id     text NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX fraud_events_once ON fraud_events (threshold_id, level, window_start);
CREATE INDEX fraud_events_account ON fraud_events (account_id, id DESC);

-- Admits one call, atomically, against every limit that applies, and counts it for the account's
-- fraud thresholds. Returns '<verdict>|<threshold id>=<value>,...' where <verdict> is
--   'held'              the channel holds its slot already (a second lookup of the same call;
--                       nothing is counted again)
--   'ok:<in use>'       admitted; <in use>: the account's calls now (0 when none are tracked)
--   'channels:<in use>' refused: the account has max_channels calls up
--   'cps:account' / 'cps:ip_setting'  refused: that subject admitted max_cps calls in the last second
-- and the list holds each fraud threshold that begins the destination with its value including
-- this call (window start in the same order after a second '|', epoch ms).
-- Concurrent admissions of one account are serialised by a transaction-level advisory lock on the
-- account (class 1936), so that counts and inserts cannot interleave; a refused call takes no slot
-- and spends no CPS allowance (it is an attempt all the same).
CREATE FUNCTION switchauth_admit_call(p_unique_id text, p_core_uuid text, p_account bigint, p_max_channels integer,
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

-- Releases the slots of calls that hung up (a batch of hangup events); asynchronous commit like
-- the admission (a release lost to a crash of PostgreSQL is redone by the next reconciliation).
CREATE FUNCTION switchauth_release_slots(p_unique_ids text[]) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    n integer;
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    DELETE FROM call_slots WHERE unique_id = ANY (p_unique_ids);
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END;
$$;

-- What a critical fraud threshold does, in one transaction: the event is recorded (once per
-- threshold and window), the account suspended (audited as the fraud check) and the call's slot
-- released. Returns whether this call recorded the event (false: an earlier call already did).
CREATE FUNCTION switchauth_fraud_event(p_account bigint, p_threshold bigint, p_level text, p_value integer,
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
    END IF;
    RETURN n = 1;
END;
$$;

-- The switch's live channels against the slots of its run: a slot reserved before `p_before` whose
-- channel the switch no longer has is released; so is every slot of an earlier run seen at the same
-- endpoint, and every slot of a run no listener has seen, a minute after it was reserved. Returns
-- the slots released.
CREATE FUNCTION switchauth_reconcile_slots(p_endpoint text, p_core_uuid text, p_before timestamptz, p_live text[])
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    released integer := 0;
    n        integer;
BEGIN
    INSERT INTO switch_cores (core_uuid, endpoint) VALUES (p_core_uuid, p_endpoint)
    ON CONFLICT (core_uuid) DO UPDATE SET endpoint = EXCLUDED.endpoint, seen_at = now();
    DELETE FROM call_slots s
     WHERE s.core_uuid IN (SELECT c.core_uuid FROM switch_cores c WHERE c.endpoint = p_endpoint AND c.core_uuid <> p_core_uuid);
    GET DIAGNOSTICS n = ROW_COUNT;
    released := released + n;
    DELETE FROM switch_cores WHERE endpoint = p_endpoint AND core_uuid <> p_core_uuid;
    DELETE FROM call_slots s
     WHERE s.core_uuid = p_core_uuid AND s.reserved_at < p_before AND NOT (s.unique_id = ANY (p_live));
    GET DIAGNOSTICS n = ROW_COUNT;
    released := released + n;
    -- A run no listener ever reached (it died before one connected, or its switch is missing from
    -- event_sockets): its slots are released once a minute old, so a lost switch can never keep an
    -- account's channels taken.
    DELETE FROM call_slots s
     WHERE s.reserved_at < clock_timestamp() - interval '60 seconds'
       AND NOT EXISTS (SELECT 1 FROM switch_cores c WHERE c.core_uuid = s.core_uuid);
    GET DIAGNOSTICS n = ROW_COUNT;
    -- Housekeeping: windows of fraud counts and CPS that can no longer matter.
    DELETE FROM fraud_counts WHERE window_start < clock_timestamp() - interval '2 days';
    DELETE FROM cps_windows WHERE cardinality(admitted) = 0
        OR admitted[cardinality(admitted)] < clock_timestamp() - interval '1 hour';
    RETURN released + n;
END;
$$;

-- Destination prefix lists: what calls may dial, for every account (account_id NULL) or one. The
-- longest matching prefix decides (an account's rule beats a global one of the same length, deny
-- beats allow); an account with allow rules of its own dials only what they (or a global allow)
-- begin. Checked on the destination as routed.
CREATE TABLE destination_rules (
    id          bigserial PRIMARY KEY,
    account_id  bigint REFERENCES accounts (id) ON DELETE CASCADE,
    action      text NOT NULL CHECK (action IN ('deny', 'allow')),
    prefix      text NOT NULL CHECK (prefix ~ '^[0-9+*#]{1,32}$'),
    note        text NOT NULL DEFAULT '' CHECK (length(note) <= 200),
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX destination_rules_global_prefix ON destination_rules (prefix) WHERE account_id IS NULL;
CREATE UNIQUE INDEX destination_rules_account_prefix ON destination_rules (account_id, prefix) WHERE account_id IS NOT NULL;
-- The memory copy reads the (small) table again on any change: payload 'p' (migration 0007's feed).
CREATE TRIGGER destination_rules_rows AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON destination_rules
    FOR EACH STATEMENT EXECUTE FUNCTION switchauth_rows_announce('p');
