#!/usr/bin/env bash
# Builds the Debian package of SwitchAuth: the release binary (Swift's runtime linked in
# statically, so only libpq5 and the C/C++ runtimes are needed), migrations/, freeswitch-conf/, a
# sample /etc/switchauth/switchauth.conf and the hardened systemd unit.
#   Tests/package/build-deb.sh [OUTPUT_DIR]        # prints the .deb's path
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
out=${1:-$top/.build-package}
cd "$top"
swift build -c release --static-swift-stdlib --product switchauth --scratch-path .build-package >&2
bin=$(swift build -c release --static-swift-stdlib --product switchauth --scratch-path .build-package --show-bin-path)/switchauth

count=$(git rev-list --count HEAD 2>/dev/null || echo 0)
version="0.1.${count}"
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
install -D -m 0755 "$bin" "$root/usr/bin/switchauth"
strip --strip-unneeded "$root/usr/bin/switchauth"
install -d "$root/usr/share/switchauth/migrations"
install -m 0644 migrations/*.sql "$root/usr/share/switchauth/migrations/"
cp -r freeswitch-conf "$root/usr/share/switchauth/freeswitch-conf"
find "$root/usr/share/switchauth" -type d -exec chmod 0755 {} + -o -type f -exec chmod 0644 {} +
install -D -m 0644 README.md "$root/usr/share/doc/switchauth/README.md"
install -D -m 0644 "$here/switchauth.service" "$root/lib/systemd/system/switchauth.service"
install -D -m 0640 "$here/switchauth.conf" "$root/etc/switchauth/switchauth.conf"

mkdir -p "$root/DEBIAN"
echo "/etc/switchauth/switchauth.conf" > "$root/DEBIAN/conffiles"
size=$(du -sk "$root" | cut -f1)
cat > "$root/DEBIAN/control" <<CONTROL
Package: switchauth
Version: $version
Architecture: amd64
Maintainer: SwitchAuth developers <switchauth@localhost>
Installed-Size: $size
Depends: libpq5, libc6, libstdc++6, libgcc-s1, adduser
Recommends: postgresql-client
Suggests: postgresql, freeswitch
Section: net
Priority: optional
Description: authentication decisions for FreeSWITCH (mod_xml_curl)
 SwitchAuth answers FreeSWITCH's directory, acl.conf and dialplan lookups from
 PostgreSQL: IP authentication by address and destination prefix, SIP digest
 authentication of devices, account status, balance and channel limits.
CONTROL
cat > "$root/DEBIAN/postinst" <<'POSTINST'
#!/bin/sh
set -e
if [ "$1" = configure ]; then
    if ! getent passwd switchauth >/dev/null; then
        adduser --system --group --no-create-home --home /var/lib/switchauth --quiet switchauth
    fi
    # The configuration holds the lookup secret: root writes it, the service reads it.
    chown root:switchauth /etc/switchauth /etc/switchauth/switchauth.conf
    chmod 0750 /etc/switchauth
    chmod 0640 /etc/switchauth/switchauth.conf
    if [ -d /run/systemd/system ]; then
        systemctl daemon-reload >/dev/null || true
    fi
fi
exit 0
POSTINST
cat > "$root/DEBIAN/postrm" <<'POSTRM'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null || true
fi
if [ "$1" = purge ]; then
    rm -rf /var/lib/switchauth
fi
exit 0
POSTRM
chmod 0755 "$root/DEBIAN/postinst" "$root/DEBIAN/postrm"
mkdir -p "$out"
deb="$out/switchauth_${version}_amd64.deb"
dpkg-deb --root-owner-group --build "$root" "$deb" >&2
echo "$deb"
