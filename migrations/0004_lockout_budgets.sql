-- Lockout budgets (README, "Lockouts"): failures are also counted per (source, user) in scope
-- 'pair' (subject 'source|user@realm'); 'ip' now counts a source (an IPv4 address or an IPv6 /64).
-- A user's recent successes per source make that source trusted for it: the source and user
-- locks do not apply there, so an attacker elsewhere cannot lock a customer's devices out.
ALTER TABLE auth_failures DROP CONSTRAINT auth_failures_scope_check;
ALTER TABLE auth_failures ADD CONSTRAINT auth_failures_scope_check CHECK (scope IN ('ip', 'user', 'pair'));

-- Successes no longer clear counters, and counters of full IPv6 addresses are superseded by /64s.
DELETE FROM auth_failures WHERE scope = 'ip' AND subject LIKE '%:%';

CREATE TABLE auth_trusted_sources (
    subject       text NOT NULL CHECK (length(subject) BETWEEN 1 AND 400),
    source        text NOT NULL CHECK (length(source) BETWEEN 1 AND 64),
    last_success  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (subject, source)
);
CREATE INDEX auth_trusted_sources_last_success ON auth_trusted_sources (last_success);
