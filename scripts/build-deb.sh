#!/usr/bin/env bash
# Builds the Debian package libapache2-mod-wsgi-rs with dpkg-deb. It installs
#   /usr/lib/apache2/modules/mod_wsgi_rs.so          the module (Debian's own is mod_wsgi.so)
#   /etc/apache2/mods-available/wsgi_rs.load, .conf  so that `a2enmod wsgi_rs` enables it
#   /usr/bin/mod_wsgi-express-rs                     the command-line front end
# and can be installed next to Debian's libapache2-mod-wsgi-py3 (only one of the two modules
# can be enabled at a time: `a2dismod wsgi && a2enmod wsgi_rs`).
#
# Usage: scripts/build-deb.sh [--no-build] [--out DIR]
#   --no-build  package what target/release holds now instead of running cargo build first
#   --out DIR   where the .deb goes (default: target/debian)
# Prints the path of the .deb on the last line.
set -euo pipefail
cd "$(dirname "$0")/.."

build=1
out=target/debian
while [ $# -gt 0 ]; do
    case "$1" in
        --no-build) build=0 ;;
        --out)
            [ $# -ge 2 ] || { echo "build-deb: --out needs a directory, e.g. --out target/debian" >&2; exit 2; }
            out=$2
            shift
            ;;
        *) echo "build-deb: unknown argument '$1'; usage: scripts/build-deb.sh [--no-build] [--out DIR]" >&2; exit 2 ;;
    esac
    shift
done

for tool in dpkg-deb dpkg; do
    command -v "$tool" >/dev/null || { echo "build-deb: $tool is missing; this script runs on Debian (apt-get install dpkg)" >&2; exit 1; }
done
if [ "$build" = 1 ]; then
    cargo build --release --quiet
fi
so=target/release/libmod_wsgi.so
cli=target/release/mod_wsgi-express
for f in "$so" "$cli"; do
    [ -f "$f" ] || { echo "build-deb: $f is missing; run 'cargo build --release' first (or leave out --no-build)" >&2; exit 1; }
done

pkg=libapache2-mod-wsgi-rs
version="$(sed -n 's/^version *= *"\([^"]*\)".*/\1/p' Cargo.toml | head -n 1)-1"
arch=$(dpkg --print-architecture)
mkdir -p "$out"
stage=$(mktemp -d "${TMPDIR:-/tmp}/build-deb.XXXXXX")
trap 'rm -rf "$stage"' EXIT
chmod 0755 "$stage"

install -D -m 0644 "$so" "$stage/usr/lib/apache2/modules/mod_wsgi_rs.so"
install -D -m 0755 "$cli" "$stage/usr/bin/mod_wsgi-express-rs"
if command -v strip >/dev/null; then
    # The release profile keeps line tables for backtraces; the package does not need them.
    strip --strip-debug "$stage/usr/lib/apache2/modules/mod_wsgi_rs.so"
    strip --strip-debug "$stage/usr/bin/mod_wsgi-express-rs"
fi
install -D -m 0644 packaging/debian/wsgi_rs.load "$stage/etc/apache2/mods-available/wsgi_rs.load"
install -D -m 0644 packaging/debian/wsgi_rs.conf "$stage/etc/apache2/mods-available/wsgi_rs.conf"
install -D -m 0644 README.md "$stage/usr/share/doc/$pkg/README.md"
cat > "$stage/usr/share/doc/$pkg/copyright" <<EOF
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: mod_wsgi (Rust)

Files: *
License: Apache-2.0
 On Debian systems the full text of the Apache License 2.0 is in
 /usr/share/common-licenses/Apache-2.0.
EOF
chmod 0644 "$stage/usr/share/doc/$pkg/copyright"

mkdir -p "$stage/DEBIAN"
install -m 0755 packaging/debian/prerm "$stage/DEBIAN/prerm"
install -m 0755 packaging/debian/postrm "$stage/DEBIAN/postrm"
printf '%s\n' /etc/apache2/mods-available/wsgi_rs.load /etc/apache2/mods-available/wsgi_rs.conf > "$stage/DEBIAN/conffiles"
size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
cat > "$stage/DEBIAN/control" <<EOF
Package: $pkg
Version: $version
Architecture: $arch
Maintainer: mod_wsgi in Rust maintainers <root@localhost>
Section: httpd
Priority: optional
Installed-Size: $size
Depends: apache2 (>= 2.4), apache2-api-20120211, libpython3.11 (>= 3.11), libc6
Description: Python WSGI adapter module for Apache, rewritten in Rust
 A drop-in replacement for mod_wsgi (embedded mode and daemon process groups)
 for Python 3.11, installed as the module wsgi_rs so that it can sit next to
 Debian's libapache2-mod-wsgi-py3. Only one of the two can be enabled:
   a2dismod wsgi && a2enmod wsgi_rs
 Also provides mod_wsgi-express-rs, which serves an application through
 Apache with one command: mod_wsgi-express-rs start-server app.wsgi
EOF

deb="$out/${pkg}_${version}_${arch}.deb"
dpkg-deb --root-owner-group --build "$stage" "$deb" >/dev/null
echo "$deb"
