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

CREATE FUNCTION switchauth_audit() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    old_row jsonb;
    new_row jsonb;
    r jsonb;
    actor text := coalesce(nullif(current_setting('switchauth.actor', true), ''), 'sql:' || session_user);
    label text;
    account bigint;
    act text;
BEGIN
    IF TG_OP = 'INSERT' THEN act := 'create'; ELSIF TG_OP = 'UPDATE' THEN act := 'update'; ELSE act := 'delete'; END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN old_row := to_jsonb(OLD); END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN new_row := to_jsonb(NEW); END IF;
    r := coalesce(new_row, old_row);
    -- Lockout counters are written by the service itself on every failed digest: only an operator's
    -- clearing (a session with an actor) is a change worth recording.
    IF TG_TABLE_NAME = 'auth_failures' AND nullif(current_setting('switchauth.actor', true), '') IS NULL THEN
        RETURN NULL;
    END IF;
    IF TG_TABLE_NAME = 'sip_devices' THEN
        IF TG_OP = 'UPDATE' AND (OLD.ha1_md5 <> NEW.ha1_md5 OR OLD.ha1_sha256 <> NEW.ha1_sha256) THEN
            new_row := new_row || '{"password": "changed"}';
        END IF;
        old_row := old_row - 'ha1_md5' - 'ha1_sha256';
        new_row := new_row - 'ha1_md5' - 'ha1_sha256';
        label := (r->>'username') || '@' || coalesce((SELECT name FROM sip_domains WHERE id = (r->>'domain_id')::bigint), '?');
        account := (r->>'account_id')::bigint;
    ELSIF TG_TABLE_NAME = 'accounts' THEN
        label := r->>'number';
        account := (r->>'id')::bigint;
    ELSIF TG_TABLE_NAME = 'ip_settings' THEN
        label := (r->>'network') || ' prefix ''' || (r->>'prefix') || '''';
        account := (r->>'account_id')::bigint;
    ELSIF TG_TABLE_NAME = 'sip_domains' THEN
        label := r->>'name';
    ELSIF TG_TABLE_NAME = 'sip_domain_aliases' THEN
        label := (r->>'alias') || ' (alias)';
    ELSIF TG_TABLE_NAME = 'auth_failures' THEN
        label := (r->>'scope') || ' ' || (r->>'subject');
    ELSIF TG_TABLE_NAME = 'console_operators' THEN
        IF TG_OP = 'UPDATE' AND OLD.password_hash <> NEW.password_hash THEN
            new_row := new_row || '{"password": "changed"}';
        END IF;
        old_row := old_row - 'password_hash';
        new_row := new_row - 'password_hash';
        label := r->>'name';
    ELSIF TG_TABLE_NAME = 'console_tokens' THEN
        old_row := old_row - 'token_sha256';
        new_row := new_row - 'token_sha256';
        label := (r->>'name') || ' (' || (r->>'hint') || '…)';
    ELSE
        label := TG_TABLE_NAME;
    END IF;
    -- updated_at alone is not a change.
    IF TG_OP = 'UPDATE' AND (old_row - 'updated_at' - 'last_used_at') = (new_row - 'updated_at' - 'last_used_at') THEN
        RETURN NULL;
    END IF;
    INSERT INTO audit_log (actor, action, object_type, object_id, object_label, account_id, before, after)
    VALUES (actor, act, TG_TABLE_NAME,
            coalesce(r->>'id', (r->>'scope') || ':' || (r->>'subject')),
            coalesce(label, ''), account, old_row, new_row);
    RETURN NULL;
END;
$$;

CREATE TRIGGER accounts_audit AFTER INSERT OR UPDATE OR DELETE ON accounts
    FOR EACH ROW EXECUTE FUNCTION switchauth_audit();
CREATE TRIGGER ip_settings_audit AFTER INSERT OR UPDATE OR DELETE ON ip_settings
    FOR EACH ROW EXECUTE FUNCTION switchauth_audit();
CREATE TRIGGER sip_domains_audit AFTER INSERT OR UPDATE OR DELETE ON sip_domains
    FOR EACH ROW EXECUTE FUNCTION switchauth_audit();
CREATE TRIGGER sip_domain_aliases_audit AFTER INSERT OR UPDATE OR DELETE ON sip_domain_aliases
    FOR EACH ROW EXECUTE FUNCTION switchauth_audit();
CREATE TRIGGER sip_devices_audit AFTER INSERT OR UPDATE OR DELETE ON sip_devices
    FOR EACH ROW EXECUTE FUNCTION switchauth_audit();
CREATE TRIGGER auth_failures_audit AFTER DELETE ON auth_failures
    FOR EACH ROW EXECUTE FUNCTION switchauth_audit();
CREATE TRIGGER console_operators_audit AFTER INSERT OR UPDATE OR DELETE ON console_operators
    FOR EACH ROW EXECUTE FUNCTION switchauth_audit();
CREATE TRIGGER console_tokens_audit AFTER INSERT OR UPDATE OF revoked_at OR DELETE ON console_tokens
    FOR EACH ROW EXECUTE FUNCTION switchauth_audit();

-- The console's lists at 100,000 accounts and 1,000,000 devices: search by name, keyset order.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX accounts_name_trgm ON accounts USING gin (lower(name) gin_trgm_ops);
CREATE INDEX accounts_number_trgm ON accounts USING gin (lower(number) gin_trgm_ops);
CREATE INDEX sip_devices_username_trgm ON sip_devices USING gin (lower(username) gin_trgm_ops);
