-- Updates and deletes of the operators' tables are audited per statement, set-based, with the same
-- rows as before: one audit row per changed row, its before and after, the password marker, nothing
-- for a change of updated_at alone (issue 19: the copy must stay current through a bulk update of
-- 1,000,000 rows, and the statement itself took over three minutes).
--
-- 0005's trigger ran a PL/pgSQL function per row: 145 µs a row, 38.5 s for an UPDATE of 200,000
-- devices' passwords, so some 190 s for a million. The rows are the same; the work is one
-- INSERT ... SELECT over the statement's transition tables (old_rows joined to new_rows on id).
--
-- Foreign-key cascades run one statement per parent row, so deleting an account still audits its
-- devices and IP settings, now after the account's own row. auth_failures (the actor check),
-- console_operators and console_tokens (its trigger has a column list, which transition tables
-- cannot have) keep 0005's per-row trigger: their changes are single rows.
CREATE FUNCTION switchauth_audit_statement() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    actor text := switchauth_audit_actor();
BEGIN
    IF TG_OP = 'UPDATE' THEN
        -- Materialized so that each row is made JSON once (a flattened subquery would make it
        -- again at every reference).
        WITH j AS MATERIALIZED (
            SELECT o.id, to_jsonb(o) AS o, to_jsonb(n) AS n FROM old_rows o JOIN new_rows n USING (id)
        ), c AS MATERIALIZED (
            SELECT j.id, j.n, switchauth_audit_clean(j.o) AS before,
                   switchauth_audit_clean(j.n)
                   || CASE WHEN j.o->'ha1_md5' IS DISTINCT FROM j.n->'ha1_md5'
                             OR j.o->'ha1_sha256' IS DISTINCT FROM j.n->'ha1_sha256'
                           THEN '{"password": "changed"}'::jsonb ELSE '{}'::jsonb END AS after
              FROM j
        )
        INSERT INTO audit_log (actor, action, object_type, object_id, object_label, account_id, before, after)
        SELECT actor, 'update', TG_TABLE_NAME, c.id::text, switchauth_audit_label(TG_TABLE_NAME, c.n),
               switchauth_audit_account(TG_TABLE_NAME, c.n), c.before, c.after
          FROM c
         -- updated_at alone is not a change.
         WHERE (c.before - 'updated_at') <> (c.after - 'updated_at')
         ORDER BY c.id;
    ELSE
        WITH j AS MATERIALIZED (SELECT o.id, to_jsonb(o) AS o FROM old_rows o)
        INSERT INTO audit_log (actor, action, object_type, object_id, object_label, account_id, before, after)
        SELECT actor, 'delete', TG_TABLE_NAME, j.id::text, switchauth_audit_label(TG_TABLE_NAME, j.o),
               switchauth_audit_account(TG_TABLE_NAME, j.o), switchauth_audit_clean(j.o), NULL
          FROM j
         ORDER BY j.id;
    END IF;
    RETURN NULL;
END;
$$;

-- 0005's and 0011's per-row triggers replaced by one for updates and one for deletes per table.
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['accounts', 'ip_settings', 'sip_domains', 'sip_domain_aliases', 'sip_devices',
                             'destination_rules', 'fraud_thresholds'] LOOP
        EXECUTE format('DROP TRIGGER %I ON %I', t || '_audit', t);
        EXECUTE format('CREATE TRIGGER %I AFTER UPDATE ON %I REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows '
                       'FOR EACH STATEMENT EXECUTE FUNCTION switchauth_audit_statement()', t || '_audit_updates', t);
        EXECUTE format('CREATE TRIGGER %I AFTER DELETE ON %I REFERENCING OLD TABLE AS old_rows '
                       'FOR EACH STATEMENT EXECUTE FUNCTION switchauth_audit_statement()', t || '_audit_deletes', t);
    END LOOP;
END;
$$;
