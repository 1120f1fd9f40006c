-- SwitchAuth schema: accounts (customers and carriers), their IP settings, SIP domains with aliases,
-- SIP devices (digests only, never a plaintext password) and the brute-force counters.
-- Applied by `switchauth migrate`, in one transaction.

-- updated_at is maintained by the database, whoever writes the row.
CREATE FUNCTION switchauth_touch_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;

CREATE TABLE accounts (
    id            bigserial PRIMARY KEY,
    -- The accountcode: what billing and CDRs know the account by.
    number        text NOT NULL UNIQUE
                  CHECK (number ~ '^[A-Za-z0-9_.-]{1,40}$'),
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    kind          text NOT NULL DEFAULT 'customer' CHECK (kind IN ('customer', 'carrier')),
    status        text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended', 'closed')),
    billing       text NOT NULL DEFAULT 'prepaid' CHECK (billing IN ('prepaid', 'postpaid')),
    balance       numeric(20, 6) NOT NULL DEFAULT 0,
    credit_limit  numeric(20, 6) NOT NULL DEFAULT 0 CHECK (credit_limit >= 0),
    -- Concurrent channels allowed; 0 means unlimited.
    max_channels  integer NOT NULL DEFAULT 0 CHECK (max_channels >= 0),
    expires_at    timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE TRIGGER accounts_touch BEFORE UPDATE ON accounts
    FOR EACH ROW EXECUTE FUNCTION switchauth_touch_updated_at();

-- The seed's "IP settings": calls from `network` are accepted without credentials for destinations
-- beginning with `prefix` (empty = any destination).
CREATE TABLE ip_settings (
    id            bigserial PRIMARY KEY,
    -- Deleting an account deletes its IP settings: an orphaned IP setting would grant nothing anyway.
    account_id    bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    -- cidr: a bare address is a single host (/32 or /128); host bits set are refused.
    network       cidr NOT NULL,
    prefix        text NOT NULL DEFAULT '' CHECK (prefix ~ '^[0-9]{0,32}$'),
    strip_prefix  boolean NOT NULL DEFAULT false,
    enabled       boolean NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT ip_settings_network_prefix_key UNIQUE (network, prefix)
);
-- "Which networks contain this address" (network >>= $1) through GiST.
CREATE INDEX ip_settings_network_gist ON ip_settings USING gist (network inet_ops);
CREATE INDEX ip_settings_account ON ip_settings (account_id);
CREATE TRIGGER ip_settings_touch BEFORE UPDATE ON ip_settings
    FOR EACH ROW EXECUTE FUNCTION switchauth_touch_updated_at();

-- SIP domains. `name` is the primary name and the digest realm the devices' HA1s are computed over.
CREATE TABLE sip_domains (
    id            bigserial PRIMARY KEY,
    name          text NOT NULL CHECK (name ~ '^[A-Za-z0-9]([A-Za-z0-9.:-]{0,252})$'),
    enabled       boolean NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX sip_domains_name_key ON sip_domains (lower(name));
CREATE TRIGGER sip_domains_touch BEFORE UPDATE ON sip_domains
    FOR EACH ROW EXECUTE FUNCTION switchauth_touch_updated_at();

-- Other names of a domain: the server's IP address, other host names.
CREATE TABLE sip_domain_aliases (
    id            bigserial PRIMARY KEY,
    domain_id     bigint NOT NULL REFERENCES sip_domains (id) ON DELETE CASCADE,
    alias         text NOT NULL CHECK (alias ~ '^[A-Za-z0-9]([A-Za-z0-9.:-]{0,252})$'),
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX sip_domain_aliases_alias_key ON sip_domain_aliases (lower(alias));

-- A name is either a primary name or an alias, never both.
CREATE FUNCTION switchauth_check_domain_name() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'sip_domains' THEN
        IF EXISTS (SELECT 1 FROM sip_domain_aliases WHERE lower(alias) = lower(NEW.name)) THEN
            RAISE EXCEPTION 'domain name % is already an alias', NEW.name USING ERRCODE = '23505';
        END IF;
    ELSE
        IF EXISTS (SELECT 1 FROM sip_domains WHERE lower(name) = lower(NEW.alias)) THEN
            RAISE EXCEPTION 'alias % is already a domain name', NEW.alias USING ERRCODE = '23505';
        END IF;
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER sip_domains_name_check BEFORE INSERT OR UPDATE OF name ON sip_domains
    FOR EACH ROW EXECUTE FUNCTION switchauth_check_domain_name();
CREATE TRIGGER sip_domain_aliases_name_check BEFORE INSERT OR UPDATE OF alias ON sip_domain_aliases
    FOR EACH ROW EXECUTE FUNCTION switchauth_check_domain_name();

CREATE TABLE sip_devices (
    id               bigserial PRIMARY KEY,
    -- Deleting an account deletes its devices.
    account_id       bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    -- A domain that still has devices cannot be deleted.
    domain_id        bigint NOT NULL REFERENCES sip_domains (id) ON DELETE RESTRICT,
    username         text NOT NULL CHECK (username ~ '^[A-Za-z0-9._+-]{1,64}$'),
    -- HA1 = H(username:realm:password) over the domain's primary name, lower-case hex.
    ha1_md5          text NOT NULL CHECK (ha1_md5 ~ '^[0-9a-f]{32}$'),
    ha1_sha256       text NOT NULL CHECK (ha1_sha256 ~ '^[0-9a-f]{64}$'),
    enabled          boolean NOT NULL DEFAULT true,
    caller_id_name   text NOT NULL DEFAULT '' CHECK (length(caller_id_name) <= 100),
    caller_id_number text NOT NULL DEFAULT '' CHECK (caller_id_number ~ '^[+]?[0-9]{0,32}$'),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT sip_devices_domain_username_key UNIQUE (domain_id, username)
);
CREATE INDEX sip_devices_account ON sip_devices (account_id);
CREATE TRIGGER sip_devices_touch BEFORE UPDATE ON sip_devices
    FOR EACH ROW EXECUTE FUNCTION switchauth_touch_updated_at();

-- Failed digest attempts, per source IP and per user@domain, shared by every service instance.
-- One row per subject: the current window's count and, past the threshold, the lockout's end.
CREATE TABLE auth_failures (
    scope         text NOT NULL CHECK (scope IN ('ip', 'user')),
    subject       text NOT NULL CHECK (length(subject) BETWEEN 1 AND 400),
    window_start  timestamptz NOT NULL DEFAULT now(),
    failures      integer NOT NULL DEFAULT 0 CHECK (failures >= 0),
    locked_until  timestamptz,
    PRIMARY KEY (scope, subject)
);
CREATE INDEX auth_failures_locked ON auth_failures (locked_until) WHERE locked_until IS NOT NULL;
