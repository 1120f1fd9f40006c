-- The console, second round: refused console logins are written to the audit log (action
-- 'login_failed', actor 'login:<source>', the name tried as the label, never the password), and the
-- dashboard counts them over the last day.
ALTER TABLE audit_log DROP CONSTRAINT audit_log_action_check;
ALTER TABLE audit_log ADD CONSTRAINT audit_log_action_check CHECK (action IN ('create', 'update', 'delete', 'login_failed'));
CREATE INDEX audit_log_login_failed ON audit_log (at) WHERE action = 'login_failed';
