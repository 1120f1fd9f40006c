-- The same checks on sip_devices, written so that PostgreSQL's regex engine does not expand a
-- counted repetition per row (issue 19: inserting 1,000,000 devices spent 13 s in these CHECKs, of
-- 14.6 s for the rows without indexes; '^[0-9a-f]{64}$' alone took 3.8 s over the million HA1s,
-- the length test plus one negated class 0.28 s).
--
-- Each new check accepts exactly what the old one did: a string whose every character is in the
-- class is ASCII, so its octet length is its length.
--   username          ^[A-Za-z0-9._+-]{1,64}$  ->  1 to 64 octets, no character outside the class
--   ha1_md5           ^[0-9a-f]{32}$            ->  32 octets, no character outside [0-9a-f]
--   ha1_sha256        ^[0-9a-f]{64}$            ->  64 octets, no character outside [0-9a-f]
--   caller_id_number  ^[+]?[0-9]{0,32}$         ->  ^[+]?[0-9]*$ and at most 32 digits
-- The table is checked again under the migration's lock (about a second per million rows).

ALTER TABLE sip_devices
    DROP CONSTRAINT sip_devices_username_check,
    DROP CONSTRAINT sip_devices_ha1_md5_check,
    DROP CONSTRAINT sip_devices_ha1_sha256_check,
    DROP CONSTRAINT sip_devices_caller_id_number_check,
    ADD CONSTRAINT sip_devices_username_check
        CHECK (octet_length(username) BETWEEN 1 AND 64 AND username !~ '[^A-Za-z0-9._+-]'),
    ADD CONSTRAINT sip_devices_ha1_md5_check
        CHECK (octet_length(ha1_md5) = 32 AND ha1_md5 !~ '[^0-9a-f]'),
    ADD CONSTRAINT sip_devices_ha1_sha256_check
        CHECK (octet_length(ha1_sha256) = 64 AND ha1_sha256 !~ '[^0-9a-f]'),
    ADD CONSTRAINT sip_devices_caller_id_number_check
        CHECK (caller_id_number ~ '^[+]?[0-9]*$' AND octet_length(ltrim(caller_id_number, '+')) <= 32);
