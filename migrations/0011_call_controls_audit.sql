-- Destination rules and fraud thresholds are operators' changes like accounts and IP settings
-- (made through the console, the API, 'switchauth destination' and 'switchauth fraud'), and a
-- critical threshold suspends an account: they are audited the same way (0005), with a label and
-- the account they belong to (none for a global rule). call_slots, cps_windows, fraud_counts and
-- fraud_events are the service's own bookkeeping and stay out of the audit log (a suspension by the
-- fraud check is audited on the account, as 0009 does).
CREATE OR REPLACE FUNCTION switchauth_audit_label(tbl text, r jsonb) RETURNS text
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
        WHEN 'destination_rules' THEN (r->>'action') || ' ' || (r->>'prefix') || CASE WHEN r->>'account_id' IS NULL THEN ' (global)' ELSE '' END
        WHEN 'fraud_thresholds' THEN (r->>'metric') || CASE WHEN coalesce(r->>'prefix', '') = '' THEN '' ELSE ' to ' || (r->>'prefix') END
        ELSE tbl END, '')
$$;

CREATE OR REPLACE FUNCTION switchauth_audit_account(tbl text, r jsonb) RETURNS bigint
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE tbl WHEN 'accounts' THEN (r->>'id')::bigint
                    WHEN 'sip_devices' THEN (r->>'account_id')::bigint
                    WHEN 'ip_settings' THEN (r->>'account_id')::bigint
                    WHEN 'destination_rules' THEN (r->>'account_id')::bigint
                    WHEN 'fraud_thresholds' THEN (r->>'account_id')::bigint END
$$;

CREATE TRIGGER destination_rules_audit AFTER UPDATE OR DELETE ON destination_rules
    FOR EACH ROW EXECUTE FUNCTION switchauth_audit();
CREATE TRIGGER destination_rules_audit_inserts AFTER INSERT ON destination_rules
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION switchauth_audit_inserts();
CREATE TRIGGER fraud_thresholds_audit AFTER UPDATE OR DELETE ON fraud_thresholds
    FOR EACH ROW EXECUTE FUNCTION switchauth_audit();
CREATE TRIGGER fraud_thresholds_audit_inserts AFTER INSERT ON fraud_thresholds
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION switchauth_audit_inserts();
