#!/usr/bin/env bash
# Installs what building and testing need (Debian 12, as root) and builds the module.
# Sourced by serve-hello.sh and test.sh; prints the path of the built module as MOD_WSGI_SO.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for pkg in apache2 apache2-dev libclang-dev python3-dev python3-venv curl "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "missing Debian packages: ${need[*]}; run as root or install them with apt-get" >&2
        exit 1
    fi
    echo "installing: ${need[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
if ! command -v cargo >/dev/null; then
    echo "cargo (Rust 1.85 or newer, from rustup) is required to build the module" >&2
    exit 1
fi

cargo build --release --quiet
MOD_WSGI_SO="$PWD/target/release/libmod_wsgi.so"
# A new file (not rewritten in place): an Apache that has the old one loaded keeps working.
cp --remove-destination "$MOD_WSGI_SO" "$PWD/target/release/mod_wsgi.so"
MOD_WSGI_SO="$PWD/target/release/mod_wsgi.so"

# Apache drops to www-data: it must be able to reach the module and the work tree.
d="$PWD"
while [ "$d" != "/" ]; do chmod o+x "$d" 2>/dev/null || true; d=$(dirname "$d"); done
chmod o+x target target/release
chmod o+r "$MOD_WSGI_SO"
export MOD_WSGI_SO
