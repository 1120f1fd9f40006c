-- The in-memory replica's change feed (README, "Answering from memory"). Every row change a lookup
-- depends on is announced on channel `switchauth_rows` at commit, in commit order, so that each
-- service instance keeps a copy of accounts, devices, domains, IP settings and lockout state that
-- is provably at most `replica_staleness_ms` behind the database. Payloads (never trusted as data
-- except where stated: the rows are read again by id):
--   a<id>                      accounts row <id> changed (any column, balance included)
--   d<id>                      sip_devices row <id> inserted or updated
--   x<domain_id>:<username>    the device previously under that key was updated away or deleted
--   i<id>                      ip_settings row <id> changed
--   n                          domains or aliases changed (the copy reads them all again)
--   l<scope>:<ms>:<subject>    lock of a failure counter set (<ms>: locked_until, epoch ms) or
--                              lifted (empty <ms>); carried in the payload, no read
--   t<ms>:<subject>|<source>   trust recorded (last_success, epoch ms); carried in the payload
--   T<subject>|<source>        trust removed
--   R                          a table was truncated: the copy loads everything again
-- The existing `switchauth_changes` channel (switch pushes) is unchanged.

CREATE FUNCTION switchauth_epoch_ms(ts timestamptz) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(floor(extract(epoch FROM ts) * 1000)::bigint::text, '')
$$;

-- Rows announced by id; the tag ('a', 'i') is the trigger's argument.
CREATE FUNCTION switchauth_rows_by_id() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('switchauth_rows', TG_ARGV[0] || OLD.id);
    ELSE
        PERFORM pg_notify('switchauth_rows', TG_ARGV[0] || NEW.id);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER accounts_rows AFTER INSERT OR UPDATE OR DELETE ON accounts
    FOR EACH ROW EXECUTE FUNCTION switchauth_rows_by_id('a');

CREATE FUNCTION switchauth_rows_devices() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        IF TG_OP = 'DELETE' OR OLD.domain_id <> NEW.domain_id OR OLD.username <> NEW.username THEN
            PERFORM pg_notify('switchauth_rows', 'x' || OLD.domain_id || ':' || OLD.username);
        END IF;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        PERFORM pg_notify('switchauth_rows', 'd' || NEW.id);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER sip_devices_rows AFTER INSERT OR UPDATE OR DELETE ON sip_devices
    FOR EACH ROW EXECUTE FUNCTION switchauth_rows_devices();

CREATE TRIGGER ip_settings_rows AFTER INSERT OR UPDATE OR DELETE ON ip_settings
    FOR EACH ROW EXECUTE FUNCTION switchauth_rows_by_id('i');

-- A fixed payload, the trigger's argument ('n': domains or aliases changed; 'R': a table truncated).
CREATE FUNCTION switchauth_rows_announce() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('switchauth_rows', TG_ARGV[0]);
    RETURN NULL;
END
$$;
CREATE TRIGGER sip_domains_rows AFTER INSERT OR UPDATE OR DELETE ON sip_domains
    FOR EACH STATEMENT EXECUTE FUNCTION switchauth_rows_announce('n');
CREATE TRIGGER sip_domain_aliases_rows AFTER INSERT OR UPDATE OR DELETE ON sip_domain_aliases
    FOR EACH STATEMENT EXECUTE FUNCTION switchauth_rows_announce('n');

-- Only changes of the lock itself: counting a failure that does not lock sends nothing.
CREATE FUNCTION switchauth_rows_auth_failures() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF OLD.locked_until IS NOT NULL THEN
            PERFORM pg_notify('switchauth_rows', 'l' || OLD.scope || '::' || OLD.subject);
        END IF;
    ELSIF TG_OP = 'INSERT' THEN
        IF NEW.locked_until IS NOT NULL THEN
            PERFORM pg_notify('switchauth_rows', 'l' || NEW.scope || ':' || switchauth_epoch_ms(NEW.locked_until) || ':' || NEW.subject);
        END IF;
    ELSIF OLD.locked_until IS DISTINCT FROM NEW.locked_until OR OLD.subject <> NEW.subject OR OLD.scope <> NEW.scope THEN
        IF OLD.subject <> NEW.subject OR OLD.scope <> NEW.scope THEN
            PERFORM pg_notify('switchauth_rows', 'l' || OLD.scope || '::' || OLD.subject);
        END IF;
        PERFORM pg_notify('switchauth_rows', 'l' || NEW.scope || ':' || switchauth_epoch_ms(NEW.locked_until) || ':' || NEW.subject);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER auth_failures_rows AFTER INSERT OR UPDATE OR DELETE ON auth_failures
    FOR EACH ROW EXECUTE FUNCTION switchauth_rows_auth_failures();

CREATE FUNCTION switchauth_rows_trusted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') AND (TG_OP = 'DELETE' OR OLD.subject <> NEW.subject OR OLD.source <> NEW.source) THEN
        PERFORM pg_notify('switchauth_rows', 'T' || OLD.subject || '|' || OLD.source);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        PERFORM pg_notify('switchauth_rows', 't' || switchauth_epoch_ms(NEW.last_success) || ':' || NEW.subject || '|' || NEW.source);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER auth_trusted_sources_rows AFTER INSERT OR UPDATE OR DELETE ON auth_trusted_sources
    FOR EACH ROW EXECUTE FUNCTION switchauth_rows_trusted();

CREATE TRIGGER accounts_rows_truncate AFTER TRUNCATE ON accounts FOR EACH STATEMENT EXECUTE FUNCTION switchauth_rows_announce('R');
CREATE TRIGGER sip_devices_rows_truncate AFTER TRUNCATE ON sip_devices FOR EACH STATEMENT EXECUTE FUNCTION switchauth_rows_announce('R');
CREATE TRIGGER ip_settings_rows_truncate AFTER TRUNCATE ON ip_settings FOR EACH STATEMENT EXECUTE FUNCTION switchauth_rows_announce('R');
CREATE TRIGGER sip_domains_rows_truncate AFTER TRUNCATE ON sip_domains FOR EACH STATEMENT EXECUTE FUNCTION switchauth_rows_announce('R');
CREATE TRIGGER sip_domain_aliases_rows_truncate AFTER TRUNCATE ON sip_domain_aliases FOR EACH STATEMENT EXECUTE FUNCTION switchauth_rows_announce('R');
CREATE TRIGGER auth_failures_rows_truncate AFTER TRUNCATE ON auth_failures FOR EACH STATEMENT EXECUTE FUNCTION switchauth_rows_announce('R');
CREATE TRIGGER auth_trusted_sources_rows_truncate AFTER TRUNCATE ON auth_trusted_sources FOR EACH STATEMENT EXECUTE FUNCTION switchauth_rows_announce('R');
