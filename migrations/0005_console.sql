-- The operators' console: operators with roles, API tokens and browser sessions (only hashes are
-- stored), the audit log of every change, and the idempotency keys of balance adjustments.

CREATE TABLE console_operators (
    id             bigserial PRIMARY KEY,
    name           text NOT NULL CHECK (name ~ '^[A-Za-z0-9_.@-]{1,64}$'),
    role           text NOT NULL CHECK (role IN ('read-only', 'operator', 'admin')),
    -- scrypt$<log2 N>$<r>$<p>$<salt base64>$<key base64> (swift-crypto's KDF.Scrypt).
    password_hash  text NOT NULL CHECK (password_hash LIKE 'scrypt$%'),
    disabled       boolean NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX console_operators_name_key ON console_operators (lower(name));
CREATE TRIGGER console_operators_touch BEFORE UPDATE ON console_operators
    FOR EACH ROW EXECUTE FUNCTION switchauth_touch_updated_at();

-- API tokens: 32 random bytes shown once; stored as SHA-256 (a random 256-bit secret needs no
-- slow hash: nothing to guess). `hint` is the first characters, to tell tokens apart in lists.
CREATE TABLE console_tokens (
    id             bigserial PRIMARY KEY,
    operator_id    bigint NOT NULL REFERENCES console_operators (id) ON DELETE CASCADE,
    name           text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    token_sha256   text NOT NULL UNIQUE CHECK (token_sha256 ~ '^[0-9a-f]{64}$'),
    hint           text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    last_used_at   timestamptz,
    revoked_at     timestamptz
);
CREATE INDEX console_tokens_operator ON console_tokens (operator_id);

-- Browser sessions: the cookie value is random; only its SHA-256 is stored, beside the session's
-- CSRF token (not a credential by itself: it is useless without the cookie).
CREATE TABLE console_sessions (
    id_sha256      text PRIMARY KEY CHECK (id_sha256 ~ '^[0-9a-f]{64}$'),
    operator_id    bigint NOT NULL REFERENCES console_operators (id) ON DELETE CASCADE,
    csrf_token     text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL
);
CREATE INDEX console_sessions_expires ON console_sessions (expires_at);

-- Balance adjustments by idempotency key: a retried request finds its key and moves nothing.
CREATE TABLE balance_adjustments (
    idempotency_key text PRIMARY KEY CHECK (length(idempotency_key) BETWEEN 1 AND 200),
    account_id      bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    amount          numeric(20, 6) NOT NULL,
    balance_after   numeric(20, 6) NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);

-- Every change to the operators' objects, whoever makes it (API, console, CLI or plain SQL), written
-- by triggers in the same transaction as the change. `actor` is the session's `switchauth.actor`
-- (set by the console per request and by the CLI per connection), else the database user.
-- Secrets never enter: HA1s, password hashes and token hashes are removed from before/after.
CREATE TABLE audit_log (
    id             bigserial PRIMARY KEY,
    at             timestamptz NOT NULL DEFAULT clock_timestamp(),
    actor          text NOT NULL,
    action         text NOT NULL CHECK (action IN ('create', 'update', 'delete')),
    object_type    text NOT NULL,
    object_id      text NOT NULL,
    -- What the object is called (account number, user@domain, network/prefix, domain name).
    object_label   text NOT NULL,
    -- The account the object belongs to, for the account's history.
    account_id     bigint,
    before         jsonb,
    after          jsonb
);
CREATE INDEX audit_log_at ON audit_log (id DESC);
CREATE INDEX audit_log_account ON audit_log (account_id, id DESC) WHERE account_id IS NOT NULL;
CREATE INDEX audit_log_object ON audit_log (object_type, object_id, id DESC);

-- The pieces every audit row is made of, per table: what the object is called, the account it
-- belongs to, and the row without its secrets.
CREATE FUNCTION switchauth_audit_label(tbl text, r jsonb) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT coalesce(CASE tbl
        WHEN 'sip_devices' THEN (r->>'username') || '@' || coalesce((SELECT name FROM sip_domains WHERE id = (r->>'domain_id')::bigint), '?')
        WHEN 'accounts' THEN r->>'number'
        WHEN 'ip_settings' THEN (r->>'network') || ' prefix ''' || (r->>'prefix') || ''''
        WHEN 'sip_domains' THEN r->>'name'
        WHEN 'sip_domain_aliases' THEN (r->>'alias') || ' (alias)'
        WHEN 'auth_failures' THEN (r->>'scope') || ' ' || (r->>'subject')
        WHEN 'console_operators' THEN r->>'name'
        WHEN 'console_tokens' THEN (r->>'name') || ' (' || (r->>'hint') || '…)'
        ELSE tbl END, '')
$$;

CREATE FUNCTION switchauth_audit_account(tbl text, r jsonb) RETURNS bigint
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE tbl WHEN 'accounts' THEN (r->>'id')::bigint
                    WHEN 'sip_devices' THEN (r->>'account_id')::bigint
                    WHEN 'ip_settings' THEN (r->>'account_id')::bigint END
$$;

-- Secrets never enter the audit log.
CREATE FUNCTION switchauth_audit_clean(r jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT r - 'ha1_md5' - 'ha1_sha256' - 'password_hash' - 'token_sha256'
$$;

CREATE FUNCTION switchauth_audit_actor() RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT coalesce(nullif(current_setting('switchauth.actor', true), ''), 'sql:' || session_user)
$$;

-- Inserts: one statement per statement (a bulk load of 1,000,000 devices writes its audit rows in
-- one INSERT ... SELECT instead of a million trigger calls).
CREATE FUNCTION switchauth_audit_inserts() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO audit_log (actor, action, object_type, object_id, object_label, account_id, before, after)
    SELECT switchauth_audit_actor(), 'create', TG_TABLE_NAME, x.j->>'id',
           switchauth_audit_label(TG_TABLE_NAME, x.j), switchauth_audit_account(TG_TABLE_NAME, x.j),
           NULL, switchauth_audit_clean(x.j)
      FROM (SELECT to_jsonb(n) AS j FROM new_rows n) x;
    RETURN NULL;
END;
$$;

-- Updates and deletes: per row, with the row before and after.
CREATE FUNCTION switchauth_audit() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    old_row jsonb;
    new_row jsonb;
    r jsonb;
BEGIN
    -- Lockout counters are written by the service itself on every failed digest: only an operator's
    -- clearing (a session with an actor) is a change worth recording.
    IF TG_TABLE_NAME = 'auth_failures' AND nullif(current_setting('switchauth.actor', true), '') IS NULL THEN
        RETURN NULL;
    END IF;
    old_row := to_jsonb(OLD);
    IF TG_OP = 'UPDATE' THEN new_row := to_jsonb(NEW); END IF;
    r := coalesce(new_row, old_row);
    IF TG_OP = 'UPDATE' AND TG_TABLE_NAME = 'sip_devices' THEN
        IF OLD.ha1_md5 <> NEW.ha1_md5 OR OLD.ha1_sha256 <> NEW.ha1_sha256 THEN
            new_row := new_row || '{"password": "changed"}';
        END IF;
    END IF;
    IF TG_OP = 'UPDATE' AND TG_TABLE_NAME = 'console_operators' THEN
        IF OLD.password_hash <> NEW.password_hash THEN
            new_row := new_row || '{"password": "changed"}';
        END IF;
    END IF;
    old_row := switchauth_audit_clean(old_row);
    new_row := switchauth_audit_clean(new_row);
    -- updated_at alone is not a change.
    IF TG_OP = 'UPDATE' AND (old_row - 'updated_at' - 'last_used_at') = (new_row - 'updated_at' - 'last_used_at') THEN
        RETURN NULL;
    END IF;
    INSERT INTO audit_log (actor, action, object_type, object_id, object_label, account_id, before, after)
    VALUES (switchauth_audit_actor(), CASE TG_OP WHEN 'UPDATE' THEN 'update' ELSE 'delete' END, TG_TABLE_NAME,
            coalesce(r->>'id', (r->>'scope') || ':' || (r->>'subject')),
            switchauth_audit_label(TG_TABLE_NAME, r), switchauth_audit_account(TG_TABLE_NAME, r), old_row, new_row);
    RETURN NULL;
END;
$$;

CREATE TRIGGER accounts_audit AFTER UPDATE OR DELETE ON accounts
    FOR EACH ROW EXECUTE FUNCTION switchauth_audit();
CREATE TRIGGER accounts_audit_inserts AFTER INSERT ON accounts
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION switchauth_audit_inserts();
CREATE TRIGGER ip_settings_audit AFTER UPDATE OR DELETE ON ip_settings
    FOR EACH ROW EXECUTE FUNCTION switchauth_audit();
CREATE TRIGGER ip_settings_audit_inserts AFTER INSERT ON ip_settings
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION switchauth_audit_inserts();
CREATE TRIGGER sip_domains_audit AFTER UPDATE OR DELETE ON sip_domains
    FOR EACH ROW EXECUTE FUNCTION switchauth_audit();
CREATE TRIGGER sip_domains_audit_inserts AFTER INSERT ON sip_domains
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION switchauth_audit_inserts();
CREATE TRIGGER sip_domain_aliases_audit AFTER UPDATE OR DELETE ON sip_domain_aliases
    FOR EACH ROW EXECUTE FUNCTION switchauth_audit();
CREATE TRIGGER sip_domain_aliases_audit_inserts AFTER INSERT ON sip_domain_aliases
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION switchauth_audit_inserts();
CREATE TRIGGER sip_devices_audit AFTER UPDATE OR DELETE ON sip_devices
    FOR EACH ROW EXECUTE FUNCTION switchauth_audit();
CREATE TRIGGER sip_devices_audit_inserts AFTER INSERT ON sip_devices
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION switchauth_audit_inserts();
CREATE TRIGGER auth_failures_audit AFTER DELETE ON auth_failures
    FOR EACH ROW EXECUTE FUNCTION switchauth_audit();
CREATE TRIGGER console_operators_audit AFTER UPDATE OR DELETE ON console_operators
    FOR EACH ROW EXECUTE FUNCTION switchauth_audit();
CREATE TRIGGER console_operators_audit_inserts AFTER INSERT ON console_operators
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION switchauth_audit_inserts();
CREATE TRIGGER console_tokens_audit AFTER UPDATE OF revoked_at OR DELETE ON console_tokens
    FOR EACH ROW EXECUTE FUNCTION switchauth_audit();
CREATE TRIGGER console_tokens_audit_inserts AFTER INSERT ON console_tokens
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION switchauth_audit_inserts();

-- The console's lists at 100,000 accounts and 1,000,000 devices: search by name, keyset order.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX accounts_name_trgm ON accounts USING gin (lower(name) gin_trgm_ops);
CREATE INDEX accounts_number_trgm ON accounts USING gin (lower(number) gin_trgm_ops);
CREATE INDEX sip_devices_username_trgm ON sip_devices USING gin (lower(username) gin_trgm_ops);
-- Accounts by status (suspended, closed: few among many), in the list's keyset order.
CREATE INDEX accounts_status_number ON accounts (status, number);
