#!/usr/bin/env bash
# Installs the package built by build-deb.sh on this machine and checks what can be checked without
# systemd running: the binary runs and finds its migrations, its libraries resolve without the
# Swift toolchain, systemd-analyze verify accepts the unit, the user and permissions are right.
# Removes the package again.  Needs root.
#   Tests/package/test-deb.sh PATH.deb
set -euo pipefail
deb=$1
fail() { echo "package test FAILED: $*" >&2; exit 1; }
export DEBIAN_FRONTEND=noninteractive
dpkg -i "$deb" >/dev/null || { apt-get install -f -y -qq >/dev/null; dpkg -i "$deb" >/dev/null; }
trap 'dpkg --purge switchauth >/dev/null 2>&1 || true' EXIT

# Outputs are captured before they are searched: with pipefail, 'cmd | grep -q' fails whenever grep
# exits on its first match while cmd is still writing (SIGPIPE), which is timing-dependent.
help=$(/usr/bin/switchauth --help) || fail "switchauth --help exited $?"
grep -q "gateway-secret" <<<"$help" || fail "switchauth --help does not list gateway-secret"
help_config=$(/usr/bin/switchauth serve --help-config) || fail "serve --help-config exited $?"
grep -q "^database_url" <<<"$help_config" || fail "serve --help-config does not list database_url"
if ldd /usr/bin/switchauth | grep -E "not found|/opt/swift"; then fail "libraries outside the package's Depends"; fi
migrations=$(cd / && /usr/bin/switchauth migrate --status --database-url "host=/nonexistent dbname=x" 2>&1 || true)
ls /usr/share/switchauth/migrations/0001_schema.sql >/dev/null || fail "migrations not installed"
test -f /usr/share/switchauth/freeswitch-conf/autoload_configs/xml_curl.conf.xml || fail "freeswitch-conf not installed"
getent passwd switchauth >/dev/null || fail "no switchauth user"
[ "$(stat -c '%U:%G %a' /etc/switchauth/switchauth.conf)" = "root:switchauth 640" ] || fail "configuration owner/mode: $(stat -c '%U:%G %a' /etc/switchauth/switchauth.conf)"
# The service refuses to start without the lookup secret (secure by default) ...
out=$(runuser -u switchauth -- /usr/bin/switchauth serve --config /etc/switchauth/switchauth.conf 2>&1 || true)
grep -q "basic_auth is not set" <<<"$out" || fail "serve without a secret: $out"
# ... and gateway-secret, run by root, keeps the file readable by the service.
fs=$(mktemp -d)
cp -r /usr/share/switchauth/freeswitch-conf/. "$fs/"
/usr/bin/switchauth gateway-secret --config /etc/switchauth/switchauth.conf --freeswitch-conf "$fs" >/dev/null
[ "$(stat -c '%U:%G %a' /etc/switchauth/switchauth.conf)" = "root:switchauth 640" ] || fail "gateway-secret changed owner/mode: $(stat -c '%U:%G %a' /etc/switchauth/switchauth.conf)"
runuser -u switchauth -- /usr/bin/switchauth serve --config /etc/switchauth/switchauth.conf --help-config >/dev/null || fail "the service user cannot read its configuration"
rm -rf "$fs"
# The unit: systemd's own checker (it resolves ExecStart, User and every directive).
verify=$(systemd-analyze verify /lib/systemd/system/switchauth.service 2>&1 || true)
if echo "$verify" | grep -i "switchauth.service" | grep -viE "Command /bin/kill|Failed to load" ; then fail "systemd-analyze verify: $verify"; fi
echo "package ok: $(dpkg-deb -f "$deb" Package Version | tr '\n' ' ')($(du -k "$deb" | cut -f1) KiB); $(ldd /usr/bin/switchauth | wc -l) shared libraries; systemd-analyze verify clean"
