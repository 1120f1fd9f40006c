-- Bulk changes announce themselves once (issue 19). Until now accounts, devices and IP settings
-- announced every row, on two channels: an import of 1,000,000 devices queued 2,000,000
-- notifications, cost PostgreSQL a trigger call and a queue entry per row, made the memory copy
-- read a million rows back by id, and had the change watcher look up a domain per device.
--
-- Now each statement announces its rows from its transition tables, and a statement that touches
-- more than switchauth_bulk_rows() rows (10,000) announces `R` instead: every copy loads all again
-- (about 3 s for a million devices; lookups read PostgreSQL meanwhile). Payloads and their meaning
-- are unchanged (0007 lists them); what a statement of up to 10,000 rows sends is the same set as
-- before, the `x` (key gone) entries of a statement before its `d` entries.
--
-- On `switchauth_changes` (switch pushes, 0002): devices announce `device:<user>@<domain>` for
-- rows updated or deleted only (an inserted user was never in a switch's cache), and a larger
-- statement announces `devices` (no list: cached users then expire by their `cacheable` time, and
-- with caching off, the default, nothing is cached). Accounts announce `acl` once per statement
-- that inserts, deletes or changes status, expiry or kind: the watcher's answer (reloadacl) is the
-- same for one row as for many.

CREATE FUNCTION switchauth_bulk_rows() RETURNS bigint LANGUAGE sql IMMUTABLE AS $$ SELECT 10000::bigint $$;

DROP TRIGGER accounts_rows ON accounts;
DROP TRIGGER ip_settings_rows ON ip_settings;
DROP TRIGGER sip_devices_rows ON sip_devices;
DROP FUNCTION switchauth_rows_by_id();
DROP FUNCTION switchauth_rows_devices();
DROP TRIGGER accounts_notify ON accounts;
DROP FUNCTION switchauth_notify_accounts();
DROP TRIGGER sip_devices_notify ON sip_devices;
DROP FUNCTION switchauth_notify_devices();

-- Rows announced by id: the statement's new rows (INSERT, UPDATE) or old rows (DELETE), which each
-- trigger names `changed_rows`; the tag ('a', 'i', 'd') is the trigger's argument.
CREATE FUNCTION switchauth_rows_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (SELECT count(*) FROM changed_rows) > switchauth_bulk_rows() THEN
        PERFORM pg_notify('switchauth_rows', 'R');
    ELSE
        PERFORM pg_notify('switchauth_rows', TG_ARGV[0] || id) FROM changed_rows ORDER BY id;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER accounts_rows_insert AFTER INSERT ON accounts REFERENCING NEW TABLE AS changed_rows
    FOR EACH STATEMENT EXECUTE FUNCTION switchauth_rows_changed('a');
CREATE TRIGGER accounts_rows_update AFTER UPDATE ON accounts REFERENCING NEW TABLE AS changed_rows
    FOR EACH STATEMENT EXECUTE FUNCTION switchauth_rows_changed('a');
CREATE TRIGGER accounts_rows_delete AFTER DELETE ON accounts REFERENCING OLD TABLE AS changed_rows
    FOR EACH STATEMENT EXECUTE FUNCTION switchauth_rows_changed('a');

CREATE TRIGGER ip_settings_rows_insert AFTER INSERT ON ip_settings REFERENCING NEW TABLE AS changed_rows
    FOR EACH STATEMENT EXECUTE FUNCTION switchauth_rows_changed('i');
CREATE TRIGGER ip_settings_rows_update AFTER UPDATE ON ip_settings REFERENCING NEW TABLE AS changed_rows
    FOR EACH STATEMENT EXECUTE FUNCTION switchauth_rows_changed('i');
CREATE TRIGGER ip_settings_rows_delete AFTER DELETE ON ip_settings REFERENCING OLD TABLE AS changed_rows
    FOR EACH STATEMENT EXECUTE FUNCTION switchauth_rows_changed('i');

-- Devices: inserted rows as above; a key given up (deleted, or renamed or moved to another domain)
-- is announced as `x<domain_id>:<username>` before the rows are, and the switches are told which
-- users to flush.
CREATE FUNCTION switchauth_rows_devices_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (SELECT count(*) FROM new_rows) > switchauth_bulk_rows() THEN
        PERFORM pg_notify('switchauth_rows', 'R');
        PERFORM pg_notify('switchauth_changes', 'devices');
        RETURN NULL;
    END IF;
    PERFORM pg_notify('switchauth_rows', 'x' || o.domain_id || ':' || o.username)
       FROM old_rows o JOIN new_rows n ON n.id = o.id
      WHERE o.domain_id <> n.domain_id OR o.username <> n.username
      ORDER BY o.id;
    PERFORM pg_notify('switchauth_rows', 'd' || id) FROM new_rows ORDER BY id;
    PERFORM pg_notify('switchauth_changes', 'device:' || r.username || '@' || coalesce(d.name, ''))
       FROM (SELECT username, domain_id, id FROM old_rows UNION ALL SELECT username, domain_id, id FROM new_rows) r
       LEFT JOIN sip_domains d ON d.id = r.domain_id
      ORDER BY r.id;
    RETURN NULL;
END
$$;
CREATE FUNCTION switchauth_rows_devices_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (SELECT count(*) FROM old_rows) > switchauth_bulk_rows() THEN
        PERFORM pg_notify('switchauth_rows', 'R');
        PERFORM pg_notify('switchauth_changes', 'devices');
        RETURN NULL;
    END IF;
    PERFORM pg_notify('switchauth_rows', 'x' || domain_id || ':' || username) FROM old_rows ORDER BY id;
    PERFORM pg_notify('switchauth_changes', 'device:' || o.username || '@' || coalesce(d.name, ''))
       FROM old_rows o LEFT JOIN sip_domains d ON d.id = o.domain_id
      ORDER BY o.id;
    RETURN NULL;
END
$$;
CREATE TRIGGER sip_devices_rows_insert AFTER INSERT ON sip_devices REFERENCING NEW TABLE AS changed_rows
    FOR EACH STATEMENT EXECUTE FUNCTION switchauth_rows_changed('d');
CREATE TRIGGER sip_devices_rows_update AFTER UPDATE ON sip_devices REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION switchauth_rows_devices_update();
CREATE TRIGGER sip_devices_rows_delete AFTER DELETE ON sip_devices REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION switchauth_rows_devices_delete();

-- Accounts on switchauth_changes: once per statement (0002 sent one per row, all read as 'acl').
CREATE FUNCTION switchauth_notify_acl() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('switchauth_changes', 'acl');
    RETURN NULL;
END
$$;
CREATE TRIGGER accounts_notify AFTER INSERT OR DELETE OR UPDATE OF status, expires_at, kind ON accounts
    FOR EACH STATEMENT EXECUTE FUNCTION switchauth_notify_acl();

-- The same for the bookkeeping a bulk load paid per row (measured on an import of 1,000,000
-- devices and 100,000 IP settings: 21 s in the masklen counts, 28 s in the devices' audit rows).

-- IP settings per family and prefix length (0006), counted per statement.
DROP TRIGGER ip_settings_masklens ON ip_settings;
DROP FUNCTION switchauth_ip_setting_masklens();
CREATE FUNCTION switchauth_ip_setting_masklens_apply(family_ smallint, masklen_ smallint, delta bigint) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO ip_setting_masklens (family, masklen, settings) VALUES (family_, masklen_, greatest(delta, 0))
    ON CONFLICT (family, masklen) DO UPDATE SET settings = ip_setting_masklens.settings + delta
$$;
CREATE FUNCTION switchauth_ip_setting_masklens_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM switchauth_ip_setting_masklens_apply(f, m, c)
       FROM (SELECT family(network)::smallint AS f, masklen(network)::smallint AS m, count(*) AS c
               FROM new_rows GROUP BY 1, 2) x;
    RETURN NULL;
END
$$;
CREATE FUNCTION switchauth_ip_setting_masklens_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM switchauth_ip_setting_masklens_apply(f, m, -c)
       FROM (SELECT family(network)::smallint AS f, masklen(network)::smallint AS m, count(*) AS c
               FROM old_rows GROUP BY 1, 2) x;
    RETURN NULL;
END
$$;
-- An update counts only the lengths whose numbers changed (most updates do not touch network).
CREATE FUNCTION switchauth_ip_setting_masklens_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM switchauth_ip_setting_masklens_apply(f, m, d)
       FROM (SELECT f, m, sum(d)::bigint AS d
               FROM (SELECT family(network)::smallint AS f, masklen(network)::smallint AS m, -1 AS d FROM old_rows
                     UNION ALL
                     SELECT family(network)::smallint, masklen(network)::smallint, 1 FROM new_rows) x
              GROUP BY f, m HAVING sum(d) <> 0) c;
    RETURN NULL;
END
$$;
CREATE TRIGGER ip_settings_masklens_insert AFTER INSERT ON ip_settings REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION switchauth_ip_setting_masklens_insert();
CREATE TRIGGER ip_settings_masklens_update AFTER UPDATE ON ip_settings REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION switchauth_ip_setting_masklens_update();
CREATE TRIGGER ip_settings_masklens_delete AFTER DELETE ON ip_settings REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION switchauth_ip_setting_masklens_delete();
-- TRUNCATE empties the counts with the table.
CREATE FUNCTION switchauth_ip_setting_masklens_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE ip_setting_masklens SET settings = 0 WHERE settings <> 0;
    RETURN NULL;
END
$$;
CREATE TRIGGER ip_settings_masklens_truncate AFTER TRUNCATE ON ip_settings
    FOR EACH STATEMENT EXECUTE FUNCTION switchauth_ip_setting_masklens_truncate();

-- Devices' audit rows for an INSERT: the actor once, the domain names by one join (0005 called a
-- label function per row that looked the domain up). Same rows as before.
CREATE FUNCTION switchauth_audit_device_inserts() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    who text := switchauth_audit_actor();
BEGIN
    INSERT INTO audit_log (actor, action, object_type, object_id, object_label, account_id, before, after)
    SELECT who, 'create', 'sip_devices', n.id::text, n.username || '@' || coalesce(d.name, '?'), n.account_id,
           NULL, switchauth_audit_clean(to_jsonb(n))
      FROM new_rows n LEFT JOIN sip_domains d ON d.id = n.domain_id
     ORDER BY n.id;
    RETURN NULL;
END
$$;
DROP TRIGGER sip_devices_audit_inserts ON sip_devices;
CREATE TRIGGER sip_devices_audit_inserts AFTER INSERT ON sip_devices
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION switchauth_audit_device_inserts();
