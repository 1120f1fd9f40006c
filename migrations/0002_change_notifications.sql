-- Change notifications on channel `switchauth_changes`, sent at commit, so that the service can
-- push `reloadacl` and `xml_flush_cache` to FreeSWITCH (and refresh its acl.conf cache).
-- Payloads: 'acl' (IP settings changed), 'account:<id>' (status, expiry, ... changed),
-- 'device:<username>@<domain name>' (a device changed: flush that user).

CREATE FUNCTION switchauth_notify_ip_settings() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('switchauth_changes', 'acl');
    RETURN NULL;
END;
$$;
CREATE TRIGGER ip_settings_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON ip_settings
    FOR EACH STATEMENT EXECUTE FUNCTION switchauth_notify_ip_settings();

CREATE FUNCTION switchauth_notify_accounts() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('switchauth_changes', 'account:' || OLD.id);
    ELSE
        PERFORM pg_notify('switchauth_changes', 'account:' || NEW.id);
    END IF;
    RETURN NULL;
END;
$$;
-- Balance changes alone do not change what FreeSWITCH has cached or listed: no notification.
CREATE TRIGGER accounts_notify AFTER INSERT OR DELETE OR UPDATE OF status, expires_at, kind ON accounts
    FOR EACH ROW EXECUTE FUNCTION switchauth_notify_accounts();

CREATE FUNCTION switchauth_notify_devices() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    d text;
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        SELECT name INTO d FROM sip_domains WHERE id = OLD.domain_id;
        PERFORM pg_notify('switchauth_changes', 'device:' || OLD.username || '@' || coalesce(d, ''));
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        SELECT name INTO d FROM sip_domains WHERE id = NEW.domain_id;
        PERFORM pg_notify('switchauth_changes', 'device:' || NEW.username || '@' || coalesce(d, ''));
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER sip_devices_notify AFTER INSERT OR UPDATE OR DELETE ON sip_devices
    FOR EACH ROW EXECUTE FUNCTION switchauth_notify_devices();
